"""Shared infrastructure for the trainers (S1, S2, CLVP): run folder, checkpoints, resume, seeding, CLI.

Every trainer (``python -m gpt_sovits.train.s1``, ``gpt_sovits.train.s2``, ``clvp.train``) is built from
the same pieces, so a person sees the same behaviour everywhere:

- **CLI** — ``add_common_args(parser)`` adds ``--exp-dir --exp-name --pretrained-dir --weights-dir
  --epochs --batch-size --save-every --device --seed --fresh --config --events --keep-exports
  --checkpoint-minutes``; ``parse_args(parser, argv)`` reads ``--config FILE`` (JSON written by the caller,
  keys spelled like the flags, with ``-`` or ``_``) as defaults, and flags given on the command line win.
- **Run folder** — ``RunDir(<exp>/s1_train)`` holds ``config.json`` (effective config, atomic),
  ``metrics.jsonl`` (one JSON object per logged step: ``{"step", "epoch", "time", "loss/...": ...}``),
  ``checkpoint.pt`` (full resumable state) and ``log.txt``. ``RunDir.prepare(fresh=...)`` starts a run:
  with ``fresh`` the old state is MOVED into ``<run>/.trash/fresh-<stamp>/`` (recoverable, never deleted);
  otherwise metrics logged after the checkpoint's step are dropped on resume so the curve has no
  duplicate steps.
- **Checkpoint** — ``save_checkpoint(path, payload)`` checks the free disk space first
  (``DiskSpaceError: no disk space for checkpoints: need X, have Y`` is raised BEFORE anything is written),
  then writes atomically (temp file + rename: a kill -9 mid-save leaves the previous checkpoint intact).
  ``load_checkpoint(path)`` uses ``torch.load(weights_only=True)``. Build the payload with
  ``training_state(...)`` and restore it with ``restore_training_state(...)``: model / optimizer /
  scheduler / grad-scaler state dicts, ``TrainProgress`` (epoch, step, batches done in the epoch) and the
  RNG states of python, numpy and torch (stored as tensors and lists, so ``weights_only`` accepts them).
  There is ONE ``checkpoint.pt`` per run: "keep only the latest" for the full state is by construction
  (the reference's ``if_save_latest``).
- **Exported weights** — ``export_weights(path, write)`` writes a small weight file with the same
  disk-space check and atomicity. Following the reference's ``if_save_every_weights``, every export is
  kept by default (they are what users pick in the inference tab); ``keep="latest"`` moves older exports
  of the same experiment (``older_exports=export_name_pattern("<exp>-e{epoch}.ckpt")``) into
  ``<weights-dir>/.trash/``.
- **Data order** — ``length_bucketed_batches(lengths, batch_size, seed, epoch)`` gives a deterministic
  list of batches per epoch (a pure function of seed and epoch), so a resumed run continues with the same
  batches: skip the first ``progress.batch_in_epoch`` of the epoch. ``shard_batches`` gives each
  torch.distributed rank its share (same count on every rank, as DistributedSampler does).
- **Devices** — ``pick_device``/``autocast_for`` from ``gpt_sovits.device``; ``make_grad_scaler`` enables
  loss scaling only for fp16 autocast; ``default_batch_size`` picks a batch size from free CUDA memory or
  available RAM.
- **Distributed** — ``init_distributed(device)`` joins the process group when launched by ``torchrun``
  (``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` set by torchrun); ``DistInfo.is_main`` is true on rank 0 only,
  and only rank 0 writes files or events.
- **Progress** — ``ProgressReporter`` emits ``progress`` events with an ETA (computed from the steps run in
  THIS process, so a resumed run does not look instantly fast) and the ``saved`` / ``result`` events.
- **Stop** — ``StopFlag`` turns SIGTERM/SIGINT (``core.jobs.Job.stop``) into a flag the loop checks at
  step boundaries, so a stopped trainer saves its state and exits cleanly; ``kill -9`` is covered by
  the atomic checkpoint.

A trainer's loop, in outline (see ``gpt_sovits/train/s1.py`` for the real one)::

    args = parse_args(build_parser(), argv)               # --config values, flags win
    dist = init_distributed(args.device)                   # torchrun-aware; dist.device is the device
    run = RunDir(Path(args.exp_dir) / "s1_train", writer=dist.is_main)
    seed_everything(args.seed)
    ... build model, optimizer, scheduler, scaler = make_grad_scaler(dist.device) ...
    net = wrap_ddp(model, dist)
    prog = TrainProgress()
    if (state := run.prepare(fresh=args.fresh)) is not None:  # after restore, RNG streams continue too
        prog = restore_training_state(state, model=model, optimizer=..., scheduler=..., scaler=scaler)
    run.write_config(config_dict)
    reporter = ProgressReporter(EventWriter(args.events), "s1", total_steps, prog.step, enabled=dist.is_main)
    timer = CheckpointTimer(args.checkpoint_minutes)
    with StopFlag() as stop:
        for epoch in range(prog.epoch, args.epochs):
            batches = shard_batches(length_bucketed_batches(lengths, bs, args.seed, epoch), dist)
            for i, batch in enumerate(batches):
                if i < prog.batch_in_epoch: continue      # trained before the restart
                with autocast_for(dist.device): loss = ...
                scaler.scale(loss).backward(); ... optimizer step ...
                prog.step += 1; prog.batch_in_epoch = i + 1
                run.append_metrics({"step": prog.step, "epoch": epoch + 1, "loss/...": ...})
                reporter.step(prog.step, epoch, {"loss": ...})
                if stop(): run.save(training_state(...)); return     # resumable
                if timer.due(): run.save(training_state(...)); timer.reset()
            prog.epoch, prog.batch_in_epoch = epoch + 1, 0
            if export due: export_weights(...) THEN reporter.saved(...)   # export before the checkpoint,
            run.save(training_state(...))                                 # so a kill between them re-exports
    reporter.result(...)

Errors for a person: raise ``TrainingError`` (or a subclass); ``main`` returns ``report_failure(e, events,
run)`` (an ``error`` event, one stderr line, exit code 2).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import errno
import json
import logging
import math
import os
import random
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import UserError
from core.fsutil import atomic_write_text, atomic_write_with, move_to_trash
from core.jobs import EventWriter
from gpt_sovits.device import autocast_dtype, pick_device

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 1  # bump when the payload layout changes incompatibly
# Extra room asked for on top of a file's estimated size (pickle overhead, metadata, file system slack).
SPACE_MARGIN_BYTES = 16 * 1024 * 1024


# ----------------------------------------------------------------------------------------------- errors


class TrainingError(UserError, RuntimeError):
    """A problem a person can act on (bad data, missing file, no space); shown without a stack trace."""


class DiskSpaceError(TrainingError):
    """Not enough free disk space to write a checkpoint or weights file; raised before writing."""


class ConfigFileError(TrainingError):
    """The --config JSON file is missing, unreadable or not an object."""


# ----------------------------------------------------------------------------------------------- CLI


def add_common_args(
    parser: argparse.ArgumentParser,
    *,
    epochs: int = 15,
    save_every: int = 5,
    multi_exp: bool = False,
) -> argparse.ArgumentParser:
    """Add the flags every trainer shares. Required values may come from ``--config`` instead.

    Defaults follow the reference web UI (S1: 15 epochs, save every 5; S2: 8 epochs, save every 4; pass
    ``epochs``/``save_every`` accordingly). ``multi_exp`` makes ``--exp-dir`` take several folders (CLVP).
    """
    g = parser.add_argument_group("common training options")
    g.add_argument(
        "--exp-dir",
        nargs="+" if multi_exp else None,
        help="experiment folder(s) produced by gpt_sovits.data.prepare (required)",
    )
    g.add_argument(
        "--exp-name", help="name used for exported weights (default: the experiment folder's name)"
    )
    g.add_argument("--pretrained-dir", help="folder of pretrained models in the official layout")
    g.add_argument("--weights-dir", help="folder where exported weights go (required)")
    g.add_argument("--epochs", type=int, default=epochs, help=f"total epochs to train (default {epochs})")
    g.add_argument(
        "--batch-size", type=int, default=0, help="items per batch per device; 0 = choose from free memory"
    )
    g.add_argument(
        "--save-every",
        type=int,
        default=save_every,
        help=f"export weights every N epochs (default {save_every})",
    )
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    g.add_argument("--seed", type=int, default=1234, help="random seed (default 1234)")
    g.add_argument(
        "--fresh",
        action="store_true",
        help="start over: move the previous run state to .trash instead of resuming",
    )
    g.add_argument(
        "--config", help="JSON file of option values (keys like the flags); command-line flags win"
    )
    g.add_argument("--events", help="append JSON-lines progress events to this file")
    g.add_argument(
        "--keep-exports",
        choices=("all", "latest"),
        default="all",
        help="keep every exported weights file (default, like the reference) or only the latest",
    )
    g.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=2.0,
        help="save the full resumable state at least this often, mid-epoch too (default 2: a crash loses at "
        "most ~2 minutes of training); it is always saved at each export, on stop and at the end",
    )
    return parser


def _flag_key(key: str) -> str:
    return key.strip().lstrip("-").replace("-", "_")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a ``--config`` JSON object; keys are normalised to argparse destinations (``exp-dir`` -> ``exp_dir``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigFileError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigFileError(f"config file {path} is not readable JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigFileError(f"config file {path} must hold a JSON object of option values")
    return {_flag_key(k): v for k, v in data.items()}


def parse_args(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
    required: Sequence[str] = ("exp_dir", "weights_dir"),
) -> argparse.Namespace:
    """Parse ``argv`` with ``--config`` values as defaults; flags on the command line override the file.

    Unknown keys in the file are logged and ignored (a caller may store notes there). ``required`` names
    destinations that must be set by either; a missing one is a parser error (exit code 2, usage shown).
    ``exp_name`` defaults to the (first) experiment folder's name.
    """
    first, _ = parser.parse_known_args(argv)
    if getattr(first, "config", None):
        try:
            values = load_config_file(first.config)
        except ConfigFileError as e:
            parser.error(str(e))
        known = {a.dest for a in parser._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            logger.warning("ignoring unknown keys in %s: %s", first.config, ", ".join(unknown))
        parser.set_defaults(**{k: v for k, v in values.items() if k in known and k != "config"})
    args = parser.parse_args(argv)
    missing = [name for name in required if getattr(args, name, None) in (None, "", [])]
    if missing:
        parser.error("missing required option(s): " + ", ".join("--" + m.replace("_", "-") for m in missing))
    if hasattr(args, "exp_name") and not args.exp_name and getattr(args, "exp_dir", None):
        exp_dir = args.exp_dir[0] if isinstance(args.exp_dir, list) else args.exp_dir
        args.exp_name = Path(exp_dir).resolve().name
    for name in ("epochs", "save_every"):
        if getattr(args, name, 1) is not None and getattr(args, name, 1) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if getattr(args, "batch_size", 0) is not None and args.batch_size < 0:
        parser.error("--batch-size must be 0 (automatic) or a positive number")
    return args


def jsonable(obj: Any) -> Any:
    """Namespace/dataclass/Path values as plain JSON types (for config.json and events)."""
    if isinstance(obj, argparse.Namespace):
        obj = vars(obj)
    if hasattr(obj, "__dataclass_fields__"):
        obj = asdict(obj)
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


# ----------------------------------------------------------------------------------------------- seeding / RNG


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


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by ``save_checkpoint`` (weights_only=True: no code can run)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise TrainingError(f"checkpoint {path} does not exist") from None
    except Exception as e:  # truncated zip, foreign pickle: say which file and what to do
        raise TrainingError(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {e}); run with --fresh to start over "
            "(the unreadable file is moved to .trash, not deleted)"
        ) from None
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


# ----------------------------------------------------------------------------------------------- run folder


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
        Resuming: metrics after the checkpoint's step are dropped (they will be logged again)."""
        if fresh:
            self.move_state_to_trash()
            return None
        if not self.checkpoint_path.exists():
            return None
        state = load_checkpoint(self.checkpoint_path, map_location=map_location)
        if self.writer:
            self.truncate_metrics(int(state["progress"]["step"]))
        return state

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

    def log(self, message: str) -> None:
        """A timestamped line in log.txt (and the python log)."""
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


def half_size(module: torch.nn.Module) -> int:
    """Bytes of ``module``'s floating parameters/buffers stored in fp16 (the exported weight size)."""
    return sum(
        t.numel() * (2 if t.is_floating_point() else t.element_size()) for t in module.state_dict().values()
    )


# ----------------------------------------------------------------------------------------------- batching


def length_bucketed_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int, bucket_batches: int = 32
) -> list[list[int]]:
    """Deterministic batches of similar lengths for one epoch (a pure function of seed and epoch).

    Items are shuffled, cut into pools of ``bucket_batches * batch_size``, each pool sorted by length
    and split into batches, and the batches shuffled: little padding, different batches each epoch."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    order = torch.randperm(len(lengths), generator=g).tolist()
    pool = max(1, bucket_batches) * batch_size
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    perm = torch.randperm(len(batches), generator=g).tolist()
    return [batches[i] for i in perm]


def shard_batches(batches: list[list[int]], dist: DistInfo) -> list[list[int]]:
    """This rank's batches: every ``world_size``-th, the list cut so every rank gets the same count
    (a rank with one batch fewer would hang the others in all-reduce)."""
    if dist.world_size <= 1:
        return batches
    usable = len(batches) - len(batches) % dist.world_size
    if usable == 0:  # fewer batches than ranks: repeat, as DistributedSampler pads
        batches = (batches * dist.world_size)[: dist.world_size]
        usable = dist.world_size
    return batches[:usable][dist.rank :: dist.world_size]


# ----------------------------------------------------------------------------------------------- memory / batch size


def available_memory(device: torch.device) -> int:
    """Free bytes for training on ``device``: free CUDA memory, else available RAM (/proc/meminfo)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return 4 * 1024**3


def default_batch_size(
    device: torch.device,
    *,
    fixed_bytes: int,
    per_item_bytes: int,
    lo: int = 1,
    hi: int = 32,
    usable_fraction: float = 0.7,
    available: int | None = None,
) -> int:
    """A batch size that fits: (usable free memory - model/optimizer bytes) / bytes per item, within [lo, hi].

    ``fixed_bytes``: parameters + gradients + optimizer state (+ activations not scaling with batch);
    ``per_item_bytes``: activation memory of one item at a typical length (the trainer's estimate)."""
    free = available_memory(device) if available is None else available
    budget = free * usable_fraction - fixed_bytes
    n = int(budget // max(1, per_item_bytes))
    return max(lo, min(hi, n))


# ----------------------------------------------------------------------------------------------- devices / precision


def make_grad_scaler(device: torch.device, enabled: bool = True) -> torch.amp.GradScaler:
    """Loss scaling is needed for fp16 autocast only (bf16 and fp32 do not underflow); disabled elsewhere."""
    use = enabled and device.type == "cuda" and autocast_dtype(device) == torch.float16
    return torch.amp.GradScaler("cuda", enabled=use)


# ----------------------------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device_pref: str = "auto") -> DistInfo:
    """Join torch.distributed when started by torchrun (WORLD_SIZE > 1), else a single-process DistInfo.

    Under torchrun each process uses ``cuda:LOCAL_RANK`` (NCCL), or the CPU with gloo."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return DistInfo(device=pick_device(device_pref))
    import torch.distributed as tdist

    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    base = pick_device(device_pref)
    if base.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = base
        backend = "gloo"
    if not tdist.is_initialized():
        tdist.init_process_group(backend=backend)
    return DistInfo(rank=rank, local_rank=local, world_size=world, device=device)


def wrap_ddp(model: torch.nn.Module, dist: DistInfo, **kwargs: Any) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` when distributed; the model itself otherwise."""
    if not dist.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [dist.device.index] if dist.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, **kwargs)


def all_reduce_mean(value: torch.Tensor, dist: DistInfo) -> torch.Tensor:
    """Average a metric tensor over ranks (for logging); identity when not distributed."""
    if not dist.distributed:
        return value
    import torch.distributed as tdist

    value = value.detach().clone()
    tdist.all_reduce(value)
    return value / dist.world_size


def barrier(dist: DistInfo) -> None:
    if dist.distributed:
        import torch.distributed as tdist

        tdist.barrier()


def shutdown_distributed(dist: DistInfo) -> None:
    if dist.distributed:
        import torch.distributed as tdist

        if tdist.is_initialized():
            tdist.destroy_process_group()


# ----------------------------------------------------------------------------------------------- progress / stop


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class ProgressReporter:
    """Emits ``progress`` (with ETA), ``saved`` and ``result`` events; silent on ranks other than 0.

    ETA = remaining steps x mean seconds per step measured in THIS process (a resumed run starts its
    clock at the resume step). ``progress`` events are throttled to one per ``min_interval`` seconds."""

    def __init__(
        self,
        events: EventWriter,
        model: str,
        total_steps: int,
        start_step: int = 0,
        enabled: bool = True,
        min_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.events = events
        self.model = model
        self.total = max(1, int(total_steps))
        self.start_step = start_step
        self.enabled = enabled
        self.min_interval = min_interval
        self.clock = clock
        self.t0 = clock()
        self._last_emit = -math.inf

    def eta_seconds(self, step: int) -> float | None:
        done_here = step - self.start_step
        if done_here <= 0:
            return None
        per_step = (self.clock() - self.t0) / done_here
        return per_step * max(0, self.total - step)

    def step(
        self, step: int, epoch: int, metrics: Mapping[str, float] | None = None, force: bool = False
    ) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if not force and now - self._last_emit < self.min_interval and step < self.total:
            return
        self._last_emit = now
        parts = [f"epoch {epoch + 1}", f"step {step}/{self.total}"]
        for k, v in (metrics or {}).items():
            parts.append(f"{k} {float(v):.4f}")
        eta = self.eta_seconds(step)
        if eta is not None:
            parts.append(f"ETA {format_duration(eta)}")
        self.events.progress(step, self.total, ", ".join(parts))

    def saved(self, path: Path, epoch: int, step: int) -> None:
        """After each export: the ``saved`` event the Training tab turns into a sample + a weights choice."""
        if self.enabled:
            self.events.emit("saved", model=self.model, path=str(path), epoch=int(epoch), step=int(step))

    def result(self, **data: Any) -> None:
        if self.enabled:
            self.events.emit("result", model=self.model, **jsonable(data))


class StopFlag:
    """Set by SIGTERM/SIGINT (``core.jobs.Job.stop`` sends SIGTERM) or by an extra ``should_stop`` callable.

    Use as a context manager around the training loop; the previous handlers are restored on exit.
    Signal handlers can only be installed from the main thread, so elsewhere (e.g. a test calling the
    trainer from a worker thread) only ``should_stop`` is consulted."""

    def __init__(self, should_stop: Callable[[], bool] | None = None) -> None:
        self.should_stop = should_stop
        self.signalled = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        with contextlib.suppress(ValueError):  # not the main thread
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signalled:  # a second signal: give up at once
            raise KeyboardInterrupt
        self.signalled = True
        logger.info("stop requested (signal %d): saving and exiting at the next step", signum)

    def __call__(self) -> bool:
        return self.signalled or bool(self.should_stop and self.should_stop())


def report_failure(error: BaseException, events: EventWriter, run: RunDir | None = None) -> int:
    """For a trainer's ``main``: an error a person can act on becomes an ``error`` event, one line on
    stderr and a line in log.txt (no stack trace); returns the exit code 2, as the other stage CLIs do."""
    message = str(error)
    if run is not None:
        run.log(f"error: {message}")
    events.emit("error", message=message)
    print(f"error: {message}", file=sys.stderr)
    return 2
