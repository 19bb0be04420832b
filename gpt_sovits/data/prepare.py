"""Dataset formatting (the reference's "1A"): a `.list` -> an experiment folder the trainers read.

For each clip of the list (name = basename of its audio path, as the reference):

1. text -> phones, word2ph, norm_text (``clean_text``, after the reference's ``%``->``-`` and
   ``￥``->``,``); Chinese clips also get BERT features ``3-bert/<name>.pt`` (1024, n_phones).
2. audio at 32 kHz -> the reference's loudness mix: with ``peak = max|x|``,
   ``mix(s) = x / peak * (0.95 * 0.5 * s) + 0.5 * s * x``. ``s = 32768`` gives the int16 wav
   ``5-wav32k/<name>``; ``s = 1145.14`` (yes: HuBERT sees that amplitude in the reference's training
   data), resampled to 16 kHz, is the HuBERT input; its last hidden state (1, 768, T50) goes to
   ``4-cnhubert/<name>.pt``. Clips with a peak above 2.2 are skipped as too loud (reference rule).
3. the pretrained S2's ``extract_latent`` turns the HuBERT features into 25 Hz semantic tokens
   (T50 // 2 of them), ``6-name2semantic.tsv``. The generator is the version's own pretrained one
   (``v2Pro/s2Gv2Pro.pth`` for v2Pro, as the reference's 1c step), checked to be of that version.
4. v2Pro / v2ProPlus only: the speaker-verification embedding ``7-sv_cn/<name>.pt`` (1, 20480), as the
   reference's ``2-get-sv.py``: the ``5-wav32k`` samples read back as float (int16 / 32768, what its
   ``torchaudio.load`` gives), resampled to 16 kHz, ERes2NetV2 on the Kaldi fbank
   (``gpt_sovits.models.sv.sv_embedding_of_wav32k``). The SV model is loaded only when a clip needs it
   and freed with the other audio models when the audio pass ends.

Tensors are saved as fp32 CPU tensors (the reference saves fp16 when it runs in half precision on
a GPU; its loaders accept both), loadable with ``torch.load(weights_only=True)``. Differences from
the reference, on purpose: decoding and the 32 -> 16 kHz resampling use core.audio (torchaudio's
sinc resampler, not ffmpeg/librosa); the int16 wav is clipped where the reference's cast wraps
(peaks between 1.03 and 2.2); a clip is kept only when all its parts succeed (the reference can
leave HuBERT files for clips whose text failed). Languages: those of the version's text frontend
(v2Pro and v2ProPlus use v2's symbols and languages). BERT features are computed for zh only, as the
reference.

The work runs in two passes, texts + BERT, then audio + HuBERT + tokens, so BERT (the largest
model) is freed before HuBERT loads; text cleaning can use a process pool; audio is decoded a clip
or two ahead in a thread while the models run.

Incremental and resumable: ``prepare_manifest.json`` keeps, per clip, a key of what its text outputs
depend on (text, language, symbol version, BERT model), one of what its audio outputs depend on
(audio file path/size/mtime, HuBERT and S2 models) and, for v2Pro/v2ProPlus, one of what its SV
embedding depends on (the audio file and the SV model file). A re-run reuses every clip whose keys match and whose
files and table rows exist, redoes the rest, and drops clips no longer in the list from the tables.
Every file is written atomically; the tables and the manifest are rewritten (tables first) every
few clips, at the end, and when the run stops, and only when their content changed, so a re-run
with nothing to do writes nothing.

    python -m gpt_sovits.data.prepare --list L --exp-dir D --pretrained-dir P [--wav-dir W] [--version V]
                                 [--device auto] [--workers N] [--events FILE] [--config FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from core.audio import DATASET_RATE, HUBERT_RATE
from core.errors import UserError, file_reason
from core.fsutil import atomic_write_text, atomic_write_with
from core.jobs import EXIT_ALL_FAILED, EventWriter, JobCancelled, ProgressFn, StopFn, log_progress, never_stop
from gpt_sovits.data.experiment import (
    SEMANTIC_HEADER,
    ExperimentFormatError,
    ExperimentPaths,
    PhoneEntry,
    format_name2text_line,
    parse_name2semantic,
    parse_name2text,
)

logger = logging.getLogger(__name__)

SAMPLE_RATE = DATASET_RATE
HUBERT_SR = HUBERT_RATE
MIX_MAX = 0.95  # the reference's `maxx`
MIX_ALPHA = 0.5  # the reference's `alpha`: half peak-normalised, half as recorded
WAV_SCALE = 32768.0
HUBERT_SCALE = 1145.14  # the reference's HuBERT input amplitude (2-get-hubert-wav32k.py)
MAX_PEAK = 2.2  # the reference skips louder clips (float files can exceed 1.0)
# Shorter clips give HuBERT too few frames for a meaningful token sequence; both trainers drop far
# longer ones anyway (S2 keeps 0.6-54 s).
MIN_SECONDS = 0.25
# A training clip is seconds long (S2 keeps 0.6-54 s): a longer file is skipped from its header, before
# decoding, so a 3-hour recording put in a list by mistake costs nothing (it would take GBs decoded).
MAX_SECONDS = 600.0
RECIPE = 1  # bump when what a clip's files contain changes, so old experiments are redone
MANIFEST_FORMAT = 1
FLUSH_EVERY_ITEMS = 16
FLUSH_EVERY_SECONDS = 30.0
PARALLEL_TEXT_MIN_ITEMS = 24  # below this a process pool costs more (frontend import) than it saves

# Reasons a clip is left out, with the sentence a person reads.
SKIP_REASONS: dict[str, str] = {
    "malformed_line": "the line does not have 4 fields (path|speaker|language|text)",
    "unsupported_language": "its language cannot be formatted",
    "empty_text": "its text is empty (or gives no phones)",
    "text_error": "its text could not be converted to phones",
    "missing_file": "its audio file does not exist",
    "unreadable": "its audio file cannot be decoded",
    "duplicate_name": "another clip earlier in the list has the same file name",
    "too_short": f"the audio is shorter than {MIN_SECONDS} s",
    "too_long": f"the audio is longer than {MAX_SECONDS:g} s (a recording to slice first, not a clip)",
    "silent": "the audio is silent",
    "too_loud": f"the audio peak is above {MAX_PEAK} (the reference skips such clips)",
    "feature_error": "its features could not be computed",
    "sv_error": "its speaker-verification embedding could not be computed",
}


class PrepareError(UserError, ValueError):
    """Formatting cannot start (bad list, bad option, missing pretrained model); the message says why."""


class PretrainedMissingError(PrepareError, FileNotFoundError):
    """A pretrained model formatting needs is not where it should be."""


@dataclass(frozen=True)
class ClipSource:
    """One usable line of the list."""

    line: int
    name: str
    audio: Path
    language: str
    text: str


@dataclass(frozen=True)
class SkippedClip:
    line: int
    name: str
    path: str
    reason: str  # a key of SKIP_REASONS
    detail: str = ""

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "?"
        extra = f" ({self.detail})" if self.detail else ""
        return f"{where}: {self.name or self.path}: {SKIP_REASONS.get(self.reason, self.reason)}{extra}"


@dataclass
class PrepareReport:
    """What a formatting run did."""

    exp_dir: str
    formatted: list[str] = field(default_factory=list)  # names in the tables after the run
    processed: list[str] = field(default_factory=list)  # names (re)done by this run
    reused: int = 0  # clips already up to date
    skipped: list[SkippedClip] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # names dropped from the tables (no longer listed)
    cancelled: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["skipped"] = [{**asdict(s), "message": str(s)} for s in self.skipped]
        return d

    def summary(self) -> str:
        state = "stopped" if self.cancelled else "done"
        return (
            f"{state}: {len(self.formatted)} clips formatted ({len(self.processed)} processed now, "
            f"{self.reused} already up to date), {len(self.skipped)} skipped, {len(self.removed)} removed, "
            f"{self.seconds:.1f} s"
        )


# ---------------------------------------------------------------------------------------------- recipe


def loudness_mix(audio: np.ndarray, scale: float, peak: float | None = None) -> np.ndarray:
    """The reference's mix: half peak-normalised to 0.95 * scale, half the recording times scale (float32)."""
    audio = np.asarray(audio, dtype=np.float32)
    if peak is None:
        peak = float(np.abs(audio).max())
    peak32 = np.float32(peak)
    return (
        audio / peak32 * np.float32(MIX_MAX * MIX_ALPHA * scale) + np.float32((1 - MIX_ALPHA) * scale) * audio
    )


def wav32k_int16(audio32k: np.ndarray) -> np.ndarray:
    """The ``5-wav32k`` samples: the mix at 32768, truncated to int16 (clipped: the reference wraps)."""
    mixed = loudness_mix(audio32k, WAV_SCALE)
    return np.clip(mixed, -32768, 32767).astype(np.int16)


def hubert_input(audio32k: np.ndarray) -> np.ndarray:
    """The HuBERT input: the mix at 1145.14, resampled 32 -> 16 kHz, float32 (N16,)."""
    from core.audio import resample

    return resample(loudness_mix(audio32k, HUBERT_SCALE), SAMPLE_RATE, HUBERT_SR)


@dataclass
class _Audio:
    wav: np.ndarray  # int16 (N32,)
    hubert_in: np.ndarray  # float32 (N16,)


@dataclass
class _Skip:
    reason: str
    detail: str = ""


def _load_clip(path: Path) -> _Audio | _Skip:
    """Decode, check and mix one clip (runs in a loader thread)."""
    from core.audio import AudioDecodeError, audio_info, load_audio

    if not path.is_file():
        return _Skip("missing_file", str(path))
    try:
        seconds = audio_info(path).duration  # the header only: nothing decoded yet
        if seconds > MAX_SECONDS:
            return _Skip("too_long", f"{seconds:.0f} s")
        audio, _ = load_audio(path, SAMPLE_RATE)
    except AudioDecodeError as e:
        return _Skip("unreadable", file_reason(e, path))  # the line names the clip already
    except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch; the report says why
        return _Skip("unreadable", f"{type(e).__name__}: {e}")
    if audio.shape[0] < MIN_SECONDS * SAMPLE_RATE:
        return _Skip("too_short", f"{audio.shape[0] / SAMPLE_RATE:.2f} s")
    peak = float(np.abs(audio).max())
    if peak <= 0.0:
        return _Skip("silent")
    if peak > MAX_PEAK:
        return _Skip("too_loud", f"peak {peak:.2f}")
    return _Audio(wav32k_int16(audio), hubert_input(audio))


@functools.lru_cache(maxsize=1)
def _g2pw_for(g2pw_dir: str | None) -> Any:
    """The G2PW polyphone model of a pretrained folder, loaded once per process (None: pypinyin).

    Worker processes load their own: the model holds an ONNX session and a tokenizer, not picklable.
    """
    if g2pw_dir is None:
        return None
    from gpt_sovits.text import load_g2pw

    return load_g2pw(g2pw_dir, threads=1)


def _clean_one(
    text: str, language: str, version: str, g2pw_dir: str | None = None
) -> tuple[list[str], list[int] | None, str] | _Skip:
    """Text -> (phones, word2ph, norm_text) or the reason it failed (picklable: runs in worker processes).

    `g2pw_dir`: the pretrained folder holding G2PWModel/ when Chinese v2 pinyin comes from G2PW.
    """
    from gpt_sovits.text import cleaner
    from gpt_sovits.text.errors import LanguageNotInstalledError, UnknownLanguageError

    text = text.replace("%", "-").replace("￥", ",")  # as the reference's 1-get-text.py
    if not text.strip():
        return _Skip("empty_text")
    try:
        g2pw = _g2pw_for(g2pw_dir) if language == "zh" else None
        phones, word2ph, norm_text = cleaner.clean_text(text, language, version, g2pw=g2pw)
    except (LanguageNotInstalledError, UnknownLanguageError) as e:
        return _Skip("unsupported_language", str(e))
    except Exception as e:  # noqa: BLE001 - one bad text must not stop the batch; the report says why
        return _Skip("text_error", f"{type(e).__name__}: {e}")
    if not phones or not norm_text.strip():
        return _Skip("empty_text", f"normalised to {norm_text!r}")
    if "\t" in norm_text or "\n" in norm_text:  # would break the tab-separated table
        return _Skip("text_error", f"the normalised text holds a tab or line break: {norm_text!r}")
    return phones, word2ph, norm_text


# --------------------------------------------------------------------------------------------- the list


# What the reference's clean_path strips from a list's path: spaces, quotes, line breaks and the
# invisible LEFT-TO-RIGHT EMBEDDING that Windows' "copy as path" adds.
_PATH_JUNK = " '\"\n\u202a"


def _basename(path: str) -> str:
    """Basename of a path written on any system (a Windows list may hold backslashes)."""
    return re.split(r"[\\/]", path)[-1]


def read_sources(
    list_path: str | Path, wav_dir: str | Path | None = None, version: str = "v2"
) -> tuple[list[ClipSource], list[SkippedClip]]:
    """The usable clips of a `.list`, and the lines left out with why.

    Audio is ``wav_dir/<basename>`` when `wav_dir` is given (as the reference), else the list's path
    (relative paths against the list's folder).
    """
    from tools.labels import LabelError, load_list, normalize_language

    try:
        doc = load_list(list_path, boundary=Path("/"))
    except LabelError as e:
        raise PrepareError(str(e)) from e
    from gpt_sovits.pretrained import symbol_version
    from gpt_sovits.text.cleaner import LANGUAGES

    allowed = LANGUAGES[symbol_version(version)]
    skipped = [
        SkippedClip(raw.line, "", raw.text[:80], "malformed_line", "expected path|speaker|language|text")
        for raw in doc.malformed
    ]
    sources: list[ClipSource] = []
    seen: dict[str, int] = {}
    for e in doc.entries:
        raw = e.path.strip(_PATH_JUNK)
        name = _basename(raw)
        if not name:
            skipped.append(SkippedClip(e.line, "", e.path, "missing_file", "the audio path is empty"))
            continue
        lang = normalize_language(e.language)
        if lang is None or lang not in allowed:
            skipped.append(
                SkippedClip(
                    e.line,
                    name,
                    e.path,
                    "unsupported_language",
                    f"{e.language!r}; a {version} model takes {', '.join(allowed)}",
                )
            )
            continue
        if name in seen:
            skipped.append(SkippedClip(e.line, name, e.path, "duplicate_name", f"first on line {seen[name]}"))
            continue
        seen[name] = e.line
        audio = (
            Path(wav_dir) / name if wav_dir else (Path(raw) if Path(raw).is_absolute() else doc.root / raw)
        )
        sources.append(ClipSource(e.line, name, audio, lang, e.text))
    return sources, skipped


# ------------------------------------------------------------------------------------- pretrained files


@dataclass(frozen=True)
class _Pretrained:
    s2g: Path
    hubert: Path
    bert: Path
    sv: Path | None  # v2Pro/v2ProPlus only


def _pretrained(pretrained_dir: Path, version: str) -> _Pretrained:
    from gpt_sovits.pretrained import BERT_FOLDER, HUBERT_FOLDER, V3V4_FILES, pretrained_paths

    if version in V3V4_FILES:  # the tokens come from the v3/v4 generator's own quantizer (reference 1c)
        root = pretrained_dir
        return _Pretrained(root / V3V4_FILES[version][0], root / HUBERT_FOLDER, root / BERT_FOLDER, None)
    p = pretrained_paths(pretrained_dir, version)
    return _Pretrained(p.s2g, p.hubert, p.bert, p.sv)


def format_versions() -> tuple[str, ...]:
    """The versions formatting takes: those this project trains end to end, and v3/v4."""
    from gpt_sovits.pretrained import V3V4_FILES, VERSIONS

    return (*VERSIONS, *V3V4_FILES)


def _format_models(version: str) -> dict[str, str]:
    """Registry names of the models formatting reads for `version` (roles bert, hubert, s2g, maybe sv)."""
    from gpt_sovits.pretrained import V3V4_FILES, v3v4_models, version_models

    return v3v4_models(version) if version in V3V4_FILES else version_models(version)


def _g2pw_folder(pretrained_dir: Path, version: str) -> str | None:
    """The pretrained folder as G2PW's home when it holds the G2PW model (v2 only), else None."""
    from gpt_sovits.text.g2pw import find_g2pw_files

    try:
        found = version == "v2" and find_g2pw_files(pretrained_dir) is not None
    except Exception:  # noqa: BLE001 - a broken G2PW folder means pypinyin; load_g2pw logs why
        found = version == "v2"
    return str(pretrained_dir) if found else None


def _check_pretrained(names: list[str], pretrained_dir: Path) -> None:
    """Raise PretrainedMissingError listing every missing model: its file or folder, and how to get it."""
    from gpt_sovits.pretrained import missing_message

    problems = [m for m in (missing_message(n, pretrained_dir) for n in names) if m]
    if problems:
        raise PretrainedMissingError(
            f"Formatting needs pretrained models that are missing from {pretrained_dir}:\n- "
            + "\n- ".join(problems)
        )


def _fingerprint(path: Path) -> list[Any]:
    """Size and mtime of a model file, or of a model folder's files: changes when the model is replaced."""
    if path.is_file():
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]
    if path.is_dir():
        return sorted([f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in path.iterdir() if f.is_file())
    return ["missing"]


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False, default=str).encode("utf-8")).hexdigest()[:32]


# ---------------------------------------------------------------------------------------------- models


class _Models:
    """The models, loaded on first use only (a re-run with nothing to do loads none)."""

    def __init__(self, pre: _Pretrained, device: Any, version: str) -> None:
        self.pre = pre
        self.device = device
        self.version = version
        self._bert = None
        self._hubert = None
        self._s2 = None
        self._sv = None

    def bert(self):
        if self._bert is None:
            from gpt_sovits.models.features import load_bert

            self._bert = load_bert(self.pre.bert, self.device)
        return self._bert

    def release_bert(self) -> None:
        """Free BERT (the largest model) before the audio models run: lower peak memory."""
        self._release("_bert")

    def release_audio(self) -> None:
        """Free HuBERT, the generator and the SV model once the audio pass is over."""
        self._release("_hubert", "_s2", "_sv")

    def _release(self, *attrs: str) -> None:
        if all(getattr(self, a) is None for a in attrs):
            return
        import gc

        import torch

        for a in attrs:
            setattr(self, a, None)
        gc.collect()
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.empty_cache()

    def sv(self):
        """The speaker-verification model (v2Pro/v2ProPlus), fp32; an unusable file -> PrepareError."""
        if self._sv is None:
            from gpt_sovits.models import sv as sv_model
            from gpt_sovits.models.weights import CheckpointError

            if self.pre.sv is None:
                raise PrepareError(f"version {self.version} does not use a speaker-verification model")
            try:
                self._sv = sv_model.load_sv(self.pre.sv, self.device)
            except CheckpointError as e:
                raise PrepareError(f"the speaker-verification model cannot be used: {e}") from e
        return self._sv

    def hubert(self):
        if self._hubert is None:
            from gpt_sovits.models.features import load_hubert

            self._hubert = load_hubert(self.pre.hubert, self.device)
        return self._hubert

    def s2(self):
        from gpt_sovits.models.s2v3 import V3V4_VERSIONS

        if self._s2 is None and self.version in V3V4_VERSIONS:
            from gpt_sovits.models.weights import CheckpointError
            from gpt_sovits.models.weights_v3 import load_sovits_v3

            try:  # the full pretrained generator (a LoRA export has no quantizer of its own)
                self._s2, _ = load_sovits_v3(
                    self.pre.s2g, device=self.device, precision="fp32", version=self.version
                )
            except CheckpointError as e:
                raise PrepareError(
                    f"the pretrained SoVITS {self.version} generator cannot be used: {e}"
                ) from e
        if self._s2 is None:
            from gpt_sovits.models.weights import CheckpointError, load_sovits

            try:
                # fp32 even on GPU: the quantizer's nearest-code search should not flip in half precision
                model, cfg = load_sovits(self.pre.s2g, self.device, precision="fp32")
            except CheckpointError as e:
                raise PrepareError(f"the pretrained SoVITS generator cannot be used: {e}") from e
            if cfg.version != self.version:
                raise PrepareError(
                    f"{self.pre.s2g} is a SoVITS {cfg.version} model but version {self.version} was asked for; "
                    f"put the official {self.version} file there or choose version {cfg.version}"
                )
            self._s2 = model
        return self._s2


def _ssl_and_tokens(models: _Models, wav16k: np.ndarray) -> tuple[Any, list[int]] | _Skip:
    """HuBERT features (1, 768, T50) fp32 CPU and the semantic tokens (T50 // 2) of one clip."""
    import torch

    from gpt_sovits.device import autocast_for
    from gpt_sovits.models.features import hubert_features

    x = torch.from_numpy(wav16k).unsqueeze(0)  # (1, N16)
    ssl = None
    for reduced in (True, False):  # on GPU: autocast first, fp32 again if it gives NaN (as the reference)
        with autocast_for(models.device, enabled=reduced):
            ssl = hubert_features(models.hubert(), x).float()
        if torch.isfinite(ssl).all() or models.device.type == "cpu":
            break
    if ssl is None or not torch.isfinite(ssl).all():
        return _Skip("feature_error", "HuBERT gave NaN")
    with torch.inference_mode():
        codes = models.s2().extract_latent(ssl)  # (1, 1, T25)
    return ssl.cpu().contiguous(), [int(t) for t in codes[0, 0].tolist()]


def _sv_to_file(models: _Models, path: Path, wav: np.ndarray) -> _Skip | None:
    """The SV embedding (1, 20480) of one clip's 5-wav32k samples (int16) to ``7-sv_cn``."""
    from gpt_sovits.models.sv import sv_embedding_of_wav32k

    sv = models.sv()  # outside the try: an unusable model stops the run, it is not one clip's fault
    try:
        emb = sv_embedding_of_wav32k(sv, wav.astype(np.float32) / np.float32(WAV_SCALE))  # (1, 20480)
    except Exception as e:  # noqa: BLE001 - one clip's failure is reported, the rest go on
        return _Skip("sv_error", f"{type(e).__name__}: {e}")
    _save_tensor(path, emb.float().contiguous())
    return None


def _read_wav32k(path: Path) -> np.ndarray:
    """A ``5-wav32k`` file's int16 samples (N32,)."""
    import soundfile as sf

    data, _ = sf.read(str(path), dtype="int16", always_2d=False)
    return np.asarray(data).reshape(-1)


def _bert_to_file(models: _Models, path: Path, norm_text: str, word2ph: list[int] | None) -> _Skip | None:
    """BERT features (1024, n_phones) of one Chinese clip to ``3-bert``; the reason when they fail."""
    from gpt_sovits.models.features import FeatureInputError, bert_phone_features

    try:
        feats = bert_phone_features(models.bert(), norm_text, word2ph or [])
    except FeatureInputError as e:
        return _Skip("text_error", str(e))
    except Exception as e:  # noqa: BLE001 - e.g. a text longer than BERT's 512 positions
        return _Skip("feature_error", f"BERT: {type(e).__name__}: {e}")
    _save_tensor(path, feats)
    return None


def _save_tensor(path: Path, tensor: Any) -> None:
    import torch

    atomic_write_with(path, lambda tmp: torch.save(tensor, tmp))


def _save_wav(path: Path, wav: np.ndarray) -> None:
    import soundfile as sf

    atomic_write_with(path, lambda tmp: sf.write(str(tmp), wav, SAMPLE_RATE, subtype="PCM_16", format="WAV"))


# --------------------------------------------------------------------------------------------- state


@dataclass
class _State:
    """The experiment's tables and manifest in memory; written tables first, only when changed."""

    paths: ExperimentPaths
    texts: dict[str, PhoneEntry]
    semantic: dict[str, list[int]]
    items: dict[str, dict[str, Any]]  # manifest items: name -> {text_key, audio_key, language, audio}
    skips: dict[str, dict[str, Any]]  # clips left out, with the keys they were judged under and why
    version: str

    @classmethod
    def load(cls, paths: ExperimentPaths, version: str) -> _State:
        texts: dict[str, PhoneEntry] = {}
        semantic: dict[str, list[int]] = {}
        items: dict[str, dict[str, Any]] = {}
        skips: dict[str, dict[str, Any]] = {}
        try:
            if paths.name2text.is_file():
                texts = parse_name2text(paths.name2text.read_text(encoding="utf-8"), str(paths.name2text))
            if paths.name2semantic.is_file():
                semantic = parse_name2semantic(
                    paths.name2semantic.read_text(encoding="utf-8"), str(paths.name2semantic)
                )
        except (ExperimentFormatError, UnicodeDecodeError) as e:
            logger.warning("%s; every clip will be formatted again", e)
            texts, semantic = {}, {}
        if paths.manifest.is_file():
            try:
                data = json.loads(paths.manifest.read_text(encoding="utf-8"))
                if data.get("format") == MANIFEST_FORMAT and isinstance(data.get("items"), dict):
                    items = {k: v for k, v in data["items"].items() if isinstance(v, dict)}
                    skips = {k: v for k, v in data.get("skipped", {}).items() if isinstance(v, dict)}
            except (ValueError, UnicodeDecodeError):
                logger.warning("%s is unreadable; every clip will be formatted again", paths.manifest)
        return cls(paths, texts, semantic, items, skips, version)

    def flush(self, order: list[str]) -> None:
        """Write the tables (clips complete in both, in list order), then the manifest."""
        names = [n for n in order if n in self.texts and n in self.semantic and n in self.items]
        text = "".join(format_name2text_line(self.texts[n]) + "\n" for n in names)
        sem = (
            SEMANTIC_HEADER
            + "\n"
            + "".join(f"{n}\t{' '.join(str(t) for t in self.semantic[n])}\n" for n in names)
        )
        manifest = (
            json.dumps(
                {
                    "format": MANIFEST_FORMAT,
                    "version": self.version,
                    "items": {n: self.items[n] for n in names},
                    "skipped": {n: self.skips[n] for n in order if n in self.skips},
                },
                ensure_ascii=False,
                indent=1,
                sort_keys=True,
            )
            + "\n"
        )
        _write_if_changed(self.paths.name2text, text)
        _write_if_changed(self.paths.name2semantic, sem)
        _write_if_changed(self.paths.manifest, manifest)


def _write_if_changed(path: Path, text: str) -> None:
    # An unreadable old file is simply rewritten: comparing is only there to keep mtimes of unchanged tables.
    with contextlib.suppress(OSError, UnicodeDecodeError):
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            return
    atomic_write_text(path, text)


def _prefetch(loader: ThreadPoolExecutor, paths: list[Path], ahead: int = 2) -> Iterator[Future]:
    """Futures of `_load_clip` in order, keeping `ahead` decodes running while the models work."""
    futures: dict[int, Future] = {}
    for i in range(len(paths)):
        for j in range(i, min(i + ahead + 1, len(paths))):
            if j not in futures:
                futures[j] = loader.submit(_load_clip, paths[j])
        yield futures.pop(i)


def _ignore_stop_signals() -> None:
    """Pool workers leave SIGTERM/SIGINT (sent to the whole process group by Job.stop) to the parent,
    which stops the pool and saves; a killed worker would break the pool instead."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _clean_texts(
    todo: list[ClipSource],
    version: str,
    workers: int,
    should_stop: StopFn,
    note: Callable[[str], None],
    g2pw_dir: str | None = None,
) -> dict[str, tuple[list[str], list[int] | None, str] | _Skip]:
    """Text cleaning of the clips that need it: in a process pool for large lists, else in process.

    `note(message)` reports how far it got (the clip counter only moves when a clip is complete).
    """
    results: dict[str, tuple[list[str], list[int] | None, str] | _Skip] = {}
    every = max(1, len(todo) // 20)
    if workers > 1 and len(todo) >= PARALLEL_TEXT_MIN_ITEMS:
        # spawn: the parent holds torch threads, which do not survive fork well
        pool_args = {"mp_context": get_context("spawn"), "initializer": _ignore_stop_signals}
        with ProcessPoolExecutor(min(workers, len(todo)), **pool_args) as pool:
            futures = [(s.name, pool.submit(_clean_one, s.text, s.language, version, g2pw_dir)) for s in todo]
            for k, (name, fut) in enumerate(futures, start=1):
                if should_stop():
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise JobCancelled("stopped while converting texts")
                results[name] = fut.result()
                if k % every == 0:
                    note(f"texts to phones: {k}/{len(todo)}")
        return results
    for k, s in enumerate(todo, start=1):
        if should_stop():
            raise JobCancelled("stopped while converting texts")
        results[s.name] = _clean_one(s.text, s.language, version, g2pw_dir)
        if k % every == 0:
            note(f"texts to phones: {k}/{len(todo)}")
    return results


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 1) - 1))


# ---------------------------------------------------------------------------------------------- main


@dataclass
class _Plan:
    """What a run has to do: per clip the keys its parts depend on, and which parts are out of date."""

    text_keys: dict[str, str]
    audio_keys: dict[str, str]
    need_text: list[ClipSource]  # text part (phones, BERT) to (re)do, in list order
    need_audio: set[str]  # names whose audio part (wav, HuBERT, tokens) is to (re)do
    known_skips: list[SkippedClip]  # clips left out before under the same inputs: reported, not redone
    sv_keys: dict[str, str] = field(default_factory=dict)  # v2Pro/v2ProPlus only
    need_sv: set[str] = field(default_factory=set)  # names whose 7-sv_cn embedding is to (re)do

    @property
    def todo(self) -> set[str]:
        return {s.name for s in self.need_text} | self.need_audio | self.need_sv


def _plan(
    sources: list[ClipSource],
    state: _State,
    version: str,
    bert_fp: list[Any],
    audio_fp: list[Any],
    sv_fp: list[Any] | None = None,
) -> _Plan:
    """`version` is the symbol version (texts); `sv_fp` the SV model's fingerprint when the version uses it."""
    plan = _Plan({}, {}, [], set(), [])
    paths = state.paths
    for s in sources:
        plan.text_keys[s.name] = _key(
            RECIPE, version, s.language, s.text, bert_fp if s.language == "zh" else None
        )
        try:
            st = s.audio.stat()
            stamp: list[Any] = [str(s.audio.resolve()), st.st_size, st.st_mtime_ns]
        except OSError:
            stamp = [str(s.audio), "missing"]
        plan.audio_keys[s.name] = _key(RECIPE, stamp, audio_fp)
        if sv_fp is not None:  # the embedding is of the 5-wav32k samples: the audio file and the SV model
            plan.sv_keys[s.name] = _key(RECIPE, stamp, sv_fp)
        old_skip = state.skips.get(s.name, {})
        if (old_skip.get("text_key"), old_skip.get("audio_key")) == (
            plan.text_keys[s.name],
            plan.audio_keys[s.name],
        ):
            detail = str(old_skip.get("detail", ""))
            plan.known_skips.append(
                SkippedClip(s.line, s.name, str(s.audio), str(old_skip.get("reason")), detail)
            )
            continue
        old = state.items.get(s.name, {})
        text_ok = (
            old.get("text_key") == plan.text_keys[s.name]
            and s.name in state.texts
            and (s.language != "zh" or paths.bert(s.name).is_file())
        )
        audio_ok = (
            old.get("audio_key") == plan.audio_keys[s.name]
            and s.name in state.semantic
            and paths.hubert(s.name).is_file()
            and paths.wav(s.name).is_file()
        )
        if not text_ok:
            plan.need_text.append(s)
        if not audio_ok:
            plan.need_audio.add(s.name)
        if sv_fp is not None and not (
            old.get("sv_key") == plan.sv_keys[s.name] and paths.sv(s.name).is_file()
        ):
            plan.need_sv.add(s.name)
    return plan


class _Run:
    """One formatting run over the planned clips: two passes, bookkeeping, periodic saves.

    Two passes, one model family each, so BERT (the largest) is freed before HuBERT loads. A clip
    counts as done (manifest entry, table rows) only when both of its parts are; files are atomic.
    """

    def __init__(
        self,
        sources: list[ClipSource],
        state: _State,
        plan: _Plan,
        models: _Models,
        report: PrepareReport,
        progress: ProgressFn,
        should_stop: StopFn,
    ) -> None:
        self.sources, self.state, self.plan, self.models = sources, state, plan, models
        self.report, self.progress, self.should_stop = report, progress, should_stop
        self.paths = state.paths
        self.order = [s.name for s in sources]
        self.total = len(sources)
        self.done = self.total - len(plan.todo)
        self.bert_written: set[str] = set()
        self.since_flush = 0
        self.last_flush = time.monotonic()

    def note(self, message: str) -> None:
        self.progress(self.done, self.total, message)

    def check_stop(self) -> None:
        if self.should_stop():
            raise JobCancelled("stopped")

    def leave_out(self, s: ClipSource, reason: str, detail: str = "") -> None:
        if s.name in self.bert_written:  # our own output of this run, for a clip that is not kept
            self.paths.bert(s.name).unlink(missing_ok=True)
        self.state.texts.pop(s.name, None)
        self.state.semantic.pop(s.name, None)
        self.report.skipped.append(SkippedClip(s.line, s.name, str(s.audio), reason, detail))
        self.done += 1
        self.note(s.name)
        if reason in ("feature_error", "sv_error"):  # may be passing (e.g. GPU memory): tried again next run
            return
        keys = {"text_key": self.plan.text_keys[s.name], "audio_key": self.plan.audio_keys[s.name]}
        self.state.skips[s.name] = {**keys, "reason": reason, "detail": detail}

    def complete(self, s: ClipSource) -> None:
        self.state.items[s.name] = {
            "text_key": self.plan.text_keys[s.name],
            "audio_key": self.plan.audio_keys[s.name],
            "language": s.language,
            "audio": str(s.audio),
        }
        if s.name in self.plan.sv_keys:
            self.state.items[s.name]["sv_key"] = self.plan.sv_keys[s.name]
        self.state.skips.pop(s.name, None)
        self.report.processed.append(s.name)
        self.done += 1
        self.since_flush += 1
        self.note(s.name)
        if self.since_flush >= FLUSH_EVERY_ITEMS or time.monotonic() - self.last_flush > FLUSH_EVERY_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.state.flush(self.order)
        self.since_flush, self.last_flush = 0, time.monotonic()

    def text_pass(self, workers: int, version: str, g2pw_dir: str | None = None) -> list[ClipSource]:
        """Texts -> phones (a process pool for large lists), Chinese -> ``3-bert``; returns the clips
        whose audio part is still to do."""
        cleaned = _clean_texts(self.plan.need_text, version, workers, self.should_stop, self.note, g2pw_dir)
        n_bert = sum(1 for s in self.plan.need_text if s.language == "zh")
        k_bert = 0
        pending_audio: list[ClipSource] = []
        for s in self.sources:
            if s.name not in self.plan.todo:
                continue
            self.check_stop()
            result = cleaned.get(s.name)  # None: the text part is up to date
            if isinstance(result, _Skip):
                self.leave_out(s, result.reason, result.detail)
                continue
            if result is not None:
                phones, word2ph, norm_text = result
                if s.language == "zh":
                    k_bert += 1
                    skip = _bert_to_file(self.models, self.paths.bert(s.name), norm_text, word2ph)
                    if skip is not None:
                        self.leave_out(s, skip.reason, skip.detail)
                        continue
                    self.bert_written.add(s.name)
                    if k_bert % max(1, n_bert // 20) == 0:
                        self.note(f"BERT features: {k_bert}/{n_bert}")
                else:
                    # A clip that was Chinese before: trainers load 3-bert/<name>.pt whenever it exists,
                    # and old features would not match the new phones.
                    self.paths.bert(s.name).unlink(missing_ok=True)
                self.state.texts[s.name] = PhoneEntry(s.name, phones, word2ph, norm_text, s.language)
            if s.name in self.plan.need_audio or s.name in self.plan.need_sv:
                pending_audio.append(s)
            else:
                self.complete(s)
        return pending_audio

    def audio_pass(self, pending: list[ClipSource]) -> None:
        """Audio -> ``5-wav32k``, ``4-cnhubert``, semantic tokens (and ``7-sv_cn`` for v2Pro/ProPlus);
        decoding runs a clip or two ahead. Clips whose audio part is up to date and only lack the SV
        embedding get it from their ``5-wav32k`` file."""
        redo = [s for s in pending if s.name in self.plan.need_audio]
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare-audio") as loader:
            clips = _prefetch(loader, [s.audio for s in redo])
            try:
                for s in redo:
                    self.check_stop()
                    clip = next(clips).result()
                    out: tuple[Any, list[int]] | _Skip = (
                        clip if isinstance(clip, _Skip) else self._features(clip)
                    )
                    if isinstance(out, _Skip):
                        self.leave_out(s, out.reason, out.detail)
                        continue
                    ssl, tokens = out
                    _save_wav(self.paths.wav(s.name), clip.wav)
                    _save_tensor(self.paths.hubert(s.name), ssl)
                    self.state.semantic[s.name] = tokens
                    self._sv_then_complete(s, clip.wav)
            finally:
                loader.shutdown(wait=True, cancel_futures=True)
        for s in pending:
            if s.name not in self.plan.need_audio:
                self.check_stop()
                self._sv_then_complete(s, None)

    def _sv_then_complete(self, s: ClipSource, wav: np.ndarray | None) -> None:
        """The clip's SV embedding when it needs one (`wav`: its int16 5-wav32k samples, None: read the
        file), then the clip counts as done."""
        if s.name in self.plan.need_sv:
            try:
                samples = wav if wav is not None else _read_wav32k(self.paths.wav(s.name))
            except Exception as e:  # noqa: BLE001 - e.g. a 5-wav32k file damaged since: redone next run
                self.leave_out(s, "feature_error", f"5-wav32k: {type(e).__name__}: {e}")
                return
            skip = _sv_to_file(self.models, self.paths.sv(s.name), samples)
            if skip is not None:
                self.leave_out(s, skip.reason, skip.detail)
                return
        self.complete(s)

    def _features(self, clip: _Audio) -> tuple[Any, list[int]] | _Skip:
        try:
            return _ssl_and_tokens(self.models, clip.hubert_in)
        except Exception as e:  # noqa: BLE001 - one clip's failure is reported, the rest go on
            return _Skip("feature_error", f"HuBERT/semantic tokens: {type(e).__name__}: {e}")


def prepare(
    list_path: str | Path,
    exp_dir: str | Path,
    pretrained_dir: str | Path,
    wav_dir: str | Path | None = None,
    version: str = "v2",
    device: str = "auto",
    workers: int | None = None,
    progress: ProgressFn = log_progress,
    should_stop: StopFn = never_stop,
) -> PrepareReport:
    """Format the clips of `list_path` into `exp_dir` (see the module docstring); returns what happened.

    Raises PrepareError (bad list or option, unusable pretrained generator) or PretrainedMissingError
    (a needed model is missing) before any clip is touched. When `should_stop()` turns true, what is
    done is saved and the report has ``cancelled=True``; a later call goes on from there. Any other
    exception also saves what is done before it propagates.
    """
    from gpt_sovits.device import pick_device
    from gpt_sovits.pretrained import symbol_version
    from gpt_sovits.text.g2pw import G2PW_FOLDER

    started = time.monotonic()
    if version not in format_versions():
        raise PrepareError(f"unknown version {version!r}: use one of {', '.join(format_versions())}")
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise PrepareError(f"workers must be at least 1 (got {workers})")
    if wav_dir is not None and str(wav_dir).strip() == "":
        wav_dir = None
    if wav_dir is not None and not Path(wav_dir).is_dir():
        raise PrepareError(f"audio folder not found: {wav_dir}")
    pretrained_dir = Path(pretrained_dir)
    paths = ExperimentPaths.of(exp_dir)
    report = PrepareReport(exp_dir=str(paths.root))

    text_version = symbol_version(version)  # v2Pro/v2ProPlus texts are v2's
    sources, skipped = read_sources(list_path, wav_dir, version)
    report.skipped.extend(skipped)
    pre = _pretrained(pretrained_dir, version)
    paths.root.mkdir(parents=True, exist_ok=True)
    state = _State.load(paths, version)
    order = [s.name for s in sources]
    report.removed = sorted(n for n in set(state.texts) | set(state.items) if n not in set(order))
    # Chinese v2 pinyin from G2PW when its files are there (as the reference); the text key includes it,
    # so installing or replacing G2PW redoes the Chinese texts.
    g2pw_dir = _g2pw_folder(pretrained_dir, text_version)
    text_fp = [_fingerprint(pre.bert), _fingerprint(pretrained_dir / G2PW_FOLDER) if g2pw_dir else None]
    audio_fp = [_fingerprint(pre.hubert), _fingerprint(pre.s2g)]
    sv_fp = [_fingerprint(pre.sv)] if pre.sv is not None else None
    plan = _plan(sources, state, text_version, text_fp, audio_fp, sv_fp)
    report.skipped.extend(plan.known_skips)
    state.skips = {k.name: state.skips[k.name] for k in plan.known_skips}

    # The models this run needs must be there before any clip is touched.
    names = _format_models(version)
    needed = [names["bert"]] if any(s.language == "zh" for s in plan.need_text) else []
    needed += [names["hubert"], names["s2g"]] if plan.need_audio else []
    needed += [names["sv"]] if plan.need_sv else []
    _check_pretrained(needed, pretrained_dir)
    models = _Models(pre, pick_device(device) if plan.todo else None, version)
    if plan.need_audio:
        models.s2()  # a generator of the wrong version or kind fails now (it is small: kept loaded)
    if plan.need_sv:
        models.sv()  # so does an unusable SV model (small too: kept until the audio pass ends)

    # Clips already complete keep their rows; a clip being redone loses its manifest entry until done.
    for name in plan.todo:
        state.items.pop(name, None)
    run = _Run(sources, state, plan, models, report, progress, should_stop)
    report.reused = run.done - len(plan.known_skips)
    run.note("formatting")
    try:
        pending_audio = run.text_pass(workers, text_version, g2pw_dir)
        models.release_bert()
        run.audio_pass(pending_audio)
        models.release_audio()
    except JobCancelled:
        report.cancelled = True
    finally:
        run.flush()
    report.formatted = [n for n in order if n in state.items]
    report.skipped.sort(key=lambda k: k.line)
    report.seconds = time.monotonic() - started
    return report


# ------------------------------------------------------------------------------------------------ CLI

_CONFIG_KEYS = ("list", "exp_dir", "pretrained_dir", "wav_dir", "version", "device", "workers")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gpt_sovits.data.prepare",
        description=(
            "Format a .list into an experiment folder (phones, BERT, 32 kHz wavs, HuBERT, semantic tokens; "
            "SV embeddings for v2Pro/v2ProPlus)."
        ),
    )
    parser.add_argument("--list", dest="list", help="the .list label file (path|speaker|language|text)")
    parser.add_argument("--exp-dir", help="the experiment folder to fill (created if needed)")
    parser.add_argument("--pretrained-dir", help="the pretrained-models folder (official layout)")
    parser.add_argument("--wav-dir", help="read audio from WAV_DIR/<basename of the list's path>")
    parser.add_argument(
        "--version",
        choices=format_versions(),
        help="model version (default v2); v2Pro/v2ProPlus also write 7-sv_cn",
    )
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    parser.add_argument("--workers", type=int, help=f"text-cleaning processes (default {default_workers()})")
    parser.add_argument("--events", help="append JSON-lines progress events to this file")
    parser.add_argument(
        "--config", help="JSON file with any of: " + ", ".join(_CONFIG_KEYS) + " (flags override)"
    )
    return parser


def _options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {"wav_dir": None, "version": "v2", "device": "auto", "workers": None}
    if args.config:
        try:
            data = json.loads(Path(args.config).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise PrepareError(f"cannot read the config file {args.config}: {e}") from e
        if not isinstance(data, dict):
            raise PrepareError(f"the config file {args.config} must hold a JSON object")
        unknown = sorted(set(data) - set(_CONFIG_KEYS))
        if unknown:
            raise PrepareError(f"unknown keys in {args.config}: {', '.join(unknown)}")
        opts.update(data)
    for key in _CONFIG_KEYS:
        value = getattr(args, key)
        if value is not None:
            opts[key] = value
    for key in ("list", "exp_dir", "pretrained_dir"):
        if not opts.get(key):
            raise PrepareError(f"--{key.replace('_', '-')} is required (as a flag or in --config)")
    return opts


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    events = EventWriter(args.events)
    stop_requested = False

    def on_term(signum: int, frame: Any) -> None:  # Job.stop sends SIGTERM: finish the clip, save, exit
        nonlocal stop_requested
        stop_requested = True

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        opts = _options(args)
        report = prepare(
            opts["list"],
            opts["exp_dir"],
            opts["pretrained_dir"],
            wav_dir=opts["wav_dir"],
            version=opts["version"],
            device=opts["device"],
            workers=opts["workers"],
            progress=events.progress,  # also logs each step
            should_stop=lambda: stop_requested,
        )
    except (PrepareError, ValueError, OSError, RuntimeError) as e:
        events.emit("error", message=str(e))
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    events.emit("result", **report.to_dict())
    for s in report.skipped:
        print(f"skipped: {s}", file=sys.stderr)
    for name in report.removed:
        print(f"removed (no longer in the list): {name}")
    print(report.summary())
    if not report.formatted and not report.cancelled:
        print("error: no clip could be formatted", file=sys.stderr)
        return EXIT_ALL_FAILED  # nothing formatted: "Failed.", not "Done, some files failed."
    return 1 if report.cancelled else 0


if __name__ == "__main__":
    sys.exit(main())
