"""Fine-tune S1 (the GPT, Text2Semantic) on a formatted experiment, reproducing the reference's training.

    python -m gpt_sovits.train.s1 --exp-dir D --exp-name N --pretrained-dir P --weights-dir W \\
        --epochs 15 --batch-size 0 --save-every 5 [--dpo] [--device auto] [--seed 1234] [--fresh]

What the reference (``GPT_SoVITS/s1_train.py`` + ``AR/models/t2s_lightning_module.py``) does, and we do:

- **Init**: the pretrained GPT (``s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt`` for v2), loaded strictly
  (``checkpoints.load_gpt`` strips the Lightning ``model.`` prefix). Its phone vocabulary tells the
  version (512 = v1, 732 = v2); an experiment whose phones the table lacks is refused before training.
- **Data** (``gpt_sovits.data.s1_dataset``): the reference's filters (<= 54 s, <= 540 phones, 3..25 phones per
  second), small sets repeated ``max(2, 100 // n)`` times, BERT from ``3-bert`` or zeros; batch size
  ``min(B, n_items // 4)`` (B halved with DPO); length-bucketed batches, reshuffled every epoch.
- **Loss**: summed token cross-entropy (``s1_loss``; "longer clips should move the model more").
  ``--dpo``: per item a rejected sequence made by repeating or dropping a random span
  (``make_reject_y``), loss = CE + reference-free DPO (beta 0.2) on summed sequence log-probs.
- **Optimiser**: ScaledAdam(lr 0.01, betas (0.9, 0.95), clipping_scale 2.0, clipping_update_period 1000),
  reimplemented in ``gpt_sovits.train.optim`` and checked step by step against the reference's optimiser.
  We kept ScaledAdam rather than an "equivalent" AdamW because its per-tensor RELATIVE update
  (Adam step x rms(param)) cannot be matched by one AdamW learning rate. Gradient clipping is
  ScaledAdam's own median-based clipping, as in the reference (nothing else clips).
- **Schedule**: the reference's WarmupCosineLRSchedule is hard-locked (``self.lr = ... = 0.002``), and
  Lightning's manual optimisation steps it after the optimiser, so the effective schedule is lr 0.01
  for the first optimiser step and 0.002 for every later one. ``--lr-schedule reference`` (default)
  reproduces that; ``--lr-schedule cosine`` gives the nominal warmup (1e-5 -> 0.01 over 2000 steps) and
  cosine decay (to 1e-4 at 40000 steps) the config describes.
- **Accumulation**: the reference steps the optimiser after batch i when ``i > 0 and i % 4 == 0`` (i counts
  from 0 in each epoch; gradients left at an epoch's end carry into the next epoch). ``--accumulate 4``
  (default) does the same; ``--accumulate 1`` steps after every batch.
- **Precision**: autocast on CUDA (bf16 on Ampere+, fp16 with loss scaling before), fp32 on CPU.
- **Export**: every ``--save-every`` epochs and at the end, ``<weights-dir>/<exp>-e<epoch>.ckpt`` in the
  official layout (fp16 ``model.``-prefixed weights, full config, ``info = "GPT-e<epoch>"``), then a
  ``saved`` event. Every export is kept unless ``--keep-exports latest``.
- **Resume**: ``<exp>/s1_train/checkpoint.pt`` holds the model, ScaledAdam state, schedule, loss scaler,
  the gradients accumulated since the last optimiser step, the position (epoch, step, batch in epoch) and
  the RNG states; it is written atomically at exports, every ``--checkpoint-minutes`` (0: at the end of
  every epoch instead), on stop and at the end. A re-run (also after kill -9) continues with the same batches, optimiser state and random
  streams, so it ends with the same weights as an uninterrupted run. ``--fresh`` moves the old state to
  ``s1_train/.trash``.
- **Multi-GPU**: ``torchrun --nproc_per_node N -m gpt_sovits.train.s1 ...``: DDP, each rank a share of the
  batches; only rank 0 writes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from core.jobs import EventWriter, never_stop
from gpt_sovits.data.s1_dataset import (
    S1Batch,
    S1Item,
    collate,
    effective_batch_size,
    load_s1_items,
)
from gpt_sovits.device import DeviceError, autocast_dtype, autocast_for, make_grad_scaler
from gpt_sovits.models.s1 import (
    S1Config,
    Text2Semantic,
    dpo_loss,
    make_reject_y,
    s1_loss,
    sequence_logps,
    top_k_accuracy,
)
from gpt_sovits.models.weights import CheckpointError, load_gpt, save_gpt_weights
from gpt_sovits.train.batching import default_batch_size, length_bucketed_batches, shard_batches
from gpt_sovits.train.cli import RunConfig, add_common_args, config_from_args, jsonable, parse_args
from gpt_sovits.train.distributed import (
    DistInfo,
    all_reduce_mean,
    init_distributed,
    shutdown_distributed,
    wrap_ddp,
)
from gpt_sovits.train.errors import TrainingError
from gpt_sovits.train.optim import ReferenceLR, ScaledAdam
from gpt_sovits.train.progress import ProgressReporter, run_trainer
from gpt_sovits.train.run_dir import RunDir, export_name_pattern, export_weights, half_size
from gpt_sovits.train.state import (
    SPACE_MARGIN_BYTES,
    CheckpointTimer,
    TrainProgress,
    ensure_free_space,
    restore_training_state,
    seed_everything,
    training_state,
)

logger = logging.getLogger(__name__)

RUN_FOLDER = "s1_train"
PHONE_VOCAB_VERSION = {512: "v1", 732: "v2"}  # official S1 phone-embedding sizes
DPO_BETA = 0.2
TOP_K = 3  # the reference logs top-3 accuracy


@dataclass
class S1TrainConfig(RunConfig):
    """Everything a run needs (the common options, then these); the CLI fills it, tests build it
    directly. Paths may be str or Path."""

    OPTIONAL_PATHS = ("pretrained_dir", "pretrained_s1")

    pretrained_s1: Path | None = None  # overrides the official file under pretrained_dir
    version: str = "auto"  # auto: from the pretrained GPT's phone vocabulary
    dpo: bool = False
    accumulate: int = 4
    lr_schedule: str = "reference"
    max_sec: float = 54
    log_every: int = 1  # metrics.jsonl line every N batches

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.accumulate < 1:
            raise TrainingError("accumulate must be at least 1")
        if self.version not in ("auto", "v1", "v2"):
            raise TrainingError(f"unknown version {self.version!r}: use auto, v1 or v2")

    @property
    def run_path(self) -> Path:
        """The run folder: config.json, metrics.jsonl, checkpoint.pt, log.txt."""
        return self.exp_dir / RUN_FOLDER


@dataclass
class S1TrainResult:
    exports: list[Path] = field(default_factory=list)
    step: int = 0
    epoch: int = 0  # finished epochs
    stopped: bool = False
    batch_size: int = 0
    items: int = 0
    filters: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- setup


def resolve_pretrained(cfg: S1TrainConfig) -> Path:
    """The pretrained GPT file: --pretrained-s1, else the official v2 (or v1) name under --pretrained-dir."""
    from gpt_sovits.pretrained import gpt_name, missing_message, pretrained_paths

    if cfg.pretrained_s1 is not None:
        if not cfg.pretrained_s1.is_file():
            raise TrainingError(f"the pretrained GPT {cfg.pretrained_s1} does not exist")
        return cfg.pretrained_s1
    if cfg.pretrained_dir is None:
        raise TrainingError(
            "no pretrained GPT: give --pretrained-dir (the pretrained models folder) or --pretrained-s1"
        )
    versions = ("v2", "v1") if cfg.version == "auto" else (cfg.version,)
    candidates = [pretrained_paths(cfg.pretrained_dir, v).s1 for v in versions]
    for path in candidates:
        if path.is_file():
            return path
    how = missing_message(gpt_name(versions[0]), cfg.pretrained_dir)
    raise TrainingError(f"the pretrained GPT is missing: {how} Or pass --pretrained-s1.")


def load_pretrained(path: Path, version: str) -> tuple[Text2Semantic, S1Config, str]:
    """Load the pretrained GPT and tell its version from the phone vocabulary; refuse a mismatch."""
    try:
        model, s1cfg = load_gpt(path, precision="fp32")
    except CheckpointError as e:
        raise TrainingError(f"the pretrained GPT cannot be used: {e}") from None
    found = PHONE_VOCAB_VERSION.get(s1cfg.phoneme_vocab_size)
    if found is None:
        # Tiny test models and unusual files: fall back to the table that fits.
        found = "v2" if s1cfg.phoneme_vocab_size >= 732 else "v1"
        logger.warning(
            "pretrained GPT has phone vocabulary %d; using the %s table", s1cfg.phoneme_vocab_size, found
        )
    if version not in ("auto", found):
        raise TrainingError(
            f"the pretrained GPT {path} is a {found} model (phone vocabulary {s1cfg.phoneme_vocab_size}) but "
            f"version {version} was asked; pick the {version} pretrained GPT or train as {found}"
        )
    return model, s1cfg, found


def estimate_item_bytes(cfg: S1Config, length: int, bytes_per_value: int) -> int:
    """Activation memory of one training item of ``length`` positions (text + audio), forward + backward.

    Per layer: attention scores, probabilities and dropout mask (3 x heads x L^2) and ~12 L x hidden
    tensors (qkv, attention output, FFN input/hidden x4, norms, residuals)."""
    per_layer = 3 * cfg.head * length * length + 12 * length * cfg.hidden_dim + 2 * length * cfg.ffn_dim
    return int(cfg.n_layer * per_layer * bytes_per_value * 1.3) + length * cfg.vocab_size * 4 * 3


def choose_batch_size(
    cfg: S1TrainConfig, s1cfg: S1Config, model: Text2Semantic, items: list[S1Item], device
) -> int:
    if cfg.batch_size > 0:
        return cfg.batch_size
    lengths = sorted(len(it.phone_ids) + len(it.semantic) + 1 for it in items)
    typical = lengths[int(0.9 * (len(lengths) - 1))]
    n_params = sum(p.numel() for p in model.parameters())
    fixed = n_params * 4 * 5  # weights, gradients, 2 optimiser buffers, saved gradients
    value_bytes = 2 if autocast_dtype(device) is not None else 4
    bs = default_batch_size(
        device,
        fixed_bytes=fixed,
        per_item_bytes=estimate_item_bytes(s1cfg, typical, value_bytes),
        hi=32 if device.type == "cuda" else 8,
    )
    logger.info("batch size %d chosen from free memory (typical item %d positions)", bs, typical)
    return bs


def export_config(cfg: S1TrainConfig, bs: int, version: str, pretrained: Path, run: RunDir) -> dict[str, Any]:
    """The official ``config`` stored in exported weights (the reference stores its whole yaml)."""
    return {
        "train": {
            "seed": cfg.seed,
            "epochs": cfg.epochs,
            "batch_size": bs,
            "save_every_n_epoch": cfg.save_every,
            "precision": "16-mixed",
            "gradient_clip": 1.0,
            "if_save_latest": True,
            "if_save_every_weights": True,
            "if_dpo": cfg.dpo,
            "half_weights_save_dir": str(cfg.weights_dir),
            "exp_name": cfg.exp_name,
        },
        "optimizer": {
            "lr": 0.01,
            "lr_init": 1e-05,
            "lr_end": 0.0001,
            "warmup_steps": 2000,
            "decay_steps": 40000,
        },
        "data": {"max_eval_sample": 8, "max_sec": cfg.max_sec, "num_workers": 4, "pad_val": 1024},
        "inference": {"top_k": 5 if version == "v1" else 15},
        "output_dir": str(run.path),
        "pretrained_s1": str(pretrained),
        "train_semantic_path": str(cfg.exp_dir / "6-name2semantic.tsv"),
        "train_phoneme_path": str(cfg.exp_dir / "2-name2text.txt"),
    }


# ----------------------------------------------------------------------------------------------- step


def batch_loss(
    model: torch.nn.Module, batch: S1Batch, dpo: bool, eos: int
) -> tuple[torch.Tensor, dict[str, float]]:
    """The reference's training loss for one batch, and metrics for the log.

    DPO runs chosen and rejected sequences in ONE forward pass (rows stacked; each part sliced back to its
    own width, so the numbers equal two separate passes) because DDP wants one forward per backward."""
    if not dpo:
        out = model(batch.x, batch.x_lens, batch.y, batch.y_lens, batch.bert)
        logits = out.logits.float()
        ce = s1_loss(logits, out.targets)
        metrics = {"loss/ce": ce.item() / out.targets.numel()}
        with torch.no_grad():
            metrics["acc/top3"] = top_k_accuracy(logits, out.targets, k=TOP_K, ignore_index=eos).item()
        return ce, metrics
    rej_y, rej_lens = make_reject_y(batch.y, batch.y_lens)
    b, ty, tr = batch.y.shape[0], batch.y.shape[1], rej_y.shape[1]
    width = max(ty, tr)
    y_all = torch.cat([F.pad(batch.y, (0, width - ty), value=eos), F.pad(rej_y, (0, width - tr), value=eos)])
    out = model(
        torch.cat([batch.x, batch.x]),
        torch.cat([batch.x_lens, batch.x_lens]),
        y_all,
        torch.cat([batch.y_lens, rej_lens]),
        torch.cat([batch.bert, batch.bert]),
    )
    logits = out.logits.float()
    chosen_logits, chosen_targets = logits[:b, : ty + 1], out.targets[:b, : ty + 1]
    rej_logits, rej_targets = logits[b:, : tr + 1], out.targets[b:, : tr + 1]
    ce = s1_loss(chosen_logits, chosen_targets)
    dpo = dpo_loss(
        sequence_logps(chosen_logits, chosen_targets), sequence_logps(rej_logits, rej_targets), DPO_BETA
    )
    metrics = {"loss/ce": ce.item() / chosen_targets.numel(), "loss/dpo": dpo.item()}
    with torch.no_grad():
        metrics["acc/top3"] = top_k_accuracy(chosen_logits, chosen_targets, k=TOP_K, ignore_index=eos).item()
    return ce + dpo, metrics


def _should_step(batch_index: int, accumulate: int) -> bool:
    """The reference's rule (``batch_idx > 0 and batch_idx % 4 == 0``); every batch when accumulate is 1."""
    return accumulate == 1 or (batch_index > 0 and batch_index % accumulate == 0)


def prefetched(
    items: Sequence[S1Item], batches: Sequence[Sequence[int]], start: int = 0
) -> Iterator[tuple[int, S1Batch]]:
    """(index, collated batch) for ``batches[start:]``, the next batch read (BERT files) in a worker thread
    while the current one trains. Collation is deterministic, so this changes nothing but the waiting."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="s1-collate") as pool:
        pending = None
        for i in range(start, len(batches)):
            current = pending.result() if pending is not None else collate([items[j] for j in batches[i]])
            nxt = i + 1
            pending = pool.submit(collate, [items[j] for j in batches[nxt]]) if nxt < len(batches) else None
            yield i, current


def _grads(model: torch.nn.Module) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.detach().cpu().clone() for p in model.parameters()]


def _set_grads(model: torch.nn.Module, grads: Sequence[torch.Tensor | None]) -> None:
    params = list(model.parameters())
    if len(grads) != len(params):
        raise TrainingError("the checkpoint's saved gradients do not match the model; run with --fresh")
    for p, g in zip(params, grads, strict=True):
        p.grad = None if g is None else g.to(device=p.device, dtype=p.dtype)


# ----------------------------------------------------------------------------------------------- train


def train(
    cfg: S1TrainConfig,
    events: EventWriter | None = None,
    should_stop: Callable[[], bool] = never_stop,
) -> S1TrainResult:
    """Fine-tune S1 as described in the module docstring, until done or ``should_stop()`` (checked after
    every batch; the state is saved first). Raises a UserError (TrainingError, S1DataError...) with a
    message for a person on bad input, before anything is trained."""
    events = events or EventWriter(None)
    try:
        dist = init_distributed(cfg.device)
    except DeviceError as e:
        raise TrainingError(str(e)) from None
    try:
        return _train(cfg, events, should_stop, dist)
    finally:
        shutdown_distributed(dist)


@dataclass
class _S1Run:
    """One run in progress: what the parts of the loop share."""

    cfg: S1TrainConfig
    dist: DistInfo
    run: RunDir
    model: Text2Semantic
    net: torch.nn.Module  # the model, DDP-wrapped when distributed
    s1cfg: S1Config
    optimizer: ScaledAdam
    scheduler: ReferenceLR
    scaler: torch.amp.GradScaler
    prog: TrainProgress
    config: dict[str, Any]  # the effective config (config.json, the checkpoint)
    official_config: dict[str, Any]  # the config stored in exported weights
    reporter: ProgressReporter
    timer: CheckpointTimer
    result: S1TrainResult
    items: list[S1Item]
    lengths: list[int]

    def save_state(self) -> None:
        """The full state, with the gradients accumulated since the last optimiser step."""
        parts = {"optimizer": self.optimizer, "scheduler": self.scheduler, "scaler": self.scaler}
        payload = training_state(
            model=self.model,
            progress=self.prog,
            config=self.config,
            extra={"grads": _grads(self.model)},
            **parts,
        )
        self.run.save(payload)

    def export(self, done: int) -> None:
        """``<exp>-e<done>.ckpt`` in the official layout, then the ``saved`` event."""
        cfg, model = self.cfg, self.model
        path = cfg.weights_dir / f"{cfg.exp_name}-e{done}.ckpt"
        export_weights(
            path,
            lambda p: save_gpt_weights(
                model, self.s1cfg, p, info=f"GPT-e{done}", config=self.official_config
            ),
            estimate=half_size(model),
            keep=cfg.keep_exports,
            older_exports=export_name_pattern(f"{cfg.exp_name}-e{{epoch}}.ckpt"),
        )
        self.result.exports.append(path)
        self.run.log(f"exported {path}")
        self.reporter.saved(path, done, self.prog.step)


def _train(
    cfg: S1TrainConfig, events: EventWriter, should_stop: Callable[[], bool], dist: DistInfo
) -> S1TrainResult:
    device = dist.device
    if not cfg.exp_dir.is_dir():
        raise TrainingError(
            f"the experiment folder {cfg.exp_dir} does not exist; format a dataset into it first"
        )
    run = RunDir(cfg.run_path, writer=dist.is_main)

    pretrained = resolve_pretrained(cfg)
    model, s1cfg, version = load_pretrained(pretrained, cfg.version)
    items, report = load_s1_items(cfg.exp_dir, version, max_sec=cfg.max_sec)
    requested = choose_batch_size(cfg, s1cfg, model, items, device)
    bs = effective_batch_size(requested, len(items), cfg.dpo)
    if dist.is_main:  # fail now, not after hours of training, when a checkpoint cannot fit
        n_params = sum(p.numel() for p in model.parameters())
        ensure_free_space(cfg.exp_dir, n_params * 4 * 4 + SPACE_MARGIN_BYTES, "checkpoints")
        ensure_free_space(cfg.weights_dir, half_size(model) + SPACE_MARGIN_BYTES, "exported weights")

    seed_everything(cfg.seed)
    model = model.float().to(device).train()
    net = wrap_ddp(model, dist)
    optimizer = ScaledAdam(
        model.parameters(), lr=0.01, betas=(0.9, 0.95), clipping_scale=2.0, clipping_update_period=1000
    )
    scheduler = ReferenceLR(optimizer, mode=cfg.lr_schedule)
    scaler = make_grad_scaler(device)
    prog = _resume(run, cfg.fresh, bs, model, optimizer, scheduler, scaler)

    effective = {
        **jsonable(asdict(cfg)),
        "pretrained_s1": str(pretrained),
        "version": version,
        "effective_batch_size": bs,
        "requested_batch_size": requested,
        "items": len(items),
        "filters": report.to_dict(),
        "world_size": dist.world_size,
        "device": str(device),
        "precision": str(autocast_dtype(device) or "fp32"),
    }
    run.write_config(effective)
    lengths = [len(it.phone_ids) + len(it.semantic) for it in items]
    per_epoch = len(shard_batches(length_bucketed_batches(lengths, bs, cfg.seed, 0), dist))
    s = _S1Run(
        cfg, dist, run, model, net, s1cfg, optimizer, scheduler, scaler, prog, effective,
        official_config=export_config(cfg, bs, version, pretrained, run),
        reporter=ProgressReporter(
            events, "s1", cfg.epochs * per_epoch, start_step=prog.step, enabled=dist.is_main
        ),
        timer=CheckpointTimer(cfg.checkpoint_minutes),
        result=S1TrainResult(
            batch_size=bs, items=len(items), filters=report.to_dict(), step=prog.step, epoch=prog.epoch
        ),
        items=items,
        lengths=lengths,
    )  # fmt: skip
    run.log(
        f"S1 training: {report.kept} clips ({len(items)} items after repetition), batch {bs}, {per_epoch} batches "
        f"per epoch, epochs {prog.epoch + 1}..{cfg.epochs}, device {device}, version {version}, from {pretrained}"
    )
    if prog.epoch >= cfg.epochs:
        run.log(f"already trained for {prog.epoch} epochs; raise --epochs to continue or use --fresh")
    for epoch in range(prog.epoch, cfg.epochs):
        if _run_epoch(s, epoch, bs, should_stop):
            return _stopped(s, epoch)
        _end_epoch(s, epoch)
    return _done(s)


def _resume(
    run: RunDir,
    fresh: bool,
    bs: int,
    model: Text2Semantic,
    optimizer: ScaledAdam,
    scheduler: ReferenceLR,
    scaler: torch.amp.GradScaler,
) -> TrainProgress:
    """Where training stands: restored from the checkpoint (with its accumulated gradients), or the start."""
    state = run.prepare(fresh=fresh)
    if state is None:
        return TrainProgress()
    prog = restore_training_state(state, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)
    _set_grads(model, state.get("extra", {}).get("grads", []) or [None] * len(list(model.parameters())))
    old_bs = state.get("config", {}).get("effective_batch_size")
    if old_bs is not None and old_bs != bs:
        run.log(
            f"warning: batch size changed from {old_bs} to {bs}; the data order differs from the first run"
        )
    run.log(
        f"resuming at epoch {prog.epoch + 1}, step {prog.step} (batch {prog.batch_in_epoch} of the epoch)"
    )
    return prog


def _run_epoch(s: _S1Run, epoch: int, bs: int, should_stop: Callable[[], bool]) -> bool:
    """The epoch's remaining batches; True when a stop was asked (the state is not saved yet)."""
    cfg, prog = s.cfg, s.prog
    batches = shard_batches(length_bucketed_batches(s.lengths, bs, cfg.seed, epoch), s.dist)
    # batches already trained before a restart are skipped; the rest are collated one ahead
    for i, batch in prefetched(s.items, batches, start=prog.batch_in_epoch):
        metrics, lr = _train_batch(s, i, batch)
        prog.step += 1
        prog.batch_in_epoch = i + 1
        if s.dist.distributed:
            device = s.dist.device
            metrics = {
                k: all_reduce_mean(torch.tensor(v, device=device), s.dist).item() for k, v in metrics.items()
            }
        if prog.step % cfg.log_every == 0:
            s.run.append_metrics({"step": prog.step, "epoch": epoch + 1, **metrics, "lr": lr})
        s.reporter.step(prog.step, epoch, {"loss": metrics["loss/ce"]})
        if _stop_everywhere(should_stop, s.dist, s.dist.device):
            return True
        if s.timer.due() and prog.batch_in_epoch < len(batches):
            s.save_state()
            s.timer.reset()
    return False


def _train_batch(s: _S1Run, i: int, batch: S1Batch) -> tuple[dict[str, float], float]:
    """Forward and backward on batch ``i`` of the epoch, the optimiser step when due; (metrics, lr used)."""
    device, optimizer, scaler = s.dist.device, s.optimizer, s.scaler
    batch = batch.to(device)
    with autocast_for(device):
        loss, metrics = batch_loss(s.net, batch, s.cfg.dpo, s.s1cfg.EOS)
    scaler.scale(loss).backward()
    lr = optimizer.param_groups[0]["lr"]
    if _should_step(i, s.cfg.accumulate):
        scale = scaler.get_scale()
        scaler.step(optimizer)  # skipped when fp16 gradients overflowed
        scaler.update()
        if not scaler.is_enabled() or scaler.get_scale() >= scale:
            s.scheduler.step()  # count only steps the optimiser took
        optimizer.zero_grad(set_to_none=True)
    return metrics, lr


def _end_epoch(s: _S1Run, epoch: int) -> None:
    """After a full epoch: export when due (before the checkpoint, so a kill between them re-exports)."""
    done = epoch + 1
    s.prog.epoch, s.prog.batch_in_epoch = done, 0
    export_now = done % s.cfg.save_every == 0 or done == s.cfg.epochs
    if export_now and s.dist.is_main:
        s.export(done)
    if export_now or s.cfg.checkpoint_minutes <= 0 or s.timer.due():
        s.save_state()
        s.timer.reset()


def _stopped(s: _S1Run, epoch: int) -> S1TrainResult:
    """Save where the run stands (a re-run resumes there) and report the stop."""
    prog, result = s.prog, s.result
    s.save_state()
    s.run.log(f"stopped at epoch {epoch + 1}, step {prog.step}; run again to resume")
    result.stopped, result.step, result.epoch = True, prog.step, prog.epoch
    s.reporter.result(stopped=True, step=prog.step, epoch=prog.epoch, exports=result.exports)
    return result


def _done(s: _S1Run) -> S1TrainResult:
    prog, result = s.prog, s.result
    result.step, result.epoch = prog.step, prog.epoch
    if prog.step == s.reporter.start_step:  # nothing left to train: still tell the caller where it stands
        s.reporter.step(prog.step, max(0, prog.epoch - 1), force=True)
    s.reporter.result(stopped=False, step=prog.step, epoch=prog.epoch, exports=result.exports)
    s.run.log(f"done: {prog.epoch} epochs, {prog.step} steps")
    return result


def _stop_everywhere(should_stop: Callable[[], bool], dist: DistInfo, device: torch.device) -> bool:
    """Any rank asked to stop -> every rank stops at the same step (else the others hang in all-reduce)."""
    flag = should_stop()
    if not dist.distributed:
        return flag
    import torch.distributed as tdist

    t = torch.tensor(float(flag), device=device)
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return bool(t.item())


# ----------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gpt_sovits.train.s1",
        description="Fine-tune the GPT (S1) of GPT-SoVITS on a formatted experiment; re-running resumes.",
    )
    add_common_args(parser, epochs=15, save_every=5)
    g = parser.add_argument_group("S1 options")
    g.add_argument(
        "--dpo", action="store_true", help="add the reference's DPO loss (experimental; halves the batch)"
    )
    g.add_argument(
        "--pretrained-s1", help="the pretrained GPT .ckpt (default: the official file in --pretrained-dir)"
    )
    g.add_argument(
        "--version",
        choices=("auto", "v1", "v2"),
        default="auto",
        help="model version (default: from the pretrained GPT)",
    )
    g.add_argument("--accumulate", type=int, default=4, help="batches per optimiser step (reference: 4)")
    g.add_argument(
        "--lr-schedule",
        choices=("reference", "cosine"),
        default="reference",
        help="reference: 0.01 then 0.002 (what the reference does)",
    )
    g.add_argument("--max-sec", type=float, default=54, help="drop clips longer than this (default 54)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gpt_sovits.train.s1``: flags (or ``--config``) -> S1TrainConfig -> train -> exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = parse_args(build_parser(), argv)
    code, result = run_trainer(lambda: config_from_args(S1TrainConfig, args), train, EventWriter(args.events))
    if result is not None:
        for path in result.exports:
            print(path)
        if result.stopped:
            print(f"stopped at step {result.step}; run the same command again to resume", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
