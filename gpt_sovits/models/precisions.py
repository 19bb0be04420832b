"""The names of the inference precisions, without torch: what flags and forms offer (the web app builds its
form before any model code loads); ``gpt_sovits.models.fastpath`` applies them to models."""

from __future__ import annotations

from core.errors import UserError

PRECISIONS = ("auto", "fp32")
PRECISION_HELP = (
    "auto: the CPU fast path (int8 S1 layers, bf16 S2 decoder) where it keeps fidelity; fp32: exact weights"
)


class PrecisionError(UserError, ValueError):
    """An unknown precision name."""


def check_precision(precision: str) -> str:
    """``precision`` itself when it is one of PRECISIONS, else a PrecisionError naming the choices."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    return precision
