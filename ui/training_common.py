"""What every Training module shares, at the bottom of their imports: where an experiment lives
(`Layout`), how its name is checked, one step's subprocess (`StepSpec`) and the translator type.

The Training modules import one way (a module may import any module after it, never one before):
`training_tab` (the wiring) -> `training_page` (the components) -> `training_views` (what is shown)
-> `training_runner` (the job sequence, the sample queue) -> `training_plan` (settings, argv, the
check) / `training_samples` / `training_progress` -> `training_jobs` (the job record) -> this
module. Plain Python here: no gradio, no jobs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import UserError

Translator = Callable[..., str]

# Run folders inside the experiment (the trainers write config.json, metrics.jsonl, checkpoint.pt
# there); formatting writes into the experiment folder itself.
RUN_FOLDERS: dict[str, str] = {"prepare": "", "s2": "s2_train", "s1": "s1_train", "clvp": "clvp_train"}
EXP_NAME = re.compile(r"[\w][\w.\-]{0,63}")

# What a run writes into the experiment folder (see `training_runner.RunSupervisor`): the plan it
# runs, its status (read by every page), the stop request a page leaves, and the samples' index.
RUN_PLAN_FILE = "run_plan.json"
RUN_STATUS_FILE = "run_status.json"
RUN_STOP_FILE = "run_stop_requested"
SAMPLE_INDEX_FILE = "index.json"  # in <experiment>/samples/
# In the weights folder: the weights the last finished run exported, for the Voice cloning tab.
LAST_WEIGHTS_FILE = "last_training.json"


def plain(key: str, **fmt: object) -> str:
    """The identity translator: English keys, formatted."""
    return key.format(**fmt) if fmt else key


class TrainingInputError(UserError, ValueError):
    """A setting the tab cannot start with (bad experiment name, unknown step...)."""


def validate_exp_name(name: str, _: Translator = plain) -> str:
    """The stripped name if it is a safe folder name (letters, digits, _ . -; no leading dot)."""
    name = (name or "").strip()
    if not name:
        raise TrainingInputError(_("Enter an experiment name."))
    if not EXP_NAME.fullmatch(name) or name.endswith("."):
        raise TrainingInputError(
            _(
                "Experiment name {name!r} is not a safe folder name: use letters, digits, _ . - "
                "(at most 64, no spaces, not starting with a dot).",
                name=name,
            )
        )
    return name


@dataclass(frozen=True)
class Layout:
    """Where experiments, exported weights and pretrained models live for one workspace."""

    workspace: Path
    model_dir: Path

    def exp_dir(self, exp: str) -> Path:
        return self.workspace / "experiments" / exp

    def run_dir(self, exp: str, step: str) -> Path:
        sub = RUN_FOLDERS[step]
        return self.exp_dir(exp) / sub if sub else self.exp_dir(exp)

    @property
    def weights_dir(self) -> Path:
        return self.workspace / "weights"

    def sovits_dir(self, version: str) -> Path:
        # The reference's folder names: SoVITS_weights (v1), SoVITS_weights_v2 (v2).
        return self.weights_dir / ("SoVITS_weights" if version == "v1" else f"SoVITS_weights_{version}")

    def gpt_dir(self, version: str) -> Path:
        return self.weights_dir / ("GPT_weights" if version == "v1" else f"GPT_weights_{version}")

    @property
    def clvp_dir(self) -> Path:
        return self.weights_dir / "clvp"

    def samples_dir(self, exp: str) -> Path:
        return self.exp_dir(exp) / "samples"

    def sample_index(self, exp: str) -> Path:
        return self.samples_dir(exp) / SAMPLE_INDEX_FILE

    def status_path(self, exp: str) -> Path:
        return self.exp_dir(exp) / RUN_STATUS_FILE

    def plan_path(self, exp: str) -> Path:
        return self.exp_dir(exp) / RUN_PLAN_FILE

    def stop_path(self, exp: str) -> Path:
        return self.exp_dir(exp) / RUN_STOP_FILE

    @property
    def last_weights_path(self) -> Path:
        return self.weights_dir / LAST_WEIGHTS_FILE


def existing_experiments(layout: Layout) -> list[str]:
    """Names of the experiment folders of the workspace (to continue or follow one)."""
    root = layout.workspace / "experiments"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and EXP_NAME.fullmatch(p.name))


@dataclass(frozen=True)
class StepSpec:
    """One subprocess to run: `python -m module *args` (Job adds --events), with its config file."""

    step: str
    module: str
    args: list[str]
    config: dict[str, Any]
    run_dir: Path
    config_path: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step, "module": self.module, "args": list(self.args), "config": self.config,
            "run_dir": str(self.run_dir), "config_path": str(self.config_path),
        }  # fmt: skip

    def write_config(self) -> Path:
        """Write the config JSON atomically into the run folder (the record of what was asked)."""
        from core.fsutil import atomic_write_text

        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_path, json.dumps(self.config, ensure_ascii=False, indent=1) + "\n")
        return self.config_path

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepSpec:
        return cls(
            str(d["step"]), str(d["module"]), [str(a) for a in d["args"]], dict(d.get("config") or {}),
            Path(d["run_dir"]), Path(d["config_path"]),
        )  # fmt: skip


def read_json(path: Path) -> Any:
    """A JSON file's content, None when it is missing or torn (files here are written atomically, so
    torn means another writer's bug or a full disk: shown as nothing rather than an error)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def last_trained_weights(workspace: Path) -> dict[str, str]:
    """The hook for the Voice cloning tab: {"gpt": path, "sovits": path} (either may be absent) that
    the last finished training run of `workspace` exported, files that still exist only; also
    "exp" and "version" when known. Empty when nothing was trained here."""
    record = read_json(Path(workspace) / "weights" / LAST_WEIGHTS_FILE)
    if not isinstance(record, dict):
        return {}
    out = {k: str(record[k]) for k in ("exp", "version") if isinstance(record.get(k), str)}
    for key in ("gpt", "sovits"):
        value = record.get(key)
        if isinstance(value, str) and Path(value).is_file():
            out[key] = value
    return out
