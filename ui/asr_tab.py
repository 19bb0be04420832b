"""ASR tab: transcribe a folder of clips with faster-whisper, run as a `tools.asr` subprocess.

The input is the workspace `sliced/` folder or one of its sub-folders (or any folder inside the
workspace typed by hand); the experiment bar chooses `sliced/<experiment>`. The list goes to
`asr/<folder name>.list` (so `asr/<experiment>.list`), its details beside it in
`asr/<folder name>.asr.jsonl`; a previous list is kept in `asr/.history/`. When the job ends the list
is chosen in the Label editor, Dataset check and Training (ui.experiment_bar).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from core.jobs import Job
from gpt_sovits.pretrained import preferred_whisper_model
from tools.asr import LANGUAGES, MODEL_REPOS, local_model_folder, model_status
from ui.context import AppContext, InputError
from ui.errors import shown_in_toast
from ui.experiment_bar import experiment_speaker
from ui.job_ui import exit_message, failure_details, start_job, stop_message, wire_reopen
from ui.wiring import connect

PREVIEW_ROWS = 20


def folder_choices(ctx: AppContext) -> list[str]:
    """`sliced` and its sub-folders, as workspace-relative paths (newest last is not needed: sorted)."""
    sliced = ctx.folder("sliced")
    subs = sorted(p for p in sliced.rglob("*") if p.is_dir() and not p.name.startswith("."))
    return ["sliced", *(str(p.relative_to(ctx.workspace)) for p in subs)]


def default_folder(ctx: AppContext) -> str:
    """The first sub-folder of `sliced/` that holds files, else `sliced` itself."""
    for choice in folder_choices(ctx)[1:]:
        if any(f.is_file() for f in (ctx.workspace / choice).iterdir()):
            return choice
    return "sliced"


def local_models(ctx: AppContext) -> list[str]:
    """Names `<x>` of the `faster-whisper-<x>/` CTranslate2 folders in the model folder."""
    if not ctx.model_dir.is_dir():
        return []
    return sorted(
        p.name.removeprefix("faster-whisper-")
        for p in ctx.model_dir.iterdir()
        if p.name.startswith("faster-whisper-") and local_model_folder(str(p), ctx.model_dir) is not None
    )


def model_choices(ctx: AppContext) -> list[tuple[str, str]]:
    """(label, value): local folders first (marked), then every known size."""
    local = local_models(ctx)
    choices = [(f"{name} ({ctx.i18n('local')})", name) for name in local]
    return choices + [(name, name) for name in MODEL_REPOS if name not in local]


def default_model(ctx: AppContext) -> str:
    """The model selected first: the default size, else one present (a local folder, then the HF cache)."""
    return preferred_whisper_model(ctx.model_dir, local_models(ctx))


def load_default_model(ctx: AppContext) -> tuple[Any, str]:
    """Page load: the models again and the one present now (one may have been fetched since start-up)."""
    value = default_model(ctx)
    return gr.update(choices=model_choices(ctx), value=value), status_line(ctx, value)


def status_line(ctx: AppContext, model: str) -> str:
    _ = ctx.i18n
    if not model:
        return _("Choose a model.")
    status = model_status(model, ctx.model_dir)
    if status.found:
        return "✅ " + _("Model found: {where}", where=status.where)
    return "⚠️ " + _("Model missing.") + " " + status.message


def resolve_input(ctx: AppContext, folder: str) -> Path:
    """A workspace folder typed or chosen by the user; refuses paths outside the workspace."""
    _ = ctx.i18n
    if not folder or not folder.strip():
        raise InputError(_("Choose an input folder."))
    path = ctx.inside(folder.strip())
    if not path.is_dir():
        raise InputError(_("Not a folder: {path}", path=str(path)))
    return path


def output_list(ctx: AppContext, input_dir: Path) -> Path:
    return ctx.folder("asr") / f"{input_dir.name}.list"


def cli_args(
    ctx: AppContext,
    input_dir: Path,
    model: str,
    language: str,
    device: str,
    compute_type: str,
    beam_size: int,
    batch_size: int,
    vad: bool,
    speaker: str = "",
) -> list[str]:
    """`tools.asr`'s arguments; `speaker` fills the list's speaker column ("": the folder's name)."""
    args = [
        str(input_dir),
        "--out",
        str(output_list(ctx, input_dir)),
        "--model",
        model,
        "--model-dir",
        str(ctx.model_dir),
        "--language",
        language,
        "--device",
        device,
        "--compute-type",
        compute_type,
        "--beam-size",
        str(int(beam_size)),
        "--batch-size",
        str(int(batch_size)),
    ]
    args += ["--speaker", speaker] if speaker else []
    return args if vad else [*args, "--no-vad"]


def summary(ctx: AppContext, result: dict[str, Any]) -> str:
    """Markdown: where the list went, how many clips, and each empty / failed / unsupported clip."""
    _ = ctx.i18n
    lines = []
    if result.get("list_path"):
        lines.append(_("Wrote {n} clips to `{path}`.", n=result["written"], path=result["list_path"]))
    else:
        lines.append(_("No clip gave text: nothing was written."))
    lines.append(_("Clips without text: {n}", n=len(result["empty"])) + "  ")
    lines.append(_("Failed files: {n}", n=len(result["failures"])))
    for path in result["empty"]:
        lines.append(f"- {_('no text')}: `{Path(path).name}`")
    for f in result["failures"]:
        lines.append(f"- {_('failed')}: `{Path(f['path']).name}`: {f['error']}")
    for lang, paths in result["unsupported"].items():
        lines.append(
            f"- {_('Language {lang} is not supported for training ({n} clips).', lang=lang, n=len(paths))}"
        )
    if result.get("backup"):
        lines.append(_("The previous list was kept as `{path}`.", path=result["backup"]))
    if result.get("cancelled"):
        lines.append(_("Stopped before the end."))
    return "\n".join(lines)


def preview_rows(list_path: str | None, limit: int = PREVIEW_ROWS) -> list[list[str]]:
    """The first lines of a `.list` as [file name, speaker, lang, text] rows."""
    if not list_path or not Path(list_path).is_file():
        return []
    rows = []
    with open(list_path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("|", 3)
            if len(parts) == 4:
                rows.append([Path(parts[0]).name, *parts[1:]])
            if len(rows) >= limit:
                break
    return rows


# ---------- layout ----------


@dataclass
class AsrLayout:
    folder: gr.Dropdown
    refresh: gr.Button
    model: gr.Dropdown
    language: gr.Dropdown
    model_status: gr.Markdown
    device: gr.Dropdown
    compute_type: gr.Dropdown
    beam_size: gr.Slider
    batch_size: gr.Slider
    vad: gr.Checkbox
    start: gr.Button
    stop: gr.Button
    status: gr.Textbox
    report: gr.Markdown
    preview: gr.Dataframe
    job_state: gr.State  # per session: {"job": Job} while one runs
    next: gr.Button  # "Next step: Label editor" (ui.experiment_bar wires it)
    events: dict[str, Any] = field(default_factory=dict)  # "job": the Start event (the flow chains on it)


def advanced_options(ctx: AppContext) -> tuple[gr.Dropdown, gr.Dropdown, gr.Slider, gr.Slider, gr.Checkbox]:
    """Device, compute type, beam size, batch size and VAD, in a closed accordion."""
    _ = ctx.i18n
    with gr.Accordion(_("Advanced"), open=False):
        with gr.Row():
            device = gr.Dropdown(
                [(_("Automatic"), "auto"), ("CUDA", "cuda"), ("CPU", "cpu")],
                value="auto",
                label=_("Device"),
                elem_id="asr-device",
            )
            compute = gr.Dropdown(
                [
                    (_("Automatic (float16 on GPU, int8 on CPU)"), "auto"),
                    ("int8", "int8"),
                    ("float16", "float16"),
                    ("float32", "float32"),
                ],
                value="auto",
                label=_("Compute type"),
                elem_id="asr-compute",
            )
        with gr.Row():
            beam = gr.Slider(1, 10, value=5, step=1, label=_("Beam size"), elem_id="asr-beam")
            batch = gr.Slider(
                0, 32, value=0, step=1, label=_("Batch size (0: one segment at a time)"), elem_id="asr-batch"
            )
            vad = gr.Checkbox(True, label=_("Skip silence (VAD)"), elem_id="asr-vad")
    return device, compute, beam, batch, vad


def source_and_model(ctx: AppContext) -> tuple[gr.Dropdown, gr.Button, gr.Dropdown, gr.Dropdown]:
    """The input folder (with its Refresh button), the model and the language."""
    _ = ctx.i18n
    with gr.Row():
        folder = gr.Dropdown(
            folder_choices(ctx),
            value=default_folder(ctx),
            label=_("Input folder (inside the workspace)"),
            allow_custom_value=True,
            elem_id="asr-folder",
            scale=3,
        )
        refresh = gr.Button(_("Refresh"), elem_id="asr-refresh", scale=1)
    with gr.Row():
        model = gr.Dropdown(
            model_choices(ctx),
            value=default_model(ctx),
            label=_("Model (size or local folder)"),
            allow_custom_value=True,
            elem_id="asr-model",
            scale=2,
        )
        language = gr.Dropdown(
            [(_("Detect"), "auto"), *((code, code) for code in LANGUAGES[1:])],
            value="auto",
            label=_("Language"),
            elem_id="asr-language",
            scale=1,
        )
    return folder, refresh, model, language


def layout(ctx: AppContext) -> AsrLayout:
    _ = ctx.i18n
    gr.Markdown(
        _("Transcribe sliced clips with faster-whisper into a `.list` file (workspace folder `asr/`).")
    )
    folder, refresh, model, language = source_and_model(ctx)
    model_line = gr.Markdown(status_line(ctx, default_model(ctx)), elem_id="asr-model-status")
    device, compute, beam, batch, vad = advanced_options(ctx)
    with gr.Row():
        start = gr.Button(_("Start"), variant="primary", elem_id="asr-start")
        stop = gr.Button(_("Stop"), elem_id="asr-stop")
    status = gr.Textbox(label=_("Status"), interactive=False, elem_id="asr-status")
    report = gr.Markdown(elem_id="asr-summary")
    preview = gr.Dataframe(
        headers=[_("File"), _("Speaker"), _("Language"), _("Text")], interactive=False, elem_id="asr-preview"
    )
    next_btn = gr.Button(_("Next step: {tab}", tab=_("Label editor")) + " →", elem_id="asr-next")
    return AsrLayout(
        folder=folder,
        refresh=refresh,
        model=model,
        language=language,
        model_status=model_line,
        device=device,
        compute_type=compute,
        beam_size=beam,
        batch_size=batch,
        vad=vad,
        start=start,
        stop=stop,
        status=status,
        report=report,
        preview=preview,
        job_state=gr.State({}),
        next=next_btn,
    )


# ---------- handlers ----------


def refresh_choices(ctx: AppContext, folder: str, model: str) -> tuple[Any, Any, str]:
    """Re-list folders and models; keep the current ones (a typed `org/repo` model too)."""
    models = model_choices(ctx)
    values = [v for _label, v in models]
    kept = model if model in values or (model and "/" in model) else default_model(ctx)
    return (
        gr.update(choices=folder_choices(ctx), value=folder or default_folder(ctx)),
        gr.update(choices=models, value=kept),
        status_line(ctx, kept),
    )


def show_model_status(ctx: AppContext, model: str) -> str:
    return status_line(ctx, model)


def start_transcription(
    ctx: AppContext,
    folder: str,
    model: str,
    language: str,
    device: str,
    compute_type: str,
    beam_size: int,
    batch_size: int,
    vad: bool,
    state: dict[str, Any],
) -> Iterator[tuple[str, str, list[list[str]]]]:
    """Start `tools.asr`, then stream (status line, summary, first lines of the written list)."""
    with shown_in_toast(ctx.i18n, "ASR start"):
        input_dir = resolve_input(ctx, folder)
        speaker = experiment_speaker(ctx, input_dir)
        args = cli_args(
            ctx, input_dir, model, language, device, compute_type, beam_size, batch_size, vad, speaker
        )
        job = start_job(ctx, state, "tools.asr", args, "asr")
    yield from follow_transcription(ctx, job)
    state.pop("job", None)


def follow_transcription(ctx: AppContext, job: Job) -> Iterator[tuple[str, str, list[list[str]]]]:
    _ = ctx.i18n
    message, text, rows = _("Starting…"), "", []
    yield message, text, rows
    for event in job.follow():
        kind = event.get("type")
        if kind == "progress":
            message = f"{event['done']}/{event['total']}  {event.get('message', '')}"
        elif kind == "error":
            text = "⚠️ " + event["message"]
        elif kind == "result":
            text, rows = summary(ctx, event), preview_rows(event.get("list_path"))
        elif kind == "exit":
            code, stopped = event["returncode"], event.get("stopped")
            message = exit_message(_, code, stopped)
            details = failure_details(job, code, stopped)
            if details:  # a crash or a kill: the log says why
                text = (text + "\n\n" if text else "") + "```\n" + details + "\n```"
        yield message, text, rows


def stop_transcription(ctx: AppContext, state: dict[str, Any]) -> str:
    return stop_message(ctx.i18n, state)


# ---------- wiring ----------


def wire(ctx: AppContext, ui: AsrLayout) -> None:
    connect(
        ui.refresh.click,
        ctx,
        refresh_choices,
        {"folder": ui.folder, "model": ui.model},
        [ui.folder, ui.model, ui.model_status],
        status=ui.model_status,
    )
    connect(
        ui.model.change, ctx, show_model_status, {"model": ui.model}, ui.model_status, status=ui.model_status
    )
    root = gr.context.Context.root_block
    if root is not None:  # page load: the model present now selected (one may have been fetched since)
        connect(root.load, ctx, load_default_model, {}, [ui.model, ui.model_status], status=ui.model_status)
    form = {
        "folder": ui.folder,
        "model": ui.model,
        "language": ui.language,
        "device": ui.device,
        "compute_type": ui.compute_type,
        "beam_size": ui.beam_size,
        "batch_size": ui.batch_size,
        "vad": ui.vad,
        "state": ui.job_state,
    }
    ui.events["job"] = connect(
        ui.start.click, ctx, start_transcription, form, [ui.status, ui.report, ui.preview], status=ui.status
    )
    # The stop must not queue behind the running transcription.
    connect(
        ui.stop.click,
        ctx,
        stop_transcription,
        {"state": ui.job_state},
        ui.status,
        status=ui.status,
        concurrency_limit=None,
    )
    wire_reopen(ctx, "asr", ui.job_state, [ui.status, ui.report, ui.preview], follow_transcription)


def build(ctx: AppContext) -> AsrLayout:
    ui = layout(ctx)
    wire(ctx, ui)
    return ui
