"""Slicing tab: preview the silence cuts on a waveform, then slice into the workspace `sliced/` folder.

Preview runs the slicer in-process on the first few files without writing anything; Slice runs
`python -m tools.slice` as a subprocess (`core.jobs.Job`) so it can be stopped. Uploaded files are
copied into `uploads/` first; the user's originals are never touched.
"""

from __future__ import annotations

import filecmp
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from core.fsutil import unique_path
from core.jobs import Job
from tools.slice import Scan, SliceParams, check_output_dir, default_workers, scan_file
from ui.context import AppContext, InputError, person_files
from ui.errors import shown_in_toast
from ui.job_ui import exit_message, failure_details, start_job, stop_message
from ui.wiring import connect

PREVIEW_FILES = 8  # preview reads each file in full (in blocks): keep it to a few
PLOT_POINTS = 2000  # envelope bins drawn per waveform


def stage_uploads(files: list[str] | None, uploads_dir: Path) -> list[Path]:
    """Copy uploaded files into `uploads_dir`; an identical copy already there is reused."""
    staged = []
    for f in files or []:
        src = Path(f)
        target = uploads_dir / src.name
        if not (target.is_file() and filecmp.cmp(src, target, shallow=False)):
            target = unique_path(target)
            uploads_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
        staged.append(target)
    return staged


def collect_inputs(ctx: AppContext, files: list[str] | None, typed: str) -> list[Path]:
    with person_files():
        inputs = stage_uploads(files, ctx.folder("uploads"))
    if typed and typed.strip():
        inputs.append(ctx.existing(typed.strip()))
    if not inputs:
        raise InputError(ctx.i18n("Upload audio files or type a path inside the workspace first."))
    return inputs


def output_dir(ctx: AppContext, name: str) -> Path:
    """`sliced/` or a sub-folder of it the user named (which must stay inside the workspace)."""
    name = (name or "").strip()
    return ctx.inside(Path("sliced") / name) if name else ctx.folder("sliced")


def make_params(
    threshold, min_length, min_interval, hop, max_sil_kept, max_peak, alpha, max_length
) -> SliceParams:
    return SliceParams(
        threshold_db=float(threshold),
        min_length_ms=float(min_length),
        min_interval_ms=float(min_interval),
        hop_ms=float(hop),
        max_sil_kept_ms=float(max_sil_kept),
        max_peak=float(max_peak),
        alpha=float(alpha),
        max_length_s=float(max_length) if max_length else None,
    ).validate()


def cli_args(inputs: list[Path], out: Path, p: SliceParams, workers: int) -> list[str]:
    args = [
        *map(str, inputs),
        "--out",
        str(out),
        "--threshold",
        str(p.threshold_db),
        "--min-length",
        str(p.min_length_ms),
        "--min-interval",
        str(p.min_interval_ms),
        "--hop-size",
        str(p.hop_ms),
        "--max-sil-kept",
        str(p.max_sil_kept_ms),
        "--max",
        str(p.max_peak),
        "--alpha",
        str(p.alpha),
        "--workers",
        str(max(1, int(workers))),
    ]
    if p.max_length_s:
        args += ["--max-length", str(p.max_length_s)]
    return args


def envelope_bins(
    lo: np.ndarray, hi: np.ndarray, points: int = PLOT_POINTS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-hop (min, max) reduced to at most `points` bins: (first hop of each bin, min, max)."""
    m = lo.shape[0]
    if m == 0:
        return np.zeros(1, dtype=np.int64), np.zeros(1), np.zeros(1)
    edges = np.linspace(0, m, max(1, min(points, m)) + 1).astype(np.int64)[:-1]
    edges = np.unique(edges)
    return edges, np.minimum.reduceat(lo, edges), np.maximum.reduceat(hi, edges)


def waveform_figure(scan: Scan, title: str):
    """Envelope (min/max per bin, `PLOT_POINTS` bins) with kept segments shaded and cuts marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    n, sr, segments = scan.n, scan.sample_rate, scan.segments
    edges, lo, hi = envelope_bins(scan.envelope_lo, scan.envelope_hi)
    t = edges * scan.hop / sr
    fig = Figure(figsize=(10, 2.8), tight_layout=True)
    ax = fig.add_subplot()
    ax.fill_between(t, lo, hi, color="#555", linewidth=0)
    for k, (s, e) in enumerate(segments):
        ax.axvspan(s / sr, e / sr, color="C2" if k % 2 == 0 else "C0", alpha=0.25)
        ax.axvline(s / sr, color="C3", linewidth=0.8)
        ax.axvline(e / sr, color="C3", linewidth=0.8)
    ax.set_xlim(0, max(n / sr, 1e-3))
    ax.set_ylim(-1, 1)
    ax.set_xlabel("s")
    ax.set_title(title, fontsize=9)
    return fig


def preview(inputs: list[Path], params: SliceParams) -> tuple[Any, list[list[Any]]]:
    """Figure for the first file and table rows for up to `PREVIEW_FILES` files; writes nothing.

    Each file is read in blocks (`tools.slice.scan_file`): the figure is drawn from the per-hop
    envelope, so a long recording costs its RMS curve, not its samples.
    """
    from core.audio import list_audio_files

    files = list_audio_files(inputs)[:PREVIEW_FILES]
    if not files:
        raise InputError("no audio files found in " + ", ".join(str(p) for p in inputs))
    rows: list[list[Any]] = []
    fig = None
    sr = params.sample_rate
    for f in files:
        scan = scan_file(f, params)
        segments = scan.segments
        rows += [
            [f.name, k, round(s / sr, 2), round(e / sr, 2), round((e - s) / sr, 2)]
            for k, (s, e) in enumerate(segments, 1)
        ]
        if fig is None:
            fig = waveform_figure(scan, f"{f.name}: {len(segments)}")
    return fig, rows


def summary(ctx: AppContext, result: dict[str, Any] | None, out: Path, code: int | None) -> str:
    _ = ctx.i18n
    if result is None:
        return _("The slicer stopped before it finished (exit code {code}).", code=code)
    lines = [_("{n} clips written to `{folder}`.", n=len(result["outputs"]), folder=str(out))]
    if result.get("cancelled"):
        lines.append(_("Stopped before all files were sliced."))
    if result["failures"]:
        lines.append(_("{n} files failed:", n=len(result["failures"])))
        lines += [f"- {Path(f['path']).name}: {f['error']}" for f in result["failures"]]
    return "\n".join(lines)


# ---------- layout ----------


@dataclass
class SliceLayout:
    files: gr.File
    typed: gr.Textbox
    out_name: gr.Textbox
    params: dict[str, Any]  # make_params() argument name -> its input component
    workers: gr.Slider
    preview: gr.Button
    run: gr.Button
    stop: gr.Button
    plot: gr.Plot
    table: gr.Dataframe
    status: gr.Textbox
    result: gr.Markdown
    job_state: gr.State  # per session: {"job": Job} while a slice runs


def cut_parameters(ctx: AppContext) -> dict[str, Any]:
    """The silence-detection parameters, by `make_params()` argument name (workers is not one)."""
    _ = ctx.i18n
    d = SliceParams()
    params: dict[str, Any] = {}
    with gr.Row():
        params["threshold"] = gr.Slider(
            -80, 0, value=d.threshold_db, step=1, label=_("Silence threshold (dB)"), elem_id="slice-threshold"
        )
        params["min_length"] = gr.Number(
            d.min_length_ms, label=_("Minimum clip length (ms)"), minimum=0, elem_id="slice-min-length"
        )
        params["min_interval"] = gr.Number(
            d.min_interval_ms, label=_("Minimum silence to cut (ms)"), minimum=0, elem_id="slice-min-interval"
        )
        params["hop"] = gr.Number(d.hop_ms, label=_("Hop size (ms)"), minimum=1, elem_id="slice-hop")
        params["max_sil_kept"] = gr.Number(
            d.max_sil_kept_ms, label=_("Maximum silence kept (ms)"), minimum=0, elem_id="slice-max-sil"
        )
    return params


def level_parameters(ctx: AppContext) -> tuple[dict[str, Any], gr.Slider]:
    """Loudness and length parameters by `make_params()` argument name, and the worker count."""
    _ = ctx.i18n
    d = SliceParams()
    params: dict[str, Any] = {}
    with gr.Row():
        params["max_peak"] = gr.Slider(
            0.05, 1.0, value=d.max_peak, step=0.05, label=_("Peak after normalisation"), elem_id="slice-max"
        )
        params["alpha"] = gr.Slider(
            0.0, 1.0, value=d.alpha, step=0.05, label=_("Normalised share (alpha)"), elem_id="slice-alpha"
        )
        params["max_length"] = gr.Number(
            0, label=_("Maximum clip length in seconds (0: no limit)"), minimum=0, elem_id="slice-max-length"
        )
        workers = gr.Slider(
            1,
            max(default_workers(), 8),
            value=default_workers(),
            step=1,
            label=_("Parallel processes"),
            elem_id="slice-workers",
        )
    return params, workers


def layout(ctx: AppContext) -> SliceLayout:
    _ = ctx.i18n
    gr.Markdown(
        _(
            "Cut long recordings into clips at silences. Preview the cuts first; clips go to the "
            "workspace folder `sliced/` as 32 kHz mono wavs."
        )
    )
    with gr.Row():
        files = gr.File(
            label=_("Audio files"), file_count="multiple", type="filepath", elem_id="slice-upload"
        )
        with gr.Column():
            typed = gr.Textbox(label=_("Or a file or folder inside the workspace"), elem_id="slice-path")
            out_name = gr.Textbox(
                label=_("Output sub-folder of sliced/ (optional)"), elem_id="slice-out-name"
            )
    with gr.Accordion(_("Parameters"), open=False):
        params = cut_parameters(ctx)
        levels, workers = level_parameters(ctx)
    with gr.Row():
        preview_btn = gr.Button(_("Preview"), elem_id="slice-preview")
        run_btn = gr.Button(_("Slice"), variant="primary", elem_id="slice-run")
        stop_btn = gr.Button(_("Stop"), elem_id="slice-stop")
    plot = gr.Plot(label=_("Waveform and cuts"), elem_id="slice-plot")
    table = gr.Dataframe(
        headers=[_("File"), "#", _("Start (s)"), _("End (s)"), _("Length (s)")],
        interactive=False,
        elem_id="slice-table",
    )
    status = gr.Textbox(label=_("Status"), interactive=False, elem_id="slice-status")
    result_md = gr.Markdown(elem_id="slice-result")
    return SliceLayout(
        files=files,
        typed=typed,
        out_name=out_name,
        params={**params, **levels},
        workers=workers,
        preview=preview_btn,
        run=run_btn,
        stop=stop_btn,
        plot=plot,
        table=table,
        status=status,
        result=result_md,
        job_state=gr.State({}),
    )


# ---------- handlers ----------


def preview_cuts(
    ctx: AppContext, files: list[str] | None, typed: str, params: dict[str, Any]
) -> tuple[Any, list[list[Any]], str]:
    """The waveform with its cuts, the table of clips and a status line; nothing is written."""
    _ = ctx.i18n
    with shown_in_toast(_, "slicing preview"):
        fig, rows = preview(collect_inputs(ctx, files, typed), make_params(**params))
    return fig, rows, _("Preview: {n} clips (nothing written).", n=len(rows))


def start_slicing(
    ctx: AppContext,
    files: list[str] | None,
    typed: str,
    out_name: str,
    workers: int,
    params: dict[str, Any],
    state: dict[str, Any],
) -> Iterator[tuple[str, str]]:
    """Start `tools.slice`, then stream (status line, summary of what was written)."""
    _ = ctx.i18n
    with shown_in_toast(_, "slicing start"):
        slice_params = make_params(**params)
        inputs = collect_inputs(ctx, files, typed)
        out = output_dir(ctx, out_name)
        check_output_dir(inputs, out)
        job = start_job(ctx, state, "tools.slice", cli_args(inputs, out, slice_params, workers), "slice")
    yield _("Starting…"), ""
    yield from follow_slicing(ctx, job, out)
    state.pop("job", None)


def follow_slicing(ctx: AppContext, job: Job, out: Path) -> Iterator[tuple[str, str]]:
    """Progress lines while the job runs, then how it ended and what it wrote."""
    _ = ctx.i18n
    result, code, stopped = None, None, None
    for event in job.follow():
        kind = event.get("type")
        if kind == "progress":
            yield _("{done}/{total} files", done=event["done"], total=event["total"]), ""
        elif kind == "result":
            result = event
        elif kind == "error":
            raise gr.Error(event["message"])  # the stage's own message for a user error
        elif kind == "exit":
            code, stopped = event["returncode"], event.get("stopped")
    done = exit_message(_, code, stopped) if code is not None else _("Failed.")
    details = failure_details(job, code, stopped) if code is not None else ""
    if details:  # a crash or a kill: the log says why
        done += "\n\n" + details
    yield done, summary(ctx, result, out, code)


def stop_slicing(ctx: AppContext, state: dict[str, Any]) -> str:
    return stop_message(ctx.i18n, state)


# ---------- wiring ----------


def wire(ctx: AppContext, ui: SliceLayout) -> None:
    source = {"files": ui.files, "typed": ui.typed}
    connect(
        ui.preview.click, ctx, preview_cuts, {**source, "params": ui.params}, [ui.plot, ui.table, ui.status]
    )
    form = {
        **source,
        "out_name": ui.out_name,
        "workers": ui.workers,
        "params": ui.params,
        "state": ui.job_state,
    }
    connect(ui.run.click, ctx, start_slicing, form, [ui.status, ui.result])
    # The stop must not queue behind the running slice.
    connect(ui.stop.click, ctx, stop_slicing, {"state": ui.job_state}, ui.status, concurrency_limit=None)


def build(ctx: AppContext) -> SliceLayout:
    ui = layout(ctx)
    wire(ctx, ui)
    return ui
