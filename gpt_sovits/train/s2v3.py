"""LoRA fine-tuning of S2 v3/v4 (the CFM of SynthesizerTrnV3) on a formatted experiment, as the reference.

    python -m gpt_sovits.train.s2v3 --exp-dir D --exp-name N --pretrained-dir P --weights-dir W \\
        --version v4 --epochs 2 --save-every 1 --lora-rank 32 [--batch-size 0] [--device auto] [--fresh]

The recipe is the reference's ``s2_train_v3_lora.py`` with ``configs/s2.json``:

- the generator starts from the pretrained ``s2Gv3.pth`` / ``gsv-v4-pretrained/s2Gv4.pth``; there is
  no discriminator;
- peft ``get_peft_model(net_g.cfm, LoraConfig(target_modules=["to_k", "to_q", "to_v", "to_out.0"],
  r=rank, lora_alpha=rank, init_lora_weights=True))``: every DiT weight is frozen and rank-r adapters
  train on the attention projections (B starts at zero, so step 0 is the pretrained model);
- ``freeze_quantizer``: ssl_proj, the quantizer and the text encoder enc_p are frozen too (no
  gradient, eval mode); ref_enc, bridge and wns1 train in full (linear_mel has no gradient);
- the loss is the CFM's flow-matching loss on the clip's target mel, with a random prompt of up to
  2/3 of it (SynthesizerTrnV3.forward);
- one AdamW over what trains: lr 1e-4, betas 0.8/0.99, eps 1e-9 (torch's weight decay 0.01, which the
  reference keeps); ExponentialLR(0.999875) per epoch, stepped once before the first, so epoch e
  (1-based) trains at lr x 0.999875^e;
- gradient norms logged, not clipped (the reference's ``clip_grad_value_(..., None)``);
- autocast (fp16 with loss scaling, or bf16) on CUDA with ref_enc and the content path in fp32 (the
  reference's ``autocast(enabled=False)`` around them); fp32 elsewhere.

Data: ``gpt_sovits.data.s2v3_dataset`` (the reference's TextAudioSpeakerLoaderV3/V4). The run folder
``<exp>/s2_train`` holds config.json, metrics.jsonl, checkpoint.pt (the trained tensors: adapters,
ref_enc, bridge, wns1, linear_mel, buffers; the optimizer, scheduler and scaler; step/epoch/batch
position; RNG) and log.txt; a re-run resumes unless ``--fresh`` (the pretrained generator is read again,
the checkpoint holds only what trains). Every ``--save-every`` epochs and at the end the trained
tensors are exported with ``save_sovits_v3_lora`` (header ``03``/``04``, ``lora_rank``) to
``<weights-dir>/<exp>_e<epoch>_s<step>_l<rank>.pth``, the reference's name, and a ``saved`` event is
emitted; ``load_sovits_v3(export, base=pretrained)`` loads it merged.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.jobs import EventWriter, never_stop
from gpt_sovits.data.s2v3_dataset import (
    V3_BUCKET_BOUNDARIES,
    S2V3Batch,
    S2V3Dataset,
    collate_s2v3,
    scan_experiment_v3,
)
from gpt_sovits.device import autocast_dtype, make_grad_scaler
from gpt_sovits.models.s2 import S2Config
from gpt_sovits.models.s2v3 import V3V4_VERSIONS, S2V3Config, SynthesizerTrnV3
from gpt_sovits.models.weights import CheckpointError, read_checkpoint
from gpt_sovits.models.weights_v3 import (
    LORA_HEADERS,
    LORA_TARGETS,
    PRETRAINED_MD5,
    load_sovits_v3,
    save_sovits_v3_lora,
    sovits_v3_version,
)
from gpt_sovits.pretrained import V3V4_FILES
from gpt_sovits.train import loop
from gpt_sovits.train.batching import default_batch_size
from gpt_sovits.train.cli import add_common_args, jsonable
from gpt_sovits.train.distributed import DistInfo, barrier, wrap_ddp
from gpt_sovits.train.errors import TrainingError
from gpt_sovits.train.progress import ProgressReporter
from gpt_sovits.train.run_dir import RunDir, export_name_pattern, export_weights
from gpt_sovits.train.state import (
    CheckpointTimer,
    TrainProgress,
    ensure_free_space,
    estimate_bytes,
    restore_training_state,
    seed_everything,
    training_state,
)

logger = logging.getLogger(__name__)

RUN_FOLDER = "s2_train"  # the S2 step's folder, whichever version (the Training tab follows it)
DEFAULT_EPOCHS = 2  # the reference web UI's defaults for v3/v4
DEFAULT_SAVE_EVERY = 1
LORA_RANKS = (16, 32, 64, 128)  # the reference web UI's choices
DEFAULT_LORA_RANK = 32
DEFAULT_VERSION = "v4"  # the one the reference's training UI offers
# The modules the reference runs under autocast(enabled=False) in SynthesizerTrnV3.forward.
FP32_MODULES = ("ref_enc", "ssl_proj", "quantizer", "enc_p")
# The reference web UI picks VRAM_GB // 8 items per GPU for v3/v4 (// 2 for v2).
PER_ITEM_BYTES = 6 * 1024**3


@dataclass
class S2V3Recipe(loop.AdamWRecipe):
    """The training hyper-parameters (``train`` of configs/s2.json: the shared AdamW ones, then the LoRA
    rank and these)."""

    lora_rank: int = DEFAULT_LORA_RANK
    fp16_run: bool = True  # autocast on CUDA (fp16 + loss scaling, or bf16 where supported)
    grad_ckpt: bool = False  # the reference's (hidden) gradient checkpointing of the DiT blocks


@dataclass
class S2V3TrainConfig(loop.LoopConfig):
    """Everything a v3/v4 LoRA run needs (the common and loop options, then these); the CLI fills it
    (``config_from_args``), tests build it directly."""

    OPTIONAL_PATHS = ("pretrained_dir", "pretrained_s2g")

    epochs: int = DEFAULT_EPOCHS
    save_every: int = DEFAULT_SAVE_EVERY
    pretrained_s2g: Path | None = None  # override the official file under pretrained_dir
    version: str = DEFAULT_VERSION
    lora_rank: int = DEFAULT_LORA_RANK
    grad_ckpt: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.version not in V3V4_VERSIONS:
            raise TrainingError(
                f"unknown version {self.version!r}: the LoRA trainer trains {' or '.join(V3V4_VERSIONS)} "
                "(v1/v2/v2Pro/v2ProPlus: python -m gpt_sovits.train.s2)"
            )
        if self.lora_rank not in LORA_RANKS:
            raise TrainingError(
                f"LoRA rank {self.lora_rank} is not offered: use one of {', '.join(map(str, LORA_RANKS))}"
            )

    @property
    def run_path(self) -> Path:
        """The run folder: config.json, metrics.jsonl, checkpoint.pt, log.txt."""
        return self.exp_dir / RUN_FOLDER

    def recipe(self) -> S2V3Recipe:
        return S2V3Recipe(
            learning_rate=self.lr,
            lora_rank=self.lora_rank,
            fp16_run=not self.no_amp,
            grad_ckpt=self.grad_ckpt,
        )


class PretrainedModelError(TrainingError):
    """The pretrained v3/v4 generator is missing, unreadable, a LoRA export or of the other version."""


# ----------------------------------------------------------------------------------------- models


def _read_md5_head(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.md5(f.read(8192)).hexdigest()


def load_pretrained(
    s2g: str | Path, version: str, model_dir: str | Path | None = None
) -> tuple[SynthesizerTrnV3, S2V3Config]:
    """The pretrained v3/v4 generator in fp32 on CPU, checked to be of `version` where the file tells.

    Official files are told apart by the MD5 of their head, ours by their config; a file saying neither
    (a bare state dict: v3 and v4 have the same tensors) is taken as `version`."""
    s2g = Path(s2g)
    if not s2g.is_file():
        hint = loop.missing_pretrained_hint(
            f"sovits-{version}", Path(model_dir) if model_dir is not None else None
        )
        raise PretrainedModelError(f"pretrained S2 {version} generator not found: {s2g}.{hint}")
    try:
        raw = read_checkpoint(s2g, allow_versions=tuple(LORA_HEADERS))
        detected, is_lora = sovits_v3_version(s2g, raw)
    except CheckpointError as e:
        raise PretrainedModelError(f"pretrained S2 {version} generator unusable: {e}") from None
    if is_lora:
        raise PretrainedModelError(
            f"{s2g} is a LoRA export; LoRA training starts from the pretrained {version} generator "
            f"({V3V4_FILES[version][0]})"
        )
    content = raw.content if isinstance(raw.content, Mapping) else {}
    config = content.get("config") if isinstance(content.get("config"), Mapping) else {}
    stated = (config.get("model") or {}).get("version") if isinstance(config.get("model"), Mapping) else None
    told = PRETRAINED_MD5.get(_read_md5_head(s2g)) or (stated if stated in V3V4_VERSIONS else None)
    if told is not None and told != version:
        raise PretrainedModelError(
            f"{s2g} is the SoVITS {told} generator but version {version} was asked for; "
            f"use the {version} pretrained file or train with --version {told}"
        )
    try:
        model, cfg = load_sovits_v3(s2g, precision="fp32", version=version)
    except CheckpointError as e:
        raise PretrainedModelError(f"pretrained S2 {version} generator unusable: {e}") from None
    return model, cfg


def lora_config(rank: int) -> Any:
    """The reference's LoraConfig (s2_train_v3_lora.py, inference_webui.py, TTS.py all use this one)."""
    from peft import LoraConfig  # a few seconds to import: only when a run starts

    return LoraConfig(target_modules=list(LORA_TARGETS), r=rank, lora_alpha=rank, init_lora_weights=True)


def add_lora(net_g: SynthesizerTrnV3, rank: int) -> list[str]:
    """Freeze what the reference freezes and wrap the CFM with peft adapters; returns the frozen names.

    The content path and text encoder (``frozen_modules``: the reference's set_no_grad) get no
    gradient; ``get_peft_model`` freezes every CFM weight and adds lora_A (kaiming, from the global
    RNG) / lora_B (zeros) on to_q/to_k/to_v/to_out.0."""
    from peft import get_peft_model

    for module in net_g.frozen_modules():
        module.requires_grad_(False)
    net_g.cfm = get_peft_model(net_g.cfm, lora_config(rank))  # type: ignore[assignment]
    return sorted(name for name, p in net_g.named_parameters() if not p.requires_grad)


def trainable_state(net_g: nn.Module, frozen: Iterable[str]) -> dict[str, torch.Tensor]:
    """The tensors a LoRA export and the checkpoint keep: the state dict minus the frozen parameters
    (so the trained parameters and every buffer, as the reference's ``key not in no_grad_names``)."""
    skip = set(frozen)
    net = net_g.module if isinstance(getattr(net_g, "module", None), nn.Module) else net_g
    return {k: v for k, v in net.state_dict().items() if k not in skip}


def ref_path_in_fp32(net_g: SynthesizerTrnV3, device_type: str) -> None:
    """Run ref_enc, ssl_proj, the quantizer and enc_p with autocast off, as the reference does."""
    loop.forward_in_fp32(net_g, FP32_MODULES, device_type)


def make_optimizer(net_g: nn.Module, recipe: S2V3Recipe) -> torch.optim.AdamW:
    """One AdamW over every parameter that trains (the reference: ``filter(requires_grad, ...)``)."""
    params = [p for p in net_g.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, recipe.learning_rate, **recipe.adamw_kwargs())


def make_scheduler(opt: torch.optim.Optimizer, recipe: S2V3Recipe) -> torch.optim.lr_scheduler.ExponentialLR:
    """Per-epoch exponential decay, already stepped once: the reference's first epoch trains at lr x gamma."""
    return loop.exponential_lr(opt, recipe.lr_decay)


def export_hparams(cfg: S2V3Config, recipe: S2V3Recipe, extra_train: Mapping[str, Any], name: str) -> dict:
    """The official nested hparams of an export: configs/s2.json's layout (what the reference's loaders
    read: data.filter_length, train.segment_size, model.* for SynthesizerTrnV3(**hps.model)), the
    pretrained file's own config over it, then this run's train values, name and version."""
    base = S2Config.for_version("v2").to_hparams()
    own = cfg.hparams or {}
    merged: dict[str, Any] = {**base, **{k: v for k, v in own.items() if k not in ("train", "data", "model")}}
    for section in ("train", "data", "model"):
        merged[section] = {**base[section], **dict(own.get(section) or {})}
    merged["train"].update({**recipe.to_train_hparams(), **extra_train})
    merged["name"] = name
    merged["version"] = cfg.version
    return merged


# ----------------------------------------------------------------------------------------- one step


def train_step(
    net_g: nn.Module,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    batch: S2V3Batch,
    amp_dtype: torch.dtype | None = None,
    grad_ckpt: bool = False,
) -> dict[str, float]:
    """One optimizer step of the CFM loss on `batch` (already on the device); returns the loss and norm."""
    device = batch.spec.device
    with loop.autocast_context(device, amp_dtype):
        loss = net_g(
            batch.ssl, batch.spec, batch.mel, batch.spec_lengths, batch.text, batch.text_lengths,
            batch.mel_lengths, use_grad_ckpt=grad_ckpt,
        )  # fmt: skip
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    grad_norm = loop.grad_norm(p for group in opt.param_groups for p in group["params"])
    scaler.step(opt)
    scaler.update()
    return {"loss/g/total": float(loss.detach()), "grad_norm_g": grad_norm}


# ----------------------------------------------------------------------------------------- export


def export_name(exp_name: str, epoch: int | str, step: int | str, rank: int | str) -> str:
    """The reference's LoRA weight file name: ``<exp>_e<epoch>_s<step>_l<rank>.pth`` (epoch 1-based)."""
    return f"{exp_name}_e{epoch}_s{step}_l{rank}.pth"


def export_lora(
    net_g: nn.Module,
    frozen: Iterable[str],
    cfg: S2V3Config,
    rank: int,
    weights_dir: str | Path,
    exp_name: str,
    epoch: int,
    step: int,
    keep: str = "all",
) -> Path:
    """Write the LoRA export (the trained tensors in fp16, config, info, lora_rank, header 03/04)."""
    weight = trainable_state(net_g, frozen)
    path = Path(weights_dir) / export_name(exp_name, epoch, step, rank)
    info = f"{epoch}epoch_{step}iteration"
    size = sum(v.numel() * 2 for v in weight.values())
    return export_weights(
        path,
        lambda p: save_sovits_v3_lora(weight, cfg, rank, p, info=info),
        estimate=size,
        keep=keep,
        older_exports=export_name_pattern(export_name(exp_name, "{epoch}", "{step}", rank)),
    )


# ----------------------------------------------------------------------------------------- the loop


class S2V3TrainResult(loop.TrainResult):
    """What a v3/v4 LoRA run did: its exports, where it stands, whether it was stopped, the data report."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m gpt_sovits.train.s2v3",
        description="LoRA fine-tuning of S2 v3/v4 (the CFM) on a formatted experiment, as the reference's "
        "1Ba step for v3/v4 (s2_train_v3_lora.py).",
    )
    add_common_args(p, epochs=DEFAULT_EPOCHS, save_every=DEFAULT_SAVE_EVERY)
    g = p.add_argument_group("S2 v3/v4 options")
    g.add_argument(
        "--version",
        choices=V3V4_VERSIONS,
        default=DEFAULT_VERSION,
        help=f"model version (default {DEFAULT_VERSION})",
    )
    g.add_argument(
        "--lora-rank",
        type=int,
        choices=LORA_RANKS,
        default=DEFAULT_LORA_RANK,
        help=f"LoRA rank of the DiT's attention adapters (default {DEFAULT_LORA_RANK})",
    )
    g.add_argument(
        "--pretrained-s2g", help="pretrained generator (default: the official name under --pretrained-dir)"
    )
    g.add_argument("--grad-ckpt", action="store_true", help="gradient checkpointing of the DiT (less memory)")
    loop.add_loop_args(g)
    return p


def _pretrained_file(cfg: S2V3TrainConfig) -> Path:
    if cfg.pretrained_s2g:
        return cfg.pretrained_s2g
    if cfg.pretrained_dir is None:
        raise PretrainedModelError("give --pretrained-dir (or --pretrained-s2g)")
    return cfg.pretrained_dir / V3V4_FILES[cfg.version][0]  # the registry's s2Gv3.pth / s2Gv4.pth


def _pick_batch_size(device: torch.device, net_g: nn.Module, trained: int) -> int:
    n = sum(p.numel() for p in net_g.parameters())
    return default_batch_size(device, fixed_bytes=4 * n + 12 * trained, per_item_bytes=PER_ITEM_BYTES, hi=32)


def train(
    cfg: S2V3TrainConfig,
    events: EventWriter | None = None,
    should_stop: Callable[[], bool] = never_stop,
) -> S2V3TrainResult:
    """Run (or resume) v3/v4 LoRA fine-tuning as configured by ``cfg``, until done, ``cfg.max_steps`` or
    ``should_stop()`` (checked before every step; the state is saved). Raises a UserError (TrainingError,
    S2DataError...) with a message for a person on bad input, before anything is trained."""
    return loop.run_distributed(cfg, events or EventWriter(None), should_stop, _train)


@dataclass
class _Run(loop.EpochRun[S2V3TrainConfig]):
    """One v3/v4 LoRA run in progress (the loop's part in EpochRun); one step is one optimizer step."""

    PROGRESS_LOSS = ("cfm", "loss/g/total")

    model_cfg: S2V3Config  # with the export's hparams
    recipe: S2V3Recipe
    net_g: SynthesizerTrnV3
    frozen: list[str]
    opt: torch.optim.AdamW
    sched: torch.optim.lr_scheduler.ExponentialLR
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None

    def train_batch(self, batch: S2V3Batch) -> dict[str, float]:
        return train_step(self.g_model, self.opt, self.scaler, batch, self.amp_dtype, self.recipe.grad_ckpt)

    def step_schedulers(self) -> None:
        self.sched.step()

    def current_lr(self) -> float:
        return self.opt.param_groups[0]["lr"]

    def save_state(self) -> None:
        """checkpoint.pt: the trained tensors (fp32), optimizer, scheduler, scaler, position, RNG."""
        payload = training_state(
            model={}, optimizer=self.opt, scheduler=self.sched, scaler=self.scaler, progress=self.prog,
            config=self.config,
        )  # fmt: skip
        payload["model"] = {
            "G": {k: v.detach().cpu() for k, v in trainable_state(self.net_g, self.frozen).items()}
        }
        self.run.save(payload)
        self.timer.reset()

    def write_export(self, epoch_label: int) -> Path:
        """The LoRA export."""
        cfg = self.cfg
        return export_lora(
            self.net_g, self.frozen, self.model_cfg, cfg.lora_rank, cfg.weights_dir, cfg.exp_name,
            epoch_label, self.prog.step, cfg.keep_exports,
        )  # fmt: skip


def _check_resumable(state: Mapping[str, Any], cfg: S2V3TrainConfig, s2g_md5: str) -> None:
    """A checkpoint of another kind of run (v2 S2, another version, rank or pretrained file) is refused
    with the way out, before its tensors are loaded."""
    saved = state.get("config") or {}
    asked = {"trainer": "s2v3", "version": cfg.version, "lora_rank": cfg.lora_rank, "pretrained_md5": s2g_md5}
    names = {
        "trainer": "trainer",
        "version": "version",
        "lora_rank": "LoRA rank",
        "pretrained_md5": "pretrained",
    }
    for key, want in asked.items():
        if saved.get(key) != want:
            was = saved.get(key, "v1/v2/v2Pro S2" if key == "trainer" else "unknown")
            if key == "pretrained_md5":
                what = f"another pretrained generator than {saved.get('pretrained_s2g', '?')}"
            else:
                what = f"{names[key]} {was}, not {want}"
            raise TrainingError(
                f"the run in {cfg.run_path} was started with {what}; run with --fresh to start over "
                "(its state is moved to .trash), or train with the settings it was started with"
            )


def _restore(state: Mapping[str, Any], s: _Run) -> TrainProgress:
    """Load the trained tensors, optimizer, scheduler, scaler and RNG of a checkpoint."""
    saved = (state.get("model") or {}).get("G") or {}
    want = trainable_state(s.net_g, s.frozen)
    if set(saved) != set(want):
        extra, lacking = sorted(set(saved) - set(want)), sorted(set(want) - set(saved))
        raise TrainingError(
            f"the checkpoint in {s.cfg.run_path} does not fit this model (unexpected {extra[:3]}, missing "
            f"{lacking[:3]}); run with --fresh to start over"
        )
    try:
        s.net_g.load_state_dict(saved, strict=False)
    except RuntimeError as e:
        raise TrainingError(
            f"the checkpoint in {s.cfg.run_path} does not fit this model ({e}); run with --fresh"
        ) from None
    prog = restore_training_state(state, model={}, optimizer=s.opt, scheduler=s.sched, scaler=s.scaler)
    s.run.log(
        f"resumed at epoch {prog.epoch + 1}, step {prog.step} (batch {prog.batch_in_epoch} of the epoch)"
    )
    return prog


def _train(
    cfg: S2V3TrainConfig, events: EventWriter, should_stop: Callable[[], bool], dist: DistInfo
) -> S2V3TrainResult:
    run = RunDir(cfg.run_path, writer=dist.is_main)
    seed_everything(cfg.seed + dist.rank)

    # Everything a person can fix is checked before any training starts.
    s2g = _pretrained_file(cfg)
    net_g, model_cfg = load_pretrained(s2g, cfg.version, cfg.pretrained_dir)
    s2g_md5 = _read_md5_head(s2g)
    recipe = cfg.recipe()
    items, report = scan_experiment_v3(cfg.exp_dir, cfg.version)
    run.log(f"S2 {cfg.version} data: {report.summary()}")
    frozen = add_lora(net_g, recipe.lora_rank)  # the adapters' init draws from the seeded global RNG
    trained = trainable_state(net_g, frozen)
    n_trained = sum(p.numel() for p in net_g.parameters() if p.requires_grad)
    if dist.is_main:
        ensure_free_space(run.path, 3 * estimate_bytes(trained), "checkpoints")
        ensure_free_space(cfg.weights_dir, sum(v.numel() * 2 for v in trained.values()), "exported weights")
    net_g.to(dist.device).train()
    for module in net_g.frozen_modules():
        module.eval()
    opt = make_optimizer(net_g, recipe)
    sched = make_scheduler(opt, recipe)
    amp_dtype = autocast_dtype(dist.device) if recipe.fp16_run else None
    if amp_dtype is not None:
        ref_path_in_fp32(net_g, dist.device.type)
    scaler = make_grad_scaler(dist.device, enabled=recipe.fp16_run)

    state = run.prepare(fresh=cfg.fresh)
    if state is not None:
        _check_resumable(state, cfg, s2g_md5)
    # A resumed run keeps its batch size unless one is given: the epoch's batches must be the same.
    resumed_bs = loop.resumed_batch_size(state)
    batch_size = cfg.batch_size or resumed_bs or _pick_batch_size(dist.device, net_g, n_trained)
    dataset = S2V3Dataset(cfg.exp_dir, items, report.repeats, cfg.version)
    collate = partial(collate_s2v3, version=cfg.version)
    loader, sampler = loop.make_loader(
        cfg, dataset, batch_size, dist, collate, boundaries=V3_BUCKET_BOUNDARIES
    )

    config = {
        "trainer": "s2v3",
        "version": cfg.version,
        "lora_rank": cfg.lora_rank,
        "args": jsonable(cfg),
        "batch_size": batch_size,
        "recipe": recipe.to_train_hparams(),
        "model": model_cfg.to_hparams()["model"],
        "pretrained_s2g": str(s2g),
        "pretrained_md5": s2g_md5,
        "device": str(dist.device),
        "amp_dtype": str(amp_dtype) if amp_dtype else None,
        "world_size": dist.world_size,
        "steps_per_epoch": len(sampler),
        "trained_parameters": n_trained,
        "frozen": ["ssl_proj", "quantizer", "enc_p", "cfm (all but the LoRA adapters)"],
        "data": report.to_dict(),
    }
    extra_train = {"epochs": cfg.epochs, "batch_size": batch_size, "save_every_epoch": cfg.save_every}
    export_cfg = replace(model_cfg, hparams=export_hparams(model_cfg, recipe, extra_train, cfg.exp_name))

    s = _Run(
        cfg=cfg, dist=dist, run=run, model_cfg=export_cfg, recipe=recipe, net_g=net_g,
        g_model=wrap_ddp(net_g, dist, find_unused_parameters=True),
        frozen=frozen, opt=opt, sched=sched, scaler=scaler, amp_dtype=amp_dtype, prog=TrainProgress(),
        config=config,
        reporter=ProgressReporter(events, "s2", cfg.epochs * len(sampler), enabled=dist.is_main),
        timer=CheckpointTimer(cfg.checkpoint_minutes),
        steps_per_epoch=len(sampler),
    )  # fmt: skip
    if state is not None:
        s.prog = _restore(state, s)
        s.reporter.start_step = s.prog.step
    state = None  # the loaded copy of every tensor is no longer needed
    barrier(dist)
    if s.prog.batch_in_epoch >= len(sampler):  # the batch size changed since; start the next epoch
        s.prog.batch_in_epoch = 0
    run.write_config(config)
    run.log(
        f"S2 {cfg.version} LoRA (rank {cfg.lora_rank}, {n_trained} trained parameters) on {dist.device} "
        f"({amp_dtype or 'fp32'}), batch {batch_size}, {s.steps_per_epoch} steps per epoch, "
        f"epochs {s.prog.epoch + 1}..{cfg.epochs}"
    )
    return loop.train_to_end(s, loader, sampler, should_stop, report.to_dict(), S2V3TrainResult)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gpt_sovits.train.s2v3``: flags (or ``--config``) -> S2V3TrainConfig -> train -> exit code."""
    return loop.trainer_main(
        build_parser(), S2V3TrainConfig, train, argv, lambda args: f"S2 {args.version} LoRA training"
    )


if __name__ == "__main__":
    sys.exit(main())
