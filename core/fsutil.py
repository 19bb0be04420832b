"""File-system helpers shared by every stage: atomic writes, safe paths, never-overwrite outputs.

Every file a stage writes goes through `atomic_write_*` (write a temp file in the same folder,
fsync, then `os.replace`), so a crash mid-write leaves either the old file or the new one, never
a half-written file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from core.errors import UserError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_temp_path(target: Path, suffix: str | None = None) -> Path:
    """A fresh temp file beside `target` with the permissions a normal new file would get.

    mkstemp creates files readable by the owner only; outputs a user opens elsewhere should not be.
    """
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=suffix or f"{target.suffix}.tmp", dir=target.parent
    )
    os.close(fd)
    os.chmod(tmp_name, 0o666 & ~_current_umask())
    return Path(tmp_name)


class PathOutsideRootError(UserError, ValueError):
    """A path escapes the folder it must stay inside (e.g. a dataset root or the workspace)."""


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temp file beside `path`; on success it replaces `path` atomically.

    On an exception the temp file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    binary = "b" in mode
    tmp_name = str(make_temp_path(path))
    try:
        with open(tmp_name, mode, encoding=None if binary else encoding, newline=None if binary else "") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_with(path: str | Path, write: Callable[[Path], None]) -> None:
    """Atomic write for libraries that want a file name (soundfile, torch.save).

    `write(tmp_path)` writes the whole file; it then replaces `path` in one rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_name = str(make_temp_path(path, suffix=path.suffix))
    try:
        write(Path(tmp_name))
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def resolve_inside(root: str | Path, path: str | Path) -> Path:
    """Resolve `path` (relative to `root` when not absolute) and refuse it if it leaves `root`."""
    root = Path(root).resolve()
    candidate = Path(path)
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if resolved != root and root not in resolved.parents:
        raise PathOutsideRootError(f"{path} is outside {root}; only files inside that folder can be used")
    return resolved


def unique_path(path: str | Path) -> Path:
    """`path` if free, else `name (1).ext`, `name (2).ext`, …: outputs never replace existing files."""
    path = Path(path)
    if not path.exists():
        return path
    for n in range(1, 100_000):
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
        if not candidate.exists():
            return candidate
    raise FileExistsError(f"no free file name next to {path}")


def move_to_trash(path: str | Path, trash_dir: str | Path) -> Path:
    """Move a file into `trash_dir` (never delete it) and return where it went."""
    path = Path(path)
    trash_dir = Path(trash_dir)
    trash_dir.mkdir(parents=True, exist_ok=True)
    target = unique_path(trash_dir / path.name)
    shutil.move(str(path), str(target))
    return target


def backup_copy(path: str | Path, history_dir: str | Path, keep: int = 20) -> Path | None:
    """Copy `path` into `history_dir` with a timestamp before it is replaced; keep the newest `keep`."""
    path = Path(path)
    if not path.exists():
        return None
    history_dir = Path(history_dir)
    history_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = unique_path(history_dir / f"{path.name}.{stamp}.bak")
    shutil.copy2(path, target)
    backups = sorted(history_dir.glob(f"{path.name}.*.bak"), key=lambda p: p.stat().st_mtime)
    for old in backups[:-keep]:
        old.unlink(missing_ok=True)
    return target
