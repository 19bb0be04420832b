"""Hard negatives built from the failure modes users hit with S1: corrupted copies of a true token sequence.

Kinds (each result always differs from the original):

- ``repeat``   a span is said twice (stutter / repeated word): ``a b [c d] [c d] e``
- ``drop``     a span is swallowed: ``a b e``
- ``truncate`` the sequence stops early (cut short): ``a b c``
- ``run_on``   the sequence keeps going past the end: its own tail repeated, or tokens of another item
- ``other``    the tokens of another utterance altogether

Spans are a fraction of the sequence (``SpanSpec``), at least a few tokens: at 25 Hz one word is roughly
5-15 semantic tokens, so these are the sizes a person hears. Training draws the kinds in turn per item;
evaluation (``clvp.evaluate``) uses the same functions with a fixed seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

KINDS: tuple[str, ...] = ("repeat", "drop", "truncate", "run_on", "other")


@dataclass(frozen=True)
class SpanSpec:
    """Span length = uniform in [max(min_tokens, lo*n), max(min_tokens, hi*n)] tokens, n = sequence length."""

    lo: float = 0.1
    hi: float = 0.35
    min_tokens: int = 3

    def draw(self, n: int, rng: random.Random) -> int:
        a = max(self.min_tokens, round(self.lo * n))
        b = max(a, round(self.hi * n))
        return rng.randint(a, b)


DEFAULT_SPAN = SpanSpec()


def _span(n: int, rng: random.Random, spec: SpanSpec, limit: int) -> tuple[int, int]:
    """A span [lo, lo+length) inside range(n) with 1 <= length <= limit."""
    length = max(1, min(spec.draw(n, rng), limit))
    lo = rng.randint(0, n - length)
    return lo, lo + length


def repeat_span(tokens: Sequence[int], rng: random.Random, spec: SpanSpec = DEFAULT_SPAN) -> list[int]:
    """Insert a copy of a span right after it (length grows by the span)."""
    t = list(tokens)
    lo, hi = _span(len(t), rng, spec, len(t))
    return t[:hi] + t[lo:hi] + t[hi:]


def drop_span(tokens: Sequence[int], rng: random.Random, spec: SpanSpec = DEFAULT_SPAN) -> list[int]:
    """Remove a span, keeping at least one token. Needs len >= 2."""
    t = list(tokens)
    if len(t) < 2:
        raise ValueError("drop needs at least 2 tokens")
    lo, hi = _span(len(t), rng, spec, len(t) - 1)
    return t[:lo] + t[hi:]


def truncate(tokens: Sequence[int], rng: random.Random, spec: SpanSpec = DEFAULT_SPAN) -> list[int]:
    """Cut the end off (at least one token removed, at least one kept). Needs len >= 2."""
    t = list(tokens)
    if len(t) < 2:
        raise ValueError("truncate needs at least 2 tokens")
    cut = max(1, min(spec.draw(len(t), rng), len(t) - 1))
    return t[: len(t) - cut]


def run_on(
    tokens: Sequence[int],
    rng: random.Random,
    spec: SpanSpec = DEFAULT_SPAN,
    other: Sequence[int] | None = None,
) -> list[int]:
    """Append tokens past the end: half the time (or when there is no ``other``) the sequence's own tail
    again (S1 looping), otherwise the start of ``other`` (S1 babbling on)."""
    t = list(tokens)
    extra = spec.draw(len(t), rng)
    if other and rng.random() < 0.5:
        return t + list(other[:extra])
    tail = t[-min(extra, len(t)) :]
    reps = -(-extra // len(tail))
    return t + (tail * reps)[:extra]


def corrupt(
    tokens: Sequence[int],
    kind: str,
    rng: random.Random,
    other: Sequence[int] | None = None,
    spec: SpanSpec = DEFAULT_SPAN,
) -> list[int]:
    """One corrupted copy of ``tokens`` of the given kind; ``other`` is another item's tokens (for ``other``
    and, sometimes, ``run_on``). Always different from ``tokens``: kinds that cannot apply to a very short
    sequence (drop/truncate on one token) or an ``other`` equal to it fall back to ``run_on``."""
    if not tokens:
        raise ValueError("cannot corrupt an empty sequence")
    if kind not in KINDS:
        raise ValueError(f"unknown corruption {kind!r}; use one of {KINDS}")
    if kind in ("drop", "truncate") and len(tokens) < 2:
        kind = "run_on"
    if kind == "other" and (not other or list(other) == list(tokens)):
        kind = "run_on"
    if kind == "repeat":
        return repeat_span(tokens, rng, spec)
    if kind == "drop":
        return drop_span(tokens, rng, spec)
    if kind == "truncate":
        return truncate(tokens, rng, spec)
    if kind == "other":
        return list(other)  # type: ignore[arg-type]
    return run_on(tokens, rng, spec, other if list(other or []) != list(tokens) else None)


def make_negatives(
    tokens: Sequence[int],
    k: int,
    rng: random.Random,
    others: Sequence[Sequence[int]] = (),
    kinds: Sequence[str] = KINDS,
    spec: SpanSpec = DEFAULT_SPAN,
) -> list[tuple[str, list[int]]]:
    """``k`` corrupted copies of ``tokens`` as (kind, tokens), kinds taken in turn from a random start so
    that every kind appears when k >= len(kinds); ``others`` is a pool of other items' tokens."""
    start = rng.randrange(len(kinds))
    out = []
    for j in range(k):
        kind = kinds[(start + j) % len(kinds)]
        other = others[rng.randrange(len(others))] if others else None
        out.append((kind, corrupt(tokens, kind, rng, other, spec)))
    return out
