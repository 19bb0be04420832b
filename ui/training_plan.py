"""What the Training tab decides before it runs, as plain functions (no gradio, no jobs).

- the settings of a run (`TrainSettings`);
- the check run before anything starts (`check_plan` over a `PreflightInputs` snapshot that
  `gather_preflight` reads from disk; the dataset part reuses `tools.dataset_check`);
- the argv and config file of each step (`build_step`): formatting, S2, S1, CLVP.

Versions: v1, v2, v3, v4, v2Pro, v2ProPlus (the reference's training UI order, with v3 back beside
v4). Which pretrained files a version needs is the registry's table (`gpt_sovits.pretrained.version_models`,
`v3v4_models`): v2Pro/v2ProPlus format with their own generator and the SV model (writing ``7-sv_cn``),
train S2 from their own G/D pair and S1 from ``s1v3.ckpt`` (a v2-phone-set GPT, so S1 is told version
v2). v3/v4 train S2 with LoRA (``gpt_sovits.train.s2v3``: no discriminator, rank 16/32/64/128) from
``s2Gv3.pth`` / ``gsv-v4-pretrained/s2Gv4.pth`` with the reference UI's own defaults (2 epochs, saved
every epoch, rank 32), and S1 from ``s1v3.ckpt`` as v2.

Where an experiment lives (`Layout`) and how its name is checked are in `ui/training_common.py`,
progress and curves in `ui/training_progress.py`, samples and exports in `ui/training_samples.py`.

Messages a person reads go through a translator argument `_` (an `i18n.I18n` in the UI, plain
formatting in tests), so this module stays free of UI state.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpt_sovits.models.s2v3 import V3V4_VERSIONS as V3V4  # flow-matching S2, fine-tuned with LoRA
from gpt_sovits.pretrained import VERSIONS as V1V2_VERSIONS
from gpt_sovits.pretrained import symbol_version, uses_sv, version_models
from gpt_sovits.train.s2v3 import DEFAULT_EPOCHS as DEFAULT_S2_EPOCHS_V3V4
from gpt_sovits.train.s2v3 import DEFAULT_LORA_RANK, LORA_RANKS
from gpt_sovits.train.s2v3 import DEFAULT_SAVE_EVERY as DEFAULT_S2_SAVE_EVERY_V3V4
from tools.dataset_check import DatasetReport
from ui.training_common import (
    EXP_NAME,
    Layout,
    StepSpec,
    TrainingInputError,
    Translator,
    plain,
    validate_exp_name,
)
from ui.training_jobs import live_job

# The versions the tab trains, in the reference training UI's order (v1, v2, v4, v2Pro, v2ProPlus) with v3.
VERSIONS: tuple[str, ...] = (*V1V2_VERSIONS[:2], *V3V4, *V1V2_VERSIONS[2:])
STEPS: tuple[str, ...] = ("prepare", "s2", "s1", "clvp")
PIPELINE: tuple[str, ...] = ("prepare", "s2", "s1")  # the one-click run
MODULES: dict[str, str] = {
    "prepare": "gpt_sovits.data.prepare",
    "s2": "gpt_sovits.train.s2",
    "s1": "gpt_sovits.train.s1",
    "clvp": "clvp.train",
}
S2_LORA_MODULE = "gpt_sovits.train.s2v3"  # the S2 step of v3/v4
# The file the tab writes for `--config`; the trainer writes its effective config to config.json.
REQUEST_FILE = "ui_request.json"
PREPARE_REQUEST_FILE = "prepare_request.json"

# Reference UI defaults (GPT-SoVITS webui.py, the same for v1, v2, v2Pro and v2ProPlus): S2 8 epochs saved
# every 4, S1 15 every 5.
DEFAULT_S2_EPOCHS, DEFAULT_S2_SAVE_EVERY = 8, 4
DEFAULT_S1_EPOCHS, DEFAULT_S1_SAVE_EVERY = 15, 5
DEFAULT_CLVP_EPOCHS = 20
# v3/v4 (the reference's v3v4set): S2 2 epochs saved every epoch, LoRA rank 16/32/64/128, default 32
# (the LoRA trainer's own defaults, imported above).

MIN_USABLE_CLIPS = 5  # below this, fine-tuning only memorises a handful of sentences
MIN_TOTAL_SECONDS = 60.0  # GPT-SoVITS's "one minute of voice" is the smallest set that works well
LOW_DISK_BYTES = 2 * 1024**3  # a resumable S2 checkpoint (G + D + optimisers) is ~1 GB at full size
MIN_DISK_BYTES = 300 * 1024**2


@dataclass(frozen=True)
class TrainSettings:
    """Everything the tab's widgets say about a run (the list path already resolved)."""

    exp_name: str
    version: str = "v2"
    list_path: str = ""
    s2_epochs: int = DEFAULT_S2_EPOCHS
    s2_batch: int = 0  # 0: the trainer picks from free memory
    s2_save_every: int = DEFAULT_S2_SAVE_EVERY
    s1_epochs: int = DEFAULT_S1_EPOCHS
    s1_batch: int = 0
    s1_save_every: int = DEFAULT_S1_SAVE_EVERY
    dpo: bool = False
    clvp_epochs: int = DEFAULT_CLVP_EPOCHS
    clvp_batch: int = 0
    clvp_init: str = ""  # CLVP weights to fine-tune from (empty: a new model)
    lora_rank: int = DEFAULT_LORA_RANK  # v3/v4 S2 only
    fresh: bool = False
    device: str = "auto"


def is_lora_version(version: str) -> bool:
    """v3/v4: S2 is fine-tuned with LoRA by its own trainer."""
    return version in V3V4


def version_defaults(version: str) -> dict[str, int]:
    """The S2 widgets' values when `version` is chosen (the reference web UI's per-version defaults)."""
    if is_lora_version(version):
        return {
            "s2_epochs": DEFAULT_S2_EPOCHS_V3V4,
            "s2_save_every": DEFAULT_S2_SAVE_EVERY_V3V4,
            "lora_rank": DEFAULT_LORA_RANK,
        }
    return {
        "s2_epochs": DEFAULT_S2_EPOCHS,
        "s2_save_every": DEFAULT_S2_SAVE_EVERY,
        "lora_rank": DEFAULT_LORA_RANK,
    }


def step_module(step: str, version: str) -> str:
    """The module `python -m` runs for `step` of `version`."""
    return S2_LORA_MODULE if step == "s2" and is_lora_version(version) else MODULES[step]


def _s1_pretrained(model_dir: Path, version: str) -> Path:
    """The pretrained GPT of a version whose S1 is a v2-phone-set GPT (v2Pro/v2ProPlus/v3/v4: s1v3.ckpt)."""
    from gpt_sovits.pretrained import S1V3_FILE, pretrained_paths

    return model_dir / S1V3_FILE if is_lora_version(version) else pretrained_paths(model_dir, version).s1


def _flags(config: dict[str, Any]) -> list[str]:
    """`{"exp_dir": p, "dpo": True, "fresh": False}` -> ["--exp-dir", p, "--dpo"] (in insertion order)."""
    args: list[str] = []
    for key, value in config.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            if value:
                args.append(flag)
        elif isinstance(value, list | tuple):
            args += [flag, *map(str, value)]
        elif value is not None:
            args += [flag, str(value)]
    return args


def _prepare_config(s: TrainSettings, layout: Layout) -> dict[str, Any]:
    return {
        "list": s.list_path,
        "exp_dir": str(layout.exp_dir(s.exp_name)),
        "pretrained_dir": str(layout.model_dir),
        "version": s.version,
        "device": s.device,
    }


def _trainer_config(step: str, s: TrainSettings, layout: Layout) -> dict[str, Any]:
    """The S2 or S1 trainer's config (the keys of its CLI flags)."""
    epochs, batch, every = (
        (s.s2_epochs, s.s2_batch, s.s2_save_every)
        if step == "s2"
        else (s.s1_epochs, s.s1_batch, s.s1_save_every)
    )
    # The trainers write `<weights-dir>/<name>`: give them the reference's per-version folder.
    weights = layout.sovits_dir(s.version) if step == "s2" else layout.gpt_dir(s.version)
    config: dict[str, Any] = {
        "exp_dir": str(layout.exp_dir(s.exp_name)),
        "exp_name": s.exp_name,
        "pretrained_dir": str(layout.model_dir),
        "weights_dir": str(weights),
        "version": s.version,
        "epochs": int(epochs),
        "batch_size": int(batch),
        "save_every": int(every),
        "device": s.device,
    }
    if step == "s2" and is_lora_version(s.version):
        config["lora_rank"] = int(s.lora_rank)
    if step == "s1":
        config["dpo"] = bool(s.dpo)
        if s.version in VERSIONS and symbol_version(s.version) != s.version:
            # v2Pro/v2ProPlus/v3/v4: S1 is a v2-phone-set GPT fine-tuned from the version's own
            # pretrained GPT (s1v3.ckpt), which the S1 trainer is handed by path.
            config["version"] = symbol_version(s.version)
            config["pretrained_s1"] = str(_s1_pretrained(layout.model_dir, s.version))
    config["fresh"] = bool(s.fresh)
    return config


def _clvp_config(s: TrainSettings, layout: Layout) -> dict[str, Any]:
    config: dict[str, Any] = {
        "exp_dir": [str(layout.exp_dir(s.exp_name))],
        "exp_name": s.exp_name,
        "out": str(layout.run_dir(s.exp_name, "clvp")),
        "weights_dir": str(layout.clvp_dir),
        "epochs": int(s.clvp_epochs),
        "batch_size": int(s.clvp_batch),
        "device": s.device,
    }
    if s.clvp_init:  # fine-tune a general CLVP model instead of training a new one
        config["init"] = s.clvp_init
    config["fresh"] = bool(s.fresh)
    return config


def build_step(step: str, s: TrainSettings, layout: Layout) -> StepSpec:
    """The argv and config of `step` for settings `s`; every value is also a flag (flags win)."""
    if step not in MODULES:
        raise TrainingInputError(f"unknown step {step!r}")
    run_dir = layout.run_dir(s.exp_name, step)
    if step == "prepare":
        config, config_path = _prepare_config(s, layout), run_dir / PREPARE_REQUEST_FILE
    elif step == "clvp":
        config, config_path = _clvp_config(s, layout), run_dir / REQUEST_FILE
    else:
        config, config_path = _trainer_config(step, s, layout), run_dir / REQUEST_FILE
    args = ["--config", str(config_path), *_flags(config)]
    return StepSpec(step, step_module(step, s.version), args, config, run_dir, config_path)


# ---------------------------------------------------------------- the check before starting


@dataclass(frozen=True)
class Problem:
    severity: str  # "error" blocks the start; "warning" and "info" are shown and the run goes on
    message: str

    @property
    def blocking(self) -> bool:
        return self.severity == "error"


@dataclass(frozen=True)
class ModelFile:
    """A pretrained file a step needs: role (s1, s2g, s2d, hubert, bert, sv), path, present, how to get it."""

    role: str
    path: str
    present: bool
    how_to_get: str = ""


@dataclass(frozen=True)
class FormatState:
    """What formatting has written into the experiment folder (counts of files)."""

    name2text_lines: int = 0
    semantic_lines: int = 0
    hubert_files: int = 0
    wav_files: int = 0
    sv_files: int = 0  # 7-sv_cn embeddings (v2Pro/v2ProPlus experiments)

    @property
    def formatted(self) -> bool:
        return min(self.name2text_lines, self.semantic_lines, self.hubert_files, self.wav_files) > 0


@dataclass(frozen=True)
class PreflightInputs:
    """A snapshot of everything `check_plan` judges; `gather_preflight` reads it from disk."""

    steps: tuple[str, ...]
    exp_name: str
    settings: TrainSettings
    list_chosen: bool = False
    dataset: DatasetReport | None = None
    dataset_error: str | None = None
    models: tuple[ModelFile, ...] = ()
    format_state: FormatState = field(default_factory=FormatState)
    resumable: tuple[str, ...] = ()  # trainer steps whose run folder holds a checkpoint to resume
    free_bytes: int | None = None
    running: str | None = None  # a step already running on this experiment (another page or session)


# Pretrained files each step reads (roles of gpt_sovits.pretrained.PretrainedPaths); formatting of a
# v2Pro/v2ProPlus experiment also reads "sv" (see step_models).
STEP_MODELS: dict[str, tuple[str, ...]] = {
    "prepare": ("hubert", "bert", "s2g"),
    "s2": ("s2g", "s2d"),
    "s1": ("s1",),
    "clvp": (),
}


def step_models(step: str, version: str) -> tuple[str, ...]:
    """The pretrained roles `step` reads for `version` (v3/v4 S2 has no discriminator)."""
    roles = STEP_MODELS[step]
    if step == "s2" and is_lora_version(version):
        return ("s2g",)
    return (*roles, "sv") if step == "prepare" and uses_sv(version) else roles


def usable_clips(report: DatasetReport) -> list[str]:
    """Paths of clips training will use: readable, with text, a supported language, 0.6–54 s."""
    bad = {
        p.path
        for p in (*report.empty_text, *report.unsupported_language, *report.too_short, *report.too_long)
    }
    return [path for path in report.durations if path not in bad]


def _examples(problems: Sequence[Any], limit: int = 3) -> str:
    names = [Path(p.path).name or f"line {p.line}" for p in problems[:limit]]
    more = f" (+{len(problems) - limit})" if len(problems) > limit else ""
    return ", ".join(names) + more


def _clip_problems(report: DatasetReport, _: Translator) -> list[Problem]:
    """Lines and clips training cannot use (each blocks), with a few examples."""
    blocking = [
        (report.malformed, _("Malformed lines (not audio|speaker|language|text)")),
        (report.empty_text, _("Clips with an empty text")),
        (report.unsupported_language, _("Clips in an unsupported language (zh ja en ko yue only)")),
        (report.outside_root, _("Audio outside the workspace")),
        (report.missing_files, _("Missing audio files")),
        (report.unreadable, _("Unreadable audio files")),
    ]
    out = [
        Problem("error", f"{label}: {len(problems)} ({_examples(problems)})")
        for problems, label in blocking
        if problems
    ]
    if report.duplicate_basenames:
        names = ", ".join(sorted(report.duplicate_basenames)[:3])
        message = _(
            "Clips sharing a file name (their features would overwrite each other): {names}", names=names
        )
        out.append(Problem("error", message))
    return out


def _size_problems(report: DatasetReport, _: Translator) -> list[Problem]:
    """Clips skipped for their length, too few usable clips (blocks), too little audio (warns)."""
    out = []
    skipped = [*report.too_short, *report.too_long]
    if skipped:
        message = _(
            "{n} clips are shorter than 0.6 s or longer than 54 s and will be skipped.", n=len(skipped)
        )
        out.append(Problem("warning", message))
    usable = usable_clips(report)
    if len(usable) < MIN_USABLE_CLIPS:
        message = _(
            "Only {n} usable clips: at least {min} are needed to fine-tune.",
            n=len(usable),
            min=MIN_USABLE_CLIPS,
        )
        out.append(Problem("error", message))
    seconds = sum(report.durations[p] for p in usable)
    if usable and seconds < MIN_TOTAL_SECONDS:
        message = _("Only {s:.0f} s of usable audio: a minute or more gives a much better voice.", s=seconds)
        out.append(Problem("warning", message))
    return out


def _dataset_problems(inputs: PreflightInputs, _: Translator) -> list[Problem]:
    if not inputs.list_chosen:
        return [Problem("error", _("Choose the .list file to train on."))]
    if inputs.dataset_error:
        return [Problem("error", _("Cannot read the label file: {error}", error=inputs.dataset_error))]
    report = inputs.dataset
    if report is None or report.clip_count == 0:
        return [Problem("error", _("The label file has no clips."))]
    out = _clip_problems(report, _) + _size_problems(report, _)
    if any(problem.blocking for problem in out):
        out.append(Problem("error", _("Fix the label file in the Label editor, then check again.")))
    return out


def _format_problems(inputs: PreflightInputs, _: Translator) -> list[Problem]:
    """Training alone needs formatted features; formatting earlier in the same run provides them."""
    if "prepare" in inputs.steps:
        return []
    fs = inputs.format_state
    needs = {
        "s2": (fs.name2text_lines, fs.hubert_files, fs.wav_files),
        "s1": (fs.name2text_lines, fs.semantic_lines),
        "clvp": (fs.name2text_lines, fs.semantic_lines),
    }
    if uses_sv(inputs.settings.version):  # the v2Pro/v2ProPlus S2 trainer reads 7-sv_cn
        needs["s2"] = (*needs["s2"], fs.sv_files)
    if any(step in needs and min(needs[step]) == 0 for step in inputs.steps):
        return [
            Problem(
                "error",
                _(
                    "Experiment {exp} is not formatted yet (features missing): run Format first.",
                    exp=inputs.exp_name,
                ),
            )
        ]
    return []


def _model_problems(inputs: PreflightInputs, _: Translator) -> list[Problem]:
    roles = {role for step in inputs.steps for role in step_models(step, inputs.settings.version)}
    out = []
    for m in inputs.models:
        if m.role in roles and not m.present:
            # The registry's line names the file, where it goes and the download command.
            text = m.how_to_get or _("Pretrained model missing: {path}.", path=m.path)
            out.append(Problem("error", text))
    return out


def _settings_problems(inputs: PreflightInputs, _: Translator) -> list[Problem]:
    s = inputs.settings
    out = []
    if s.version not in VERSIONS:
        out.append(
            Problem(
                "error",
                _(
                    "Unsupported version {v}: choose one of {choices}.",
                    v=s.version,
                    choices=", ".join(VERSIONS),
                ),
            )
        )
    checks = {
        "s2": ((s.s2_epochs, s.s2_save_every), s.s2_batch),
        "s1": ((s.s1_epochs, s.s1_save_every), s.s1_batch),
        "clvp": ((s.clvp_epochs, 1), s.clvp_batch),
    }
    for step in inputs.steps:
        if step not in checks:
            continue
        (epochs, every), batch = checks[step]
        if int(epochs) < 1 or int(every) < 1:
            out.append(Problem("error", _("Epochs and save frequency must be at least 1.")))
            break
        if int(batch) < 0:
            out.append(Problem("error", _("Batch size must be 0 (automatic) or more.")))
            break
    if "s2" in inputs.steps and is_lora_version(s.version) and int(s.lora_rank) not in LORA_RANKS:
        choices = ", ".join(map(str, LORA_RANKS))
        out.append(
            Problem(
                "error",
                _(
                    "LoRA rank {rank} is not offered: choose one of {choices}.",
                    rank=s.lora_rank,
                    choices=choices,
                ),
            )
        )
    return out


def _resume_notes(inputs: PreflightInputs, _: Translator) -> list[Problem]:
    """Say which trainers continue a previous run, since the same button either resumes or starts."""
    labels = {"s2": "SoVITS (S2)", "s1": "GPT (S1)", "clvp": "CLVP"}
    steps = [s for s in inputs.steps if s in inputs.resumable]
    if not steps:
        return []
    names = ", ".join(labels[s] for s in steps)
    if inputs.settings.fresh:
        return [
            Problem(
                "info", _("{names}: the previous run is moved aside and training starts over.", names=names)
            )
        ]
    return [
        Problem(
            "info",
            _("{names}: continues the previous run (tick Start over to begin again).", names=names),
        )
    ]


def _disk_problems(inputs: PreflightInputs, _: Translator) -> list[Problem]:
    free = inputs.free_bytes
    if free is None or not any(step != "prepare" for step in inputs.steps):
        return []
    gib = free / 1024**3
    if free < MIN_DISK_BYTES:
        return [
            Problem(
                "error",
                _("Only {gib:.1f} GiB free on the workspace disk: checkpoints will not fit.", gib=gib),
            )
        ]
    if free < LOW_DISK_BYTES:
        return [Problem("warning", _("Only {gib:.1f} GiB free on the workspace disk.", gib=gib))]
    return []


def dataset_summary(inputs: PreflightInputs, _: Translator = plain) -> str:
    """One line about the dataset that would be formatted ("" when no dataset was read)."""
    report = inputs.dataset
    if report is None:
        return ""
    usable = usable_clips(report)
    seconds = sum(report.durations[p] for p in usable)
    return _(
        "{usable} of {total} clips usable, {minutes:.1f} min of audio.",
        usable=len(usable),
        total=report.clip_count,
        minutes=seconds / 60,
    )


def check_plan(inputs: PreflightInputs, _: Translator = plain) -> list[Problem]:
    """Every problem found before starting `inputs.steps`, errors first (each error blocks)."""
    out: list[Problem] = []
    try:
        validate_exp_name(inputs.exp_name, _)
    except TrainingInputError as e:
        out.append(Problem("error", str(e)))
    if inputs.running:
        out.append(
            Problem(
                "error",
                _(
                    "Experiment {exp} is already running {what}: wait for it or stop it first.",
                    exp=inputs.exp_name,
                    what=inputs.running,
                ),
            )
        )
    out += _settings_problems(inputs, _)
    if "prepare" in inputs.steps:
        out += _dataset_problems(inputs, _)
    out += _format_problems(inputs, _)
    out += _model_problems(inputs, _)
    out += _disk_problems(inputs, _)
    out += _resume_notes(inputs, _)
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(out, key=lambda p: order.get(p.severity, 1))


def count_lines(path: Path, skip_header: bool = False) -> int:
    if not path.is_file():
        return 0
    with open(path, encoding="utf-8", errors="replace") as f:
        n = sum(1 for line in f if line.strip())
    return max(0, n - 1) if skip_header else n


def count_files(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if p.is_file()) if folder.is_dir() else 0


def format_state(exp_dir: Path) -> FormatState:
    """Counts of the formatted files in the reference layout (see gpt_sovits.data.experiment)."""
    return FormatState(
        name2text_lines=count_lines(exp_dir / "2-name2text.txt"),
        semantic_lines=count_lines(exp_dir / "6-name2semantic.tsv", skip_header=True),
        hubert_files=count_files(exp_dir / "4-cnhubert"),
        wav_files=count_files(exp_dir / "5-wav32k"),
        sv_files=count_files(exp_dir / "7-sv_cn"),
    )


def _version_paths(model_dir: Path, version: str) -> dict[str, Path]:
    """Role -> path of the pretrained files a training run of `version` reads."""
    from gpt_sovits.pretrained import find_spec, pretrained_paths, v3v4_models

    if is_lora_version(version):  # s1 (s1v3.ckpt), s2g, hubert, bert; the vocoder is synthesis's
        names = {role: name for role, name in v3v4_models(version).items() if role != "vocoder"}
        return {role: Path(model_dir) / find_spec(name).path for role, name in names.items()}
    paths = pretrained_paths(model_dir, version)
    # s1, s2g, s2d, hubert, bert (+ sv for v2Pro/v2ProPlus)
    return {role: Path(getattr(paths, role)) for role in version_models(version)}


def pretrained_files(model_dir: Path, version: str) -> tuple[ModelFile, ...]:
    """The pretrained files of `version` with their presence and how to get the missing ones."""
    from gpt_sovits.pretrained import model_status

    paths = _version_paths(model_dir, version)
    statuses = {}
    try:  # the registry checks folders the way the loaders do (config + weights present)
        statuses = {str(Path(st.path)): st for st in model_status(model_dir)}
    except Exception:  # a broken registry must not hide which file is missing
        statuses = {}
    out = []
    for role, path in paths.items():
        st = statuses.get(str(path))
        present = st.present if st is not None else path.exists()
        out.append(ModelFile(role, str(path), present, "" if present or st is None else st.how_to_get))
    return tuple(out)


def _read_dataset(
    layout: Layout, list_path: str, check_dataset: Callable[[Path], DatasetReport] | None
) -> tuple[DatasetReport | None, str | None]:
    """(the dataset report, None), or (None, why the list cannot be read)."""
    from tools.dataset_check import DatasetCheckError
    from tools.dataset_check import check_dataset as default_check

    run_check = check_dataset or (lambda p: default_check(p, boundary=layout.workspace))
    try:
        return run_check(Path(list_path)), None
    except (DatasetCheckError, ValueError, OSError) as e:  # said by the check as a blocking problem
        return None, str(e)


def _free_bytes(workspace: Path) -> int | None:
    try:
        return shutil.disk_usage(workspace).free
    except OSError:  # no figure for this file system: the disk check says nothing
        return None


def _running_step(exp_dir: Path) -> str | None:
    """ "s2 (pid 123)" when a step already runs on the experiment (started by any page)."""
    live = live_job(exp_dir)
    return f"{live[0].step} (pid {live[1].process.pid})" if live else None


def _resumable(layout: Layout, exp: str, steps: tuple[str, ...]) -> tuple[str, ...]:
    """The trainer steps whose run folder holds a checkpoint to resume."""
    return tuple(
        step
        for step in steps
        if step != "prepare" and (layout.run_dir(exp, step) / "checkpoint.pt").is_file()
    )


def gather_preflight(
    layout: Layout,
    settings: TrainSettings,
    steps: Iterable[str],
    check_dataset: Callable[[Path], DatasetReport] | None = None,
) -> PreflightInputs:
    """Read from disk what `check_plan` needs (the dataset is read only when formatting runs)."""
    steps = tuple(steps)
    list_chosen = bool(settings.list_path)
    report, error = None, None
    if "prepare" in steps and list_chosen:
        report, error = _read_dataset(layout, settings.list_path, check_dataset)
    exp_dir = layout.exp_dir(settings.exp_name) if EXP_NAME.fullmatch(settings.exp_name or "") else None
    try:
        models = pretrained_files(layout.model_dir, settings.version)
    except ValueError as e:  # unknown version: reported by the settings check
        models = (ModelFile("s1", str(e), True),)
    return PreflightInputs(
        steps=steps,
        exp_name=settings.exp_name,
        settings=settings,
        list_chosen=list_chosen,
        dataset=report,
        dataset_error=error,
        models=models,
        format_state=format_state(exp_dir) if exp_dir else FormatState(),
        resumable=_resumable(layout, settings.exp_name, steps) if exp_dir else (),
        free_bytes=_free_bytes(layout.workspace),
        running=_running_step(exp_dir) if exp_dir else None,
    )
