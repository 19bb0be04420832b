"""S1's optimiser and learning-rate schedule, written to reproduce what the reference ACTUALLY does.

The reference (``AR/models/t2s_lightning_module.py``) trains S1 with ``ScaledAdam(lr=0.01, betas=(0.9, 0.95),
clipping_scale=2.0, clipping_update_period=1000)`` (Daniel Povey's optimiser from icefall, in
``AR/modules/optim.py``) and a ``WarmupCosineLRSchedule(init 1e-5, peak 0.01, end 1e-4, warmup 2000,
decay 40000)``. Two facts decide the effective behaviour:

1. The schedule's ``step()`` computes the warmup/cosine value and then overwrites it:
   ``self.lr = lr = self.end_lr = 0.002  # lock it`` and ``set_lr`` writes ``end_lr`` into every group.
   Its constructor never touches the optimiser, and Lightning's manual optimisation calls
   ``scheduler.step()`` only after ``opt.step()``. So the FIRST optimiser step runs at the optimiser's
   own lr 0.01 and every later step at 0.002: no warmup, no decay. ``ReferenceLR(mode="reference")``
   reproduces exactly that; ``mode="cosine"`` is the nominal warmup + cosine schedule, for people who
   want what the config file says.
2. ScaledAdam is not Adam: each tensor's update is Adam's normalised gradient times ``lr * rms(param)``
   (so a step changes every tensor by about the same RELATIVE amount, ~0.2 % at lr 0.002), momentum is
   kept on the update ("delta") without first-moment bias correction, each tensor's overall scale is
   learnt separately (every ``size_update_period`` steps, at ``lr * scalar_lr_scale``), scalar parameters
   get plain Adam at ``lr * 0.1`` clamped to +-10, and the whole gradient is clipped to ``clipping_scale``
   x the median of the last ``clipping_update_period`` (rms-weighted) gradient norms once that many steps
   have been seen. An AdamW with "an equivalent lr" cannot match the per-tensor relative step sizes
   (embeddings with rms ~1 and projections with rms ~0.02 would need lrs 50x apart), so we reimplement
   ScaledAdam. Our version steps each parameter on its own instead of stacking same-shaped parameters
   (the reference's ``BatchedOptimizer``, a GPU kernel-count optimisation): the arithmetic per tensor is
   the same, and the clipping norm sums over all tensors as the reference does.

Gradient clipping in the reference is ONLY this median-based clipping, and it is weaker than it looks:
the reference multiplies a local copy of the gradient (``grad = grad * clipping_scale``), which feeds the
scale update, while the Adam step re-reads the unclipped ``p.grad`` (icefall scales ``p.grad`` in place).
We reproduce that (verified step by step against the reference's optimiser on a small model: identical
parameters after 300 steps with clipping and size updates active). The reference's Trainer also gets no
``gradient_clip_val``, so the config's ``gradient_clip: 1.0`` is never read. With the reference's
``clipping_update_period=1000`` clipping starts after 1000 optimiser steps, i.e. only on long fine-tunings.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

logger = logging.getLogger(__name__)


class ScaledAdam(torch.optim.Optimizer):
    """ScaledAdam (icefall / the reference's ``AR/modules/optim.py``), one parameter at a time.

    State per parameter: ``step``, ``delta`` (momentum of the update), ``exp_avg_sq``; for non-scalars also
    ``param_rms`` (refreshed every ``size_update_period`` steps), ``scale_exp_avg_sq`` and ``scale_grads``
    ((size_update_period,) history of d loss / d log-scale). Clipping statistics (``model_norms``,
    ``model_norm_threshold``, ``num_clipped``) live in the state of each group's first parameter.
    Every state entry is a tensor or a number, so ``state_dict()`` loads with ``weights_only=True``.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 3e-2,
        clipping_scale: float | None = None,
        betas: tuple[float, float] = (0.9, 0.98),
        scalar_lr_scale: float = 0.1,
        eps: float = 1.0e-8,
        param_min_rms: float = 1.0e-5,
        param_max_rms: float = 3.0,
        scalar_max: float = 10.0,
        size_update_period: int = 4,
        clipping_update_period: int = 100,
    ) -> None:
        if not 0 < betas[0] <= betas[1] < 1:
            raise ValueError(f"ScaledAdam needs 0 < beta1 <= beta2 < 1, got {betas}")
        defaults = dict(
            lr=lr,
            clipping_scale=clipping_scale,
            betas=betas,
            scalar_lr_scale=scalar_lr_scale,
            eps=eps,
            param_min_rms=param_min_rms,
            param_max_rms=param_max_rms,
            scalar_max=scalar_max,
            size_update_period=size_update_period,
            clipping_update_period=clipping_update_period,
        )
        super().__init__(params, defaults)

    @staticmethod
    def _rms(p: Tensor) -> Tensor:
        return p.pow(2).mean().sqrt().reshape(1)

    def _init_state(self, group: dict[str, Any], p: Tensor, state: dict[str, Any]) -> None:
        state["step"] = 0
        state["delta"] = torch.zeros_like(p)
        state["exp_avg_sq"] = torch.zeros_like(p)
        if p.numel() > 1:
            state["param_rms"] = self._rms(p)
            state["scale_exp_avg_sq"] = torch.zeros_like(state["param_rms"])
            state["scale_grads"] = torch.zeros(group["size_update_period"], 1, device=p.device, dtype=p.dtype)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # noqa: D401 - torch's signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = group["params"]
            if not params:
                continue
            grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
            for g in grads:
                if g.is_sparse:
                    raise RuntimeError("ScaledAdam does not support sparse gradients")
            clip = self._clipping_factor(group, params, grads)
            for p, grad in zip(params, grads, strict=True):
                state = self.state[p]
                if len(state) == 0:
                    self._init_state(group, p, state)
                self._step_one(group, p, grad, clip, state)
        return loss

    def _clipping_factor(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> float:
        """<= 1: scale the gradients to ``clipping_scale`` x the median recent norm (after a full period)."""
        first = self.state[params[0]]
        scale = group["clipping_scale"]
        if scale is None or len(first) == 0 or first["step"] == 0:
            return 1.0
        step = first["step"]
        period = group["clipping_update_period"]
        tot_sumsq = torch.zeros((), device=params[0].device)
        for p, g in zip(params, grads, strict=True):
            st = self.state[p]
            # scalars: the plain gradient; tensors: the gradient times the tensor's rms (the update's scale)
            tot_sumsq += (g**2).sum() if p.numel() == 1 else ((g * st["param_rms"]) ** 2).sum()
        tot_norm = tot_sumsq.sqrt()
        if "model_norms" not in first:
            first["model_norms"] = torch.zeros(period, device=params[0].device)
        first["model_norms"][step % period] = tot_norm
        if step % period == 0:
            norms = first["model_norms"].sort()[0].cpu()
            quartiles = [norms[min(period - 1, (period // 4) * n)].item() for n in range(5)]
            threshold = scale * quartiles[2]
            first["model_norm_threshold"] = threshold
            clipped = first.get("num_clipped", 0) * 100.0 / period
            first["num_clipped"] = 0
            logger.info(
                "ScaledAdam clipping_scale=%s, grad-norm quartiles %s, threshold=%.3e, percent-clipped=%.1f",
                scale,
                " ".join(f"{q:.3e}" for q in quartiles),
                threshold,
                clipped,
            )
        if step < period:
            return 1.0
        threshold = first.get("model_norm_threshold")
        if threshold is None:
            return 1.0
        ans = min(1.0, float(threshold / (tot_norm + 1.0e-20)))
        if ans < 1.0:
            first["num_clipped"] = first.get("num_clipped", 0) + 1
        if ans < 0.1:
            logger.warning("ScaledAdam: scaling gradients by %.3g (threshold %.3e)", ans, threshold)
        return ans

    def _step_one(
        self, group: dict[str, Any], p: Tensor, grad: Tensor, clip: float, state: dict[str, Any]
    ) -> None:
        beta1 = group["betas"][0]
        period = group["size_update_period"]
        step = state["step"]
        delta = state["delta"]
        delta.mul_(beta1)
        if p.numel() > 1:
            # As the reference: the clipped gradient feeds the scale statistics only; the Adam step below
            # uses the unclipped one (its `grad = grad * clipping_scale` is not in place, unlike icefall's).
            clipped = grad * clip if clip != 1.0 else grad
            state["scale_grads"][step % period] = (p * clipped).sum()
            if step % period == period - 1:
                state["param_rms"].copy_(self._rms(p))
                if step > 0:
                    self._size_update(group, p, state)
            self._step_tensor(group, p, grad, state)
        else:
            self._step_scalar(group, p, grad, state)
        state["step"] = step + 1

    def _size_update(self, group: dict[str, Any], p: Tensor, state: dict[str, Any]) -> None:
        """Learn the tensor's overall scale (gradient descent on log-scale, Adam-normalised)."""
        beta1, beta2 = group["betas"]
        size_lr = group["lr"] * group["scalar_lr_scale"]
        scale_grads = state["scale_grads"]  # (period, 1)
        period = scale_grads.shape[0]
        beta2_corr = beta2**period  # the size statistics decay once per period
        scale_exp_avg_sq = state["scale_exp_avg_sq"]
        scale_exp_avg_sq.mul_(beta2_corr).add_((scale_grads**2).mean(dim=0), alpha=1 - beta2_corr)
        size_step = (state["step"] + 1) // period
        bias_correction2 = 1 - beta2_corr**size_step
        denom = scale_exp_avg_sq.sqrt() + group["eps"]
        scale_step = -size_lr * (bias_correction2**0.5) * scale_grads.sum(dim=0) / denom
        rms = state["param_rms"]
        scale_step = scale_step.masked_fill(rms < group["param_min_rms"], 0.0)  # too small: no shrinking
        scale_step = scale_step.masked_fill(
            rms > group["param_max_rms"], -size_lr * period
        )  # too large: shrink
        state["delta"].add_(p * scale_step, alpha=1 - beta1)

    def _step_tensor(self, group: dict[str, Any], p: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        exp_avg_sq = state["exp_avg_sq"]
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction2 = 1 - beta2 ** (state["step"] + 1)
        if bias_correction2 < 0.99:
            exp_avg_sq = exp_avg_sq * (1.0 / bias_correction2)  # not in place: the state stays uncorrected
        denom = exp_avg_sq.sqrt() + group["eps"]
        alpha = -group["lr"] * (1 - beta1) * state["param_rms"].clamp(min=group["param_min_rms"])
        delta = state["delta"]
        delta.add_(grad / denom * alpha)
        p.add_(delta)

    def _step_scalar(self, group: dict[str, Any], p: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        lr = group["lr"] * group["scalar_lr_scale"]
        exp_avg_sq = state["exp_avg_sq"]
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction2 = 1 - beta2 ** (state["step"] + 1)
        denom = (exp_avg_sq / bias_correction2).sqrt() + group["eps"]
        delta = state["delta"]
        delta.add_(grad / denom, alpha=-lr * (1 - beta1))
        p.clamp_(min=-group["scalar_max"], max=group["scalar_max"])
        p.add_(delta)


class ReferenceLR:
    """The reference S1 learning rate per optimiser step, applied to every param group.

    ``mode="reference"``: ``peak_lr`` (0.01) for the first optimiser step, then ``locked_lr`` (0.002) for all
    later ones, as the reference's locked WarmupCosineLRSchedule ends up doing (see the module docstring).
    ``mode="cosine"``: linear warmup ``init_lr -> peak_lr`` over ``warmup_steps``, cosine decay to ``end_lr``
    at ``decay_steps``, then ``end_lr``: the schedule the reference's config describes.

    Call ``step()`` after each ``optimizer.step()``; ``state_dict()`` holds plain numbers."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        mode: str = "reference",
        init_lr: float = 1e-5,
        peak_lr: float = 0.01,
        end_lr: float = 1e-4,
        warmup_steps: int = 2000,
        decay_steps: int = 40000,
        locked_lr: float = 0.002,
    ) -> None:
        if mode not in ("reference", "cosine"):
            raise ValueError(f"unknown lr schedule {mode!r}; use 'reference' or 'cosine'")
        if mode == "cosine" and decay_steps <= warmup_steps:
            raise ValueError("decay_steps must be larger than warmup_steps")
        self.optimizer = optimizer
        self.mode = mode
        self.init_lr, self.peak_lr, self.end_lr, self.locked_lr = init_lr, peak_lr, end_lr, locked_lr
        self.warmup_steps, self.decay_steps = warmup_steps, decay_steps
        self.num_steps = 0  # optimiser steps taken so far
        self._apply()

    def lr_at(self, k: int) -> float:
        """The learning rate of optimiser step ``k`` (0-based)."""
        if self.mode == "reference":
            return self.peak_lr if k == 0 else self.locked_lr
        if k < self.warmup_steps:
            return self.init_lr + (self.peak_lr - self.init_lr) * k / self.warmup_steps
        if k > self.decay_steps:
            return self.end_lr
        ratio = (k - self.warmup_steps) / (self.decay_steps - self.warmup_steps)
        return self.end_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (self.peak_lr - self.end_lr)

    def _apply(self) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr_at(self.num_steps)

    def step(self) -> None:
        self.num_steps += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"num_steps": self.num_steps, "mode": self.mode}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.num_steps = int(state["num_steps"])
        self._apply()
