"""The text frontend's own cache folder, inside the project (never the home folder or a system path).

Frontends write small derived files there on first use: the compiled Japanese user dictionary and the
NLTK-layout CMUdict corpus that g2pk2's import looks for. The folder is
``<repo>/pretrained_models/.cache/text`` (ignored by git, next to the other local model data).
"""

from __future__ import annotations

from pathlib import Path

from gpt_sovits.text.errors import TextFrontendError

CACHE_DIR = Path(__file__).resolve().parents[2] / "pretrained_models" / ".cache" / "text"


class CacheNotWritableError(TextFrontendError):
    """The project's cache folder cannot be created or written."""


def cache_dir(name: str) -> Path:
    """``CACHE_DIR/name``, created if needed."""
    folder = CACHE_DIR / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CacheNotWritableError(
            f"The text frontend needs a writable cache folder at {folder} ({e.strerror})."
        ) from e
    return folder
