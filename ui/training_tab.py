"""Training tab: format a `.list`, fine-tune SoVITS (S2) and GPT (S1), train CLVP, hear progress.

A click starts a run in its own process (`training_runner.start_run`): it runs the steps as
subprocesses (`gpt_sovits.data.prepare`, `gpt_sovits.train.s2`, `gpt_sovits.train.s1`, `clvp.train`,
each with an argv list and a config file written into its run folder; the one-click button runs
format -> S2 -> S1), synthesises a short sample from each exported checkpoint, and writes its status
into the experiment folder. A check runs before anything starts and refuses to start on blocking
problems. The page only reads the experiment folder (status, log, samples, metrics.jsonl), so a run
outlives the page: choosing its experiment again (after a reload, or from another browser) shows it
live, or as it ended. Stop asks the run to stop and says which step it waits for (the trainer saves
first); clicking the same step again resumes, unless "Start over" is ticked.

This module is the wiring: `build` lays the page out (`training_page.build_page`) and connects its
events to the handlers below, each a function of (context, values) where values maps the event's
input components to their values, returning {component: update}. Plain logic lives beside it (see
`training_common` for the order of their imports).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from ui.context import AppContext
from ui.errors import in_status, shown_in_toast
from ui.job_ui import JobAlreadyRunning
from ui.labels_tab import find_lists
from ui.training_common import Layout, TrainingInputError, existing_experiments
from ui.training_jobs import live_job
from ui.training_page import TrainingPage, build_page
from ui.training_plan import (
    DEFAULT_LORA_RANK,
    PIPELINE,
    PREPARE_REQUEST_FILE,
    TrainSettings,
    build_step,
    check_plan,
    dataset_summary,
    gather_preflight,
    is_lora_version,
    pretrained_files,
    version_defaults,
)
from ui.training_runner import (
    RunPlan,
    StepRunner,
    TrainingSession,
    read_status,
    request_stop,
    run_alive,
    start_run,
)
from ui.training_samples import (
    SampleReference,
    choose_reference,
    materialize_reference,
    reference_clips,
    reference_clips_for,
)
from ui.training_views import (
    MAX_SAMPLES,
    clip_choices,
    export_rows,
    file_signature,
    layout_of,
    log_text,
    metric_files,
    models_markdown,
    plots_for,
    problems_markdown,
    progress_markdown,
    safe_exp,
    sample_files,
    sample_label,
    status_markdown,
    stop_waiting_line,
    suggested_name,
)

Values = dict[Any, Any]  # an event's input components -> their values
Updates = dict[Any, Any]  # output components -> new values or gr.update(...); absent ones stay


@dataclass(frozen=True)
class TrainingContext:
    """What every handler of the tab reads: the app (folders, translator) and the page's components."""

    app: AppContext
    page: TrainingPage

    @property
    def layout(self) -> Layout:
        return layout_of(self.app)


# ---------------------------------------------------------------- reading the page


def resolve_model_path(ctx: AppContext, value: str) -> Path:
    """A weights file typed by the user: inside the workspace or the models folder, and existing."""
    from core.fsutil import PathOutsideRootError, resolve_inside

    for root in (ctx.workspace, ctx.model_dir):
        try:
            path = resolve_inside(root, value)
        except PathOutsideRootError:  # not under this root: try the next one
            continue
        if path.is_file():
            return path
    raise TrainingInputError(
        ctx.i18n("Not a weights file in the workspace or the models folder: {path}", path=value)
    )


def read_settings(tc: TrainingContext, values: Values) -> TrainSettings:
    """The run the widgets describe; a list outside the workspace or a missing weights file is refused."""
    page, app = tc.page, tc.app
    list_value, init = values[page.list_choice], values[page.clvp_init]
    list_path = str(app.inside(list_value)) if list_value else ""
    init_path = str(resolve_model_path(app, init.strip())) if init and init.strip() else ""
    return TrainSettings(
        exp_name=(values[page.exp_name] or "").strip(),
        version=values[page.version] or "v2",
        list_path=list_path,
        s2_epochs=int(values[page.s2_epochs]), s2_batch=int(values[page.s2_batch]),
        s2_save_every=int(values[page.s2_save]), lora_rank=int(values[page.lora_rank] or DEFAULT_LORA_RANK),
        s1_epochs=int(values[page.s1_epochs]), s1_batch=int(values[page.s1_batch]),
        s1_save_every=int(values[page.s1_save]), dpo=bool(values[page.dpo]),
        clvp_epochs=int(values[page.clvp_epochs]), clvp_init=init_path, fresh=bool(values[page.fresh]),
        device=values[page.device] or "auto",
    )  # fmt: skip


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
        except (OSError, ValueError, KeyError, TypeError):  # never formatted here: samples need a list
            return None
    clips = reference_clips(Path(list_path), ctx.workspace)
    if chosen and chosen not in {c[0] for c in clips}:
        clips = reference_clips_for(chosen, Path(list_path), ctx.workspace) + clips
    ref = choose_reference(clips, chosen or None)
    if ref is not None and text and text.strip():
        ref = dataclasses.replace(ref, target_text=text.strip())
    return materialize_reference(ref, layout.samples_dir(exp) / "reference.wav") if ref else None


# ---------------------------------------------------------------- what the timer refreshes


def changed(session: TrainingSession, key: str, signature: Any, force: bool) -> bool:
    """Whether the view `key` must be sent: forced, or its files' signature differs from the last one."""
    if not force and session.shown.get(key) == signature:
        return False
    session.shown[key] = signature
    return True


def plot_updates(tc: TrainingContext, session: TrainingSession, exp: str | None, force: bool) -> Updates:
    signature = (exp, [file_signature(f) for f in metric_files(tc.layout, exp)])
    if not changed(session, "plots", signature, force):
        return {}
    return dict(zip(tc.page.plots, plots_for(tc.layout, exp, tc.app.i18n), strict=True))


def player_updates(tc: TrainingContext, session: TrainingSession, exp: str | None, force: bool) -> Updates:
    """The newest samples in the players (label: model, epoch, step); the players left over are hidden."""
    found = sample_files(tc.layout, exp)[:MAX_SAMPLES]
    if not changed(
        session, "samples", (exp, [(path, file_signature(Path(path))) for *_, path in found]), force
    ):
        return {}
    updates = {player: gr.update(visible=False, value=None) for player in tc.page.sample_players}
    for player, (model, epoch, step, path) in zip(tc.page.sample_players, found, strict=False):
        label = sample_label(model, epoch, step, tc.app.i18n)
        updates[player] = gr.update(visible=True, value=path, label=label)
    return updates


def refreshed_view(
    tc: TrainingContext, session: TrainingSession, exp: str | None, version: str, force: bool = True
) -> Updates:
    """Status, progress, curves, sample players, exports and log of experiment `exp`, all read from its
    folder (the run writes them: this page may have opened long after it started, or be one of several).

    Curves, players and the exports table are sent only when their files changed since the last
    tick (`force=False`), so the browser does not redraw them every second."""
    page, _ = tc.page, tc.app.i18n
    status = read_status(tc.layout, exp)
    alive = run_alive(status)
    session.active = alive
    if status and status.get("version"):
        version = str(status["version"])  # the run's exports, whatever the radio shows now
    updates: Updates = {
        page.status_md: status_markdown(tc.layout, status, alive, _),
        page.progress_md: progress_markdown(status, alive, _),
        **plot_updates(tc, session, exp, force),
        **player_updates(tc, session, exp, force),
        page.log_box: log_text(status),
    }
    rows = export_rows(tc.layout, exp, version, _)
    if changed(session, "exports", rows, force):
        updates[page.exports] = rows
    return updates


# ---------------------------------------------------------------- handlers


def run_check(tc: TrainingContext, steps: tuple[str, ...], values: Values) -> tuple[TrainSettings, str, bool]:
    """(settings, the check as Markdown, whether it blocks the start)."""
    _ = tc.app.i18n
    settings = read_settings(tc, values)
    inputs = gather_preflight(tc.layout, settings, steps)
    problems = check_plan(inputs, _)
    blocked = any(p.blocking for p in problems)
    return settings, problems_markdown(problems, _, dataset_summary(inputs, _)), blocked


def check(tc: TrainingContext, values: Values) -> Updates:
    """The Check button: the check of the one-click run, without starting anything."""
    with shown_in_toast(tc.app.i18n, "the Training check"):
        return {tc.page.check_md: run_check(tc, PIPELINE, values)[1]}


def pretrained_pair(app: AppContext, version: str) -> dict[str, str]:
    """The pretrained GPT and SoVITS generator of `version`, which samples pair a new checkpoint with
    until the other model has an export (empty for an unknown version: then no samples)."""
    try:
        files = {m.role: str(m.path) for m in pretrained_files(app.model_dir, version)}
    except ValueError:
        return {}
    return {"pretrained_s1": files.get("s1", ""), "pretrained_s2g": files.get("s2g", "")}


def begin_run(
    tc: TrainingContext,
    session: TrainingSession,
    steps: tuple[str, ...],
    settings: TrainSettings,
    values: Values,
) -> None:
    """Start the run of `steps` in its own process (`training_runner.start_run`): it makes its samples
    and writes its status whether or not a page is open."""
    app, page = tc.app, tc.page
    reference = sample_reference(
        app, settings.exp_name, settings.list_path, values[page.ref_choice], values[page.sample_text]
    )
    plan = RunPlan(
        settings.exp_name, settings.version, app.workspace, app.model_dir, app.folder("jobs"),
        tuple(build_step(step, settings, tc.layout) for step in steps), reference, settings.device,
        **pretrained_pair(app, settings.version),
    )  # fmt: skip
    start_run(plan)
    session.exp, session.version, session.shown = settings.exp_name, settings.version, {}


def start_steps(tc: TrainingContext, steps: tuple[str, ...], values: Values) -> Updates:
    """A step button: check, then run `steps` in order, unless the check blocks."""
    page, _ = tc.page, tc.app.i18n
    session: TrainingSession = values[page.state]
    with shown_in_toast(_, "the Training start"):
        exp = safe_exp(values[page.exp_name])
        if exp and run_alive(read_status(tc.layout, exp)):
            raise JobAlreadyRunning(
                _("Experiment {exp} is already running: stop it or wait for it.", exp=exp)
            )
        settings, check_text, blocked = run_check(tc, steps, values)
        if blocked:
            not_started = "❌ " + _("Not started.")
            return {
                page.check_md: check_text,
                page.status_md: not_started,
                page.timer: gr.Timer(active=False),
            }
        begin_run(tc, session, steps, settings, values)
        view = refreshed_view(tc, session, settings.exp_name, settings.version)
    return {page.check_md: check_text, **view, page.timer: gr.Timer(active=True)}


def tick(tc: TrainingContext, values: Values) -> Updates:
    """The timer: re-read the shown experiment's run (status, log, samples, curves)."""
    session: TrainingSession = values[tc.page.state]
    with shown_in_toast(tc.app.i18n, "the Training timer"):
        view = refreshed_view(tc, session, session.exp, session.version, force=False)
    return {**view, tc.page.timer: gr.Timer(active=session.active)}


def stop(tc: TrainingContext, values: Values) -> Updates:
    """The Stop button: ask the shown experiment's run to stop, and say what the stop waits for."""
    session: TrainingSession = values[tc.page.state]
    layout, _ = tc.layout, tc.app.i18n
    status = read_status(layout, session.exp)
    if session.exp and run_alive(status):
        request_stop(layout, session.exp)
        stopping = {**status, "state": "stopping"}
        return {tc.page.status_md: status_markdown(layout, stopping, True, _)}
    live = live_job(layout.exp_dir(session.exp)) if session.exp else None
    if live is not None:  # a step no run of this tab supervises (started from the command line)
        runner = StepRunner.attach(live[0], live[1], tc.app.folder("jobs"))
        # The trainer saves before it exits, which may outlast a request: wait in the background.
        threading.Thread(target=runner.stop, name="training-stop", daemon=True).start()
        current = {"step": live[0].step}
        return {tc.page.status_md: stop_waiting_line({"current": current}, _)}
    return {tc.page.status_md: _("Nothing is running on this experiment.")}


def follow_unsupervised_step(tc: TrainingContext, exp: str, version: str) -> bool:
    """A step running on `exp` with no run supervising it (its supervisor was killed, or it was started
    from the command line): start a supervisor that follows it, so its samples and status are made."""
    if run_alive(read_status(tc.layout, exp)):
        return False
    live = live_job(tc.layout.exp_dir(exp))
    if live is None:
        return False
    app = tc.app
    reference = sample_reference(app, exp, "", None, None)
    plan = RunPlan(
        exp, version, app.workspace, app.model_dir, app.folder("jobs"), (live[0],), reference,
        follow=True, **pretrained_pair(app, version),
    )  # fmt: skip
    start_run(plan)
    return True


def show_experiment(tc: TrainingContext, values: Values) -> Updates:
    """Show an experiment (name typed or picked, version changed): its live or last run, from its folder."""
    page = tc.page
    session: TrainingSession = values[page.state]
    version = values[page.version]
    with shown_in_toast(tc.app.i18n, "the Training experiment view"):
        exp = safe_exp(values[page.exp_name])
        if exp != session.exp:
            session.shown = {}
        session.exp, session.version = exp, version
        if exp:
            follow_unsupervised_step(tc, exp, version)
        view = refreshed_view(tc, session, exp, version)
        updates = {page.models_md: models_markdown(tc.app, version), **view}
    return updates | {page.timer: gr.Timer(active=session.active)}


def refresh(tc: TrainingContext, values: Values) -> Updates:
    """The Refresh button: re-read the lists and experiments, then show the experiment again."""
    page = tc.page
    return {
        page.list_choice: gr.update(choices=find_lists(tc.app.workspace)),
        page.exp_pick: gr.update(choices=existing_experiments(tc.layout)),
        **show_experiment(tc, values),
    }


def apply_version_defaults(tc: TrainingContext, values: Values) -> Updates:
    """A version chosen: its S2 defaults (v3/v4: 2 epochs, save every 1, the LoRA rank shown)."""
    page, version = tc.page, values[tc.page.version]
    d = version_defaults(version)
    return {
        page.s2_epochs: d["s2_epochs"],
        page.s2_save: d["s2_save_every"],
        page.lora_rank: gr.update(value=d["lora_rank"], visible=is_lora_version(version)),
    }


def pick_experiment(tc: TrainingContext, values: Values) -> Updates:
    """An existing experiment picked: its name goes into the name box (then it is shown)."""
    return {tc.page.exp_name: values[tc.page.exp_pick]}


def choose_list(tc: TrainingContext, values: Values) -> Updates:
    """A label file chosen: offer its clips as sample references; name the experiment after it if unnamed."""
    page = tc.page
    list_value, name = values[page.list_choice], values[page.exp_name]
    new_name = name if (name or "").strip() else suggested_name(list_value)
    return {
        page.ref_choice: gr.update(choices=clip_choices(tc.app, list_value), value=""),
        page.exp_name: new_name,
    }


# ---------------------------------------------------------------- wiring


def bound(handler: Callable[..., Updates], *args: Any) -> Callable[[Values], Updates]:
    """`handler` with its leading arguments given, under its own name (Gradio names the endpoint by it)."""
    fn = functools.partial(handler, *args)
    fn.__name__ = handler.__name__  # type: ignore[attr-defined]
    return fn


def wire_start_buttons(tc: TrainingContext) -> None:
    page = tc.page
    start_inputs = {*page.settings_inputs, page.ref_choice, page.sample_text}
    start_outputs = [page.check_md, *page.view_outputs, page.timer]
    for button, steps in (
        (page.one_click, PIPELINE),
        (page.format_btn, ("prepare",)),
        (page.s2_btn, ("s2",)),
        (page.s1_btn, ("s1",)),
        (page.clvp_btn, ("clvp",)),
    ):
        button.click(
            in_status(bound(start_steps, tc, steps), page.status_md),
            inputs=start_inputs,
            outputs=start_outputs,
        )


def wire_experiment_choice(tc: TrainingContext) -> None:
    page = tc.page
    show_inputs = {page.exp_name, page.version, page.state}
    show_outputs = [page.models_md, *page.view_outputs, page.timer]
    page.refresh.click(
        in_status(bound(refresh, tc), page.status_md),
        inputs=show_inputs,
        outputs=[page.list_choice, page.exp_pick, *show_outputs],
    )
    page.exp_pick.select(bound(pick_experiment, tc), inputs={page.exp_pick}, outputs=page.exp_name).then(
        in_status(bound(show_experiment, tc), page.status_md), inputs=show_inputs, outputs=show_outputs
    )
    page.version.change(
        in_status(bound(show_experiment, tc), page.status_md), inputs=show_inputs, outputs=show_outputs
    )
    page.version.change(
        bound(apply_version_defaults, tc),
        inputs={page.version},
        outputs=[page.s2_epochs, page.s2_save, page.lora_rank],
    )
    page.exp_name.blur(
        in_status(bound(show_experiment, tc), page.status_md), inputs=show_inputs, outputs=show_outputs
    )
    page.list_choice.change(
        bound(choose_list, tc),
        inputs={page.list_choice, page.exp_name},
        outputs=[page.ref_choice, page.exp_name],
    )


def build(ctx: AppContext) -> None:
    """Lay the tab out and connect its events."""
    tc = TrainingContext(ctx, build_page(ctx))
    page = tc.page
    wire_start_buttons(tc)
    # A tick only polls this session's job and re-reads small files: no shared limit, so the pages of
    # several users (or one user's two pages) never wait on each other to see their progress.
    page.timer.tick(
        in_status(bound(tick, tc), page.status_md),
        inputs={page.state},
        outputs=[*page.view_outputs, page.timer],
        concurrency_limit=None,
    )
    page.stop_btn.click(bound(stop, tc), inputs={page.state}, outputs=page.status_md, concurrency_limit=None)
    page.check_btn.click(
        in_status(bound(check, tc), page.check_md), inputs=page.settings_inputs, outputs=page.check_md
    )
    wire_experiment_choice(tc)
