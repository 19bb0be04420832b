"""File-system helpers shared by every stage: atomic writes, safe paths, never-overwrite outputs.

Every file a stage writes goes through `atomic_write_*` (write a temp file in the same folder,
fsync, then `os.replace`), so a crash mid-write leaves either the old file or the new one, never
a half-written file.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from core.errors import UserError

# In every temp file's name (".checkpoint.tmp-k3x_9q2a.pt"), so leftovers are told from a person's dotfiles.
TEMP_MARKER = "tmp-"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_temp_path(target: Path, suffix: str | None = None) -> Path:
    """A fresh temp file beside `target` with the permissions a normal new file would get.

    mkstemp creates files readable by the owner only; outputs a user opens elsewhere should not be.
    """
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.stem}.{TEMP_MARKER}", suffix=suffix or f"{target.suffix}.tmp", dir=target.parent
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


# ------------------------------------------------------------------------- leftovers of atomic writes

# `make_temp_path` names: "." + the target's stem + ".tmp-" + mkstemp's 8 random characters + the suffix
# (the target's suffix, then ".tmp" for `atomic_open`; ".tmp.wav" in separation), e.g.
# ".checkpoint.tmp-k3x_9q2a.pt", ".a.tmp-k3x_9q2a.list.tmp". Earlier versions wrote no "tmp-": such names
# are recognised only where the suffix says temporary or torch file (".x.k3x_9q2a.pt", ".a.k3x_9q2a.list.tmp"),
# never e.g. a person's ".config.settings.json".
_TEMP_NAME = re.compile(r"\.(?P<stem>.+)\.(?P<marker>tmp-)?[a-z0-9_]{8}(?P<suffix>(?:\.[^.]+){0,2})")
_OLD_TEMP_SUFFIXES = (".tmp", ".pt", ".pth", ".ckpt")

# A temp file whose last write is older than this belongs to a writer that died (a live writer touches it
# at every block it writes); used where the folder's owner is not known (e.g. at app start).
STALE_TEMP_AGE_S = 3600.0

SKIPPED_DIRS = frozenset({".git", ".venv", "node_modules", "__pycache__"})


def _temp_match(name: str) -> re.Match[str] | None:
    m = _TEMP_NAME.fullmatch(name)
    if m is None or m["marker"] or ".tmp" in m["suffix"] or m["suffix"] in _OLD_TEMP_SUFFIXES:
        return m
    return None


def is_atomic_temp(name: str) -> bool:
    """Whether `name` has the form of an atomic writer's temporary file (see `make_temp_path`)."""
    return _temp_match(name) is not None


def temp_target(name: str) -> str | None:
    """The name of the file an atomic writer's temporary `name` was to become, or None if it is not one."""
    m = _temp_match(name)
    if m is None:
        return None
    return m["stem"] + "".join(f".{part}" for part in m["suffix"].split(".") if part and part != "tmp")


def is_hidden_or_temp(path: str | Path) -> bool:
    """Dotfiles and temporaries: never offered as inputs (weights lists, file pickers)."""
    name = Path(path).name
    return name.startswith(".") or name.endswith((".tmp", "~")) or is_atomic_temp(name)


def stale_temporaries(
    folder: str | Path, older_than_s: float = STALE_TEMP_AGE_S, *, recursive: bool = False
) -> list[Path]:
    """Temporaries of interrupted atomic writes in `folder` (and below when `recursive`) whose last
    change is at least `older_than_s` seconds old. Symlinks are never followed or listed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    cutoff = time.time() - older_than_s
    found = []
    for root, dirs, files in os.walk(folder) if recursive else [(str(folder), [], os.listdir(folder))]:
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
        for name in files:
            path = Path(root) / name
            if is_atomic_temp(name) and not path.is_symlink() and path.is_file():
                with contextlib.suppress(OSError):  # removed meanwhile
                    if path.stat().st_mtime <= cutoff:
                        found.append(path)
    return sorted(found)


def remove_stale_temporaries(
    folder: str | Path,
    older_than_s: float = STALE_TEMP_AGE_S,
    *,
    recursive: bool = False,
    only: Callable[[str], bool] | None = None,
) -> list[Path]:
    """Delete `stale_temporaries(...)` (only those whose target name passes `only`, when given); returns
    what was removed. `older_than_s=0` is for the owner of the files at its start (a trainer in its run
    folder, or for its own export names): no other writer can own such a temp file."""
    removed = []
    for path in stale_temporaries(folder, older_than_s, recursive=recursive):
        if only is not None and not only(temp_target(path.name) or ""):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


# ------------------------------------------------------------------------- why a file cannot be read


def file_problem(path: str | Path, what: str = "weights file") -> str | None:
    """Why `path` cannot be a `what` before anything reads it (missing, a folder, empty); None if none."""
    path = Path(path)
    if path.is_dir():
        return f"a folder, not a {what}"
    if not path.exists():
        return "not found"
    try:
        size = path.stat().st_size
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    return "empty file (0 bytes)" if size == 0 else None


_TORCH_ADVICE = re.compile(
    r"weights_only|Check the documentation of torch\.load|Please file an issue|add_safe_globals|"
    r"safe_globals\(|trusted source|arbitrary code execution|Weights only load failed",
    re.IGNORECASE,
)


def load_error_reason(error: BaseException) -> str:
    """A loader's exception as a short reason, without torch's advice to re-run with weights_only=False
    (which would let the file run code). Torch's refusal of a foreign object is named as such."""
    text = str(error)
    if isinstance(error, IsADirectoryError):
        return "a folder, not a weights file"
    if isinstance(error, EOFError) and not text:
        return "empty or cut short (no data where the file should start)"
    if "central directory" in text:
        return "truncated or damaged (its zip directory is missing)"
    sentences = re.split(r"(?<=[.!?])\s+|\n+", text)
    kept = [s.strip() for s in sentences if s.strip() and not _TORCH_ADVICE.search(s)]
    detail = " ".join(kept).removeprefix("WeightsUnpickler error:").strip()
    if "Weights only load failed" in text:
        return "it holds objects other than tensors and plain data, refused (nothing from it ran)" + (
            f": {detail}" if detail else ""
        )
    return detail or type(error).__name__
