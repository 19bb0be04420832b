"""A trainer's run folder (config, metrics, checkpoint, log) and the exported weight files."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import errno
import fnmatch
import json
import logging
import math
import re
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from core.fsutil import atomic_write_text, move_to_trash, remove_stale_temporaries
from gpt_sovits.train.cli import jsonable
from gpt_sovits.train.errors import DiskSpaceError
from gpt_sovits.train.state import (
    CHECKPOINT_NAME,
    SPACE_MARGIN_BYTES,
    ensure_free_space,
    load_checkpoint,
    save_checkpoint,
)

logger = logging.getLogger(__name__)


class RunDir:
    """A trainer's run folder (``<exp>/s1_train`` etc.). With ``writer=False`` (ranks other than 0) every
    write is skipped, so callers need not guard each call."""

    def __init__(self, path: str | Path, writer: bool = True) -> None:
        self.path = Path(path)
        self.writer = writer
        if writer:
            self.path.mkdir(parents=True, exist_ok=True)

    config_path = property(lambda self: self.path / "config.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    checkpoint_path = property(lambda self: self.path / CHECKPOINT_NAME)
    log_path = property(lambda self: self.path / "log.txt")
    trash_dir = property(lambda self: self.path / ".trash")

    # -- starting a run
    def prepare(self, fresh: bool = False, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
        """Begin a run: returns the checkpoint to resume from, or None to start from scratch.

        ``fresh``: the previous config/metrics/checkpoint/log are moved to ``.trash/fresh-<stamp>/``.
        Resuming: metrics after the checkpoint's step are dropped (they will be logged again). Either way the
        temporaries of saves cut short (a killed run's ``.checkpoint.*.pt``) are removed first."""
        self.remove_leftovers()
        if fresh:
            self.move_state_to_trash()
            return None
        if not self.checkpoint_path.exists():
            return None
        state = load_checkpoint(self.checkpoint_path, map_location=map_location)
        if self.writer:
            self.truncate_metrics(int(state["progress"]["step"]))
        return state

    def remove_leftovers(self) -> list[Path]:
        """Delete the temp files of this folder's interrupted atomic saves. Only the writer does it, at
        the start of its run: it owns the folder, so no live save can be writing them."""
        if not self.writer:
            return []
        removed = remove_stale_temporaries(self.path, older_than_s=0)
        if removed:
            self.log(
                f"removed {len(removed)} leftover temp file(s) of interrupted saves: "
                + ", ".join(p.name for p in removed)
            )
        return removed

    def move_state_to_trash(self) -> Path | None:
        """Move this run's files into a new ``.trash/fresh-<stamp>`` folder; returns it (None if nothing moved)."""
        if not self.writer:
            return None
        names = ("config.json", "metrics.jsonl", CHECKPOINT_NAME, "log.txt")
        present = [self.path / n for n in names if (self.path / n).exists()]
        if not present:
            return None
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        target = self.trash_dir / f"fresh-{stamp}"
        n = 1
        while target.exists():
            target = self.trash_dir / f"fresh-{stamp}-{n}"
            n += 1
        for p in present:
            move_to_trash(p, target)
        self.log(f"--fresh: previous run state moved to {target}")
        return target

    # -- files
    def write_config(self, config: Mapping[str, Any] | argparse.Namespace) -> None:
        if self.writer:
            atomic_write_text(
                self.config_path, json.dumps(jsonable(config), ensure_ascii=False, indent=2) + "\n"
            )

    def read_config(self) -> dict[str, Any]:
        return json.loads(self.config_path.read_text(encoding="utf-8")) if self.config_path.exists() else {}

    def append_metrics(self, record: Mapping[str, Any]) -> None:
        """Append one JSON line ``{"step", "epoch", "time", "loss/...": ...}`` (floats rounded to 6 digits)."""
        if not self.writer:
            return
        rec = {"time": round(time.time(), 3)}
        for k, v in record.items():
            if torch.is_tensor(v):
                v = v.detach().float().item()
            rec[k] = round(v, 6) if isinstance(v, float) and math.isfinite(v) else v
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        out = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a line cut by kill -9
                out.append(json.loads(line))
        return out

    def truncate_metrics(self, last_step: int) -> None:
        """Keep only metrics with step <= ``last_step`` (atomic rewrite)."""
        if not self.writer or not self.metrics_path.exists():
            return
        kept = [r for r in self.read_metrics() if int(r.get("step", 0)) <= last_step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))

    def log(self, message: str, *, echo: bool = True) -> None:
        """A timestamped line in log.txt (and the python log unless ``echo`` is false)."""
        if echo:
            logger.info(message)
        if self.writer:
            stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(f"{stamp} {message}\n")

    def save(self, payload: Mapping[str, Any]) -> Path | None:
        """Write ``checkpoint.pt`` (space-checked, atomic). Only the writer rank writes."""
        if not self.writer:
            return None
        return save_checkpoint(self.checkpoint_path, payload)


# ----------------------------------------------------------------------------------------------- exports


def export_name_pattern(template: str) -> re.Pattern[str]:
    """A regex matching the export names of ONE experiment: ``{epoch}``/``{step}`` in ``template`` match
    digits, the rest literally. ``export_name_pattern("voice-e{epoch}.ckpt")`` matches ``voice-e12.ckpt`` but
    not ``voice-extra-e3.ckpt`` (which the glob ``voice-e*.ckpt`` would also take)."""
    parts = re.split(r"(\{epoch\}|\{step\})", template)
    return re.compile("".join(r"\d+" if p in ("{epoch}", "{step}") else re.escape(p) for p in parts))


def export_weights(
    path: str | Path,
    write: Callable[[Path], Any],
    *,
    estimate: int,
    keep: str = "all",
    older_exports: str | re.Pattern[str] | None = None,
) -> Path:
    """Write an exported weights file through ``write(path)`` (e.g. ``lambda p: save_gpt_weights(m, cfg, p)``;
    the saver itself must write atomically, as gpt_sovits.models.weights' savers do).

    ``estimate``: expected size in bytes (checked against free space BEFORE writing). An existing file at
    ``path`` is moved to ``<folder>/.trash/`` first (restored if the write fails). ``keep="latest"``
    moves the other files of the same folder whose names match ``older_exports`` (a regex from
    ``export_name_pattern``, full match, or a glob) into ``<folder>/.trash/`` after the new file is written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ensure_free_space(path.parent, estimate + SPACE_MARGIN_BYTES, "exported weights")
    # A file of the same name (e.g. from a run started over with --fresh) is moved to .trash, not replaced;
    # it comes back if the new one cannot be written.
    previous = move_to_trash(path, path.parent / ".trash") if path.exists() else None
    _remove_own_export_temporaries(path, older_exports)
    try:
        write(path)
    except BaseException as e:
        if previous is not None and not path.exists():
            shutil.move(str(previous), str(path))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskSpaceError(f"no disk space for exported weights: writing {path} failed ({e})") from None
        raise
    if keep == "latest" and older_exports is not None:
        if isinstance(older_exports, re.Pattern):
            olds = [p for p in path.parent.iterdir() if older_exports.fullmatch(p.name)]
        else:
            olds = list(path.parent.glob(older_exports))
        for old in sorted(olds):
            if old.resolve() != path.resolve() and old.is_file():
                move_to_trash(old, path.parent / ".trash")
    return path


def _remove_own_export_temporaries(path: Path, older_exports: str | re.Pattern[str] | None) -> None:
    """Temp files of this experiment's earlier exports cut short (its own names: ``path``'s, or those
    ``older_exports`` matches), so a killed export leaves nothing behind for long. Others' are left alone."""

    def own(target: str) -> bool:
        if target == path.name:
            return True
        if isinstance(older_exports, re.Pattern):
            return older_exports.fullmatch(target) is not None
        return older_exports is not None and fnmatch.fnmatchcase(target, older_exports)

    remove_stale_temporaries(path.parent, older_than_s=0, only=own)


def half_size(module: torch.nn.Module) -> int:
    """Bytes of ``module``'s floating parameters/buffers stored in fp16 (the exported weight size)."""
    return sum(
        t.numel() * (2 if t.is_floating_point() else t.element_size()) for t in module.state_dict().values()
    )
