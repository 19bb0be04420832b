"""Inference precision of loaded models: exact fp32, or the CPU fast path ("auto").

``load_gpt`` and ``load_sovits`` call ``apply_precision`` last, so every caller that asks for
``precision="auto"`` (the front-door default) gets the same inference-ready model, and trainers and parity
checks ask for ``"fp32"``.
"""

from __future__ import annotations

import torch
from torch import nn

from core.errors import UserError

PRECISIONS = ("auto", "fp32")


class PrecisionError(UserError, ValueError):
    """An unknown precision name."""


def check_precision(precision: str) -> str:
    """``precision`` itself when it is one of PRECISIONS, else a PrecisionError naming the choices."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    return precision


def apply_precision(model: nn.Module, precision: str, device: torch.device | str) -> nn.Module:
    """The inference-ready form of ``model`` (in eval mode) for ``precision`` on ``device``.

    "fp32" leaves the weights exact. "auto" is where the CPU fast path goes; until it is measured to keep
    fidelity it is exact fp32 too.
    """
    check_precision(precision)
    del device
    return model
