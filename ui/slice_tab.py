"""Slicing tab: preview the silence cuts on a waveform, then slice into the workspace `sliced/` folder.

Preview runs the slicer in-process on the first few files without writing anything; Slice runs
`python -m tools.slice` as a subprocess (`core.jobs.Job`) so it can be stopped. Uploaded files are
copied into `uploads/` first; the user's originals are never touched.
"""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from core.fsutil import unique_path
from tools.slice import SliceParams, check_output_dir, default_workers, find_cuts
from ui.context import AppContext
from ui.job_ui import JobAlreadyRunning, exit_message, start_job, stop_job, was_stopped

PREVIEW_FILES = 8  # preview loads whole files: keep it to a few
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
    inputs = stage_uploads(files, ctx.folder("uploads"))
    if typed and typed.strip():
        path = ctx.inside(typed.strip())
        if not path.exists():
            raise FileNotFoundError(ctx.i18n("Not found: {path}", path=str(path)))
        inputs.append(path)
    if not inputs:
        raise ValueError(ctx.i18n("Upload audio files or type a path inside the workspace first."))
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


def waveform_figure(audio: np.ndarray, sr: int, segments: list[tuple[int, int]], title: str):
    """Envelope (min/max per bin, `PLOT_POINTS` bins) with kept segments shaded and cuts marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    n = audio.shape[0]
    bins = max(1, min(PLOT_POINTS, n))
    edges = np.linspace(0, n, bins + 1).astype(np.int64)
    lo = np.minimum.reduceat(audio, edges[:-1]) if n else np.zeros(1)
    hi = np.maximum.reduceat(audio, edges[:-1]) if n else np.zeros(1)
    t = edges[:-1] / sr
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
    """Figure for the first file and table rows for up to `PREVIEW_FILES` files; writes nothing."""
    from core.audio import list_audio_files, load_audio

    files = list_audio_files(inputs)[:PREVIEW_FILES]
    if not files:
        raise ValueError("no audio files found in " + ", ".join(str(p) for p in inputs))
    rows: list[list[Any]] = []
    fig = None
    sr = params.sample_rate
    for f in files:
        audio, _sr = load_audio(f, sr)  # (samples,) float32, loaded once per file
        segments = find_cuts(audio, params)
        rows += [
            [f.name, k, round(s / sr, 2), round(e / sr, 2), round((e - s) / sr, 2)]
            for k, (s, e) in enumerate(segments, 1)
        ]
        if fig is None:
            fig = waveform_figure(audio, sr, segments, f"{f.name}: {len(segments)}")
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


def build(ctx: AppContext) -> None:
    import gradio as gr

    _ = ctx.i18n
    d = SliceParams()
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
        with gr.Row():
            threshold = gr.Slider(
                -80,
                0,
                value=d.threshold_db,
                step=1,
                label=_("Silence threshold (dB)"),
                elem_id="slice-threshold",
            )
            min_length = gr.Number(
                d.min_length_ms, label=_("Minimum clip length (ms)"), minimum=0, elem_id="slice-min-length"
            )
            min_interval = gr.Number(
                d.min_interval_ms,
                label=_("Minimum silence to cut (ms)"),
                minimum=0,
                elem_id="slice-min-interval",
            )
            hop = gr.Number(d.hop_ms, label=_("Hop size (ms)"), minimum=1, elem_id="slice-hop")
            max_sil_kept = gr.Number(
                d.max_sil_kept_ms, label=_("Maximum silence kept (ms)"), minimum=0, elem_id="slice-max-sil"
            )
        with gr.Row():
            max_peak = gr.Slider(
                0.05,
                1.0,
                value=d.max_peak,
                step=0.05,
                label=_("Peak after normalisation"),
                elem_id="slice-max",
            )
            alpha = gr.Slider(
                0.0, 1.0, value=d.alpha, step=0.05, label=_("Normalised share (alpha)"), elem_id="slice-alpha"
            )
            max_length = gr.Number(
                0,
                label=_("Maximum clip length in seconds (0: no limit)"),
                minimum=0,
                elem_id="slice-max-length",
            )
            workers = gr.Slider(
                1,
                max(default_workers(), 8),
                value=default_workers(),
                step=1,
                label=_("Parallel processes"),
                elem_id="slice-workers",
            )
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
    job_state = gr.State({})  # per session: {"job": Job} while a slice runs
    param_inputs = [threshold, min_length, min_interval, hop, max_sil_kept, max_peak, alpha, max_length]

    def on_preview(up, path_text, *values):
        try:
            params = make_params(*values)
            fig, rows = preview(collect_inputs(ctx, up, path_text), params)
        except (ValueError, OSError) as e:
            raise gr.Error(str(e)) from e
        n_clips = len(rows)
        return fig, rows, _("Preview: {n} clips (nothing written).", n=n_clips)

    def on_run(
        up, path_text, out_text, n_workers, thr, min_len, min_int, hop_ms, sil, peak, a, max_len, state
    ):
        values = (thr, min_len, min_int, hop_ms, sil, peak, a, max_len)
        try:
            params = make_params(*values)
            inputs = collect_inputs(ctx, up, path_text)
            out = output_dir(ctx, out_text)
            check_output_dir(inputs, out)
            job = start_job(ctx, state, "tools.slice", cli_args(inputs, out, params, n_workers), "slice")
        except (ValueError, OSError, JobAlreadyRunning) as e:
            raise gr.Error(str(e)) from e
        result, code = None, None
        yield _("Starting…"), ""
        for event in job.follow():
            kind = event.get("type")
            if kind == "progress":
                yield _("{done}/{total} files", done=event["done"], total=event["total"]), ""
            elif kind == "result":
                result = event
            elif kind == "error":
                raise gr.Error(event["message"])
            elif kind == "exit":
                code = event["returncode"]
        state.pop("job", None)
        done = exit_message(_, code) if code is not None else _("Failed.")
        if code is not None and code not in (0, 1, 2) and not was_stopped(code):
            done += "\n\n" + job.log_tail(1000)  # a crash: the log says why
        yield done, summary(ctx, result, out, code)

    def on_stop(state):
        stop_job(state)
        return _("Stopped.")

    preview_btn.click(on_preview, inputs=[files, typed, *param_inputs], outputs=[plot, table, status])
    run_btn.click(
        on_run,
        inputs=[files, typed, out_name, workers, *param_inputs, job_state],
        outputs=[status, result_md],
    )
    stop_btn.click(on_stop, inputs=job_state, outputs=status, concurrency_limit=None)
