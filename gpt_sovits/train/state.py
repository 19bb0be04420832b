"""Resumable training state: seeding and RNG streams, disk-space checks, the checkpoint payload and timer."""

from __future__ import annotations

import errno
import random
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.fsutil import atomic_write_with, file_problem, load_error_reason
from gpt_sovits.train.cli import jsonable
from gpt_sovits.train.errors import DiskSpaceError, TrainingError

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 1  # bump when the payload layout changes incompatibly
# Extra room asked for on top of a file's estimated size (pickle overhead, metadata, file system slack).
SPACE_MARGIN_BYTES = 16 * 1024 * 1024


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all CUDA devices too)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_state() -> dict[str, Any]:
    """The RNG states of python, numpy and torch as tensors/lists/numbers (weights_only-loadable)."""
    py_version, py_internal, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": int(py_version), "internal": list(py_internal), "gauss_next": py_gauss},
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what ``rng_state()`` captured (CUDA states only when the device count matches)."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["internal"]), py["gauss_next"]))
    n = state["numpy"]
    keys = (
        n["keys"].numpy().astype(np.uint32)
        if torch.is_tensor(n["keys"])
        else np.asarray(n["keys"], np.uint32)
    )
    np.random.set_state((n["name"], keys, int(n["pos"]), int(n["has_gauss"]), float(n["cached_gaussian"])))
    torch.set_rng_state(
        state["torch"].cpu() if torch.is_tensor(state["torch"]) else torch.tensor(state["torch"])
    )
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


# ----------------------------------------------------------------------------------------------- disk space


def free_bytes(path: str | Path) -> int:
    """Free bytes on the file system holding ``path`` (its nearest existing parent). Tests monkeypatch this."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def estimate_bytes(obj: Any) -> int:
    """Serialized size estimate of a (nested) payload: the sum of its tensors' bytes plus a little per item."""
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size() + 64
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes) + 64
    if isinstance(obj, Mapping):
        return sum(estimate_bytes(k) + estimate_bytes(v) for k, v in obj.items()) + 16
    if isinstance(obj, (list, tuple)):
        return sum(estimate_bytes(v) for v in obj) + 16
    if isinstance(obj, str):
        return len(obj.encode("utf-8")) + 16
    return 16


def ensure_free_space(folder: str | Path, need: int, what: str = "checkpoints") -> None:
    """Raise ``DiskSpaceError`` when ``folder``'s file system has fewer than ``need`` free bytes."""
    have = free_bytes(folder)
    if have < need:
        raise DiskSpaceError(
            f"no disk space for {what}: need {format_bytes(need)}, have {format_bytes(have)} in {folder}. "
            "Free some space (or choose another folder) and run again; training resumes from the last checkpoint."
        )


def _write_checked(path: Path, payload: Any, what: str) -> Path:
    """Space check, then atomic torch.save; a full disk during the write becomes DiskSpaceError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ensure_free_space(path.parent, estimate_bytes(payload) + SPACE_MARGIN_BYTES, what)
    try:
        atomic_write_with(path, lambda tmp: torch.save(payload, tmp))
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskSpaceError(
                f"no disk space for {what}: the disk filled up while writing {path} ({e})"
            ) from None
        raise
    except RuntimeError as e:  # torch's zip writer reports a full disk as a RuntimeError
        if "No space left" in str(e) or "write failed" in str(e):
            raise DiskSpaceError(f"no disk space for {what}: writing {path} failed ({e})") from None
        raise
    return path


# ----------------------------------------------------------------------------------------------- checkpoint


@dataclass
class TrainProgress:
    """Where training stands: ``epoch`` is the epoch in progress (0-based; equals the number of finished
    epochs at an epoch boundary), ``step`` counts optimizer steps, ``batch_in_epoch`` the batches of
    ``epoch`` already trained (skip them on resume)."""

    epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0


def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Atomically write a full training state; DiskSpaceError before writing if it cannot fit."""
    return _write_checked(Path(path), dict(payload), "checkpoints")


def _unreadable(path: Path, reason: str) -> str:
    return (
        f"checkpoint {path} cannot be read ({reason}); run with --fresh to start over "
        "(the unreadable file is moved to .trash, not deleted)"
    )


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by ``save_checkpoint`` (weights_only=True: no code can run)."""
    path = Path(path)
    problem = file_problem(path, "checkpoint file")
    if problem == "not found":
        raise TrainingError(f"checkpoint {path} does not exist")
    if problem:
        raise TrainingError(_unreadable(path, problem))
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle: say which file and what to do
        raise TrainingError(_unreadable(path, load_error_reason(e))) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{path} is not a training checkpoint of this tool (format {CHECKPOINT_FORMAT})")
    return state


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, torch.nn.Module) else model


def training_state(
    *,
    model: torch.nn.Module | Mapping[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer] | None,
    progress: TrainProgress,
    scheduler: Any = None,
    scaler: Any = None,
    config: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The payload for ``save_checkpoint``. ``model``/``optimizer``/``scheduler``/``scaler`` may be dicts of
    several (S2 has a generator and a discriminator: ``model={"G": g, "D": d}``); DDP wrappers are unwrapped."""

    def states(obj: Any) -> Any:
        if obj is None:
            return None
        if isinstance(obj, Mapping):
            return {k: states(v) for k, v in obj.items()}
        if isinstance(obj, torch.nn.Module):
            return _unwrap(obj).state_dict()
        return obj.state_dict()

    return {
        "format": CHECKPOINT_FORMAT,
        "model": states(model),
        "optimizer": states(optimizer),
        "scheduler": states(scheduler),
        "scaler": states(scaler),
        "progress": asdict(progress),
        "rng": rng_state(),
        "config": jsonable(config or {}),
        "extra": dict(extra or {}),
        "saved_at": time.time(),
    }


def restore_training_state(
    state: Mapping[str, Any],
    *,
    model: torch.nn.Module | Mapping[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer] | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    restore_rng: bool = True,
) -> TrainProgress:
    """Load every state dict from ``state`` into the given objects and return where training stood."""

    def load(obj: Any, saved: Any, what: str) -> None:
        if obj is None:
            return
        if saved is None:
            raise TrainingError(f"the checkpoint has no {what} state; run with --fresh to start over")
        if isinstance(obj, Mapping):
            for k, v in obj.items():
                load(v, saved.get(k), f"{what}[{k}]")
            return
        if isinstance(obj, torch.nn.Module):
            _unwrap(obj).load_state_dict(saved)
        else:
            obj.load_state_dict(saved)

    try:
        load(model, state.get("model"), "model")
        load(optimizer, state.get("optimizer"), "optimizer")
        load(scheduler, state.get("scheduler"), "scheduler")
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
    except (RuntimeError, KeyError, ValueError, TypeError) as e:
        raise TrainingError(
            "the saved training state does not fit this model (was the run started with another pretrained "
            f"model or version?); run with --fresh to start over (the old state is kept in .trash). ({e})"
        ) from None
    if restore_rng and state.get("rng"):
        set_rng_state(state["rng"])
    return TrainProgress(**state["progress"])


class CheckpointTimer:
    """Decides when a mid-epoch checkpoint is due (every ``minutes``; 0 disables)."""

    def __init__(self, minutes: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = minutes * 60.0
        self.clock = clock
        self.last = clock()

    def due(self) -> bool:
        return self.interval > 0 and self.clock() - self.last >= self.interval

    def reset(self) -> None:
        self.last = self.clock()
