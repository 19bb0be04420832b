"""Inference precision of loaded models: exact fp32, or the CPU fast path ("auto").

``load_gpt`` and ``load_sovits`` call ``apply_precision`` last, so every caller that asks for
``precision="auto"`` (the front-door default) gets the same inference-ready model, and trainers and parity
checks ask for ``"fp32"``.

What "auto" does, chosen by measurement on the 2-core AVX-512 (BF16) development CPU (bench/README.md,
"CPU fast path"):
- S1 on a CPU with native bf16 matrix units: the transformer's Linear layers (the packed q/k/v projection
  included) keep bf16 weights and multiply in bf16 with fp32 accumulation; everything between them (norms,
  softmax, residuals, the output layer, the BERT projection) stays fp32. A batch-1 step reads its weights
  once, so half the bytes is most of the win. int8 dynamic quantisation was faster still but moved logits
  4x as much and flipped 1-12% of teacher-forced argmaxes on full-size random weights (bf16: none).
- S2: stays fp32 everywhere (what was tried, and why not, is in bench/README.md).
- Anything on an accelerator, or a CPU without native bf16: fp32 (not measured there).

A fast-path model is for inference only: its state dict is not the official one any more.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gpt_sovits.models.precisions import PRECISIONS as PRECISIONS  # re-exported: the names live there
from gpt_sovits.models.precisions import PrecisionError as PrecisionError
from gpt_sovits.models.precisions import check_precision
from gpt_sovits.models.s1 import Text2Semantic


def apply_precision(model: nn.Module, precision: str, device: torch.device | str) -> nn.Module:
    """The inference-ready form of ``model`` (in eval mode) for ``precision`` on ``device``.

    "fp32" leaves the weights exact. "auto" applies the CPU fast path where it was measured to keep
    fidelity (S1 on CPU) and leaves everything else exact.
    """
    check_precision(precision)
    model.eval()
    if precision == "fp32" or torch.device(device).type != "cpu":
        return model
    if isinstance(model, Text2Semantic) and bf16_supported():
        return fast_s1(model)
    return model


def fast_path_active(model: nn.Module) -> bool:
    """Whether ``model`` carries the CPU fast path (bf16 Linear layers in S1)."""
    return any(isinstance(m, Bf16Linear) for m in model.modules())


def bf16_supported() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX); elsewhere bf16 is emulated, slower."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class Bf16Linear(nn.Module):
    """y = x W^T + b with W, b stored in bf16: the input is rounded to bf16, the product accumulated in fp32
    by oneDNN, the output returned in the input's dtype. (..., in) -> (..., out)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.register_buffer("weight", weight.detach().to(torch.bfloat16).contiguous())
        self.register_buffer("bias", None if bias is None else bias.detach().to(torch.bfloat16))

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Bf16Linear:
        return cls(linear.weight, linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The weights' dtype, not bf16 itself: a later model.float() makes this a plain fp32 Linear.
        return F.linear(x.to(self.weight.dtype), self.weight, self.bias).to(x.dtype)


def fast_s1(model: Text2Semantic) -> Text2Semantic:
    """Swap the transformer's Linear layers of ``model`` (in place) for Bf16Linear.

    Each layer's packed projection (``in_proj_weight`` (3C, C) and bias) moves to ``self_attn.in_proj``
    (its fp32 copy is dropped); ``out_proj``, ``linear1`` and ``linear2`` are replaced. Calling it again on
    a fast model changes nothing.
    """
    if fast_path_active(model):
        return model
    for layer in model.h.layers:
        attn = layer.self_attn
        attn.in_proj = Bf16Linear(attn.in_proj_weight, attn.in_proj_bias)
        attn.in_proj_weight = None
        attn.in_proj_bias = None
        attn.out_proj = Bf16Linear.from_linear(attn.out_proj)
        layer.linear1 = Bf16Linear.from_linear(layer.linear1)
        layer.linear2 = Bf16Linear.from_linear(layer.linear2)
    return model
