"""Training tab: format a `.list`, fine-tune SoVITS (S2) and GPT (S1), train CLVP, hear progress.

Each step is a subprocess (`gpt_sovits.data.prepare`, `gpt_sovits.train.s2`, `gpt_sovits.train.s1`,
`clvp.train`) started with an argv list and a config file written into its run folder; the one-click
button runs format -> S2 -> S1 in sequence. A check runs before anything starts and refuses to start
on blocking problems. While a step runs a timer reads its events (step/total, epoch, ETA) and the run
folder's metrics.jsonl (loss curves); after each export a short sample is synthesised from the new
checkpoint in another subprocess and listed as an audio player. Stop ends the running step (the
trainer saves first); clicking the same step again resumes, unless "Start over" is ticked. A run
outlives the page: choosing its experiment again (after a reload, or from another browser) follows
it and can stop it.

Plain logic lives beside this file: `training_plan` (layout, settings, argv, the check),
`training_progress` (events, ETA, curves), `training_samples` (samples, exports) and
`training_runner` (the job sequence and the sample queue).
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from pathlib import Path
from typing import Any

from ui.context import AppContext
from ui.job_ui import exit_message
from ui.training_plan import (
    DEFAULT_CLVP_EPOCHS,
    DEFAULT_S1_EPOCHS,
    DEFAULT_S1_SAVE_EVERY,
    DEFAULT_S2_EPOCHS,
    DEFAULT_S2_SAVE_EVERY,
    PIPELINE,
    PREPARE_REQUEST_FILE,
    Layout,
    Problem,
    TrainingInputError,
    TrainSettings,
    build_step,
    check_plan,
    dataset_summary,
    existing_experiments,
    gather_preflight,
    pretrained_files,
    validate_exp_name,
)
from ui.training_progress import format_duration, is_accuracy, is_loss, metric_series, plot_rows, read_metrics
from ui.training_runner import SampleQueue, StepRunner, live_job, stop_all, tail_text
from ui.training_samples import (
    SampleReference,
    choose_reference,
    list_exports,
    materialize_reference,
    plan_sample,
    reference_clips,
    reference_clips_for,
    saved_label,
)

MAX_SAMPLES = 8  # audio players shown (newest first)
TICK_SECONDS = 1.0
_SAMPLE_FILE = re.compile(r"(s1|s2)_e(\d+)\.wav")


def layout_of(ctx: AppContext) -> Layout:
    return Layout(ctx.workspace, ctx.model_dir)


def step_labels(_) -> dict[str, str]:
    return {
        "prepare": _("Formatting"),
        "s2": _("SoVITS (S2) training"),
        "s1": _("GPT (S1) training"),
        "clvp": _("CLVP training"),
    }


def model_labels(_) -> dict[str, str]:
    return {
        "s1": _("GPT (S1) pretrained"),
        "s2g": _("SoVITS (S2) generator"),
        "s2d": _("SoVITS (S2) discriminator"),
        "hubert": _("HuBERT (chinese-hubert-base)"),
        "bert": _("BERT (chinese-roberta-wwm-ext-large)"),
    }


def models_markdown(ctx: AppContext, version: str) -> str:
    """One line per pretrained file: found / missing, where, and how to get a missing one."""
    _ = ctx.i18n
    try:
        files = pretrained_files(ctx.model_dir, version)
    except ValueError as e:
        return f"❌ {e}"
    labels = model_labels(_)
    lines = [_("Pretrained models folder: `{path}`", path=str(ctx.model_dir)), ""]
    for m in files:
        if m.present:
            lines.append(f"- ✅ {labels[m.role]}: {_('found')} `{m.path}`")
        else:
            lines.append(f"- ❌ {labels[m.role]}: {_('missing')} `{m.path}`  \n  {m.how_to_get}")
    return "\n".join(lines)


def problems_markdown(problems: list[Problem], _, summary: str = "") -> str:
    """The check's verdict, its problems as a list, and the dataset summary line."""
    tail = ["", summary] if summary else []
    if any(p.blocking for p in problems):
        head = _("Cannot start: fix the problems marked ❌.")
    elif any(p.severity == "warning" for p in problems):
        head = _("Checks passed with warnings:")
    else:
        head = "✅ " + _("All checks passed.")
    marks = {"error": "❌", "warning": "⚠️", "info": "ℹ️"}
    items = [f"- {marks.get(p.severity, '⚠️')} {p.message}" for p in problems]
    return "\n".join([f"**{head}**", *items, *tail])


def suggested_name(list_value: str | None) -> str:
    """A safe experiment name from a `.list` path: its stem with unsafe characters replaced."""
    stem = Path(list_value or "").stem
    name = re.sub(r"[^\w.\-]+", "_", stem).strip("._-")
    return name[:64]


def clip_choices(ctx: AppContext, list_value: str | None) -> list[tuple[str, str]]:
    """(label, audio path) of the clips of the chosen list, for the sample-reference dropdown."""
    from tools.labels import LabelError, load_list

    _ = ctx.i18n
    choices = [(_("Automatic (first clip of 3-10 s)"), "")]
    if not list_value:
        return choices
    try:
        doc = load_list(ctx.inside(list_value), boundary=ctx.workspace)
    except (LabelError, ValueError):
        return choices
    for entry in doc.entries[:500]:
        try:
            path = str(doc.resolve_audio(entry))
        except ValueError:
            continue
        choices.append((f"{Path(entry.path).name}: {entry.text[:40]}", path))
    return choices


def sample_reference(
    ctx: AppContext, exp: str, list_path: str, chosen: str | None, text: str | None
) -> SampleReference | None:
    """The fixed prompt of this run's samples, from the chosen list (or the one the experiment was
    formatted from); clips too short for a prompt are joined into `<exp>/samples/reference.wav`."""
    layout = layout_of(ctx)
    if not list_path:  # training alone: the list recorded by the last formatting run
        try:
            request = json.loads((layout.exp_dir(exp) / PREPARE_REQUEST_FILE).read_text(encoding="utf-8"))
            list_path = str(ctx.inside(request["list"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
    clips = reference_clips(Path(list_path), ctx.workspace)
    if chosen and chosen not in {c[0] for c in clips}:
        clips = reference_clips_for(chosen, Path(list_path), ctx.workspace) + clips
    ref = choose_reference(clips, chosen or None)
    if ref is not None and text and text.strip():
        ref = dataclasses.replace(ref, target_text=text.strip())
    return materialize_reference(ref, layout.samples_dir(exp) / "reference.wav") if ref else None


def resolve_model_path(ctx: AppContext, value: str) -> Path:
    """A weights file typed by the user: inside the workspace or the models folder, and existing."""
    from core.fsutil import PathOutsideRootError, resolve_inside

    for root in (ctx.workspace, ctx.model_dir):
        try:
            path = resolve_inside(root, value)
        except PathOutsideRootError:
            continue
        if path.is_file():
            return path
    raise ValueError(ctx.i18n("Not a weights file in the workspace or the models folder: {path}", path=value))


def file_signature(path: Path) -> tuple[int, int] | None:
    """(mtime_ns, size) of a file, None when it does not exist: cheap change detection."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def plot_frame(rows: list[dict]):
    import pandas as pd

    return pd.DataFrame(rows, columns=["step", "value", "metric"])


def plots_for(layout: Layout, exp: str | None) -> list[Any]:
    """Data of the four curves: S2 losses, S1 loss, S1 accuracy, CLVP losses (empty frames if none)."""
    if not exp:
        return [plot_frame([]) for _ in range(4)]
    s2 = metric_series(read_metrics(layout.run_dir(exp, "s2") / "metrics.jsonl"))
    s1 = metric_series(read_metrics(layout.run_dir(exp, "s1") / "metrics.jsonl"))
    clvp = metric_series(read_metrics(layout.run_dir(exp, "clvp") / "metrics.jsonl"))
    return [
        plot_frame(plot_rows(s2, is_loss)),
        plot_frame(plot_rows(s1, is_loss)),
        plot_frame(plot_rows(s1, is_accuracy)),
        plot_frame(plot_rows(clvp, is_loss)),
    ]


def sample_files(layout: Layout, exp: str | None) -> list[tuple[str, int, str]]:
    """(model, epoch, path) of the experiment's samples, newest first."""
    if not exp:
        return []
    folder = layout.samples_dir(exp)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _SAMPLE_FILE.fullmatch(p.name)
        if m:
            found.append((p.stat().st_mtime, m.group(1), int(m.group(2)), str(p)))
    return [(model, epoch, path) for _t, model, epoch, path in sorted(found, reverse=True)]


def export_rows(layout: Layout, exp: str | None, version: str, _) -> list[list[Any]]:
    if not exp:
        return []
    names = {"s2": "SoVITS (S2)", "s1": "GPT (S1)", "clvp": "CLVP"}
    return [
        [names[e.model], e.epoch, e.step if e.step is not None else "", e.path]
        for e in list_exports(layout, exp, version)
    ]


def safe_exp(name: str | None) -> str | None:
    try:
        return validate_exp_name(name or "")
    except TrainingInputError:
        return None


def status_markdown(runner: StepRunner | None, sample_queue: SampleQueue | None, _) -> str:
    """Finished steps with their exit status, then the running one; sample failures last."""
    if runner is None:
        return ""
    labels = step_labels(_)
    lines = []
    for r in runner.results:
        code = 130 if r.stopped and r.code in (0, 1) else r.code
        if code < 0 and not r.stopped:  # killed by a signal nobody here sent: the OOM killer, mostly
            verdict = _(
                "Failed: the process was killed (signal {sig}), often for lack of memory; "
                "try a smaller batch size.",
                sig=-code,
            )
        else:
            verdict = exit_message(_, code)
        line = f"- {labels[r.step]}: {verdict}"
        if r.error:
            line += f" {r.error}"
        lines.append(line)
    if runner.current is not None:
        doing = _("Stopping…") if runner.stopped else _("running…")
        lines.append(f"- {labels[runner.current.step]}: {doing}")
    if runner.pending:
        lines.append(f"- {_('Next')}: " + ", ".join(labels[s.step] for s in runner.pending))
    if sample_queue is not None:
        for o in sample_queue.outcomes[-3:]:
            if not o.ok:
                lines.append(f"- ⚠️ {o.label}: {_('sample failed')}: {o.message.strip()[-300:]}")
        if sample_queue.job is not None and sample_queue.current is not None:
            lines.append(f"- {sample_queue.current[0]}: {_('synthesising…')}")
    if runner.results and runner.current is None:  # a paragraph after the list
        last = runner.results[-1]
        if last.stopped or last.code == 130:
            lines += [
                "",
                _("Stopped. Click the same step again to resume where it stopped, or tick Start over."),
            ]
        elif last.code == 0 and not runner.pending:
            lines += ["", "✅ " + _("All steps finished.")]
    return "\n".join(lines)


def progress_markdown(runner: StepRunner | None, _) -> str:
    if runner is None or runner.current is None:
        return ""
    p = runner.progress
    label = step_labels(_)[runner.current.step]
    if not p.total:
        return f"**{label}**: {_('starting…')}"
    parts = [f"**{label}**", _("step {done}/{total}", done=p.done, total=p.total)]
    if p.epoch is not None:
        parts.append(_("epoch {epoch}", epoch=p.epoch))
    parts.append(_("ETA {eta}", eta=format_duration(p.eta_seconds)))
    pct = 100.0 * p.done / p.total
    return " · ".join(parts) + f" ({pct:.0f}%)  \n{p.message}"


def build(ctx: AppContext) -> None:
    import gradio as gr

    from ui.labels_tab import find_lists

    _ = ctx.i18n
    layout = layout_of(ctx)
    gr.Markdown(
        _(
            "Fine-tune a voice from a checked `.list`: formatting, then SoVITS (S2) and GPT (S1). "
            "Experiments go to `experiments/<name>/`, exported weights to `weights/` (the Inference tab "
            "lists them)."
        )
    )
    with gr.Row():
        exp_name = gr.Textbox(label=_("Experiment name"), elem_id="train-exp", scale=2)
        exp_pick = gr.Dropdown(
            existing_experiments(layout),
            value=None,
            label=_("Or an existing experiment"),
            elem_id="train-exp-pick",
            scale=1,
        )
        version = gr.Radio(["v2", "v1"], value="v2", label=_("Version"), elem_id="train-version", scale=1)
    with gr.Row():
        list_choice = gr.Dropdown(
            find_lists(ctx.workspace),
            value=None,
            label=_("Label file (.list) to train on"),
            allow_custom_value=True,
            elem_id="train-list",
            scale=3,
        )
        refresh = gr.Button(_("Refresh"), elem_id="train-refresh", scale=0)
    with gr.Accordion(_("Pretrained models"), open=True):
        models_md = gr.Markdown(models_markdown(ctx, "v2"), elem_id="train-models")
    with gr.Accordion(_("Training settings"), open=True):
        with gr.Row():
            s2_epochs = gr.Slider(
                1, 25, value=DEFAULT_S2_EPOCHS, step=1, label=_("S2 epochs"), elem_id="train-s2-epochs"
            )
            s2_batch = gr.Slider(
                0, 64, value=0, step=1, label=_("S2 batch size (0: automatic)"), elem_id="train-s2-batch"
            )
            s2_save = gr.Slider(
                1,
                25,
                value=DEFAULT_S2_SAVE_EVERY,
                step=1,
                label=_("S2 save every N epochs"),
                elem_id="train-s2-save",
            )
        with gr.Row():
            s1_epochs = gr.Slider(
                1, 50, value=DEFAULT_S1_EPOCHS, step=1, label=_("S1 epochs"), elem_id="train-s1-epochs"
            )
            s1_batch = gr.Slider(
                0, 64, value=0, step=1, label=_("S1 batch size (0: automatic)"), elem_id="train-s1-batch"
            )
            s1_save = gr.Slider(
                1,
                50,
                value=DEFAULT_S1_SAVE_EVERY,
                step=1,
                label=_("S1 save every N epochs"),
                elem_id="train-s1-save",
            )
            dpo = gr.Checkbox(False, label=_("S1 DPO training (experimental)"), elem_id="train-dpo")
        with gr.Row():
            clvp_epochs = gr.Slider(
                1, 200, value=DEFAULT_CLVP_EPOCHS, step=1, label=_("CLVP epochs"), elem_id="train-clvp-epochs"
            )
            device = gr.Dropdown(
                [(_("Automatic"), "auto"), ("CUDA", "cuda"), ("CPU", "cpu")],
                value="auto",
                label=_("Device"),
                elem_id="train-device",
            )
            fresh = gr.Checkbox(
                False, label=_("Start over (do not resume the previous run)"), elem_id="train-fresh"
            )
        clvp_init = gr.Textbox(
            label=_("CLVP weights to fine-tune from (optional; empty: train a new model)"),
            elem_id="train-clvp-init",
        )
        with gr.Row():
            ref_choice = gr.Dropdown(
                clip_choices(ctx, None),
                value="",
                label=_("Reference clip for the samples"),
                elem_id="train-ref",
                scale=2,
            )
            sample_text = gr.Textbox(
                label=_("Sample text (empty: a fixed sentence in the reference's language)"),
                elem_id="train-sample-text",
                scale=2,
            )
    with gr.Row():
        one_click = gr.Button(_("Format + train S2 + train S1"), variant="primary", elem_id="train-all")
        check_btn = gr.Button(_("Check"), elem_id="train-check-btn")
        stop_btn = gr.Button(_("Stop"), variant="stop", elem_id="train-stop")
    with gr.Row():
        format_btn = gr.Button(_("Format"), elem_id="train-format")
        s2_btn = gr.Button(_("Train S2"), elem_id="train-s2")
        s1_btn = gr.Button(_("Train S1"), elem_id="train-s1")
        clvp_btn = gr.Button(_("Train CLVP"), elem_id="train-clvp")
    check_md = gr.Markdown(elem_id="train-check")
    status_md = gr.Markdown(elem_id="train-status")
    progress_md = gr.Markdown(elem_id="train-progress")
    with gr.Row():
        s2_plot = gr.LinePlot(
            x="step", y="value", color="metric", label=_("SoVITS (S2) losses"), elem_id="train-plot-s2"
        )
        s1_plot = gr.LinePlot(
            x="step", y="value", color="metric", label=_("GPT (S1) loss"), elem_id="train-plot-s1"
        )
    with gr.Row():
        s1_acc_plot = gr.LinePlot(
            x="step", y="value", color="metric", label=_("GPT (S1) accuracy"), elem_id="train-plot-s1-acc"
        )
        clvp_plot = gr.LinePlot(
            x="step", y="value", color="metric", label=_("CLVP loss"), elem_id="train-plot-clvp"
        )
    gr.Markdown("### " + _("Samples after each save"))
    with gr.Row(elem_id="train-samples"):
        sample_players = [
            gr.Audio(visible=False, interactive=False, type="filepath", elem_id=f"train-sample-{i}")
            for i in range(MAX_SAMPLES)
        ]
    gr.Markdown("### " + _("Exported weights"))
    exports = gr.Dataframe(
        headers=[_("Model"), _("Epoch"), _("Step"), _("Path")],
        interactive=False,
        elem_id="train-exports",
    )
    with gr.Accordion(_("Log"), open=False):
        log_box = gr.Textbox(lines=10, interactive=False, show_label=False, elem_id="train-log")
    timer = gr.Timer(TICK_SECONDS, active=False)
    # Per session: {"runner", "samples", "exp", "version", "reference"}. Closing the page does not
    # stop a training run (it may last hours): entering the experiment's name again follows it.
    state = gr.State({})

    settings_inputs = [
        exp_name, version, list_choice, s2_epochs, s2_batch, s2_save,
        s1_epochs, s1_batch, s1_save, dpo, clvp_epochs, clvp_init, device, fresh,
    ]  # fmt: skip

    def settings_from(name, ver, list_value, e2, b2, k2, e1, b1, k1, use_dpo, ec, init, dev, start_over):
        list_path, init_path = "", ""
        try:
            if list_value:
                list_path = str(ctx.inside(list_value))
            if init and init.strip():
                init_path = str(resolve_model_path(ctx, init.strip()))
        except ValueError as e:
            raise gr.Error(str(e)) from e
        return TrainSettings(
            exp_name=(name or "").strip(),
            version=ver or "v2",
            list_path=list_path,
            s2_epochs=int(e2), s2_batch=int(b2), s2_save_every=int(k2),
            s1_epochs=int(e1), s1_batch=int(b1), s1_save_every=int(k1), dpo=bool(use_dpo),
            clvp_epochs=int(ec), clvp_init=init_path, fresh=bool(start_over), device=dev or "auto",
        )  # fmt: skip

    def view(st: dict[str, Any], exp: str | None, ver: str, force: bool = True) -> list[Any]:
        """Everything the timer refreshes: status, progress, 4 plots, sample players, exports, log.

        Plots, players and the exports table are sent only when their files changed since the last
        tick (`force=False`), so the browser does not redraw them every second."""
        runner, samples = st.get("runner"), st.get("samples")
        shown = st.setdefault("shown", {})

        def changed(key: str, signature: Any) -> bool:
            if not force and shown.get(key) == signature:
                return False
            shown[key] = signature
            return True

        metric_files = (
            [layout.run_dir(exp, step) / "metrics.jsonl" for step in ("s2", "s1", "clvp")] if exp else []
        )
        plots = (
            plots_for(layout, exp)
            if changed("plots", (exp, [file_signature(f) for f in metric_files]))
            else [gr.skip()] * 4
        )
        found = sample_files(layout, exp)[:MAX_SAMPLES]
        players = [gr.skip()] * MAX_SAMPLES
        if changed("samples", (exp, [(path, file_signature(Path(path))) for _m, _e, path in found])):
            players = [gr.update(visible=False, value=None) for _ in range(MAX_SAMPLES)]
            for i, (model, epoch, path) in enumerate(found):
                players[i] = gr.update(visible=True, value=path, label=saved_label(model, epoch, _))
        rows = export_rows(layout, exp, ver, _)
        table = rows if changed("exports", rows) else gr.skip()
        log = ""
        if runner is not None and runner.job is not None:
            log = tail_text(runner.job.log_path, 3000)
        elif runner is not None and runner.results and runner.results[-1].log_tail:
            log = runner.results[-1].log_tail
        return [
            status_markdown(runner, samples, _),
            progress_markdown(runner, _),
            *plots,
            *players,
            table,
            log,
        ]

    view_outputs = [
        status_md, progress_md, s2_plot, s1_plot, s1_acc_plot, clvp_plot, *sample_players, exports, log_box,
    ]  # fmt: skip

    def run_check(steps, values) -> tuple[TrainSettings, str, bool]:
        """(settings, the check as Markdown, whether it blocks the start)."""
        settings = settings_from(*values)
        inputs = gather_preflight(layout, settings, steps)
        problems = check_plan(inputs, _)
        blocked = any(p.blocking for p in problems)
        return settings, problems_markdown(problems, _, dataset_summary(inputs, _)), blocked

    def make_start(steps: tuple[str, ...]):
        def on_start(*args):
            *values, ref_value, text_value, st = args
            runner = st.get("runner")
            if runner is not None and runner.running:
                raise gr.Error(_("A job is already running in this tab: stop it or wait for it."))
            settings, check_text, blocked = run_check(steps, values)
            if blocked:
                return [
                    check_text,
                    "❌ " + _("Not started."),
                    *[gr.update() for _ in view_outputs[1:]],
                    gr.Timer(active=False),
                ]
            specs = [build_step(step, settings, layout) for step in steps]
            runner = StepRunner(specs, ctx.folder("jobs"))
            runner.begin()
            old_samples = st.get("samples")
            if old_samples is not None:
                old_samples.stop()
            st.update(
                runner=runner,
                samples=SampleQueue(ctx.folder("jobs"), ctx.model_dir, settings.device),
                exp=settings.exp_name,
                version=settings.version,
                reference=sample_reference(ctx, settings.exp_name, settings.list_path, ref_value, text_value),
            )
            return [
                check_text,
                *view(st, settings.exp_name, settings.version),
                gr.Timer(active=True),
            ]

        return on_start

    def on_tick(st):
        runner, samples = st.get("runner"), st.get("samples")
        exp, ver = st.get("exp"), st.get("version", "v2")
        if runner is not None:
            for event in runner.poll():
                plan_and_queue(st, event)
        if samples is not None:
            samples.poll()
        busy = (runner is not None and runner.running) or (samples is not None and samples.busy)
        return [*view(st, exp, ver, force=False), gr.Timer(active=busy)]

    def plan_and_queue(st, event):
        exp, ver = st["exp"], st.get("version", "v2")
        try:
            pre = {m.role: m.path for m in pretrained_files(ctx.model_dir, ver)}
        except ValueError:
            return
        spec = plan_sample(
            event, layout, exp, list_exports(layout, exp, ver), pre["s1"], pre["s2g"], st.get("reference")
        )
        # A followed run replays its earlier `saved` events: their samples exist already.
        if spec is not None and not Path(spec.out_path).exists():
            st["samples"].add(saved_label(spec.model, spec.epoch, _), spec)

    def on_stop(st):
        # The trainer saves before it exits, which may outlast a request: wait in the background,
        # the timer shows the step ending.
        threading.Thread(target=stop_all, args=(st,), name="training-stop", daemon=True).start()
        return _("Stopping…")

    def on_check(*args):
        *values, _st = args
        return run_check(PIPELINE, values)[1]

    def on_show(name, ver, st):
        """Show an experiment; follow a step still running on it (started before a page reload)."""
        exp = safe_exp(name)
        runner = st.get("runner")
        attached = False
        if exp and (runner is None or not runner.running):
            live = live_job(layout.exp_dir(exp))
            if live is not None:
                spec, job = live
                st.update(
                    runner=StepRunner.attach(spec, job, ctx.folder("jobs")),
                    samples=st.get("samples") or SampleQueue(ctx.folder("jobs"), ctx.model_dir),
                    exp=exp,
                    version=ver,
                    reference=sample_reference(ctx, exp, "", None, None),
                )
                attached = True
        shown = st.get("exp") if attached else exp
        return [
            models_markdown(ctx, ver),
            *view(st, shown, ver),
            gr.Timer(active=True) if attached else gr.Timer(),
        ]

    def on_list(list_value, name):
        new_name = name if (name or "").strip() else suggested_name(list_value)
        return gr.update(choices=clip_choices(ctx, list_value), value=""), new_name

    start_inputs = [*settings_inputs, ref_choice, sample_text, state]
    start_outputs = [check_md, *view_outputs, timer]
    for button, steps in (
        (one_click, PIPELINE),
        (format_btn, ("prepare",)),
        (s2_btn, ("s2",)),
        (s1_btn, ("s1",)),
        (clvp_btn, ("clvp",)),
    ):
        button.click(make_start(steps), inputs=start_inputs, outputs=start_outputs)
    # A tick only polls this session's job and re-reads small files: no shared limit, so the pages of
    # several users (or one user's two pages) never wait on each other to see their progress.
    timer.tick(on_tick, inputs=state, outputs=[*view_outputs, timer], concurrency_limit=None)
    stop_btn.click(on_stop, inputs=state, outputs=status_md, concurrency_limit=None)
    check_btn.click(on_check, inputs=[*settings_inputs, state], outputs=check_md)
    show_outputs = [models_md, *view_outputs, timer]
    refresh.click(
        lambda n, v, s: [
            gr.update(choices=find_lists(ctx.workspace)),
            gr.update(choices=existing_experiments(layout)),
            *on_show(n, v, s),
        ],
        inputs=[exp_name, version, state],
        outputs=[list_choice, exp_pick, *show_outputs],
    )
    exp_pick.select(lambda picked: picked, inputs=exp_pick, outputs=exp_name).then(
        on_show, inputs=[exp_name, version, state], outputs=show_outputs
    )
    version.change(on_show, inputs=[exp_name, version, state], outputs=show_outputs)
    exp_name.blur(on_show, inputs=[exp_name, version, state], outputs=show_outputs)
    list_choice.change(on_list, inputs=[list_choice, exp_name], outputs=[ref_choice, exp_name])
