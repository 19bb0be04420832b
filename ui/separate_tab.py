"""Separation tab: vocals / accompaniment with demucs, run as a `tools.separate` subprocess.

Inputs are uploaded files (copied into the workspace `uploads/` folder) or a file or folder typed
as a path inside the workspace. Outputs go to `separated/`; each result gets two audio players.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from core.fsutil import unique_path
from tools.demucs_models import (
    BUILTIN_MODELS,
    DEFAULT_MODEL,
    list_local_models,
    local_status,
    missing_model_message,
)
from ui.context import AppContext
from ui.job_ui import JobAlreadyRunning, exit_message, start_job, stop_job, was_stopped


def model_dir(ctx: AppContext) -> Path:
    return ctx.model_dir / "demucs"


def model_choices(ctx: AppContext) -> list[str]:
    return list(dict.fromkeys([*BUILTIN_MODELS, *list_local_models(model_dir(ctx))]))


def model_status(ctx: AppContext, name: str) -> str:
    """One line: found locally (or in the Hugging Face cache), else what to fetch and where."""
    from tools.demucs_models import ModelLoadError, _hf_cached

    _ = ctx.i18n
    found, _missing = local_status(name, model_dir(ctx))
    if found:
        return _("Model found locally in {folder}.", folder=str(model_dir(ctx)))
    try:
        if _hf_cached(name, download=False) is not None:
            return _("Model found in the Hugging Face cache.")
    except ModelLoadError as e:  # a cached copy that cannot be read: say so, then how to get a good one
        return (
            _("The cached copy of the model is unreadable: {error}", error=str(e))
            + " "
            + missing_model_message(name, model_dir(ctx))
        )
    return _("Model not found locally.") + " " + missing_model_message(name, model_dir(ctx))


def collect_inputs(ctx: AppContext, uploads: list[str] | None, typed: str) -> list[str]:
    """Copy uploads into `uploads/` (never replacing a file) and resolve a typed workspace path."""
    inputs = []
    for f in uploads or []:
        src = Path(f)
        target = unique_path(ctx.folder("uploads") / src.name)
        shutil.copyfile(src, target)
        inputs.append(str(target))
    if typed and typed.strip():
        path = ctx.inside(typed.strip())
        if not path.exists():
            raise FileNotFoundError(ctx.i18n("Not found: {path}", path=str(path)))
        inputs.append(str(path))
    return inputs


def cli_args(
    ctx: AppContext,
    inputs: list[str],
    model: str,
    segment: float | None,
    overlap: float,
    shifts: int,
    device: str,
) -> list[str]:
    """argv for `python -m tools.separate` (the job adds --events)."""
    args = [
        *inputs,
        "--out",
        str(ctx.folder("separated")),
        "--model",
        model,
        "--model-dir",
        str(model_dir(ctx)),
        "--overlap",
        str(overlap),
        "--shifts",
        str(int(shifts)),
        "--device",
        device,
    ]
    if segment:
        args += ["--segment", str(segment)]
    return args


def build(ctx: AppContext) -> None:
    import gradio as gr

    _ = ctx.i18n
    gr.Markdown(
        _(
            "Split songs into vocals and accompaniment (demucs). Outputs go to the workspace folder `separated/`."
        )
    )
    with gr.Row():
        uploads = gr.File(
            label=_("Input files"), file_count="multiple", type="filepath", elem_id="sep-upload"
        )
        typed = gr.Textbox(label=_("Or a file or folder inside the workspace"), elem_id="sep-path")
    with gr.Row():
        model = gr.Dropdown(
            model_choices(ctx), value=DEFAULT_MODEL, label=_("Model"), elem_id="sep-model", scale=3
        )
        refresh = gr.Button(_("Refresh models"), elem_id="sep-refresh", scale=1)
    status_line = gr.Markdown(model_status(ctx, DEFAULT_MODEL), elem_id="sep-model-status")
    with gr.Accordion(_("Advanced"), open=False):
        segment = gr.Number(
            0, label=_("Segment length in seconds (0: the model's own)"), minimum=0, elem_id="sep-segment"
        )
        overlap = gr.Slider(0.0, 0.9, value=0.25, step=0.05, label=_("Overlap"), elem_id="sep-overlap")
        shifts = gr.Slider(
            0, 10, value=0, step=1, label=_("Shifts (slower, slightly better)"), elem_id="sep-shifts"
        )
        device = gr.Dropdown(
            [(_("Automatic"), "auto"), ("CPU", "cpu"), ("CUDA", "cuda"), ("MPS", "mps")],
            value="auto",
            label=_("Device"),
            elem_id="sep-device",
        )
    with gr.Row():
        start = gr.Button(_("Start"), variant="primary", elem_id="sep-start")
        stop = gr.Button(_("Stop"), elem_id="sep-stop")
    progress = gr.Textbox(label=_("Status"), interactive=False, elem_id="sep-status")
    failures = gr.Markdown(elem_id="sep-failures")
    job_state = gr.State({})  # per session: {"job": Job} while one runs
    results = gr.State([])  # [{"input", "vocals", "accompaniment"}]

    @gr.render(inputs=results)
    def show_results(items: list[dict[str, Any]]) -> None:
        for item in items:
            gr.Markdown(f"**{Path(item['input']).name}**")
            with gr.Row():
                gr.Audio(item["vocals"], label=_("Vocals"), interactive=False)
                gr.Audio(item["accompaniment"], label=_("Accompaniment"), interactive=False)

    def on_refresh(current: str):
        choices = model_choices(ctx)
        value = current if current in choices else DEFAULT_MODEL
        return gr.update(choices=choices, value=value), model_status(ctx, value)

    def on_start(files, path_text, model_name, seg, ov, sh, dev, state):
        try:
            inputs = collect_inputs(ctx, files, path_text)
            if not inputs:
                raise ValueError(_("Upload files or type a path first."))
            args = cli_args(ctx, inputs, model_name, seg or None, ov, sh, dev)
            job = start_job(ctx, state, "tools.separate", args, "separate")
        except (ValueError, OSError, JobAlreadyRunning) as e:
            raise gr.Error(str(e)) from e
        done: list[dict[str, Any]] = []
        failed: list[str] = []
        yield _("Starting…"), "", done
        message = ""
        for event in job.follow():
            kind = event.get("type")
            if kind == "progress":
                pct = 100 * event["done"] / max(event["total"], 1)
                message = f"{pct:.0f}%  {event.get('message', '')}"
            elif kind == "result":
                done = [*done, event]
            elif kind == "error":
                failed.append(event["message"])
            elif kind == "done":
                failed += [f"{Path(f['path']).name}: {f['error']}" for f in event["failures"]]
            elif kind == "exit":
                code = event["returncode"]
                message = exit_message(_, code)
                if code not in (0, 1, 2) and not was_stopped(code):
                    failed.append(job.log_tail(1000))  # a crash: the log says why
            yield message, "\n".join(f"- {f}" for f in failed), done
        state.pop("job", None)

    def on_stop(state):
        stop_job(state)
        return _("Stopped.")

    refresh.click(on_refresh, inputs=model, outputs=[model, status_line])
    model.change(lambda name: model_status(ctx, name), inputs=model, outputs=status_line)
    start.click(
        on_start,
        inputs=[uploads, typed, model, segment, overlap, shifts, device, job_state],
        outputs=[progress, failures, results],
    )
    stop.click(on_stop, inputs=job_state, outputs=progress, concurrency_limit=None)
