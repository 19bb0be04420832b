"""What every Training module shares, at the bottom of their imports: where an experiment lives
(`Layout`), how its name is checked, one step's subprocess (`StepSpec`) and the translator type.

The Training modules import one way (a module may import any module after it, never one before):
`training_tab` (the wiring) -> `training_page` (the components) -> `training_views` (what is shown)
-> `training_runner` (the job sequence, the sample queue) -> `training_plan` (settings, argv, the
check) / `training_samples` / `training_progress` -> `training_jobs` (the job record) -> this
module. Plain Python here: no gradio, no jobs.
"""

from __future__ import annotations

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
