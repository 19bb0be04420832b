"""What every tab needs from the app: the workspace folders, the translator, where models live.

One `AppContext` is built by `webui.py` at start-up and handed to each tab's `build(ctx)` and, bound
by the wiring, to every handler; it is read-only afterwards (per-user state lives in `gr.State`).
The errors a tab raises about what the person typed or chose live here too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import UserError, os_error_message
from core.fsutil import resolve_inside
from i18n import I18n

REPO_ROOT = Path(__file__).resolve().parent.parent


class InputError(UserError, ValueError):
    """A tab's input is missing or wrong (nothing chosen, not a folder, no audio in it...)."""


class InputNotFoundError(UserError, FileNotFoundError):
    """A file or folder the person typed does not exist."""


class WorkspaceFileError(UserError, OSError):
    """Reading or writing the person's files failed (no permission, disk full, file gone)."""


@contextmanager
def person_files() -> Iterator[None]:
    """Show an OSError met while copying or editing the person's own files as their message.

    Such a failure is theirs to fix (permissions, free space, a file moved away meanwhile), so the
    toast keeps the system's message instead of calling it an internal error.
    """
    try:
        yield
    except UserError:
        raise
    except OSError as e:
        raise WorkspaceFileError(os_error_message(e)) from e  # no errno, the file by name


@dataclass(frozen=True)
class AppContext:
    workspace: Path
    i18n: I18n
    model_dir: Path
    max_text: int | None = None  # webui's --max-text: longest text a synthesis takes (None: its default)
    precision: str = (
        "auto"  # webui's --precision: how Voice cloning loads its models (gpt_sovits.models.fastpath)
    )
    # The experiment bar's choice (a component, ui.experiment_bar) that the stage handlers take as their
    # `experiment` input; None when a tab is built alone (tests), then stages use the plain folders.
    experiment: Any = None

    @classmethod
    def create(
        cls, workspace: str | Path, language: str | None = None, model_dir: str | Path | None = None
    ) -> AppContext:
        ws = Path(workspace).expanduser().resolve()
        ctx = cls(
            workspace=ws,
            i18n=I18n(language),
            model_dir=Path(model_dir or REPO_ROOT / "pretrained_models").resolve(),
        )
        for sub in ("uploads", "separated", "sliced", "asr", "jobs", "trash"):
            (ws / sub).mkdir(parents=True, exist_ok=True)
        return ctx

    def folder(self, name: str) -> Path:
        """A standard workspace sub-folder: uploads, separated, sliced, asr, jobs, trash."""
        return self.workspace / name

    def stage_folder(self, name: str, experiment: str | None) -> Path:
        """`folder(name)/<experiment>` for a chosen experiment (see ui.experiment_bar), else `folder(name)`.

        An experiment name that is not a safe folder name is refused (InputError)."""
        if not experiment:
            return self.folder(name)
        if (
            "/" in experiment
            or "\\" in experiment
            or experiment.startswith(".")
            or experiment != experiment.strip()
        ):
            raise InputError(self.i18n("Not a usable experiment name: {name}", name=experiment))
        return self.folder(name) / experiment

    def with_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """`inputs` plus the experiment bar's choice as `experiment`, when the app has the bar."""
        return inputs if self.experiment is None else {**inputs, "experiment": self.experiment}

    def inside(self, path: str | Path) -> Path:
        """Resolve a user-typed path against the workspace and refuse anything outside it."""
        return resolve_inside(self.workspace, path)

    def existing(self, path: str | Path) -> Path:
        """`inside(path)`, which must also exist (else `InputNotFoundError` naming it)."""
        resolved = self.inside(path)
        if not resolved.exists():
            raise InputNotFoundError(self.i18n("Not found: {path}", path=str(path)))  # as typed, not resolved
        return resolved
