"""The experiment bar above the tabs: one experiment (name, speaker, language) carries its paths through the flow.

DESIGN. An experiment is a name (a safe folder name) with a speaker and a language, stored in
``experiments/<exp>/experiment.json``. Its stages read and write fixed workspace folders:

    uploads/<exp>/              files uploaded in Separation or Slicing
    separated/<exp>/            Separation's <stem>_vocals.wav / <stem>_accompaniment.wav
    sliced/<exp>/               Slicing's clips (32 kHz mono wavs), from the vocals chosen in Slicing
    asr/<exp>.list              ASR's label file (speaker column: the experiment's speaker), details in
                                asr/<exp>.asr.jsonl; the Label editor and Dataset check open it
    experiments/<exp>/          Training's formatted data and runs (its saved settings fill the tab)
    weights/*/<exp>_*, <exp>-*  exported GPT / SoVITS weights, listed first in Voice cloning

Choosing an experiment (or creating one) only *pre-fills* the tabs' own fields -- the Slicing input
files, the ASR folder, the list in the Label editor, Dataset check and Training, Training's name and
settings, the weights in Voice cloning -- so a person can still pick any file by hand. The choice is
kept per browser (``gr.BrowserState``) and the last one of the workspace in ``.workshop.json``, which
a new browser starts from. Every list of files, folders, experiments and weights is read fresh when the
page loads, when a tab is opened, and after each job; a job's outputs are selected in the next tab,
and each stage's "Next" button opens the next tab with them.

The tabs built elsewhere (Training, Voice cloning) are reached by their element ids: their own events
(e.g. Training showing an experiment when its name box loses focus) are replayed after the bar fills
them, so nothing of theirs is duplicated here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from core.errors import UserError
from core.fsutil import atomic_write_text
from ui.context import AppContext, InputError
from ui.wiring import connect

logger = logging.getLogger(__name__)

EXPERIMENT_FILE = "experiment.json"
WORKSPACE_MEMORY = ".workshop.json"
LANGUAGES = ("auto", "zh", "en", "ja", "ko", "yue")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus", ".aac", ".wma")
# Workspace folders whose audio Slicing offers as inputs (what a person uploaded or separated).
SOURCE_FOLDERS = ("uploads", "separated")
# The tabs in flow order (webui.TABS ids) and what each "Next" button opens.
NEXT_TAB = {
    "separate_tab": "slice_tab",
    "slice_tab": "asr_tab",
    "asr_tab": "labels_tab",
    "labels_tab": "dataset_tab",
    "dataset_tab": "training_tab",
    "training_tab": "inference_tab",
}


class ExperimentError(UserError, ValueError):
    """An experiment name that cannot be used, or an experiment file that cannot be read."""


# ---------------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Experiment:
    name: str
    speaker: str = ""
    language: str = "auto"

    @property
    def speaker_or_name(self) -> str:
        return self.speaker or self.name


@dataclass(frozen=True)
class StagePaths:
    """Where each stage of experiment `name` reads and writes (workspace-relative, posix)."""

    name: str

    @property
    def uploads(self) -> str:
        return f"uploads/{self.name}"

    @property
    def separated(self) -> str:
        return f"separated/{self.name}"

    @property
    def sliced(self) -> str:
        return f"sliced/{self.name}"

    @property
    def asr_list(self) -> str:
        return f"asr/{self.name}.list"

    @property
    def experiment(self) -> str:
        return f"experiments/{self.name}"


def experiments_root(ctx: AppContext) -> Path:
    return ctx.workspace / "experiments"


def experiment_speaker(ctx: AppContext, clips: Path) -> str:
    """The saved speaker of the experiment whose clips are `clips` (sliced/<exp>), else "" (ASR then
    names the speaker after the folder)."""
    if clips.parent != ctx.folder("sliced") or not (experiments_root(ctx) / clips.name).is_dir():
        return ""
    return read_experiment(ctx, clips.name).speaker


def validate_name(ctx: AppContext, name: str | None) -> str:
    from ui.training_common import EXP_NAME

    name = (name or "").strip()
    if not name:
        raise ExperimentError(ctx.i18n("Enter a name for the new experiment."))
    if not EXP_NAME.fullmatch(name) or name.endswith("."):
        raise ExperimentError(
            ctx.i18n(
                "Experiment name {name!r} is not a safe folder name: use letters, digits, _ . - "
                "(at most 64, no spaces, not starting with a dot).",
                name=name,
            )
        )
    return name


def list_experiments(ctx: AppContext) -> list[str]:
    """Experiment folders of the workspace, sorted (Training's runs and the bar's own alike)."""
    from ui.training_common import EXP_NAME

    root = experiments_root(ctx)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and EXP_NAME.fullmatch(p.name))


def read_experiment(ctx: AppContext, name: str) -> Experiment:
    """The experiment's saved speaker and language (defaults for a folder Training made alone)."""
    path = experiments_root(ctx) / name / EXPERIMENT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Experiment(name)
    except (OSError, ValueError) as e:
        logger.warning("%s: unreadable, using defaults (%s)", path, e)
        return Experiment(name)
    language = data.get("language") if data.get("language") in LANGUAGES else "auto"
    return Experiment(name, str(data.get("speaker") or ""), language)


def save_experiment(ctx: AppContext, exp: Experiment) -> Experiment:
    """Write `experiments/<name>/experiment.json` (atomically) and the stage folders it names."""
    folder = experiments_root(ctx) / exp.name
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / EXPERIMENT_FILE, json.dumps(asdict(exp), ensure_ascii=False, indent=1) + "\n")
    paths = StagePaths(exp.name)
    for sub in (paths.uploads, paths.separated, paths.sliced):
        (ctx.workspace / sub).mkdir(parents=True, exist_ok=True)
    return exp


def remembered(ctx: AppContext) -> str:
    """The workspace's last chosen experiment ('' if none or gone)."""
    try:
        name = str(
            json.loads((ctx.workspace / WORKSPACE_MEMORY).read_text(encoding="utf-8")).get("experiment")
        )
    except (OSError, ValueError, AttributeError):
        return ""
    return name if name in list_experiments(ctx) else ""


def remember(ctx: AppContext, name: str) -> None:
    try:
        atomic_write_text(ctx.workspace / WORKSPACE_MEMORY, json.dumps({"experiment": name}) + "\n")
    except OSError as e:  # only a convenience for the next browser: never fail the choice for it
        logger.warning("could not remember the experiment in %s: %s", ctx.workspace, e)


# ------------------------------------------------------------------------------- what the tabs list


def _relative(ctx: AppContext, path: Path) -> str:
    return path.relative_to(ctx.workspace).as_posix()


def _visible(ctx: AppContext, path: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(ctx.workspace).parts)


def audio_files(ctx: AppContext, folder: str) -> list[str]:
    """Audio files under a workspace folder (recursive, hidden ones left out), workspace-relative."""
    root = ctx.workspace / folder
    if not root.is_dir():
        return []
    return sorted(
        _relative(ctx, p)
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and _visible(ctx, p)
    )


def source_choices(ctx: AppContext) -> list[str]:
    """What Slicing offers as inputs: the audio of uploads/ and separated/, vocals before the rest."""
    files = [f for folder in SOURCE_FOLDERS for f in audio_files(ctx, folder)]
    return sorted(files, key=lambda f: (not f.startswith("separated/"), "_accompaniment." in f, f))


def slicing_inputs(ctx: AppContext, name: str) -> list[str]:
    """The files Slicing starts from for experiment `name`: its separated vocals, else its uploads."""
    paths = StagePaths(name)
    vocals = [f for f in audio_files(ctx, paths.separated) if Path(f).stem.endswith("_vocals")]
    return vocals or audio_files(ctx, paths.uploads)


def folder_has_audio(ctx: AppContext, folder: str) -> bool:
    return bool(audio_files(ctx, folder))


def experiment_list(ctx: AppContext, name: str) -> str | None:
    """The experiment's label file: ASR's, else the one Training last formatted from (relative)."""
    asr = ctx.workspace / StagePaths(name).asr_list
    if asr.is_file():
        return StagePaths(name).asr_list
    request = training_request(ctx, name, "prepare")
    listed = request.get("list")
    if listed:
        try:
            return _relative(ctx, ctx.inside(listed))
        except (UserError, ValueError):
            return None
    return None


def training_request(ctx: AppContext, name: str, step: str) -> dict[str, Any]:
    """Training's saved request of `step` (prepare, s2, s1) for experiment `name`, or {}."""
    from ui.training_common import RUN_FOLDERS
    from ui.training_plan import PREPARE_REQUEST_FILE, REQUEST_FILE

    folder = experiments_root(ctx) / name / RUN_FOLDERS.get(step, "")
    path = folder / (PREPARE_REQUEST_FILE if step == "prepare" else REQUEST_FILE)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def training_settings(ctx: AppContext, name: str) -> dict[str, Any]:
    """Training's saved settings of experiment `name`, by the tab's element id (only those saved)."""
    out: dict[str, Any] = {}
    prepare = training_request(ctx, name, "prepare")
    if prepare.get("version"):
        out["train-version"] = prepare["version"]
    for step in ("s2", "s1"):
        request = training_request(ctx, name, step)
        for key, suffix in (("epochs", "epochs"), ("batch_size", "batch"), ("save_every", "save")):
            if isinstance(request.get(key), int):
                out[f"train-{step}-{suffix}"] = request[key]
        if step == "s1" and isinstance(request.get("dpo"), bool):
            out["train-dpo"] = request["dpo"]
    return out


def is_experiment_weight(name: str, path: str) -> bool:
    """Whether a weights file was exported by experiment `name` (`<name>_e3_s60.pth`, `<name>-e5.ckpt`)."""
    base = Path(path).name
    return base.startswith((f"{name}_", f"{name}-"))


def experiment_first(name: str | None, choices: list[Any]) -> list[Any]:
    """Weight choices (objects with `.path`) with experiment `name`'s own files first, order kept."""
    if not name:
        return choices
    own = [c for c in choices if is_experiment_weight(name, c.path)]
    return own + [c for c in choices if not is_experiment_weight(name, c.path)]


def describe(ctx: AppContext, exp: Experiment | None) -> str:
    """The bar's line: where this experiment's files are and how far it got."""
    _ = ctx.i18n
    if exp is None:
        return _("No experiment chosen: create one (name, speaker, language) or pick an existing one.")
    paths = StagePaths(exp.name)
    list_path = experiment_list(ctx, exp.name)
    clips = 0
    if list_path:
        try:
            text = (ctx.workspace / list_path).read_text(encoding="utf-8")
            clips = sum(1 for line in text.splitlines() if line.strip())
        except OSError:
            clips = 0
    parts = [
        _("uploads: {n}", n=len(audio_files(ctx, paths.uploads))),
        _("separated: {n}", n=len(audio_files(ctx, paths.separated))),
        _("sliced: {n}", n=len(audio_files(ctx, paths.sliced))),
        _("list: {n} clips", n=clips) if list_path else _("list: none yet"),
    ]
    return f"**{exp.name}** · `{paths.experiment}/` · " + " · ".join(parts)


# ---------------------------------------------------------------------------------------- the layout


@dataclass
class ExperimentBar:
    choice: gr.Dropdown
    new_name: gr.Textbox
    speaker: gr.Textbox
    language: gr.Dropdown
    create: gr.Button
    info: gr.Markdown
    memory: gr.BrowserState  # this browser's experiment name


def layout(ctx: AppContext) -> ExperimentBar:
    _ = ctx.i18n
    with gr.Group(elem_id="exp-bar"):
        with gr.Row(equal_height=True):
            choice = gr.Dropdown(
                list_experiments(ctx),
                value=None,
                label=_("Experiment"),
                elem_id="exp-choice",
                scale=2,
                min_width=160,
            )
            new_name = gr.Textbox(
                label=_("New experiment name"), elem_id="exp-new-name", scale=2, min_width=140
            )
            speaker = gr.Textbox(label=_("Speaker"), elem_id="exp-speaker", scale=1, min_width=100)
            language = gr.Dropdown(
                [(_("Detect"), "auto"), *((code, code) for code in LANGUAGES[1:])],
                value="auto",
                label=_("Language"),
                elem_id="exp-language",
                scale=1,
                min_width=100,
            )
            create = gr.Button(_("Create"), elem_id="exp-create", scale=0, min_width=90)
        info = gr.Markdown(describe(ctx, None), elem_id="exp-info")
    # The secret only keeps other pages' scripts from reading the value: derive it from the workspace, so a
    # restarted server still reads what this browser chose.
    secret = hashlib.sha256(str(ctx.workspace).encode()).hexdigest()[:24]
    memory = gr.BrowserState("", storage_key="gsv-workshop-experiment", secret=secret)
    return ExperimentBar(choice, new_name, speaker, language, create, info, memory)


# ----------------------------------------------------------------------------- the tabs it fills


@dataclass
class FlowTargets:
    """The components the bar fills, by role (None where a tab is absent), and the tab switcher."""

    tabs: gr.Tabs
    components: dict[str, Any]

    def get(self, key: str) -> Any:
        return self.components.get(key)

    def present(self, keys: Iterable[str]) -> list[Any]:
        return [self.components[k] for k in keys if self.components.get(k) is not None]


def find_by_id(app: gr.Blocks, elem_id: str) -> Any:
    """The component of `app` with this element id, or None."""
    return next((b for b in app.blocks.values() if getattr(b, "elem_id", None) == elem_id), None)


TRAINING_SETTING_IDS = (
    "train-version",
    "train-s2-epochs",
    "train-s2-batch",
    "train-s2-save",
    "train-s1-epochs",
    "train-s1-batch",
    "train-s1-save",
    "train-dpo",
)


def _choices_update(choices: list[Any], value: Any = None, keep: bool = False) -> Any:
    return gr.update(choices=choices) if keep else gr.update(choices=choices, value=value)


def list_targets(ctx: AppContext, targets: FlowTargets, name: str | None, select: bool) -> dict[Any, Any]:
    """Fresh choices of every list the bar knows; with `select`, the experiment's files chosen in them."""
    from ui.asr_tab import folder_choices
    from ui.labels_tab import find_lists
    from ui.training_common import Layout, existing_experiments

    lists = find_lists(ctx.workspace)
    own_list = experiment_list(ctx, name) if name else None
    keep = not (select and name)
    sliced = StagePaths(name).sliced if name else None
    updates: dict[Any, Any] = {}
    for key, value in (
        ("slice_pick", slicing_inputs(ctx, name) if name else []),
        ("asr_folder", sliced if sliced and (ctx.workspace / sliced).is_dir() else None),
        ("labels_list", own_list),
        ("dataset_list", own_list),
        ("train_list", own_list),
    ):
        component = targets.get(key)
        if component is None:
            continue
        choices = {
            "slice_pick": source_choices(ctx),
            "asr_folder": folder_choices(ctx),
        }.get(key, lists)
        no_value = keep or value is None or (key == "asr_folder" and value is None)
        updates[component] = _choices_update(choices, value, keep=no_value)
    if targets.get("train_pick") is not None:
        updates[targets.get("train_pick")] = gr.update(
            choices=existing_experiments(Layout(ctx.workspace, ctx.model_dir))
        )
    if targets.get("slice_out") is not None and not keep:
        updates[targets.get("slice_out")] = name
    return updates


def experiment_targets(ctx: AppContext, targets: FlowTargets, exp: Experiment) -> dict[Any, Any]:
    """What choosing `exp` fills besides the lists: languages, Training's name and saved settings."""
    updates: dict[Any, Any] = {}
    if targets.get("asr_language") is not None:
        updates[targets.get("asr_language")] = exp.language
    if targets.get("train_exp") is not None:
        updates[targets.get("train_exp")] = exp.name
    for elem_id, value in training_settings(ctx, exp.name).items():
        if targets.get(elem_id) is not None:
            updates[targets.get(elem_id)] = value
    return updates


def weight_targets(ctx: AppContext, targets: FlowTargets, name: str | None) -> dict[Any, Any]:
    """Voice cloning's GPT / SoVITS lists with the experiment's own weights first (and chosen)."""
    gpt, sovits = targets.get("inf_gpt"), targets.get("inf_sovits")
    if gpt is None or sovits is None or not name:
        return {}
    from ui import inference_helpers as H
    from ui.inference_layout import weight_dropdown_choices

    updates: dict[Any, Any] = {}
    for component, found in (
        (gpt, H.gpt_choices(ctx.workspace, ctx.model_dir)),
        (sovits, H.sovits_choices(ctx.workspace, ctx.model_dir)),
    ):
        ordered = experiment_first(name, found)
        own = [c.path for c in ordered if is_experiment_weight(name, c.path)]
        choices = weight_dropdown_choices(ordered, ctx.i18n)
        updates[component] = gr.update(choices=choices, value=own[0]) if own else gr.update(choices=choices)
    return updates


# ---------------------------------------------------------------------------------------- handlers


def bar_outputs(bar: ExperimentBar) -> list[Any]:
    return [bar.choice, bar.speaker, bar.language, bar.info, bar.memory]


def chosen(ctx: AppContext, bar: ExperimentBar, targets: FlowTargets, exp: Experiment) -> dict[Any, Any]:
    """Everything that follows from choosing `exp`: the bar itself, the memory, the tabs' fields."""
    remember(ctx, exp.name)
    return {
        bar.choice: gr.update(choices=list_experiments(ctx), value=exp.name),
        bar.speaker: exp.speaker,
        bar.language: exp.language,
        bar.info: describe(ctx, exp),
        bar.memory: exp.name,
        **list_targets(ctx, targets, exp.name, select=True),
        **experiment_targets(ctx, targets, exp),
        **weight_targets(ctx, targets, exp.name),
    }


def updates_or_skip(fn: Callable[..., dict[Any, Any]]) -> Callable[..., Any]:
    """`fn`, returning `gr.skip()` instead of an empty dict of updates (which Gradio would take for a value)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs) or gr.skip()

    return run


def make_handlers(bar: ExperimentBar, targets: FlowTargets) -> dict[str, Callable[..., Any]]:
    """The bar's named handlers, bound to its components (their outputs are dicts of updates)."""

    def load_page(ctx: AppContext, memory: str | None) -> dict[Any, Any]:
        """The page (re)loaded: every list fresh, and this browser's experiment (else the workspace's last)."""
        name = memory if memory in list_experiments(ctx) else remembered(ctx)
        if not name:
            return {
                bar.choice: gr.update(choices=list_experiments(ctx), value=None),
                bar.info: describe(ctx, None),
                **list_targets(ctx, targets, None, select=False),
            }
        return chosen(ctx, bar, targets, read_experiment(ctx, name))

    def pick_experiment(ctx: AppContext, name: str | None) -> dict[Any, Any]:
        """An existing experiment picked: its paths, list and saved settings fill the tabs."""
        if not name:
            raise InputError(ctx.i18n("Choose an experiment."))
        return chosen(ctx, bar, targets, read_experiment(ctx, name))

    def create_experiment(ctx: AppContext, new_name: str, speaker: str, language: str) -> dict[Any, Any]:
        """Create the experiment (or reopen one of that name, keeping its saved speaker and language)."""
        name = validate_name(ctx, new_name)
        if name in list_experiments(ctx) and (experiments_root(ctx) / name / EXPERIMENT_FILE).is_file():
            exp = read_experiment(ctx, name)
        else:
            exp = save_experiment(ctx, Experiment(name, (speaker or "").strip(), language or "auto"))
        return {**chosen(ctx, bar, targets, exp), bar.new_name: ""}

    def edit_details(ctx: AppContext, name: str | None, speaker: str, language: str) -> dict[Any, Any]:
        """Speaker or language changed for the chosen experiment: saved at once."""
        if not name:
            return {}
        exp = save_experiment(ctx, Experiment(name, (speaker or "").strip(), language or "auto"))
        return {bar.info: describe(ctx, exp), **experiment_targets(ctx, targets, exp)}

    def refresh_lists(ctx: AppContext, name: str | None) -> dict[Any, Any]:
        """A tab opened or a job ended: every list read again, the person's choices kept."""
        exp = read_experiment(ctx, name) if name in list_experiments(ctx) else None
        return {bar.info: describe(ctx, exp), **list_targets(ctx, targets, name, select=False)}

    handlers = [load_page, pick_experiment, create_experiment, edit_details, refresh_lists]
    return {h.__name__: updates_or_skip(h) for h in handlers}


def all_outputs(bar: ExperimentBar, targets: FlowTargets) -> list[Any]:
    keys = [k for k in targets.components if targets.components[k] is not None]
    seen: list[Any] = []
    for c in [*bar_outputs(bar), bar.new_name, *(targets.components[k] for k in keys)]:
        if not any(c is s for s in seen):
            seen.append(c)
    return seen


def replay(app: gr.Blocks, elem_id: str, event: str, trigger: Any) -> None:
    """Run, after `trigger`, the handlers `app` registered for `event` on the component `elem_id`
    (as if the person had done it), with the same inputs and outputs."""
    component = find_by_id(app, elem_id)
    if component is None:
        return
    for fn in list(app.fns.values()):
        if fn.fn is None or not any(t[0] == component._id and t[1] == event for t in fn.targets):
            continue
        inputs = set(fn.inputs) if fn.inputs_as_dict else list(fn.inputs)
        trigger.then(fn.fn, inputs=inputs, outputs=list(fn.outputs), show_progress="hidden")


def wire(ctx: AppContext, app: gr.Blocks, bar: ExperimentBar, targets: FlowTargets) -> Callable[[Any], None]:
    """Connect the bar; returns `after(event)`: chain a fresh listing (and Training's view) after `event`."""
    handlers = make_handlers(bar, targets)
    outputs = all_outputs(bar, targets)
    options = {"status": bar.info, "show_progress": "hidden"}

    def follow_training(event: Any) -> None:
        replay(app, "train-exp", "blur", event)

    loaded = connect(app.load, ctx, handlers["load_page"], {"memory": bar.memory}, outputs, **options)
    follow_training(loaded)
    picked = connect(
        bar.choice.input, ctx, handlers["pick_experiment"], {"name": bar.choice}, outputs, **options
    )
    follow_training(picked)
    created = connect(
        bar.create.click,
        ctx,
        handlers["create_experiment"],
        {"new_name": bar.new_name, "speaker": bar.speaker, "language": bar.language},
        outputs,
        **options,
    )
    follow_training(created)
    created_by_enter = connect(
        bar.new_name.submit,
        ctx,
        handlers["create_experiment"],
        {"new_name": bar.new_name, "speaker": bar.speaker, "language": bar.language},
        outputs,
        **options,
    )
    follow_training(created_by_enter)
    details = {"name": bar.choice, "speaker": bar.speaker, "language": bar.language}
    for event in (bar.speaker.blur, bar.language.input):
        connect(event, ctx, handlers["edit_details"], details, outputs, **options)

    def after(event: Any) -> None:
        connect(event.then, ctx, handlers["refresh_lists"], {"name": bar.choice}, outputs, **options)

    return after


# ------------------------------------------------------------------------- hand-off between stages

TARGET_IDS = {
    "slice_pick": "slice-pick",
    "slice_out": "slice-out-name",
    "asr_folder": "asr-folder",
    "asr_language": "asr-language",
    "labels_list": "labels_list_choice",
    "dataset_list": "dataset_list_choice",
    "train_list": "train-list",
    "train_exp": "train-exp",
    "train_pick": "train-exp-pick",
    "inf_gpt": "inf-gpt",
    "inf_sovits": "inf-sovits",
    **{elem_id: elem_id for elem_id in TRAINING_SETTING_IDS},
}


def collect_targets(app: gr.Blocks, tabs: gr.Tabs) -> FlowTargets:
    """The components the bar fills, found by their element ids (a tab that is absent is skipped)."""
    return FlowTargets(tabs, {key: find_by_id(app, elem_id) for key, elem_id in TARGET_IDS.items()})


def workspace_relative(ctx: AppContext, path: str | Path) -> str | None:
    try:
        return _relative(ctx, ctx.inside(path))
    except (UserError, ValueError):
        return None


def separated_vocals(ctx: AppContext, results: list[dict[str, Any]] | None) -> list[str]:
    """The vocals files a separation wrote (workspace-relative)."""
    found = [workspace_relative(ctx, r["vocals"]) for r in results or [] if r.get("vocals")]
    return [f for f in found if f]


def sliced_folder(ctx: AppContext, out_name: str | None, experiment: str | None) -> str | None:
    """Where Slicing wrote for this output name (as `ui.slice_tab.output_dir`), if it holds clips."""
    from ui.slice_tab import output_dir

    try:
        folder = output_dir(ctx, out_name or "")
    except UserError:
        return None
    rel = workspace_relative(ctx, folder)
    return rel if rel and folder_has_audio(ctx, rel) else None


def asr_list_of(ctx: AppContext, folder: str | None) -> str | None:
    """The list ASR writes for input `folder` (as `ui.asr_tab.output_list`), if it exists."""
    from ui.asr_tab import output_list, resolve_input

    try:
        path = output_list(ctx, resolve_input(ctx, folder or ""))
    except UserError:
        return None
    return workspace_relative(ctx, path) if path.is_file() else None


def make_handoffs(targets: FlowTargets) -> dict[str, Callable[..., Any]]:
    """The named handlers that carry one stage's outputs into the next tab (dict-of-updates outputs)."""
    from ui.labels_tab import find_lists

    def open_tab(tab: str) -> dict[Any, Any]:
        return {targets.tabs: gr.Tabs(selected=tab)}

    def choose_list(ctx: AppContext, list_path: str | None, keys: tuple[str, ...]) -> dict[Any, Any]:
        if not list_path:
            return {}
        lists = find_lists(ctx.workspace)
        return {
            targets.get(k): gr.update(choices=lists, value=list_path)
            for k in keys
            if targets.get(k) is not None
        }

    def vocals_to_slicing(ctx: AppContext, results: list[dict[str, Any]] | None) -> dict[Any, Any]:
        """A separation ended: its vocals are Slicing's input."""
        vocals = separated_vocals(ctx, results)
        pick = targets.get("slice_pick")
        if not vocals or pick is None:
            return {}
        return {pick: gr.update(choices=source_choices(ctx), value=vocals)}

    def separation_next(ctx: AppContext, results: list[dict[str, Any]] | None) -> dict[Any, Any]:
        return {**vocals_to_slicing(ctx, results), **open_tab("slice_tab")}

    def clips_to_asr(ctx: AppContext, out_name: str | None, experiment: str | None = None) -> dict[Any, Any]:
        """A slicing ended: its folder is ASR's input."""
        from ui.asr_tab import folder_choices

        folder, box = sliced_folder(ctx, out_name, experiment), targets.get("asr_folder")
        if not folder or box is None:
            return {}
        return {box: gr.update(choices=folder_choices(ctx), value=folder)}

    def slicing_next(ctx: AppContext, out_name: str | None, experiment: str | None = None) -> dict[Any, Any]:
        return {**clips_to_asr(ctx, out_name, experiment), **open_tab("asr_tab")}

    def list_to_editors(ctx: AppContext, folder: str | None) -> dict[Any, Any]:
        """An ASR run ended: its list is chosen in the Label editor, Dataset check and Training."""
        return choose_list(ctx, asr_list_of(ctx, folder), ("labels_list", "dataset_list", "train_list"))

    def asr_next(ctx: AppContext, folder: str | None) -> dict[Any, Any]:
        return {**list_to_editors(ctx, folder), **open_tab("labels_tab")}

    def labels_next(ctx: AppContext, doc: Any, choice: str | None) -> dict[Any, Any]:
        """The edited list goes to Dataset check (and Training)."""
        path = getattr(doc, "path", None)
        list_path = workspace_relative(ctx, path) if path else choice
        return {**choose_list(ctx, list_path, ("dataset_list", "train_list")), **open_tab("dataset_tab")}

    def dataset_next(ctx: AppContext, choice: str | None, typed: str | None) -> dict[Any, Any]:
        """The checked list goes to Training."""
        list_path = (
            workspace_relative(ctx, (typed or "").strip() or (choice or "").strip())
            if (typed or choice)
            else None
        )
        return {**choose_list(ctx, list_path, ("train_list",)), **open_tab("training_tab")}

    def weights_for_cloning(
        ctx: AppContext, name: str | None, gpt: str | None, sovits: str | None
    ) -> dict[Any, Any]:
        """Voice cloning opened: the weights listed fresh, the experiment's own first; its newest chosen
        unless the person chose another fine-tuned file."""
        updates = weight_targets(ctx, targets, name)
        for key, current in (("inf_gpt", gpt), ("inf_sovits", sovits)):
            component = targets.get(key)
            update = updates.get(component)
            if update is None or "value" not in update:
                continue
            fine_tuned_elsewhere = (
                current and "/weights/" in str(current) and not is_experiment_weight(name or "", current)
            )
            if fine_tuned_elsewhere:
                update.pop("value")
        return updates

    handlers = [
        vocals_to_slicing,
        separation_next,
        clips_to_asr,
        slicing_next,
        list_to_editors,
        asr_next,
        labels_next,
        dataset_next,
        weights_for_cloning,
    ]
    return {h.__name__: updates_or_skip(h) for h in handlers}


def wire_flow(
    ctx: AppContext,
    app: gr.Blocks,
    bar: ExperimentBar,
    tabs: gr.Tabs,
    tab_blocks: dict[str, Any],
    views: dict[str, Any],
) -> None:
    """Connect the bar and the hand-offs: each job's outputs chosen in the next tab, each "Next" button
    opening it, every list read fresh on page load, on opening a tab and after each job."""
    from ui.labels_tab import load_document

    targets = collect_targets(app, tabs)
    after = wire(ctx, app, bar, targets)
    handoff = make_handoffs(targets)
    flow_outputs = [c for c in [targets.tabs, *targets.components.values()] if c is not None]
    options = {"show_progress": "hidden"}

    def chain(event: Any, name: str, inputs: dict[str, Any]) -> Any:
        return connect(event, ctx, handoff[name], inputs, flow_outputs, **options)

    sep, sli, asr = views.get("separate_tab"), views.get("slice_tab"), views.get("asr_tab")
    labels, dataset = views.get("labels_tab"), views.get("dataset_tab")
    if sep is not None:
        chain(sep.events["job"].then, "vocals_to_slicing", {"results": sep.results})
        after(sep.events["job"])
        chain(sep.next.click, "separation_next", {"results": sep.results})
    if sli is not None:
        out = ctx.with_inputs({"out_name": sli.out_name})
        chain(sli.events["job"].then, "clips_to_asr", out)
        after(sli.events["job"])
        chain(sli.next.click, "slicing_next", out)
    if asr is not None:
        chain(asr.events["job"].then, "list_to_editors", {"folder": asr.folder})
        after(asr.events["job"])
        opened = chain(asr.next.click, "asr_next", {"folder": asr.folder})
        if labels is not None:  # the list opens in the editor at once
            connect(
                opened.then,
                ctx,
                load_document,
                {"choice": labels.list_choice, "typed": labels.path, "view": labels.view_inputs()},
                [labels.doc, labels.status, *labels.page_outputs()],
                status=labels.status,
            )
    if labels is not None:
        moved = chain(
            labels.next_step.click, "labels_next", {"doc": labels.doc, "choice": labels.list_choice}
        )
        if dataset is not None:  # and is checked there at once
            from ui.dataset_tab import check_list

            connect(
                moved.then,
                ctx,
                check_list,
                {"choice": dataset.list_choice, "typed": dataset.path},
                [dataset.summary, dataset.plot, dataset.problems],
                status=dataset.summary,
            )
    if dataset is not None:
        moved = chain(
            dataset.next.click, "dataset_next", {"choice": dataset.list_choice, "typed": dataset.path}
        )
        replay(app, "train-exp", "blur", moved)
    for module, tab in tab_blocks.items():
        if module == "inference_tab":
            gpt, sovits = targets.get("inf_gpt"), targets.get("inf_sovits")
            if gpt is not None and sovits is not None:
                chain(tab.select, "weights_for_cloning", {"name": bar.choice, "gpt": gpt, "sovits": sovits})
        else:
            connect(
                tab.select,
                ctx,
                make_handlers(bar, targets)["refresh_lists"],
                {"name": bar.choice},
                all_outputs(bar, targets),
                status=bar.info,
                **options,
            )
