"""Text to speech with GPT-SoVITS v1/v2: the one synthesiser behind the Inference tab, the API and the CLI.

Pipeline (as the reference's ``TTS_infer_pack/TTS.py`` and ``inference_webui.get_tts_wav``):

1. Reference: 3-10 s. Its 16 kHz audio plus 0.3 s x 32000 = 9600 zero samples goes through HuBERT and
   ``SynthesizerTrn.extract_latent`` -> prompt semantic tokens (Tp,). Its 32 kHz linear spectrogram (and
   those of the auxiliary references) give S2 its timbre; S2 averages their style vectors.
2. Text: ``prepare_segments`` (cut method, short pieces merged, long ones split), then per piece the
   language runs -> phone ids and BERT features (1024, n) (zeros for non-Chinese). The prompt text's
   phones and BERT are prepended to every piece; without prompt text (reference-free mode) S1 gets
   neither the prompt phones nor the prompt tokens.
3. S1 samples N candidates per piece in one batched KV-cache decode; each keeps its tokens and per-token
   log-probabilities. A scorer picks one per piece: highest mean log-probability, blended with CLVP when
   a CLVP checkpoint is given. Every candidate is returned with its scores.
4. S2 decodes the chosen tokens with the target phones (speed, noise scale); pieces are joined with
   ``pause`` seconds of silence. Output: 32 kHz float32 mono.

The same seed and inputs give the same audio: S1 draws from a torch.Generator seeded per batch, S2's noise
from one seeded per piece, so ``reassemble`` can swap one piece's candidate and re-decode only that piece.

CLI: ``python -m gpt_sovits.tts --gpt G.ckpt --sovits S.pth --ref-audio ref.wav --text ... --out out.wav``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 32000
REF_MIN_S = 3.0
REF_MAX_S = 10.0


class TTSInputError(ValueError):
    """An input a person can fix (reference length, empty text, unknown language, mismatched models...)."""


# ------------------------------------------------------------------------------------------ data types

RefAudio = str | Path | tuple[int, np.ndarray]  # a file, or (sample_rate, samples) as Gradio gives it


@dataclass
class SynthesisRequest:
    """Everything one synthesis needs besides the model weights. Defaults follow the reference's UI."""

    text: str
    text_lang: str = "zh"  # a gpt_sovits.text.lang_segment.MODES code: zh, all_zh, en, auto, ...
    ref_audio: RefAudio | None = None
    ref_text: str = ""  # empty: reference-free mode (no prompt phones, no prompt tokens)
    ref_lang: str = "zh"
    aux_refs: list[RefAudio] = field(default_factory=list)  # more clips whose timbre is averaged in
    cut: str = "cut1"  # gpt_sovits.text.cut method: cut0 (none) ... cut5 (every punctuation mark)
    top_k: int = 15
    top_p: float = 1.0
    temperature: float = 1.0
    repetition_penalty: float = 1.35
    seed: int = -1  # -1: a random seed, reported in the result
    speed: float = 1.0
    noise_scale: float = 0.5
    pause: float = 0.3  # seconds of silence after each piece
    candidates: int = 1  # S1 samples per piece
    clvp_path: str | None = None  # CLVP checkpoint: rerank candidates with it
    logprob_weight: float = 1.0  # total = logprob_weight * mean_logprob + clvp_weight * clvp
    clvp_weight: float = 1.0
    max_new_tokens: int = 1500  # S1 cap per piece (60 s at 25 Hz), as the reference
    force_tokens: int = 0  # > 0: exactly this many tokens per piece (EOS banned; for benchmarks)


@dataclass
class CandidateInfo:
    """One S1 sample of a piece: its semantic tokens and how the scorer rated it."""

    tokens: list[int]
    mean_logprob: float
    scores: dict[str, float]  # "logprob" and, with CLVP, "clvp"
    total: float  # what the selection maximises
    eos: bool = True  # False when the piece hit max_new_tokens without ending


@dataclass
class SentenceResult:
    """One piece of the text: its phone ids (target only), all candidates, the chosen one and its audio."""

    text: str
    phones: list[int]
    candidates: list[CandidateInfo]
    chosen: int
    audio: np.ndarray | None = None  # (samples,) float32 32 kHz of the chosen candidate, without the pause


@dataclass
class SynthesisResult:
    sample_rate: int
    audio: np.ndarray  # (samples,) float32 in [-1, 1]
    sentences: list[SentenceResult]
    seed: int
    request: SynthesisRequest | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.audio.shape[-1] / self.sample_rate


ProgressFn = Callable[[int, int, str], None]  # (done, total, message)
Scorer = Callable[[Sequence[int], list[CandidateInfo]], list[float]]


def _no_progress(done: int, total: int, message: str) -> None:
    pass


# ------------------------------------------------------------------------------------------ the cache


class ModelCache:
    """Models loaded on first use and kept, one lock per key so concurrent users never load twice.

    Keys name what was loaded (kind, resolved path, device), so switching GPT weights loads only the new
    GPT; SoVITS, HuBERT and BERT stay. Owned by the app (one per process), never a module global.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key_locks: dict[tuple, threading.Lock] = {}
        self._items: dict[tuple, Any] = {}
        self.loads: dict[tuple, int] = {}  # how often each key was loaded (tests, diagnostics)

    def get(self, key: tuple, loader: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                return self._items[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            value = loader()
            with self._lock:
                self._items[key] = value
                self.loads[key] = self.loads.get(key, 0) + 1
            return value

    def evict(self, kind: str) -> None:
        """Drop every cached model of one kind ("gpt", "sovits", "hubert", "bert", "clvp")."""
        with self._lock:
            for key in [k for k in self._items if k[0] == kind]:
                del self._items[key]


# ----------------------------------------------------------------------------------------- synthesiser


class Synthesizer:
    """GPT + SoVITS weights plus the HuBERT/BERT folders under ``model_dir``, loaded lazily via ``cache``."""

    def __init__(
        self,
        gpt_path: str | Path,
        sovits_path: str | Path,
        model_dir: str | Path,
        device: str = "auto",
        cache: ModelCache | None = None,
    ) -> None:
        self.gpt_path = Path(gpt_path)
        self.sovits_path = Path(sovits_path)
        self.model_dir = Path(model_dir)
        self.device_pref = device
        self.cache = cache or ModelCache()

    def synthesize(self, request: SynthesisRequest, progress: ProgressFn = _no_progress) -> SynthesisResult:
        """The whole text at once: every piece's candidates and the joined audio."""
        raise NotImplementedError

    def stream(
        self, request: SynthesisRequest, progress: ProgressFn = _no_progress
    ) -> Iterator[tuple[SentenceResult, np.ndarray]]:
        """Yield (piece result, its audio with the pause appended) as soon as each piece is decoded."""
        raise NotImplementedError

    def reassemble(self, result: SynthesisResult, choices: Sequence[int]) -> np.ndarray:
        """Audio with candidate ``choices[i]`` for piece i; only pieces whose choice changed are re-decoded.

        Updates ``result`` (chosen, per-piece audio, audio) in place and returns the new audio.
        """
        raise NotImplementedError
