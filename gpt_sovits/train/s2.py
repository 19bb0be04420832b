"""Fine-tune S2 (SoVITS v1/v2/v2Pro/v2ProPlus) on a formatted experiment, with the reference's recipe.

    python -m gpt_sovits.train.s2 --exp-dir D --exp-name N --pretrained-dir P --weights-dir W \\
        --epochs 8 --batch-size 0 --save-every 4 [--version v2] [--device auto] [--seed 1234] [--fresh]

The recipe is the reference's ``s2_train.py`` with ``configs/s2.json`` (v2Pro/v2ProPlus:
``s2v2Pro.json`` / ``s2v2ProPlus.json``, whose train sections are the same; their model sizes come
with the pretrained generator):

- generator and multi-period discriminator initialised from the pretrained ``s2G``/``s2D``;
- discriminator step: LSGAN loss; generator step: adversarial + feature matching + 45 x L1 of the
  128-bin log mel of a random 20480-sample slice + KL x 1 + the quantizer's commitment loss;
- two AdamW (betas 0.8/0.99, eps 1e-9, torch's default weight decay 0.01, which the reference keeps),
  lr 1e-4; ``enc_p.text_embedding``, ``enc_p.encoder_text`` and ``enc_p.mrte`` at lr x
  text_low_lr_rate (0.4); ExponentialLR(0.999875) stepped per epoch, and (as the reference, which
  steps the scheduler once before the first epoch) epoch e (1-based) trains at lr x 0.999875^e;
- the content path (``ssl_proj`` + quantizer) frozen (``freeze_quantizer``): no gradient, no update;
- gradient norms logged, not clipped (the reference's ``clip_grad_value_(..., None)``);
- autocast (fp16 with loss scaling, or bf16) on CUDA; fp32 elsewhere;
- v2Pro/v2ProPlus: the generator also takes each clip's speaker-verification embedding
  (``<exp>/7-sv_cn/<name>.pt``, written by formatting), the discriminator has periods
  2, 3, 5, 7, 11, 17, 23, and exports carry the reference's ``05``/``06`` version header.

Data comes from ``gpt_sovits.data.s2_dataset`` (filters, repetition and length buckets as the reference). The run
folder ``<exp>/s2_train`` holds config.json, metrics.jsonl, checkpoint.pt (G, D, both optimizers and
schedulers, the scaler, step/epoch/batch position, RNG) and log.txt (``gpt_sovits.train.run_dir``); a re-run
resumes unless ``--fresh``. Every ``--save-every`` epochs and at the end the generator is exported with
``save_sovits_weights`` to ``<weights-dir>/<exp>_e<epoch>_s<step>.pth`` and a ``saved`` event is emitted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.jobs import EventWriter, never_stop
from gpt_sovits.data.s2_dataset import (
    S2Batch,
    S2Dataset,
    collate_s2,
    scan_experiment,
)
from gpt_sovits.device import autocast_dtype, make_grad_scaler
from gpt_sovits.models.commons import slice_segments
from gpt_sovits.models.features import mel_spectrogram, spec_to_mel
from gpt_sovits.models.s2 import SUPPORTED_VERSIONS, MultiPeriodDiscriminator, S2Config, SynthesizerTrn
from gpt_sovits.models.weights import (
    CheckpointError,
    load_sovits,
    load_sovits_discriminator,
    save_sovits_weights,
)
from gpt_sovits.train import loop
from gpt_sovits.train.batching import default_batch_size
from gpt_sovits.train.cli import add_common_args, jsonable
from gpt_sovits.train.distributed import DistInfo, barrier, wrap_ddp
from gpt_sovits.train.errors import TrainingError
from gpt_sovits.train.losses import discriminator_loss, feature_loss, generator_loss, kl_loss, mel_l1_loss
from gpt_sovits.train.progress import ProgressReporter
from gpt_sovits.train.run_dir import RunDir, export_name_pattern, export_weights, half_size
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

RUN_FOLDER = "s2_train"
DEFAULT_EPOCHS = 8  # the reference web UI's defaults for v1/v2
DEFAULT_SAVE_EVERY = 4
LOW_LR_MODULES = ("enc_p.text_embedding", "enc_p.encoder_text", "enc_p.mrte")
FROZEN_MODULES = ("ssl_proj", "quantizer")  # the content path that produced the semantic tokens
# Memory estimate for the automatic batch size: the reference web UI picks VRAM_GB // 2 per GPU.
PER_ITEM_BYTES = int(1.5 * 1024**3)


@dataclass
class S2Recipe(loop.AdamWRecipe):
    """The training hyper-parameters (the ``train`` section of the reference's ``configs/s2.json``):
    the shared AdamW ones (lr 1e-4, betas 0.8/0.99, eps 1e-9, weight decay 0.01, decay 0.999875), then these."""

    segment_size: int = 20480
    c_mel: float = 45.0
    c_kl: float = 1.0
    text_low_lr_rate: float = 0.4
    fp16_run: bool = True  # autocast on CUDA (fp16 + loss scaling, or bf16 where supported)


@dataclass
class S2TrainConfig(loop.LoopConfig):
    """Everything an S2 run needs (the common and loop options, then these); the CLI fills it
    (``config_from_args``), tests build it directly."""

    OPTIONAL_PATHS = ("pretrained_dir", "pretrained_s2g", "pretrained_s2d")

    epochs: int = DEFAULT_EPOCHS
    save_every: int = DEFAULT_SAVE_EVERY
    pretrained_s2g: Path | None = None  # override the official files under pretrained_dir
    pretrained_s2d: Path | None = None
    version: str | None = None  # None: v2 files, the generator's own version
    text_low_lr_rate: float = 0.4
    segment_size: int = 20480

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.version not in (None, *SUPPORTED_VERSIONS):
            raise TrainingError(
                f"unknown version {self.version!r}: use one of {', '.join(SUPPORTED_VERSIONS)}"
            )

    @property
    def run_path(self) -> Path:
        """The run folder: config.json, metrics.jsonl, checkpoint.pt, log.txt."""
        return self.exp_dir / RUN_FOLDER

    def recipe(self) -> S2Recipe:
        return S2Recipe(
            learning_rate=self.lr,
            segment_size=self.segment_size,
            text_low_lr_rate=self.text_low_lr_rate,
            fp16_run=not self.no_amp,
        )


# ----------------------------------------------------------------------------------------- models


class PretrainedModelError(TrainingError):
    """A pretrained G/D file is missing, unreadable or of another version than asked for."""


def _missing_pretrained(path: Path, what: str, model_name: str, model_dir: Path | None) -> str:
    return f"pretrained {what} not found: {path}.{loop.missing_pretrained_hint(model_name, model_dir)}"


def load_pretrained(
    s2g: str | Path,
    s2d: str | Path,
    version: str | None = None,
    model_dir: str | Path | None = None,
) -> tuple[SynthesizerTrn, MultiPeriodDiscriminator, S2Config]:
    """The trainable generator (with enc_q) and discriminator, initialised from pretrained files, on CPU.

    The generator's architecture comes from its file's config when it has one, else its version's
    official config; its version as `load_sovits` decides it (header, pretrained MD5, tensors). ``version``
    given and different raises; the discriminator must be the same version's (8 sub-discriminators
    for v2Pro/v2ProPlus, 6 for v1/v2).
    A generator without enc_q (exported weights) is accepted: enc_q starts random, as the
    reference's non-strict load leaves it.
    """
    s2g, s2d = Path(s2g), Path(s2d)
    md = Path(model_dir) if model_dir is not None else None
    tag = version or "v2"
    if not s2g.is_file():
        raise PretrainedModelError(_missing_pretrained(s2g, "S2 generator", f"sovits-{tag}", md))
    if not s2d.is_file():
        raise PretrainedModelError(_missing_pretrained(s2d, "S2 discriminator", f"sovits-d-{tag}", md))
    try:
        loaded, cfg = load_sovits(s2g, precision="fp32")
    except CheckpointError as e:
        raise PretrainedModelError(f"pretrained S2 generator unusable: {e}") from None
    if version is not None and cfg.version != version:
        raise PretrainedModelError(
            f"{s2g} is a SoVITS {cfg.version} generator but version {version} was asked for; "
            f"use the {version} pretrained files or train with --version {cfg.version}"
        )
    try:
        net_d = load_sovits_discriminator(s2d, version=cfg.version)
    except CheckpointError as e:
        raise PretrainedModelError(f"pretrained S2 discriminator unusable: {e}") from None
    cfg.freeze_quantizer = True
    net_g = SynthesizerTrn(cfg, with_posterior=True)
    missing, unexpected = net_g.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or any(not k.startswith("enc_q.") for k in missing):
        raise PretrainedModelError(
            f"{s2g} does not fit the S2 model: missing {missing}, unexpected {unexpected}"
        )
    if missing:
        logger.warning("%s has no enc_q (exported weights?): the posterior encoder starts random", s2g)
    return net_g, net_d, cfg


def freeze_content_path(net_g: SynthesizerTrn) -> list[str]:
    """Freeze ssl_proj and the quantizer (they define the semantic tokens S1 predicts); returns their names."""
    names = []
    for mod_name in FROZEN_MODULES:
        for p_name, p in getattr(net_g, mod_name).named_parameters():
            p.requires_grad_(False)
            names.append(f"{mod_name}.{p_name}")
    return names


def content_path_in_fp32(net_g: SynthesizerTrn, device_type: str) -> None:
    """Run ssl_proj and the quantizer with autocast off, as the reference does (``autocast(enabled=False)``
    around them in ``SynthesizerTrn.forward``): under fp16/bf16 the nearest-codebook search could pick
    other codes than the fp32 ones S1 was trained on. Only these two modules' ``forward`` are wrapped."""
    loop.forward_in_fp32(net_g, FROZEN_MODULES, device_type)


def low_lr_parameters(net_g: SynthesizerTrn) -> list[nn.Parameter]:
    """The text-side parameters the reference trains at lr x text_low_lr_rate."""
    return [p for name in LOW_LR_MODULES for p in net_g.get_submodule(name).parameters()]


def make_optimizers(
    net_g: SynthesizerTrn, net_d: MultiPeriodDiscriminator, recipe: S2Recipe
) -> tuple[torch.optim.AdamW, torch.optim.AdamW]:
    """AdamW for G (group 0: everything trainable but the text modules; group 1: text modules at the
    low rate) and for D."""
    low = low_lr_parameters(net_g)
    low_ids = {id(p) for p in low}
    base = [p for p in net_g.parameters() if p.requires_grad and id(p) not in low_ids]
    kw = recipe.adamw_kwargs()
    opt_g = torch.optim.AdamW(
        [
            {"params": base, "lr": recipe.learning_rate},
            {"params": low, "lr": recipe.learning_rate * recipe.text_low_lr_rate},
        ],
        recipe.learning_rate,
        **kw,
    )
    opt_d = torch.optim.AdamW(net_d.parameters(), recipe.learning_rate, **kw)
    return opt_g, opt_d


def make_schedulers(
    opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, recipe: S2Recipe
) -> tuple[torch.optim.lr_scheduler.ExponentialLR, torch.optim.lr_scheduler.ExponentialLR]:
    """Per-epoch exponential decay, already stepped once: the reference's first epoch trains at lr x gamma."""
    return loop.exponential_lr(opt_g, recipe.lr_decay), loop.exponential_lr(opt_d, recipe.lr_decay)


# ----------------------------------------------------------------------------------------- one step


def train_step(
    net_g: nn.Module,
    net_d: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    batch: S2Batch,
    cfg: S2Config,
    recipe: S2Recipe,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """One discriminator step then one generator step on `batch` (already on the device); returns losses."""
    device = batch.spec.device
    amp = loop.autocast_context(device, amp_dtype)
    hop, seg = cfg.hop_length, cfg.segment_size // cfg.hop_length
    mel_kw = {"n_fft": cfg.filter_length, "n_mels": cfg.n_mel_channels, "sr": cfg.sampling_rate}
    mel_kw.update(fmin=cfg.mel_fmin, fmax=cfg.mel_fmax)
    with amp:
        out = net_g(
            batch.ssl, batch.spec, batch.spec_lengths, batch.text, batch.text_lengths, sv_emb=batch.sv_emb
        )
    y_hat = out.wav_slice  # (B, 1, seg * hop)
    with torch.no_grad():
        y_mel = slice_segments(spec_to_mel(batch.spec.float(), **mel_kw), out.ids_slice, seg)  # (B, 128, seg)
        y = slice_segments(batch.wav, out.ids_slice * hop, seg * hop)  # (B, 1, seg * hop)
    # The generated slice's mel in fp32 (stft under fp16/bf16 autocast is unsupported or lossy).
    y_hat_mel = mel_spectrogram(
        y_hat.squeeze(1).float(), hop=hop, win=cfg.win_length, **mel_kw
    )  # (B, 128, seg)

    # Discriminator.
    with amp:
        d_real, d_fake, _, _ = net_d(y, y_hat.detach())
    loss_d, _, _ = discriminator_loss(d_real, d_fake)
    opt_d.zero_grad(set_to_none=True)
    scaler.scale(loss_d).backward()
    scaler.unscale_(opt_d)
    grad_norm_d = loop.grad_norm(net_d.parameters())
    scaler.step(opt_d)

    # Generator.
    with amp:
        _, d_fake, fmap_r, fmap_g = net_d(y, y_hat)
    loss_mel = mel_l1_loss(y_mel, y_hat_mel) * recipe.c_mel
    loss_kl = kl_loss(out.z_p, out.logs_q, out.m_p, out.logs_p, out.y_mask) * recipe.c_kl
    loss_fm = feature_loss(fmap_r, fmap_g).to(device)
    loss_gen, _ = generator_loss(d_fake)
    commit = out.commit_loss.float().to(device)
    loss_g = loss_gen + loss_fm + loss_mel + commit + loss_kl
    opt_g.zero_grad(set_to_none=True)
    scaler.scale(loss_g).backward()
    scaler.unscale_(opt_g)
    grad_norm_g = loop.grad_norm(net_g.parameters())
    scaler.step(opt_g)
    scaler.update()
    values = {
        "loss/d/total": loss_d,
        "loss/g/total": loss_g,
        "loss/g/mel": loss_mel,
        "loss/g/kl": loss_kl,
        "loss/g/fm": loss_fm,
        "loss/g/gen": loss_gen,
        "loss/g/kl_ssl": commit,
    }
    out_values = {k: float(v.detach()) for k, v in values.items()}
    out_values.update(grad_norm_g=grad_norm_g, grad_norm_d=grad_norm_d)
    return out_values


# ----------------------------------------------------------------------------------------- export


def export_name(exp_name: str, epoch: int | str, step: int | str) -> str:
    """The reference's weight file name: ``<exp>_e<epoch>_s<step>.pth`` (epoch 1-based)."""
    return f"{exp_name}_e{epoch}_s{step}.pth"


def export_generator(
    net_g: SynthesizerTrn,
    cfg: S2Config,
    weights_dir: str | Path,
    exp_name: str,
    epoch: int,
    step: int,
    keep: str = "all",
) -> Path:
    """Write the small inference weights (fp16, no enc_q, config, info) in the official layout."""
    path = Path(weights_dir) / export_name(exp_name, epoch, step)
    info = f"{epoch}epoch_{step}iteration"
    return export_weights(
        path,
        lambda p: save_sovits_weights(net_g, cfg, p, info=info),
        estimate=half_size(net_g),
        keep=keep,
        older_exports=export_name_pattern(export_name(exp_name, "{epoch}", "{step}")),
    )


# ----------------------------------------------------------------------------------------- the loop


class S2TrainResult(loop.TrainResult):
    """What an S2 run did: its exports, where it stands, whether it was stopped, the data report."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m gpt_sovits.train.s2",
        description="Fine-tune S2 (SoVITS v1/v2/v2Pro/v2ProPlus) on a formatted experiment, as the "
        "reference's 1Ba step.",
    )
    add_common_args(p, epochs=DEFAULT_EPOCHS, save_every=DEFAULT_SAVE_EVERY)
    g = p.add_argument_group("S2 options")
    g.add_argument("--version", choices=SUPPORTED_VERSIONS, default=None, help="model version (default: v2)")
    g.add_argument(
        "--pretrained-s2g", help="pretrained generator (default: the official name under --pretrained-dir)"
    )
    g.add_argument("--pretrained-s2d", help="pretrained discriminator (default: the official name)")
    g.add_argument(
        "--text-low-lr-rate", type=float, default=0.4, help="lr factor of the text modules (default 0.4)"
    )
    g.add_argument(
        "--segment-size", type=int, default=20480, help="samples per training slice (default 20480)"
    )
    loop.add_loop_args(g)
    return p


def _pretrained_files(cfg: S2TrainConfig) -> tuple[Path, Path, Path | None]:
    model_dir = cfg.pretrained_dir
    if cfg.pretrained_s2g and cfg.pretrained_s2d:
        return cfg.pretrained_s2g, cfg.pretrained_s2d, model_dir
    if model_dir is None:
        raise PretrainedModelError("give --pretrained-dir (or both --pretrained-s2g and --pretrained-s2d)")
    from gpt_sovits.pretrained import pretrained_paths

    paths = pretrained_paths(model_dir, cfg.version or "v2")
    return cfg.pretrained_s2g or paths.s2g, cfg.pretrained_s2d or paths.s2d, model_dir


def _checkpoint_bytes(net_g: nn.Module, net_d: nn.Module) -> int:
    """Full state size: fp32 weights + two Adam moments for G and D."""
    n = sum(p.numel() for p in net_g.parameters()) + sum(p.numel() for p in net_d.parameters())
    return estimate_bytes(net_g.state_dict()) + estimate_bytes(net_d.state_dict()) + 8 * n


def _pick_batch_size(device: torch.device, net_g: nn.Module, net_d: nn.Module) -> int:
    n = sum(p.numel() for p in net_g.parameters()) + sum(p.numel() for p in net_d.parameters())
    return default_batch_size(device, fixed_bytes=16 * n, per_item_bytes=PER_ITEM_BYTES, hi=32)


def train(
    cfg: S2TrainConfig,
    events: EventWriter | None = None,
    should_stop: Callable[[], bool] = never_stop,
) -> S2TrainResult:
    """Run (or resume) S2 fine-tuning as configured by ``cfg``, until done, ``cfg.max_steps`` or
    ``should_stop()`` (checked before every step; the state is saved). Raises a UserError (TrainingError,
    S2DataError...) with a message for a person on bad input, before anything is trained."""
    return loop.run_distributed(cfg, events or EventWriter(None), should_stop, _train)


@dataclass
class _S2Models:
    """The generator and discriminator with their optimisers, schedulers and loss scaler."""

    net_g: SynthesizerTrn
    net_d: MultiPeriodDiscriminator
    opt_g: torch.optim.AdamW
    opt_d: torch.optim.AdamW
    sched_g: torch.optim.lr_scheduler.ExponentialLR
    sched_d: torch.optim.lr_scheduler.ExponentialLR
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None

    def parts(self) -> dict[str, Any]:
        """The keyword arguments of training_state and restore_training_state."""
        return {
            "model": {"G": self.net_g, "D": self.net_d},
            "optimizer": {"G": self.opt_g, "D": self.opt_d},
            "scheduler": {"G": self.sched_g, "D": self.sched_d},
            "scaler": self.scaler,
        }


def _make_models(
    net_g: SynthesizerTrn, net_d: MultiPeriodDiscriminator, recipe: S2Recipe, device: torch.device
) -> _S2Models:
    """Move G and D to ``device`` in training mode and build what trains them."""
    net_g.to(device).train()
    net_d.to(device).train()
    opt_g, opt_d = make_optimizers(net_g, net_d, recipe)
    sched_g, sched_d = make_schedulers(opt_g, opt_d, recipe)
    amp_dtype = autocast_dtype(device) if recipe.fp16_run else None
    if amp_dtype is not None:
        content_path_in_fp32(net_g, device.type)
    scaler = make_grad_scaler(device, enabled=recipe.fp16_run)
    return _S2Models(net_g, net_d, opt_g, opt_d, sched_g, sched_d, scaler, amp_dtype)


@dataclass
class _S2Run(loop.EpochRun[S2TrainConfig]):
    """One S2 run in progress (the loop's part in EpochRun); one step is a D and a G step."""

    PROGRESS_LOSS = ("mel", "loss/g/mel")

    model_cfg: S2Config
    recipe: S2Recipe
    models: _S2Models
    d_model: nn.Module  # net_d, DDP-wrapped when distributed

    def save_state(self) -> None:
        self.run.save(training_state(progress=self.prog, config=self.config, **self.models.parts()))
        self.timer.reset()

    def train_batch(self, batch: S2Batch) -> dict[str, float]:
        m = self.models
        return train_step(
            self.g_model, self.d_model, m.opt_g, m.opt_d, m.scaler, batch, self.model_cfg, self.recipe,
            m.amp_dtype,
        )  # fmt: skip

    def step_schedulers(self) -> None:
        self.models.sched_g.step()
        self.models.sched_d.step()

    def current_lr(self) -> float:
        return self.models.opt_g.param_groups[0]["lr"]

    def write_export(self, epoch_label: int) -> Path:
        """The generator's inference weights."""
        cfg = self.cfg
        return export_generator(
            self.models.net_g, self.model_cfg, cfg.weights_dir, cfg.exp_name, epoch_label, self.prog.step,
            cfg.keep_exports,
        )  # fmt: skip


def _train(
    cfg: S2TrainConfig, events: EventWriter, should_stop: Callable[[], bool], dist: DistInfo
) -> S2TrainResult:
    run = RunDir(cfg.run_path, writer=dist.is_main)
    seed_everything(cfg.seed + dist.rank)

    # Everything a person can fix is checked before any training starts.
    s2g, s2d, model_dir = _pretrained_files(cfg)
    net_g, net_d, model_cfg = load_pretrained(s2g, s2d, cfg.version, model_dir)
    recipe = cfg.recipe()
    model_cfg.segment_size = recipe.segment_size
    items, report = scan_experiment(
        cfg.exp_dir, model_cfg.version, model_cfg.sampling_rate, model_cfg.hop_length
    )
    if dist.is_main:
        ensure_free_space(run.path, _checkpoint_bytes(net_g, net_d), "checkpoints")
        ensure_free_space(cfg.weights_dir, half_size(net_g), "exported weights")
    run.log(f"S2 data: {report.summary()}")
    frozen = freeze_content_path(net_g)
    models = _make_models(net_g, net_d, recipe, dist.device)
    state = run.prepare(fresh=cfg.fresh)
    # A resumed run keeps its batch size unless one is given: the epoch's batches must be the same.
    resumed_bs = loop.resumed_batch_size(state)
    batch_size = cfg.batch_size or resumed_bs or _pick_batch_size(dist.device, net_g, net_d)
    dataset = S2Dataset(
        cfg.exp_dir, items, report.repeats, model_cfg.sampling_rate, model_cfg.filter_length,
        model_cfg.hop_length, model_cfg.win_length, with_sv=model_cfg.uses_sv,
    )  # fmt: skip
    loader, sampler = loop.make_loader(cfg, dataset, batch_size, dist, collate_s2)
    prog = _resume(state, models, run)
    state = None  # the loaded copy of every state dict is no longer needed
    barrier(dist)
    if prog.batch_in_epoch >= len(sampler):  # the batch size changed since; start the next epoch
        prog.batch_in_epoch = 0

    config = {
        "args": jsonable(cfg),
        "batch_size": batch_size,
        "recipe": recipe.to_train_hparams(),
        "model": model_cfg.to_hparams(),
        "pretrained_s2g": str(s2g),
        "pretrained_s2d": str(s2d),
        "device": str(dist.device),
        "amp_dtype": str(models.amp_dtype) if models.amp_dtype else None,
        "world_size": dist.world_size,
        "steps_per_epoch": len(sampler),
        "frozen": frozen,
        "data": report.to_dict(),
    }
    run.write_config(config)
    model_cfg.train = {
        **model_cfg.train,
        **recipe.to_train_hparams(),
        "epochs": cfg.epochs,
        "batch_size": batch_size,
    }
    model_cfg.extra = {**model_cfg.extra, "name": cfg.exp_name}

    s = _S2Run(
        cfg=cfg, dist=dist, run=run, model_cfg=model_cfg, recipe=recipe, models=models,
        g_model=wrap_ddp(net_g, dist, find_unused_parameters=True),
        d_model=wrap_ddp(net_d, dist, find_unused_parameters=True),
        prog=prog,
        config=config,
        reporter=ProgressReporter(
            events, "s2", cfg.epochs * len(sampler), start_step=prog.step, enabled=dist.is_main
        ),
        timer=CheckpointTimer(cfg.checkpoint_minutes),
        steps_per_epoch=len(sampler),
    )  # fmt: skip
    run.log(
        f"S2 {model_cfg.version} training on {dist.device} ({models.amp_dtype or 'fp32'}), batch {batch_size}, "
        f"{s.steps_per_epoch} steps per epoch, epochs {prog.epoch + 1}..{cfg.epochs}"
    )
    return loop.train_to_end(s, loader, sampler, should_stop, report.to_dict(), S2TrainResult)


def _resume(state: dict[str, Any] | None, models: _S2Models, run: RunDir) -> TrainProgress:
    """Where training stands: restored from the checkpoint, or the start."""
    if state is None:
        return TrainProgress()
    prog = restore_training_state(state, **models.parts())
    run.log(f"resumed at epoch {prog.epoch + 1}, step {prog.step} (batch {prog.batch_in_epoch} of the epoch)")
    return prog


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gpt_sovits.train.s2``: flags (or ``--config``) -> S2TrainConfig -> train -> exit code."""
    return loop.trainer_main(build_parser(), S2TrainConfig, train, argv, lambda args: "S2 training")


if __name__ == "__main__":
    sys.exit(main())
