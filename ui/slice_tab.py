"""Slicing tab: preview the silence cuts on a waveform, then slice into the workspace `sliced/` folder.

Preview runs the slicer in-process on the first few files without writing anything; Slice runs
`python -m tools.slice` as a subprocess (`core.jobs.Job`) so it can be stopped. Uploaded files are
copied into `uploads/` first; the user's originals are never touched.
"""

from __future__ import annotations

import filecmp
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from core.audio import save_wav, to_int16
from core.fsutil import unique_path
from core.jobs import Job
from tools.slice import (
    Levels,
    Scan,
    SliceParams,
    check_output_dir,
    clip_name,
    default_workers,
    scan_file,
    segment_clip,
)
from ui.context import AppContext, InputError, person_files
from ui.errors import shown_in_toast
from ui.job_ui import exit_message, failure_details, start_job, stop_message, wire_reopen
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


def collect_inputs(
    ctx: AppContext,
    files: list[str] | None,
    typed: str,
    picked: list[str] | None = None,
    experiment: str | None = None,
) -> list[Path]:
    """Uploads (copied into `uploads/[<experiment>/]`), the workspace files picked, and a typed path."""
    with person_files():
        inputs = stage_uploads(files, ctx.stage_folder("uploads", experiment))
    inputs += [ctx.existing(p) for p in picked or [] if p]
    if typed and typed.strip():
        inputs.append(ctx.existing(typed.strip()))
    if not inputs:
        raise InputError(
            ctx.i18n(
                "Choose audio files of the workspace, upload some, or type a path inside the workspace first."
            )
        )
    return list(dict.fromkeys(inputs))


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


def curve_bins(curve: np.ndarray, points: int = PLOT_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """The RMS curve reduced to at most `points` bins by their maximum: (first frame of each bin, max)."""
    m = curve.shape[0]
    if m == 0:
        return np.zeros(1, dtype=np.int64), np.zeros(1)
    edges = np.unique(np.linspace(0, m, max(1, min(points, m)) + 1).astype(np.int64)[:-1])
    return edges, np.maximum.reduceat(curve, edges)


DB_FLOOR = -100.0  # dBFS drawn for digital silence (log of 0)


def amplitude_limit(scan: Scan) -> float:
    """Half-height of the waveform axis: the file's peak plus 10 %, so quiet audio fills the plot."""
    peak = 10 ** (scan.levels.peak_db / 20) if scan.levels and scan.levels.peak_db > -np.inf else 0.0
    return 1.1 * peak if peak > 0 else 1.0


def db_limits(scan: Scan, threshold_db: float) -> tuple[float, float]:
    """The dBFS axis: from below the quieter of (typical frame, threshold) to above the louder of
    (loudest frame, threshold), so the threshold line and the curve crossing it are both in view."""
    with np.errstate(divide="ignore"):
        curve_db = 20 * np.log10(scan.rms_curve[scan.rms_curve > 0]) if scan.rms_curve.size else np.zeros(0)
    loudest = float(curve_db.max()) if curve_db.size else DB_FLOOR
    quiet = float(np.percentile(curve_db, 5)) if curve_db.size else DB_FLOOR
    lo = max(DB_FLOOR, min(quiet, threshold_db) - 6.0)
    hi = min(6.0, max(loudest, threshold_db) + 6.0)
    return lo, max(hi, lo + 12.0)


def waveform_figure(scan: Scan, title: str, threshold_db: float | None = None):
    """Envelope (min/max per bin, `PLOT_POINTS` bins) scaled to the file's peak, with kept segments
    shaded and cuts marked; on a second axis (dBFS) the RMS curve the slicer compares with the
    threshold, and the threshold as a line (where the curve stays below it, nothing is kept)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    n, sr, segments = scan.n, scan.sample_rate, scan.segments
    edges, lo, hi = envelope_bins(scan.envelope_lo, scan.envelope_hi)
    t = edges * scan.hop / sr
    fig = Figure(figsize=(10, 2.8), tight_layout=True)
    ax = fig.add_subplot()
    ax.fill_between(t, lo, hi, color="#8a8a8a", linewidth=0)
    for k, (s, e) in enumerate(segments):
        ax.axvspan(s / sr, e / sr, color="C2" if k % 2 == 0 else "C0", alpha=0.25)
        ax.axvline(s / sr, color="C3", linewidth=0.8)
        ax.axvline(e / sr, color="C3", linewidth=0.8)
    limit = amplitude_limit(scan)
    ax.set_xlim(0, max(n / sr, 1e-3))
    ax.set_ylim(-limit, limit)
    ax.set_xlabel("s")
    ax.set_title(title, fontsize=9)
    if threshold_db is not None and scan.rms_curve.size:
        frames, curve = curve_bins(scan.rms_curve)
        with np.errstate(divide="ignore"):
            curve_db = np.maximum(20 * np.log10(curve), DB_FLOOR)
        db_ax = ax.twinx()
        db_ax.plot(frames * scan.hop / sr, curve_db, color="C1", linewidth=0.8, label="RMS")
        db_ax.axhline(
            threshold_db, color="C3", linestyle="--", linewidth=1.0, label=f"threshold {threshold_db:g} dBFS"
        )
        db_ax.set_ylim(*db_limits(scan, threshold_db))
        db_ax.set_ylabel("dBFS", fontsize=8)
        db_ax.legend(loc="upper right", fontsize=7, framealpha=0.6)
    return fig


def quiet_message(_: Callable[..., str], name: str, levels: Levels) -> str:
    """Why a file gave no clip: nothing reaches the threshold (its peak and RMS, and the threshold)."""
    if levels.silent:
        return _(
            "{name}: nothing above the threshold, the file is digital silence (every sample is 0).", name=name
        )
    return _(
        "{name}: nothing above the threshold: peak {peak} dBFS, RMS {rms} dBFS, threshold {threshold} dBFS. "
        "Lower the threshold below the peak.",
        name=name,
        peak=f"{levels.peak_db:.1f}",
        rms=f"{levels.rms_db:.1f}",
        threshold=f"{levels.threshold_db:g}",
    )


@dataclass
class PreviewResult:
    """What a preview found: the figure of the first file, table rows, segments to listen to, quiet files."""

    figure: Any
    rows: list[list[Any]]
    segments: list[dict[str, Any]]  # {"path", "name", "start", "end"}: samples at the clip rate
    quiet: list[tuple[str, Levels]]  # (file name, levels) of files with nothing above the threshold


def preview(inputs: list[Path], params: SliceParams) -> PreviewResult:
    """Figure for the first file and table rows for up to `PREVIEW_FILES` files; writes nothing.

    Each file is read in blocks (`tools.slice.scan_file`): the figure is drawn from the per-hop
    envelope, so a long recording costs its RMS curve, not its samples.
    """
    from core.audio import list_audio_files

    files = list_audio_files(inputs)[:PREVIEW_FILES]
    if not files:
        raise InputError("No audio files in " + ", ".join(p.name or str(p) for p in inputs))
    result = PreviewResult(None, [], [], [])
    sr = params.sample_rate
    for f in files:
        scan = scan_file(f, params)
        segments = scan.segments
        result.rows += [
            [f.name, k, round(s / sr, 2), round(e / sr, 2), round((e - s) / sr, 2)]
            for k, (s, e) in enumerate(segments, 1)
        ]
        result.segments += [{"path": str(f), "name": f.name, "start": s, "end": e} for s, e in segments]
        if not segments and scan.levels is not None and scan.levels.nothing_above:
            result.quiet.append((f.name, scan.levels))
        if result.figure is None:
            result.figure = waveform_figure(scan, f"{f.name}: {len(segments)}", params.threshold_db)
    return result


def preview_status(ctx: AppContext, result: PreviewResult) -> str:
    """The status line of a preview: the clip count, and why a file gave none."""
    _ = ctx.i18n
    lines = [_("Preview: {n} clips (nothing written).", n=len(result.rows))]
    lines += [quiet_message(_, name, levels) for name, levels in result.quiet]
    return "\n".join(lines)


def segment_choices(
    ctx: AppContext, segments: list[dict[str, Any]], sample_rate: int
) -> list[tuple[str, str]]:
    """Dropdown choices (label, index) for the previewed segments: `file #k  start-end s`."""
    labels, counts = [], {}
    for seg in segments:
        k = counts[seg["path"]] = counts.get(seg["path"], 0) + 1
        span = f"{seg['start'] / sample_rate:.2f}–{seg['end'] / sample_rate:.2f} s"
        labels.append(f"{seg['name']} #{k}  {span}")
    return [(label, str(i)) for i, label in enumerate(labels)]


PLAYBACK_KEEP = 32  # newest segment files kept in jobs/preview-clips/


def play_segment(ctx: AppContext, choice: str | None, preview_state: dict[str, Any]) -> str | None:
    """The chosen segment as Slice would write it (same samples, same normalisation, int16 wav), saved
    under the workspace's `jobs/preview-clips/` for the player; None when nothing is chosen."""
    segments = preview_state.get("segments") or []
    if choice in (None, "") or not str(choice).isdigit() or int(choice) >= len(segments):
        return None
    seg = segments[int(choice)]
    params = SliceParams(**preview_state["params"])
    with shown_in_toast(ctx.i18n, "segment playback"):
        clip = segment_clip(seg["path"], seg["start"], seg["end"], params)
        folder = ctx.folder("jobs") / "preview-clips"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / clip_name(seg["path"], seg["start"], seg["end"])
        save_wav(target, to_int16(clip), params.sample_rate)
        for old in sorted(folder.glob("*.wav"), key=lambda p: p.stat().st_mtime)[:-PLAYBACK_KEEP]:
            old.unlink(missing_ok=True)
    return str(target)


def playback_choices(
    ctx: AppContext, result: PreviewResult, params: SliceParams
) -> tuple[Any, dict[str, Any]]:
    """The segment dropdown's update (first segment chosen) and the per-session state `play_segment` reads."""
    choices = segment_choices(ctx, result.segments, params.sample_rate)
    state = {"segments": result.segments, "params": asdict(params)}
    return gr.update(choices=choices, value=choices[0][1] if choices else None), state


def quiet_lines(ctx: AppContext, result: dict[str, Any]) -> list[str]:
    """For a finished Slice job: one line per file that gave no clip because nothing reached the threshold."""
    lines = []
    for r in result.get("results") or []:
        if not r.get("segments") and r.get("levels") and r["levels"].get("nothing_above"):
            lines.append(quiet_message(ctx.i18n, Path(r["source"]).name, Levels.from_dict(r["levels"])))
    return lines


def playback_layout(ctx: AppContext) -> tuple[gr.Dropdown, gr.Audio]:
    """A previewed segment to pick and the player that plays it as Slice would write it."""
    _ = ctx.i18n
    with gr.Row():
        segment = gr.Dropdown(
            choices=[], value=None, label=_("Listen to a proposed clip"), elem_id="slice-segment", scale=1
        )
        audio = gr.Audio(
            label=_("Proposed clip (as it would be written)"),
            type="filepath",
            interactive=False,
            elem_id="slice-segment-audio",
            scale=2,
        )
    return segment, audio


def summary(ctx: AppContext, result: dict[str, Any] | None, out: Path, code: int | None) -> str:
    _ = ctx.i18n
    if result is None:
        return _("The slicer stopped before it finished (exit code {code}).", code=code)
    lines = [_("{n} clips written to `{folder}`.", n=len(result["outputs"]), folder=str(out))]
    if result.get("cancelled"):
        lines.append(_("Stopped before all files were sliced."))
    lines += quiet_lines(ctx, result)
    if result["failures"]:
        lines.append(_("{n} files failed:", n=len(result["failures"])))
        lines += [f"- {Path(f['path']).name}: {f['error']}" for f in result["failures"]]
    return "\n".join(lines)


# ---------- layout ----------


@dataclass
class SliceLayout:
    files: gr.File
    picked: gr.Dropdown  # audio files of uploads/ and separated/ (the experiment's vocals pre-chosen)
    typed: gr.Textbox
    out_name: gr.Textbox
    params: dict[str, Any]  # make_params() argument name -> its input component
    workers: gr.Slider
    preview: gr.Button
    run: gr.Button
    stop: gr.Button
    plot: gr.Plot
    table: gr.Dataframe
    segment: gr.Dropdown  # a previewed segment to listen to
    segment_audio: gr.Audio
    preview_state: gr.State  # per session: {"segments": [...], "params": {...}} of the last preview
    status: gr.Textbox
    result: gr.Markdown
    job_state: gr.State  # per session: {"job": Job} while a slice runs
    next: gr.Button  # "Next step: ASR" (ui.experiment_bar wires it)
    events: dict[str, Any] = field(default_factory=dict)  # "job": the Slice event (the flow chains on it)


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
            picked = gr.Dropdown(
                [],
                value=[],
                multiselect=True,
                label=_("Audio files in the workspace (uploads, separated vocals)"),
                elem_id="slice-pick",
            )
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
    segment, segment_audio = playback_layout(ctx)
    status = gr.Textbox(label=_("Status"), interactive=False, elem_id="slice-status")
    result_md = gr.Markdown(elem_id="slice-result")
    next_btn = gr.Button(_("Next step: {tab}", tab=_("ASR")) + " →", elem_id="slice-next")
    return SliceLayout(
        files=files,
        picked=picked,
        typed=typed,
        out_name=out_name,
        params={**params, **levels},
        workers=workers,
        preview=preview_btn,
        run=run_btn,
        stop=stop_btn,
        plot=plot,
        table=table,
        segment=segment,
        segment_audio=segment_audio,
        preview_state=gr.State({}),
        status=status,
        result=result_md,
        job_state=gr.State({}),
        next=next_btn,
    )


# ---------- handlers ----------


def preview_cuts(
    ctx: AppContext,
    files: list[str] | None,
    typed: str,
    params: dict[str, Any],
    picked: list[str] | None = None,
    experiment: str | None = None,
) -> tuple[Any, list[list[Any]], str, Any, dict[str, Any]]:
    """The waveform with its cuts, the table of clips, a status line (why a file gave no clip) and the
    segments to listen to; nothing is written."""
    _ = ctx.i18n
    with shown_in_toast(_, "slicing preview"):
        slice_params = make_params(**params)
        result = preview(collect_inputs(ctx, files, typed, picked, experiment), slice_params)
    segments, state = playback_choices(ctx, result, slice_params)
    return result.figure, result.rows, preview_status(ctx, result), segments, state


def start_slicing(
    ctx: AppContext,
    files: list[str] | None,
    typed: str,
    out_name: str,
    workers: int,
    params: dict[str, Any],
    state: dict[str, Any],
    picked: list[str] | None = None,
    experiment: str | None = None,
) -> Iterator[tuple[str, str]]:
    """Start `tools.slice`, then stream (status line, summary of what was written)."""
    _ = ctx.i18n
    with shown_in_toast(_, "slicing start"):
        slice_params = make_params(**params)
        inputs = collect_inputs(ctx, files, typed, picked, experiment)
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
            raise InputError(event["message"])  # the stage's own message for a user error
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
    source = ctx.with_inputs({"files": ui.files, "picked": ui.picked, "typed": ui.typed})
    connect(
        ui.preview.click,
        ctx,
        preview_cuts,
        {**source, "params": ui.params},
        [ui.plot, ui.table, ui.status, ui.segment, ui.preview_state],
        status=ui.status,
    )
    connect(
        ui.segment.change,
        ctx,
        play_segment,
        {"choice": ui.segment, "preview_state": ui.preview_state},
        ui.segment_audio,
    )
    form = {
        **source,
        "out_name": ui.out_name,
        "workers": ui.workers,
        "params": ui.params,
        "state": ui.job_state,
    }
    ui.events["job"] = connect(
        ui.run.click, ctx, start_slicing, form, [ui.status, ui.result], status=ui.status
    )
    # The stop must not queue behind the running slice.
    connect(
        ui.stop.click,
        ctx,
        stop_slicing,
        {"state": ui.job_state},
        ui.status,
        status=ui.status,
        concurrency_limit=None,
    )
    wire_reopen(ctx, "slice", ui.job_state, [ui.status, ui.result], follow_reopened_slicing)


def follow_reopened_slicing(ctx: AppContext, job: Job) -> Iterator[tuple[str, str]]:
    """`follow_slicing` for a job a page finds again: its output folder is the `--out` of its argv."""
    argv = job.argv
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv[:-1] else ctx.folder("sliced")
    yield from follow_slicing(ctx, job, out)


def build(ctx: AppContext) -> SliceLayout:
    ui = layout(ctx)
    wire(ctx, ui)
    return ui
