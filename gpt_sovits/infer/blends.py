"""Audio-based candidate blends: ASR agreement (faster-whisper) and speaker similarity (S2's ``ge``).

Both rate a *decoded* candidate, so they cost an S2 decode per candidate (plus a Whisper pass for ASR);
the synthesiser runs them only when their weight is above 0 and a piece has at least two candidates.

* ASR agreement: the candidate's transcript against the piece's text. After light normalisation
  (lower case, punctuation and spaces dropped) the error rate is counted in characters for Chinese,
  Cantonese, Japanese and Korean and in words for English (``error_rate``); the score is
  ``1 - rate`` clipped to [0, 1]. Skipped, repeated or swallowed words show up here directly.
* Speaker similarity: cosine similarity between S2's global style vector ``ge`` (``SynthesizerTrn.style``,
  the reference encoder on a linear spectrogram) of the candidate and that of the reference(s). No extra
  model to download, and it is the very timbre vector S2 conditions its decoder on, so it measures how
  far a candidate drifted from the voice S2 was asked for. The score lies in [-1, 1].

This module needs no torch model of its own; the synthesiser passes in what it has loaded.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

# Text languages whose error rate is counted in characters (no reliable spaces between words).
_CHAR_LANGUAGES = ("zh", "yue", "ja", "ko")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def base_language(text_lang: str) -> str:
    """A synthesis language mode (``all_zh``, ``auto_yue``, ``en``...) -> its language (``zh``, ``auto``...)."""
    code = (text_lang or "").strip().lower().removeprefix("all_")
    return "auto" if code.startswith("auto") else code


def whisper_language(text_lang: str, supported: tuple[str, ...] | list[str] | None = None) -> str | None:
    """The language Whisper is told to expect for a piece in ``text_lang``; None lets it detect.

    Cantonese is ``yue`` where the model knows it (large-v3 and later) and ``zh`` otherwise.
    """
    code = base_language(text_lang)
    if code == "auto" or not code:
        return None
    if code == "yue" and supported is not None and "yue" not in supported:
        return "zh"
    if supported is not None and code not in supported:
        return None
    return code


def normalise(text: str, by_words: bool) -> list[str]:
    """Lower-cased units without punctuation or symbols: words (``by_words``) or characters (no spaces)."""
    chars = [
        " " if unicodedata.category(ch)[0] in "PSZ" or ch.isspace() else ch
        for ch in unicodedata.normalize("NFKC", text).lower()
    ]
    cleaned = "".join(chars)
    return cleaned.split() if by_words else [ch for ch in cleaned if not ch.isspace()]


def counts_words(text: str, text_lang: str) -> bool:
    """True when the error rate of ``text`` is counted in words (English; ``auto`` text without CJK)."""
    code = base_language(text_lang)
    if code in _CHAR_LANGUAGES:
        return False
    if code == "auto":
        return not _CJK.search(text)
    return True


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1); O(len(ref) x len(hyp))."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def error_rate(reference: str, hypothesis: str, text_lang: str = "zh") -> float:
    """Character (zh/yue/ja/ko) or word (en) error rate of ``hypothesis`` against ``reference``.

    Normalised as ``normalise``; may exceed 1 when the hypothesis is much longer. An empty reference
    gives 0 for an empty hypothesis and 1 otherwise.
    """
    by_words = counts_words(reference, text_lang)
    ref, hyp = normalise(reference, by_words), normalise(hypothesis, by_words)
    if not ref:
        return 0.0 if not hyp else 1.0
    return edit_distance(ref, hyp) / len(ref)


def agreement_score(reference: str, hypothesis: str, text_lang: str = "zh") -> float:
    """``1 - error_rate`` clipped to [0, 1]: 1 = the transcript says exactly the text."""
    return float(min(1.0, max(0.0, 1.0 - error_rate(reference, hypothesis, text_lang))))


# --------------------------------------------------------------------------------------- Whisper


def local_whisper_models(model_dir: str | Path) -> list[str]:
    """Names ``<x>`` of the complete ``faster-whisper-<x>/`` folders under ``model_dir``, sorted."""
    from tools.asr import local_model_folder

    folder = Path(model_dir)
    if not folder.is_dir():
        return []
    return sorted(
        p.name.removeprefix("faster-whisper-")
        for p in folder.iterdir()
        if p.name.startswith("faster-whisper-") and local_model_folder(str(p), folder) is not None
    )


def resolve_whisper(model: str | None, model_dir: str | Path) -> str:
    """The Whisper model to load: ``model`` (a size name or a CTranslate2 folder) or, when None/empty,
    the first local folder under ``model_dir`` (as the Inference tab's Transcribe finds it).

    Never downloads. Raises ``tools.asr.ModelNotFoundError`` (with the ASR stage's message: where to
    put the files and the command that fetches them) when nothing usable is there.
    """
    from tools.asr import DEFAULT_MODEL, ModelNotFoundError, model_status

    name = (model or "").strip()
    if not name:
        local = local_whisper_models(model_dir)
        if local:
            return str(Path(model_dir) / f"faster-whisper-{local[0]}")
        name = DEFAULT_MODEL
    status = model_status(name, model_dir)
    if not status.found:
        raise ModelNotFoundError(status.message)
    return name


def model_languages(whisper: Any) -> list[str] | None:
    """The language codes a faster-whisper model accepts; ``yue`` only where its vocabulary has the token
    (large-v3 and later: faster-whisper lists ``yue`` for every multilingual model). None: unknown."""
    langs = getattr(whisper, "supported_languages", None)
    if langs is None:
        return None
    langs = list(langs)
    tokenizer = getattr(whisper, "hf_tokenizer", None)
    if "yue" in langs and tokenizer is not None and tokenizer.token_to_id("<|yue|>") is None:
        langs.remove("yue")
    return langs


def transcribe(whisper: Any, audio: np.ndarray, sample_rate: int, language: str | None) -> str:
    """One decoded candidate (float32 mono) -> Whisper's text. Greedy, no VAD, no timestamps:
    a short clip is scored as a whole, quickly, and the same audio always gives the same text."""
    from core.audio import resample
    from tools.asr import SAMPLE_RATE, join_segments

    wav16 = np.ascontiguousarray(resample(audio, sample_rate, SAMPLE_RATE), dtype=np.float32)
    segments, info = whisper.transcribe(
        wav16,
        language=language,
        beam_size=1,
        vad_filter=False,
        without_timestamps=True,
        condition_on_previous_text=False,
    )
    texts = [s.text for s in segments]  # the generator does the decoding
    return join_segments(texts, (info.language or language or "").lower())


def cosine(a: Any, b: Any) -> float:
    """Cosine similarity of two vectors (torch tensors or arrays of any shape, flattened)."""
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    denom = float(np.linalg.norm(x) * np.linalg.norm(y))
    return float(np.dot(x, y) / denom) if denom > 0 else 0.0
