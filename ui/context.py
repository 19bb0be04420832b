"""What every tab needs from the app: the workspace folders, the translator, where models live.

One `AppContext` is built by `webui.py` at start-up and handed to each tab's `build(ctx)`; it is
read-only afterwards (per-user state lives in `gr.State`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.fsutil import resolve_inside
from i18n import I18n

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class AppContext:
    workspace: Path
    i18n: I18n
    model_dir: Path

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

    def inside(self, path: str | Path) -> Path:
        """Resolve a user-typed path against the workspace and refuse anything outside it."""
        return resolve_inside(self.workspace, path)
