"""Input features of GPT-SoVITS: HuBERT content features, BERT phone features, linear and mel spectrograms.

- HuBERT (chinese-hubert-base): ``HubertModel`` on raw 16 kHz audio, last hidden state, transposed to
  (B, 768, T) at 50 Hz. As the reference pipeline, no Wav2Vec2FeatureExtractor normalisation is applied.
- BERT (chinese-roberta-wwm-ext-large): masked-LM with hidden states; the third-from-last hidden state,
  CLS and SEP dropped, each character's vector repeated ``word2ph[i]`` times -> (1024, n_phones). Only
  Chinese gets BERT features; other languages get zeros of the same shape.
- Spectrograms as the reference's ``module/mel_processing.py``: reflect padding of (n_fft - hop) / 2 on
  both sides, periodic Hann window, ``center=False``, magnitude sqrt(re^2 + im^2 + 1e-8); mel uses
  Slaney-style filters (librosa's default) and natural log of the magnitudes clamped at 1e-5.

Model folders are loaded from disk only (``local_files_only``): nothing is downloaded at run time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from core.audio import DATASET_RATE, HUBERT_RATE
from core.errors import UserError

# The folder names and the error are defined there (torch-free) and named here too, for the loaders' callers.
from gpt_sovits.models.model_folders import BERT_FOLDER as BERT_FOLDER
from gpt_sovits.models.model_folders import HUBERT_FOLDER as HUBERT_FOLDER
from gpt_sovits.models.model_folders import FeatureModelNotFoundError as FeatureModelNotFoundError
from gpt_sovits.models.model_folders import check_model_folder

HUBERT_SR = HUBERT_RATE


class FeatureInputError(UserError, ValueError):
    """Inputs to a feature extractor that do not fit together (for example text and word2ph lengths)."""


# ------------------------------------------------------------------------------------------------- HuBERT


def load_hubert(folder: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a HuBERT model folder (``chinese-hubert-base``) in eval mode, from disk only."""
    from transformers import HubertModel

    folder = Path(folder)
    check_model_folder(folder, "HuBERT", need_tokenizer=False)
    model = HubertModel.from_pretrained(str(folder), local_files_only=True)
    return model.to(device).eval()


@torch.inference_mode()
def hubert_features(model: torch.nn.Module, wav16k: torch.Tensor) -> torch.Tensor:
    """Raw 16 kHz audio (N,) or (B, N) in [-1, 1] -> last hidden state (B, C, T), T about N / 320."""
    if wav16k.ndim == 1:
        wav16k = wav16k.unsqueeze(0)
    if wav16k.ndim != 2 or wav16k.shape[-1] < 400:
        raise FeatureInputError(
            f"HuBERT needs mono 16 kHz audio of at least 400 samples, got shape {tuple(wav16k.shape)}"
        )
    param = next(model.parameters())
    hidden = model(wav16k.to(device=param.device, dtype=param.dtype)).last_hidden_state  # (B, T, C)
    return hidden.transpose(1, 2)


# --------------------------------------------------------------------------------------------------- BERT


@dataclass
class BertBundle:
    """A tokenizer and a masked-LM model loaded together."""

    tokenizer: Any
    model: torch.nn.Module


def load_bert(folder: str | Path, device: str | torch.device = "cpu") -> BertBundle:
    """Load a BERT folder (``chinese-roberta-wwm-ext-large``): tokenizer + masked-LM in eval mode."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    folder = Path(folder)
    check_model_folder(folder, "BERT", need_tokenizer=True)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModelForMaskedLM.from_pretrained(str(folder), local_files_only=True)
    return BertBundle(tokenizer=tokenizer, model=model.to(device).eval())


@torch.inference_mode()
def bert_phone_features(bert: BertBundle, norm_text: str, word2ph: list[int]) -> torch.Tensor:
    """BERT features of normalised Chinese text spread over its phones -> (hidden, sum(word2ph)), fp32 CPU.

    Needs one token per character (as the Chinese frontend guarantees): ``len(word2ph) == len(norm_text)``.
    """
    if len(word2ph) != len(norm_text):
        raise FeatureInputError(
            f"word2ph has {len(word2ph)} entries but the text has {len(norm_text)} characters: {norm_text!r}"
        )
    if any(n < 0 for n in word2ph):
        raise FeatureInputError(f"word2ph entries must be >= 0, got {word2ph}")
    param = next(bert.model.parameters())
    inputs = bert.tokenizer(norm_text, return_tensors="pt")
    inputs = {k: v.to(param.device) for k, v in inputs.items()}
    out = bert.model(**inputs, output_hidden_states=True)
    hidden = out.hidden_states[-3][0, 1:-1].float().cpu()  # (n_tokens, C), CLS and SEP dropped
    if hidden.shape[0] != len(word2ph):
        raise FeatureInputError(
            f"the BERT tokenizer made {hidden.shape[0]} tokens from {len(norm_text)} characters "
            f"({norm_text!r}); phone-level BERT features need one token per character"
        )
    reps = torch.tensor(word2ph, dtype=torch.long)
    return hidden.repeat_interleave(reps, dim=0).T.contiguous()  # (C, n_phones)


def zero_bert_features(n_phones: int, dim: int = 1024) -> torch.Tensor:
    """The features every non-Chinese segment gets: zeros (dim, n_phones)."""
    return torch.zeros(dim, n_phones)


def phone_bert_features(
    bert: BertBundle | None, language: str, norm_text: str, word2ph: list[int] | None, n_phones: int
) -> torch.Tensor:
    """BERT features for one segment: real ones for Chinese (``zh``), zeros (1024, n_phones) otherwise."""
    if language.lower() == "zh":
        if bert is None:
            raise FeatureInputError("Chinese text needs the BERT model, but none was loaded")
        if word2ph is None or sum(word2ph) != n_phones:
            raise FeatureInputError(
                f"word2ph {word2ph} does not add up to the {n_phones} phones of {norm_text!r}"
            )
        return bert_phone_features(bert, norm_text, word2ph)
    return zero_bert_features(n_phones)


# ---------------------------------------------------------------------------------------- spectrograms


@functools.lru_cache(maxsize=16)
def _hann(win: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    return torch.hann_window(win, dtype=dtype, device=device)


@functools.lru_cache(maxsize=16)
def mel_filters(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) Slaney mel filters with Slaney normalisation (librosa's defaults), fp32."""
    from torchaudio.functional import melscale_fbanks

    fb = melscale_fbanks(
        n_freqs=n_fft // 2 + 1,
        f_min=float(fmin),
        f_max=float(fmax) if fmax is not None else sr / 2.0,
        n_mels=n_mels,
        sample_rate=sr,
        norm="slaney",
        mel_scale="slaney",
    )
    return fb.T.contiguous()


def spectrogram(
    y: torch.Tensor, n_fft: int = 2048, hop: int = 640, win: int = 2048, center: bool = False
) -> torch.Tensor:
    """Linear magnitude spectrogram, (B, N) or (N,) -> (B, n_fft // 2 + 1, frames)."""
    if y.ndim == 1:
        y = y.unsqueeze(0)
    pad = (n_fft - hop) // 2
    if y.shape[-1] <= pad:
        raise FeatureInputError(
            f"audio of {y.shape[-1]} samples is too short for a {n_fft}-point spectrogram"
        )
    y = F.pad(y.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    spec = torch.stft(
        y,
        n_fft,
        hop_length=hop,
        win_length=win,
        window=_hann(win, y.dtype, str(y.device)),
        center=center,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    return torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-8)


def spec_to_mel(
    spec: torch.Tensor,
    n_fft: int = 2048,
    n_mels: int = 128,
    sr: int = DATASET_RATE,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> torch.Tensor:
    """Linear spectrogram (B, F, T) -> log mel (B, n_mels, T), log of the magnitudes clamped at 1e-5."""
    fb = mel_filters(sr, n_fft, n_mels, float(fmin), fmax).to(dtype=spec.dtype, device=spec.device)
    return torch.log(torch.clamp(torch.matmul(fb, spec), min=1e-5))


def mel_spectrogram(
    y: torch.Tensor,
    n_fft: int = 2048,
    n_mels: int = 128,
    sr: int = DATASET_RATE,
    hop: int = 640,
    win: int = 2048,
    fmin: float = 0.0,
    fmax: float | None = None,
    center: bool = False,
) -> torch.Tensor:
    """Log mel spectrogram of audio (B, N) -> (B, n_mels, frames); defaults are the v2 ``data`` settings."""
    return spec_to_mel(spectrogram(y, n_fft, hop, win, center), n_fft, n_mels, sr, fmin, fmax)
