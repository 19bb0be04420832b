"""The epoch loop and run scaffolding the S2 trainers share (v1/v2/v2Pro in ``s2``, v3/v4 LoRA in ``s2v3``).

A trainer keeps its recipe (models, optimisers, the step, exports) and hands this module the parts that
are the same for every S2 run: the length-bucketed loader, the resumable epoch loop
with its metrics, checkpoints and exports, and the ending of a stopped or step-limited run.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import torch
from torch import nn

from core.jobs import EventWriter
from gpt_sovits.data.s2_dataset import BucketBatchSampler
from gpt_sovits.train.cli import RunConfig, config_from_args, parse_args
from gpt_sovits.train.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    init_distributed,
    shutdown_distributed,
)
from gpt_sovits.train.progress import ProgressReporter, run_trainer
from gpt_sovits.train.run_dir import RunDir
from gpt_sovits.train.state import CheckpointTimer, TrainProgress

ResultT = TypeVar("ResultT")
ConfigT = TypeVar("ConfigT", bound="LoopConfig")
RunResultT = TypeVar("RunResultT", bound="TrainResult")


# ----------------------------------------------------------------------------------------- config


@dataclass
class LoopConfig(RunConfig):
    """The common options, then those both S2 trainers add (``add_loop_args``'s flags)."""

    lr: float = 1e-4
    no_amp: bool = False  # fp32 on CUDA too
    workers: int = -1  # -1: 4 on CUDA, 0 on CPU
    log_every: int = 1
    max_steps: int = 0  # 0: no limit


@dataclass
class AdamWRecipe:
    """The optimiser part of the reference's ``train`` section (configs/s2.json), first in every S2 recipe."""

    learning_rate: float = 1e-4
    betas: tuple[float, float] = (0.8, 0.99)
    eps: float = 1e-9
    weight_decay: float = 0.01  # torch AdamW's default; the reference does not change it
    lr_decay: float = 0.999875

    def adamw_kwargs(self) -> dict[str, Any]:
        """AdamW's keyword arguments besides the learning rate."""
        return {"betas": tuple(self.betas), "eps": self.eps, "weight_decay": self.weight_decay}

    def to_train_hparams(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d


def add_loop_args(g: argparse._ArgumentGroup) -> None:
    """The optimiser, loader and loop flags both S2 trainers take, last in their option group."""
    g.add_argument(
        "--lr", type=float, default=LoopConfig.lr, help=f"learning rate (default {LoopConfig.lr:g})"
    )
    g.add_argument("--no-amp", action="store_true", help="train in fp32 on CUDA too")
    g.add_argument(
        "--workers",
        type=int,
        default=LoopConfig.workers,
        help="data loader workers (default: 4 on CUDA, 0 on CPU)",
    )
    g.add_argument(
        "--log-every",
        type=int,
        default=LoopConfig.log_every,
        help=f"write metrics every N steps (default {LoopConfig.log_every})",
    )
    g.add_argument(
        "--max-steps",
        type=int,
        default=LoopConfig.max_steps,
        help="stop after this many steps in all (counting earlier runs), save and export; 0 = no limit",
    )


def missing_pretrained_hint(model_name: str, model_dir: Path | None) -> str:
    """`` <how to download it>`` for a missing pretrained file of the registry, or "" when unknown."""
    hint = ""
    if model_dir is not None:
        with contextlib.suppress(Exception):
            from gpt_sovits.pretrained import missing_message

            hint = " " + missing_message(model_name, model_dir)
    return hint


# ----------------------------------------------------------------------------------------- pieces


def autocast_context(
    device: torch.device, amp_dtype: torch.dtype | None
) -> contextlib.AbstractContextManager:
    """Autocast to ``amp_dtype`` on ``device``'s type, or nothing (fp32) when it is None."""
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


def forward_in_fp32(net: nn.Module, names: Iterable[str], device_type: str) -> None:
    """Run the named submodules with autocast off, as the reference's ``autocast(enabled=False)`` around
    them; only their ``forward`` is wrapped."""
    for name in names:
        module = net.get_submodule(name)
        module.forward = torch.autocast(device_type=device_type, enabled=False)(module.forward)


def grad_norm(params: Iterable[nn.Parameter]) -> float:
    """L2 norm of all gradients (what the reference's clip_grad_value_(params, None) returns)."""
    norms = [p.grad.detach().float().norm(2) for p in params if p.grad is not None]
    return float(torch.stack(norms).norm(2)) if norms else 0.0


def exponential_lr(opt: torch.optim.Optimizer, gamma: float) -> torch.optim.lr_scheduler.ExponentialLR:
    """Per-epoch exponential decay, already stepped once: the reference's first epoch trains at lr x gamma."""
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma)
    with warnings.catch_warnings():  # "scheduler stepped before optimizer": intended here
        warnings.simplefilter("ignore", UserWarning)
        sched.step()
    return sched


def make_loader(
    cfg: LoopConfig,
    dataset: Any,
    batch_size: int,
    dist: DistInfo,
    collate_fn: Callable[[list[Any]], Any],
    boundaries: Sequence[int] | None = None,
) -> tuple[torch.utils.data.DataLoader, BucketBatchSampler]:
    """The length-bucketed loader of this rank's batches (and its sampler, which sets each epoch);
    ``boundaries`` None: the sampler's own (the v1/v2 reference's)."""
    device = dist.device
    bucket_kw = {} if boundaries is None else {"boundaries": boundaries}
    sampler = BucketBatchSampler(
        dataset.lengths, batch_size, **bucket_kw, num_replicas=dist.world_size, rank=dist.rank, seed=cfg.seed
    )
    workers = (
        cfg.workers if cfg.workers >= 0 else (min(4, os.cpu_count() or 1) if device.type == "cuda" else 0)
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_fn,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        # Its own generator: starting an epoch's iterator must not draw from the global RNG, or a
        # resumed run (global RNG restored from the checkpoint) would diverge from an uninterrupted one.
        generator=torch.Generator().manual_seed(cfg.seed + dist.rank),
    )
    return loader, sampler


def resumed_batch_size(state: Mapping[str, Any] | None) -> int:
    """The batch size a resumed run was started with (0: none): the epoch's batches must be the same."""
    return int((state or {}).get("config", {}).get("batch_size") or 0)


def run_distributed(
    cfg: LoopConfig,
    events: EventWriter,
    should_stop: Callable[[], bool],
    body: Callable[[Any, EventWriter, Callable[[], bool], DistInfo], ResultT],
) -> ResultT:
    """``body(cfg, events, should_stop, dist)`` inside this process's distributed setup, always torn down."""
    dist = init_distributed(cfg.device)
    try:
        return body(cfg, events, should_stop, dist)
    finally:
        shutdown_distributed(dist)


# ----------------------------------------------------------------------------------------- the loop


@dataclass
class EpochRun(ABC, Generic[ConfigT]):
    """One run in progress: what the parts of the loop share. A trainer's run adds its models and gives
    the recipe's parts (the abstract methods): one training step, the schedulers' epoch step, the learning
    rate, the checkpoint and the export."""

    # (progress event's name, metrics key) of the loss shown while training
    PROGRESS_LOSS: ClassVar[tuple[str, str]]

    cfg: ConfigT
    dist: DistInfo
    run: RunDir
    g_model: nn.Module  # the generator, DDP-wrapped when distributed
    prog: TrainProgress
    config: dict[str, Any]  # config.json, also kept in every checkpoint
    reporter: ProgressReporter
    timer: CheckpointTimer
    steps_per_epoch: int
    exports: list[str] = field(default_factory=list, kw_only=True)

    @abstractmethod
    def train_batch(self, batch: Any) -> dict[str, float]:
        """One training step on ``batch`` (already on the device); returns the losses to log."""

    @abstractmethod
    def step_schedulers(self) -> None:
        """Step the learning-rate schedulers once (at the end of an epoch)."""

    @abstractmethod
    def current_lr(self) -> float:
        """The generator's learning rate now (logged with the losses)."""

    @abstractmethod
    def save_state(self) -> None:
        """Write checkpoint.pt and reset the checkpoint timer."""

    @abstractmethod
    def write_export(self, epoch_label: int) -> Path:
        """Write this run's inference weights now; returns their path."""

    @property
    def max_steps(self) -> int:
        return max(0, int(self.cfg.max_steps or 0))

    def export(self, epoch_label: int) -> None:
        """Export (rank 0), then the ``saved`` event."""
        if not self.dist.is_main:
            return
        path = self.write_export(epoch_label)
        self.exports.append(str(path))
        self.run.log(f"exported {path}")
        self.reporter.saved(path, epoch_label, self.prog.step)

    def log_step(self, epoch: int, losses: dict[str, float]) -> None:
        """metrics.jsonl every --log-every steps and at the epoch's end (averaged over ranks), progress."""
        prog = self.prog
        if prog.step % max(1, self.cfg.log_every) == 0 or prog.batch_in_epoch == self.steps_per_epoch:
            if self.dist.distributed:
                device = self.dist.device
                losses = {
                    k: float(all_reduce_mean(torch.tensor(v, device=device), self.dist))
                    for k, v in losses.items()
                }
            lr = self.current_lr()
            self.run.append_metrics({"step": prog.step, "epoch": epoch + 1, **losses, "lr": lr})
            if not all(math.isfinite(v) for v in losses.values()):
                self.run.log(f"warning: non-finite loss at step {prog.step}: {losses}")
        name, key = self.PROGRESS_LOSS
        self.reporter.step(prog.step, epoch, {name: losses[key]})


def run_epochs(
    s: EpochRun,
    loader: torch.utils.data.DataLoader,
    sampler: BucketBatchSampler,
    should_stop: Callable[[], bool],
) -> str | None:
    """Train the remaining epochs; returns why it ended early: "stopped", "limit" (--max-steps) or None."""
    for epoch in range(s.prog.epoch, s.cfg.epochs):
        sampler.set_epoch(epoch + 1, start=s.prog.batch_in_epoch)  # the reference's epochs are 1-based
        t_epoch = time.monotonic()
        ending = _run_epoch(s, loader, epoch, should_stop)
        if ending is not None or s.prog.batch_in_epoch < s.steps_per_epoch:
            return ending  # stopped, or the step limit was reached inside the epoch
        if _end_epoch(s, epoch, t_epoch):
            break
    return None


def _run_epoch(
    s: EpochRun, loader: torch.utils.data.DataLoader, epoch: int, should_stop: Callable[[], bool]
) -> str | None:
    """The epoch's remaining batches, one training step each; "stopped"/"limit" when it ends early."""
    for batch in loader:
        if should_stop():
            return "stopped"
        if s.max_steps and s.prog.step >= s.max_steps:
            return "limit"
        batch = batch.to(s.dist.device, non_blocking=True)
        losses = s.train_batch(batch)
        s.prog.step += 1
        s.prog.batch_in_epoch += 1
        s.log_step(epoch, losses)
        if s.timer.due():
            s.save_state()
    return None


def _end_epoch(s: EpochRun, epoch: int, t_epoch: float) -> bool:
    """After a full epoch: decay the learning rates, save and export when due; True after the last one."""
    s.prog.epoch, s.prog.batch_in_epoch = epoch + 1, 0
    s.step_schedulers()
    finished = epoch + 1
    s.run.log(f"epoch {finished} done in {time.monotonic() - t_epoch:.1f} s, step {s.prog.step}")
    last = finished == s.cfg.epochs or (s.max_steps > 0 and s.prog.step >= s.max_steps)
    export_now = finished % s.cfg.save_every == 0 or last
    if export_now or s.timer.due():
        s.save_state()
    if export_now:
        s.export(finished)
    barrier(s.dist)
    return last


def finish(s: EpochRun, ending: str | None) -> None:
    """A stopped run saves where it is; a step limit inside an epoch also exports what was trained so far,
    named after the epoch in progress."""
    if ending == "stopped":
        s.save_state()
        s.run.log(f"stopped at step {s.prog.step}; the next run resumes here")
    elif ending == "limit" and s.prog.batch_in_epoch > 0:
        s.save_state()
        s.export(s.prog.epoch + 1)
        s.run.log(f"step limit {s.max_steps} reached in epoch {s.prog.epoch + 1}")


@dataclass
class TrainResult:
    exports: list[str]
    step: int
    epoch: int  # finished epochs
    stopped: bool
    report: dict[str, Any]


def train_to_end(
    s: EpochRun,
    loader: torch.utils.data.DataLoader,
    sampler: BucketBatchSampler,
    should_stop: Callable[[], bool],
    report: dict[str, Any],
    result_type: type[RunResultT],
) -> RunResultT:
    """The remaining epochs, the ending (`finish`), then the ``result`` event with what the run did."""
    ending = run_epochs(s, loader, sampler, should_stop)
    finish(s, ending)
    result = result_type(s.exports, s.prog.step, s.prog.epoch, ending == "stopped", report)
    s.reporter.result(**asdict(result))
    return result


def trainer_main(
    parser: argparse.ArgumentParser,
    config_type: type,
    train: Callable[..., TrainResult],
    argv: Sequence[str] | None,
    title: Callable[[argparse.Namespace], str],
) -> int:
    """A trainer's ``main``: flags (or ``--config``) -> config -> train -> a summary line -> exit code."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(parser, argv)
    code, result = run_trainer(lambda: config_from_args(config_type, args), train, EventWriter(args.events))
    if result is not None:
        print(
            f"{title(args)} {'stopped' if result.stopped else 'done'}: step {result.step}, "
            f"epoch {result.epoch}; exported: {', '.join(result.exports) or 'nothing'}"
        )
    return code
