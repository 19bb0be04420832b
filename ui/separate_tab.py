"""Separation tab: vocals / accompaniment with demucs, run as a `tools.separate` subprocess.

Inputs are uploaded files (copied into the workspace `uploads/<experiment>/` folder) or a file or
folder typed as a path inside the workspace. Outputs go to `separated/<experiment>/` (without an
experiment: `uploads/`, `separated/`); each result gets two audio players, and the vocals are chosen
in Slicing when the job ends (ui.experiment_bar). `layout()` builds the components, `wire()` connects
them to the named handlers below.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr

from core.fsutil import unique_path
from core.jobs import Job
from gpt_sovits.pretrained import preferred_demucs_model
from tools.demucs_models import (
    BUILTIN_MODELS,
    ModelLoadError,
    _hf_cached,
    list_local_models,
    local_status,
    missing_model_message,
)
from ui.context import AppContext, InputError, person_files
from ui.errors import shown_in_toast
from ui.job_ui import exit_message, failure_details, start_job, stop_message, wire_reopen
from ui.wiring import connect


def model_dir(ctx: AppContext) -> Path:
    return ctx.model_dir / "demucs"


def model_choices(ctx: AppContext) -> list[str]:
    return list(dict.fromkeys([*BUILTIN_MODELS, *list_local_models(model_dir(ctx))]))


def default_model(ctx: AppContext) -> str:
    """The model selected first: demucs' default, else a built-in one present locally (no download needed)."""
    return preferred_demucs_model(ctx.model_dir)


def model_status(ctx: AppContext, name: str) -> str:
    """One line: found locally (or in the Hugging Face cache), else what to fetch and where."""
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


def collect_inputs(
    ctx: AppContext, uploads: list[str] | None, typed: str, experiment: str | None = None
) -> list[str]:
    """Copy uploads into `uploads/[<experiment>/]` (never replacing a file) and resolve a typed workspace path."""
    inputs = []
    folder = ctx.stage_folder("uploads", experiment)
    with person_files():
        for f in uploads or []:
            src = Path(f)
            folder.mkdir(parents=True, exist_ok=True)
            target = unique_path(folder / src.name)
            shutil.copyfile(src, target)
            inputs.append(str(target))
    if typed and typed.strip():
        inputs.append(str(ctx.existing(typed.strip())))
    return inputs


def cli_args(
    ctx: AppContext,
    inputs: list[str],
    model: str,
    segment: float | None,
    overlap: float,
    shifts: int,
    device: str,
    experiment: str | None = None,
) -> list[str]:
    """argv for `python -m tools.separate` (the job adds --events)."""
    args = [
        *inputs,
        "--out",
        str(ctx.stage_folder("separated", experiment)),
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


# ---------- layout ----------


@dataclass
class SeparateLayout:
    uploads: gr.File
    typed: gr.Textbox
    model: gr.Dropdown
    refresh: gr.Button
    model_status: gr.Markdown
    segment: gr.Number
    overlap: gr.Slider
    shifts: gr.Slider
    device: gr.Dropdown
    start: gr.Button
    stop: gr.Button
    progress: gr.Textbox
    failures: gr.Markdown
    job_state: gr.State  # per session: {"job": Job} while one runs
    results: gr.State  # [{"input", "vocals", "accompaniment"}]
    next: gr.Button  # "Next step: Slicing" (ui.experiment_bar wires it)
    events: dict[str, Any] = field(default_factory=dict)  # "job": the Start event (the flow chains on it)


def show_results(ctx: AppContext, items: list[dict[str, Any]]) -> None:
    """Two players (vocals, accompaniment) under the name of each separated input."""
    _ = ctx.i18n
    for item in items:
        gr.Markdown(f"**{Path(item['input']).name}**")
        with gr.Row():
            gr.Audio(item["vocals"], label=_("Vocals"), interactive=False)
            gr.Audio(item["accompaniment"], label=_("Accompaniment"), interactive=False)


def advanced_options(ctx: AppContext) -> tuple[gr.Number, gr.Slider, gr.Slider, gr.Dropdown]:
    _ = ctx.i18n
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
    return segment, overlap, shifts, device


def layout(ctx: AppContext) -> SeparateLayout:
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
            model_choices(ctx), value=default_model(ctx), label=_("Model"), elem_id="sep-model", scale=3
        )
        refresh = gr.Button(_("Refresh models"), elem_id="sep-refresh", scale=1)
    status_line = gr.Markdown(model_status(ctx, default_model(ctx)), elem_id="sep-model-status")
    segment, overlap, shifts, device = advanced_options(ctx)
    with gr.Row():
        start = gr.Button(_("Start"), variant="primary", elem_id="sep-start")
        stop = gr.Button(_("Stop"), elem_id="sep-stop")
    progress = gr.Textbox(label=_("Status"), interactive=False, elem_id="sep-status")
    failures = gr.Markdown(elem_id="sep-failures")
    results = gr.State([])
    gr.render(inputs=results)(partial(show_results, ctx))
    next_btn = gr.Button(_("Next step: {tab}", tab=_("Slicing")) + " →", elem_id="sep-next")
    return SeparateLayout(
        uploads=uploads,
        typed=typed,
        model=model,
        refresh=refresh,
        model_status=status_line,
        segment=segment,
        overlap=overlap,
        shifts=shifts,
        device=device,
        start=start,
        stop=stop,
        progress=progress,
        failures=failures,
        job_state=gr.State({}),
        results=results,
        next=next_btn,
    )


# ---------- handlers ----------


def refresh_models(ctx: AppContext, current: str) -> tuple[Any, str]:
    choices = model_choices(ctx)
    value = current if current in choices else default_model(ctx)
    return gr.update(choices=choices, value=value), model_status(ctx, value)


def load_default_model(ctx: AppContext) -> tuple[Any, str]:
    """Page load: the choices again and the model present now (one may have been fetched since start-up)."""
    value = default_model(ctx)
    return gr.update(choices=model_choices(ctx), value=value), model_status(ctx, value)


def show_model_status(ctx: AppContext, name: str) -> str:
    return model_status(ctx, name)


def start_separation(
    ctx: AppContext,
    files: list[str] | None,
    typed: str,
    model: str,
    segment: float | None,
    overlap: float,
    shifts: int,
    device: str,
    state: dict[str, Any],
    experiment: str | None = None,
) -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
    """Start the job, then stream (status line, failures as a Markdown list, results so far)."""
    _ = ctx.i18n
    with shown_in_toast(_, "separation start"):
        inputs = collect_inputs(ctx, files, typed, experiment)
        if not inputs:
            raise InputError(_("Upload files or type a path first."))
        args = cli_args(ctx, inputs, model, segment or None, overlap, shifts, device, experiment)
        job = start_job(ctx, state, "tools.separate", args, "separate")
    yield _("Starting…"), "", []
    yield from follow_separation(ctx, job)
    state.pop("job", None)


def follow_separation(ctx: AppContext, job: Job) -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
    """One (status, failures, results) update per event of the separation job."""
    done: list[dict[str, Any]] = []
    failed: list[str] = []
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
            code, stopped = event["returncode"], event.get("stopped")
            message = exit_message(ctx.i18n, code, stopped)
            details = failure_details(job, code, stopped)  # a crash or a kill: the log says why
            if details:
                failed.append("\n```\n" + details + "\n```")
        yield message, "\n".join(f"- {f}" for f in failed), done


def stop_separation(ctx: AppContext, state: dict[str, Any]) -> str:
    return stop_message(ctx.i18n, state)


# ---------- wiring ----------


def wire(ctx: AppContext, ui: SeparateLayout) -> None:
    connect(
        ui.refresh.click,
        ctx,
        refresh_models,
        {"current": ui.model},
        [ui.model, ui.model_status],
        status=ui.model_status,
    )
    connect(
        ui.model.change, ctx, show_model_status, {"name": ui.model}, ui.model_status, status=ui.model_status
    )
    root = gr.context.Context.root_block
    if root is not None:  # page load: the model present now selected (one may have been fetched since)
        connect(root.load, ctx, load_default_model, {}, [ui.model, ui.model_status], status=ui.model_status)
    form = {
        "files": ui.uploads,
        "typed": ui.typed,
        "model": ui.model,
        "segment": ui.segment,
        "overlap": ui.overlap,
        "shifts": ui.shifts,
        "device": ui.device,
        "state": ui.job_state,
    }
    ui.events["job"] = connect(
        ui.start.click,
        ctx,
        start_separation,
        ctx.with_inputs(form),
        [ui.progress, ui.failures, ui.results],
        status=ui.progress,
    )
    # The stop must not queue behind the running start.
    connect(
        ui.stop.click,
        ctx,
        stop_separation,
        {"state": ui.job_state},
        ui.progress,
        status=ui.progress,
        concurrency_limit=None,
    )
    wire_reopen(ctx, "separate", ui.job_state, [ui.progress, ui.failures, ui.results], follow_separation)


def build(ctx: AppContext) -> SeparateLayout:
    ui = layout(ctx)
    wire(ctx, ui)
    return ui
