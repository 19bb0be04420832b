"""What a synthesis returns: every piece's candidates with their scores, the chosen audio, the timings.

Also the callable shapes the synthesiser accepts from its caller: a progress callback, candidate scorers,
and the reranker loader that turns a checkpoint path into a scorer (``clvp.load_scorer`` for CLVP).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.audio import DATASET_RATE

ProgressFn = Callable[[int, int, str], None]  # (done, total, message)
# A pluggable candidate scorer: (the piece's phone ids, each candidate's tokens) -> one score each, higher
# is better. Synthesizer(scorers={"name": (scorer, weight)}) adds weight * score to every candidate's total.
Scorer = Callable[[list[int], list[list[int]]], list[float]]
# (checkpoint file, torch device) -> the scorer it holds; called once per file and device (then cached).
RerankerLoader = Callable[[Path, Any], Scorer]


def no_progress(done: int, total: int, message: str) -> None:
    """The default progress callback: the library reports nothing unless asked."""


@dataclass
class CandidateInfo:
    """One S1 sample of a piece: its semantic tokens and how the scorer rated it."""

    tokens: list[int]
    mean_logprob: float
    scores: dict[str, float]  # "logprob" and, when used, "clvp", "asr", "speaker"
    total: float  # what the selection maximises
    eos: bool = True  # False when the piece hit max_new_tokens without ending


@dataclass
class SentenceResult:
    """One piece of the text: its phone ids (target only), all candidates, the chosen one and its audio."""

    text: str
    phones: list[int]
    candidates: list[CandidateInfo]
    chosen: int
    audio: np.ndarray | None = None  # (samples,) float32 of the chosen candidate (result's rate), no pause
    # Candidates already decoded by the audio blends (index -> audio): playing or swapping one is free.
    decoded: dict[int, np.ndarray] = field(default_factory=dict, repr=False)


@dataclass
class SynthesisResult:
    sample_rate: int
    audio: np.ndarray  # (samples,) float32 in [-1, 1]
    sentences: list[SentenceResult]
    seed: int
    request: Any = None  # the SynthesisRequest it answers
    timings: dict[str, float] = field(default_factory=dict)
    # What reassemble() needs to re-decode a piece: the reference spectrograms (1, 1025, T) on CPU.
    refer_specs: list[Any] = field(default_factory=list, repr=False)
    # ... and for v2Pro/v2ProPlus one SV embedding (1, 20480) per spectrogram (None for v1/v2).
    refer_sv: list[Any] | None = field(default=None, repr=False)
    # ... and for v3/v4 the CFM prompt (gpt_sovits.models.s2v3.V3Prompt, CPU; None otherwise).
    refer_v3: Any = field(default=None, repr=False)

    @property
    def duration(self) -> float:
        return self.audio.shape[-1] / self.sample_rate


@dataclass
class StreamChunk:
    """What ``Synthesizer.stream`` yields: piece ``index`` of ``total``, whole or (with ``stream_tokens``)
    in parts. ``audio`` is this part's; the piece's last part carries its result (``sentence``, None on
    the earlier parts) and the pause after it."""

    index: int
    total: int
    sentence: SentenceResult | None
    audio: np.ndarray
    seed: int
    sample_rate: int = DATASET_RATE  # 24000 (v3), 48000 (v4)
