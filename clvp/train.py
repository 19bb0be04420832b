"""Train (or fine-tune) CLVP on one or several formatted experiment folders.

    python -m clvp.train --exp-dir D [D ...] --weights-dir W [--out RUN_DIR] [--exp-name N] [--epochs 20]
        [--batch-size 0] [--model tiny|base|FILE.json] [--init CKPT] [--negatives 4] [--lr 0 (by size)]
        [--held-out 0.1] [--fresh] [--device auto] [--events FILE] [--config OPTIONS.json]

The run folder (default ``<first exp-dir>/clvp_train``) holds config.json, metrics.jsonl, checkpoint.pt and
log.txt (``gpt_sovits.train.run_dir.RunDir``); running again resumes unless ``--fresh``. Every ``--save-every``
epochs and at the end the model is exported to ``<weights-dir>/<exp-name>-e<epoch>.pt`` and a ``saved``
event (model="clvp") is emitted. ``--init`` starts from a CLVP weight file (a general model) and keeps its
architecture: that is fine-tuning on one speaker's data. ``--model`` picks the size of a new model
(``--config`` is the shared JSON file of option values, as for the other trainers).

Each step trains the CTC reader on the true pairs (``ctc/train``) and contrasts every text against the
batch's true token sequences and ``--negatives`` corrupted copies of each (``clvp.negatives``); at each
epoch end the held-out part (by name hash) gives ``val/loss`` and ``val/top1`` (true sequence ranked first
among itself and 5 corruptions) of the combined score, ``val/top1_reader``/``val/top1_contrastive`` of
each part, and ``val/mix``, the weight of the contrastive score that ranks the held-out clips best
(``calibrate``; saved in the weights). ``--lr 0`` (the default) is 3e-3 for tiny models, 3e-4 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from clvp.checkpoint import load_clvp_checkpoint, save_clvp
from clvp.data import ClvpBatch, ClvpDataError, ClvpItem, collate, load_items, split_items
from clvp.model import ClvpConfig, ClvpConfigError, ClvpModel
from core.jobs import EventWriter, never_stop
from gpt_sovits.device import autocast_for, make_grad_scaler, pick_device
from gpt_sovits.train.batching import default_batch_size, length_bucketed_batches
from gpt_sovits.train.cli import add_common_args, config_from_args, jsonable, parse_args
from gpt_sovits.train.errors import TrainingError
from gpt_sovits.train.progress import ProgressReporter, run_trainer
from gpt_sovits.train.run_dir import RunDir, export_weights
from gpt_sovits.train.state import (
    CheckpointTimer,
    TrainProgress,
    restore_training_state,
    seed_everything,
    training_state,
)

RUN_FOLDER = "clvp_train"
# A common trainer flag CLVP has no use for: it trains from --init or from scratch, never from the
# GPT-SoVITS pretrained folder.
UNUSED_FLAGS = ("pretrained_dir",)


@dataclass
class ClvpTrainConfig:
    """Everything a CLVP run needs; the CLI fills it (``config_from_args``), tests may build it directly."""

    exp_dir: list[Path]
    weights_dir: Path
    exp_name: str = ""
    out: Path | None = None  # run folder; default <first exp-dir>/clvp_train
    epochs: int = 20
    batch_size: int = 0  # 0: from free memory
    save_every: int = 5
    device: str = "auto"
    seed: int = 1234
    fresh: bool = False
    keep_exports: str = "all"
    checkpoint_minutes: float = 2.0
    model: str = "base"  # tiny, base or a JSON file of ClvpConfig fields
    init: Path | None = None  # CLVP weights to fine-tune (their architecture wins)
    negatives: int = 4
    lr: float = 0.0  # peak learning rate; 0: the model size's (``default_lr``)
    weight_decay: float = 0.01
    warmup_steps: int = 200
    threads: int = 0  # torch CPU threads for this run; 0: torch's default
    grad_clip: float = 1.0
    held_out: float = 0.1
    max_tokens: int = 1500

    def __post_init__(self) -> None:
        dirs = [self.exp_dir] if isinstance(self.exp_dir, (str, Path)) else self.exp_dir
        self.exp_dir = [Path(d) for d in dirs]
        if not self.exp_dir:
            raise TrainingError("give at least one experiment folder")
        self.weights_dir = Path(self.weights_dir)
        self.out = Path(self.out) if self.out else None
        self.init = Path(self.init) if self.init else None
        if not self.exp_name:
            self.exp_name = self.exp_dir[0].resolve().name
        if self.epochs < 1 or self.save_every < 1:
            raise TrainingError("epochs and save_every must be at least 1")
        if self.batch_size < 0 or self.negatives < 0:
            raise TrainingError("batch_size and negatives must not be negative")

    @property
    def run_path(self) -> Path:
        """The run folder: config.json, metrics.jsonl, checkpoint.pt, log.txt."""
        return self.out or self.exp_dir[0] / RUN_FOLDER


@dataclass
class ClvpTrainResult:
    epoch: int  # finished epochs
    step: int
    stopped: bool
    weights: Path | None  # the last export of this run
    validation: dict[str, float] = field(default_factory=dict)  # the last epoch's held-out figures

    def to_dict(self) -> dict[str, Any]:
        """The ``result`` event and the line ``main`` prints: the fields, the held-out figures flattened."""
        weights = str(self.weights) if self.weights else None
        return {
            "epoch": self.epoch,
            "step": self.step,
            "stopped": self.stopped,
            "weights": weights,
            **self.validation,
        }


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m clvp.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_args(ap, epochs=20, save_every=5, multi_exp=True)
    g = ap.add_argument_group("CLVP options")
    g.add_argument("--out", help="run folder (default: <first exp-dir>/clvp_train)")
    g.add_argument("--model", default="base", help="size of a new model: tiny, base or a JSON config file")
    g.add_argument("--init", help="start from these CLVP weights (fine-tuning a general model)")
    g.add_argument("--negatives", type=int, default=4, help="hard negatives per item and step (default 4)")
    g.add_argument(
        "--lr",
        type=float,
        default=0.0,
        help="peak learning rate (default 0: 3e-3 for tiny models, 3e-4 else)",
    )
    g.add_argument("--weight-decay", type=float, default=0.01)
    g.add_argument("--warmup-steps", type=int, default=200)
    g.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for torch (0 = torch's default); 1 is much faster on a machine shared with other jobs",
    )
    g.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm (default 1)")
    g.add_argument("--held-out", type=float, default=0.1, help="fraction of clips kept out (default 0.1)")
    g.add_argument("--max-tokens", type=int, default=1500, help="skip clips longer than this (60 s)")
    return ap


def model_config(spec: str) -> ClvpConfig:
    """``tiny``/``base`` or a JSON file of ClvpConfig fields."""
    if spec in ("tiny", "base"):
        return ClvpConfig.preset(spec)
    p = Path(spec)
    if not p.is_file():
        raise ClvpConfigError(f"--model {spec!r} is neither tiny, base nor an existing JSON config file")
    try:
        fields = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ClvpConfigError(
            f"--model {spec}: not a readable JSON file of CLVP config fields ({e})"
        ) from None
    return ClvpConfig.from_dict(fields)


def initial_model(cfg: ClvpTrainConfig) -> tuple[ClvpModel, str]:
    """A fresh model of ``--model`` size, or the ``--init`` weights (their stored architecture wins)."""
    if cfg.init:
        return load_clvp_checkpoint(cfg.init), f"initialised from {cfg.init}"
    return ClvpModel(model_config(cfg.model)), f"new {cfg.model} model"


def default_lr(model_cfg: ClvpConfig) -> float:
    """A small model (dim <= 64, the tiny size) learns in a few hundred steps at 3e-3 (measured on the
    hard synthetic corpus); the larger ones keep the contrastive trainer's 3e-4."""
    return 3e-3 if model_cfg.dim <= 64 else 3e-4


def make_optimizer(
    model: ClvpModel, cfg: ClvpTrainConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (no decay on norms, biases and the scale) with warm-up and cosine decay."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr or default_lr(model.cfg),
        betas=(0.9, 0.98),
    )
    warmup = min(cfg.warmup_steps, max(1, total_steps // 10))
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(warmup, total_steps))


def lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to 10% of the peak."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))

    return f


STEPS_PER_EPOCH = 27  # the automatic batch size aims at this many steps per epoch (within 8..32 clips)


def pick_batch_size(
    cfg: ClvpTrainConfig, model: ClvpModel, items: Sequence[ClvpItem], device: torch.device
) -> int:
    if cfg.batch_size:
        return cfg.batch_size
    mcfg = model.cfg
    n_params = sum(p.numel() for p in model.parameters())
    mean_len = sum(len(it.tokens) for it in items) / max(1, len(items))
    # one item = its text + (1 + negatives) speech sequences; ~24 floats per position, layer and channel
    per_item = int(
        (1 + cfg.negatives) * mean_len * mcfg.dim * max(mcfg.text_layers, mcfg.speech_layers) * 24 * 4
    )
    fits = default_batch_size(device, fixed_bytes=n_params * 16, per_item_bytes=per_item, lo=2, hi=32)
    # The reader needs steps more than big batches: at least ~27 per epoch (measured on the hard corpus,
    # 442 clips x 15 epochs: batch 32 -> top-1 0.81 on unseen clips, batch 16 -> see the README), 8..32.
    return min(fits, max(8, len(items) // STEPS_PER_EPOCH))


@torch.no_grad()
def validation(model: ClvpModel, val: Sequence[ClvpItem], negatives: int, seed: int) -> dict[str, float]:
    """Held-out contrastive loss (fixed negatives) and reranking top-1 over true + 5 corruptions."""

    val = val[:500]  # enough for a stable figure; a big held-out part would slow every epoch end
    if len(val) < 2:
        return {}
    model.eval()
    device = next(model.parameters()).device
    rng = random.Random(seed)
    losses = []
    for i in range(0, len(val), 32):
        chunk = val[i : i + 32]
        if len(chunk) < 2:
            continue
        b = collate(chunk, negatives, rng, model.cfg.text_pad, model.cfg.speech_pad, pool=val).to(device)
        losses.append(float(model(b.text, b.text_lens, b.speech, b.speech_lens, b.neg, b.neg_lens).loss))
    out = calibrate(model, val, seed)
    model.train()
    if losses:
        out["val/loss"] = sum(losses) / len(losses)
    return out


MIX_GRID = (0.0, 0.003, 0.01, 0.03, 0.1, 0.3)  # weights of the contrastive score tried by ``calibrate``


def calibrate(model: ClvpModel, val: Sequence[ClvpItem], seed: int) -> dict[str, float]:
    """Held-out top-1 (true among itself + 5 corruptions) of each score; with a reader, also sets the
    model's ``score_mix`` to the weight of the contrastive score that ranks best (mean rank breaks ties,
    then the smaller weight: the reader alone unless the contrastive score measurably helps)."""
    from clvp.evaluate import combined_scores, make_cases, score_parts_of, summarise

    cases = make_cases(val, 6, seed)
    parts = score_parts_of(model, cases)
    if "reader" not in parts:
        res = summarise("clvp", cases, parts["clvp"])
        return {"val/top1": res.top1, "val/mean_rank": res.mean_rank}
    best = None
    for mix in MIX_GRID:
        res = summarise("clvp", cases, combined_scores(parts, mix))
        key = (res.top1, -res.mean_rank, -mix)
        if best is None or key > best[0]:
            best = (key, mix, res)
    assert best is not None
    _key, mix, res = best
    model.score_mix.fill_(mix)
    reader = summarise("reader", cases, parts["reader"])
    contrastive = summarise("clvp contrastive", cases, parts["clvp"])
    return {
        "val/top1": res.top1,
        "val/mean_rank": res.mean_rank,
        "val/top1_reader": reader.top1,
        "val/top1_contrastive": contrastive.top1,
        "val/mix": mix,
    }


def train(
    cfg: ClvpTrainConfig,
    events: EventWriter | None = None,
    should_stop: Callable[[], bool] = never_stop,
) -> ClvpTrainResult:
    """Train (or resume) CLVP as configured by ``cfg``, until done or ``should_stop()`` (checked before every
    step; the state is saved). Raises a UserError (ClvpDataError, ClvpConfigError...) on bad input."""
    events = events or EventWriter(None)
    threads = torch.get_num_threads()  # cfg.threads applies to this run only (train may run in-process)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, events, should_stop)
    finally:
        torch.set_num_threads(threads)


@dataclass
class _ClvpRun:
    """One run in progress: what the parts of the loop share."""

    cfg: ClvpTrainConfig
    run: RunDir
    model: ClvpModel
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    prog: TrainProgress
    config: dict[str, Any]
    reporter: ProgressReporter
    timer: CheckpointTimer
    result: ClvpTrainResult
    train_items: list[ClvpItem]
    val_items: list[ClvpItem]
    lengths: list[int]
    batch_size: int

    def save_state(self) -> None:
        payload = training_state(
            model=self.model,
            optimizer=self.opt,
            scheduler=self.sched,
            scaler=self.scaler,
            progress=self.prog,
            config=self.config,
            extra={"model_config": self.model.cfg.to_dict()},
        )
        self.run.save(payload)
        self.timer.reset()


def _train(cfg: ClvpTrainConfig, events: EventWriter, should_stop: Callable[[], bool]) -> ClvpTrainResult:
    run = RunDir(cfg.run_path)
    train_items, val_items = _split_data(cfg, run)
    device = pick_device(cfg.device)
    seed_everything(cfg.seed)
    model, origin = initial_model(cfg)
    model.to(device).train()
    bs = max(2, min(pick_batch_size(cfg, model, train_items, device), len(train_items)))
    lengths = [len(it.tokens) for it in train_items]
    steps_per_epoch = len(length_bucketed_batches(lengths, bs, cfg.seed, 0))
    total = steps_per_epoch * cfg.epochs
    opt, sched = make_optimizer(model, cfg, total)
    scaler = make_grad_scaler(device)
    prog = TrainProgress()
    state = run.prepare(fresh=cfg.fresh, map_location=device)
    if state is not None:
        saved_cfg = ClvpConfig.from_stored(state["extra"]["model_config"])
        if saved_cfg != model.cfg:  # the run was started with another size: its state decides
            model = ClvpModel(saved_cfg).to(device).train()
            opt, sched = make_optimizer(model, cfg, total)
        prog = restore_training_state(state, model=model, optimizer=opt, scheduler=sched, scaler=scaler)
        origin = f"resumed at epoch {prog.epoch}, step {prog.step}"
    config = {**jsonable(cfg), "batch_size_used": bs, "model_config": model.cfg.to_dict()}
    run.write_config(config)
    n_params = sum(p.numel() for p in model.parameters())
    run.log(
        f"CLVP: {origin}; {n_params / 1e6:.2f}M parameters; {len(train_items)} train / {len(val_items)} held-out "
        f"clips from {len(cfg.exp_dir)} folder(s); batch {bs}, {steps_per_epoch} steps per epoch, device {device}"
    )
    s = _ClvpRun(
        cfg, run, model, opt, sched, scaler, prog, config,
        reporter=ProgressReporter(events, "clvp", total, start_step=prog.step),
        timer=CheckpointTimer(cfg.checkpoint_minutes),
        result=ClvpTrainResult(prog.epoch, prog.step, stopped=False, weights=None),
        train_items=train_items, val_items=val_items, lengths=lengths, batch_size=bs,
    )  # fmt: skip
    for epoch in range(prog.epoch, cfg.epochs):
        if _run_epoch(s, epoch, should_stop):
            s.result.stopped = True
            s.save_state()
            run.log(f"stopped at epoch {prog.epoch}, step {prog.step}; run again to resume")
            break
        _end_epoch(s, epoch)
    s.result.epoch, s.result.step = prog.epoch, prog.step
    s.reporter.result(**s.result.to_dict())
    return s.result


def _split_data(cfg: ClvpTrainConfig, run: RunDir) -> tuple[list[ClvpItem], list[ClvpItem]]:
    """(train, held-out) items of every folder; what was skipped goes to log.txt."""
    items, notes = load_items(cfg.exp_dir, cfg.max_tokens)
    for n in notes:
        run.log(n)
    train_items, val_items = split_items(items, cfg.held_out)
    if len(train_items) < 2:
        raise ClvpDataError(f"CLVP needs at least 2 training clips; found {len(train_items)}")
    return train_items, val_items


def _run_epoch(s: _ClvpRun, epoch: int, should_stop: Callable[[], bool]) -> bool:
    """The epoch's remaining batches; True when a stop was asked (the state is not saved yet)."""
    prog = s.prog
    batches = length_bucketed_batches(s.lengths, s.batch_size, s.cfg.seed, epoch)
    for i, idx in enumerate(batches):
        if i < prog.batch_in_epoch:
            continue
        if should_stop():
            return True
        batch = _batch(s.cfg, s.model, s.train_items, idx, epoch, i)
        metrics = train_step(s.model, s.opt, s.sched, s.scaler, batch, s.cfg)
        prog.step += 1
        prog.batch_in_epoch = i + 1
        if prog.step % 10 == 0 or i == len(batches) - 1:
            s.run.append_metrics({"step": prog.step, "epoch": epoch, **metrics})
        s.reporter.step(prog.step, epoch, {"loss": metrics["loss/train"]})
        if s.timer.due():
            s.save_state()
    return False


def _end_epoch(s: _ClvpRun, epoch: int) -> None:
    """After a full epoch: the held-out figures, the state, and an export when due."""
    prog, result = s.prog, s.result
    prog.epoch, prog.batch_in_epoch = epoch + 1, 0
    result.validation = validation(s.model, s.val_items, s.cfg.negatives, s.cfg.seed)
    if result.validation:
        s.run.append_metrics({"step": prog.step, "epoch": epoch, **result.validation})
        s.run.log(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in result.validation.items()))
    s.save_state()
    if (epoch + 1) % s.cfg.save_every == 0 or epoch + 1 == s.cfg.epochs:
        result.weights = export(s.model, s.cfg, prog, result.validation)
        s.reporter.saved(result.weights, prog.epoch, prog.step)


def _batch(
    cfg: ClvpTrainConfig, model: ClvpModel, items: Sequence[ClvpItem], idx: Sequence[int], epoch: int, i: int
) -> ClvpBatch:
    """Batch ``i`` of ``epoch`` with its hard negatives, which depend only on (seed, epoch, batch): a
    resumed run sees the same data."""
    rng = random.Random(cfg.seed * 1_000_003 + epoch * 10_007 + i)
    chunk = [items[j] for j in idx]
    if len(chunk) < 2:
        chunk.append(items[rng.randrange(len(items))])
    pool = chunk + [items[rng.randrange(len(items))] for _ in range(8)]
    return collate(chunk, cfg.negatives, rng, model.cfg.text_pad, model.cfg.speech_pad, pool=pool)


def train_step(
    model: ClvpModel,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    batch: ClvpBatch,
    cfg: ClvpTrainConfig,
) -> dict[str, float]:
    """One optimiser step on ``batch`` (moved to the model's device); returns the metrics to log."""
    b = batch.to(next(model.parameters()).device)
    with autocast_for(b.text.device):
        out = model(b.text, b.text_lens, b.speech, b.speech_lens, b.neg, b.neg_lens)
    opt.zero_grad(set_to_none=True)
    scaler.scale(out.loss).backward()
    scaler.unscale_(opt)
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    scaler.step(opt)
    scaler.update()
    sched.step()
    extra = {"ctc/train": float(out.ctc.detach())} if out.ctc is not None else {}
    return {
        **extra,
        "loss/train": float(out.loss.detach()),
        "acc/train": float(out.accuracy.detach()),
        "scale": float(model.scale().detach()),
        "lr": sched.get_last_lr()[0],
    }


def export(model: ClvpModel, cfg: ClvpTrainConfig, prog: TrainProgress, val: dict[str, float]) -> Path:
    path = cfg.weights_dir / f"{cfg.exp_name}-e{prog.epoch}.pt"
    info = {"epoch": prog.epoch, "step": prog.step, "exp_name": cfg.exp_name, **val}
    return export_weights(
        path,
        lambda p: save_clvp(p, model, info),
        estimate=sum(t.numel() * 4 for t in model.state_dict().values()),
        keep=cfg.keep_exports,
        older_exports=f"{cfg.exp_name}-e*.pt",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m clvp.train``: flags (or ``--config``) -> ClvpTrainConfig -> train -> exit code."""
    args = parse_args(build_parser(), argv)
    code, result = run_trainer(
        lambda: config_from_args(ClvpTrainConfig, args, ignore=UNUSED_FLAGS), train, EventWriter(args.events)
    )
    if result is not None:
        print(json.dumps(result.to_dict()))
    return code


if __name__ == "__main__":
    sys.exit(main())
