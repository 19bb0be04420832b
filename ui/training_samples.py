"""Listening samples after each save, and the experiment's exported weights (plain functions).

After a `saved` event the tab synthesises a short fixed sentence with a fixed prompt from the new
checkpoint paired with the newest other model (`plan_sample`); the request goes to
`python -m gpt_sovits.infer.samples`. `list_exports` finds what the trainers exported, which is
also what the Inference tab offers.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.audio import DATASET_RATE
from ui.training_common import Layout, Translator, plain

SAMPLE_TEXTS: dict[str, str] = {
    "zh": "这是训练过程中的试听样本，用来听出声音的变化。",
    "yue": "呢个係训练过程入面嘅试听样本。",
    "ja": "これは学習の途中で作った試聴用のサンプルです。",
    "ko": "이것은 학습 중에 만든 미리 듣기 샘플입니다.",
    "en": "This is a short sample made during training, to hear how the voice is coming along.",
}
SAMPLE_REF_SECONDS = (3.0, 10.0)  # the reference's advice for a prompt clip


@dataclass(frozen=True)
class SampleReference:
    """The fixed prompt clip and target text every progress sample uses.

    `parts` lists the clips to join (with REF_GAP_SECONDS of silence) when no single clip is long
    enough for a prompt; the tab writes them to one file and sets `audio` to it."""

    audio: str
    text: str
    language: str
    target_text: str
    target_language: str
    parts: tuple[str, ...] = ()


@dataclass(frozen=True)
class SampleSpec:
    model: str  # "s2" or "s1": which model was just saved
    epoch: int
    gpt_path: str
    sovits_path: str
    out_path: str
    reference: SampleReference


REF_GAP_SECONDS = 0.3
_SPACED = ("en", "ko")


def sample_text(language: str) -> str:
    return SAMPLE_TEXTS.get(language, SAMPLE_TEXTS["en"])


def _run_from(clips: Sequence[tuple[str, str, str, float]], start: int) -> list[tuple[str, str, str, float]]:
    """Clips from `start` on, same language, added while the joined length stays within the prompt
    bounds, stopping once it reaches the lower bound."""
    lo, hi = SAMPLE_REF_SECONDS
    run, total = [clips[start]], clips[start][3]
    for clip in clips[start + 1 :]:
        if total >= lo or clip[1] != clips[start][1] or total + REF_GAP_SECONDS + clip[3] > hi:
            break
        run.append(clip)
        total += REF_GAP_SECONDS + clip[3]
    return run


def _joined_seconds(run: Sequence[tuple[str, str, str, float]]) -> float:
    return sum(c[3] for c in run) + REF_GAP_SECONDS * (len(run) - 1)


def choose_reference(
    clips: Sequence[tuple[str, str, str, float]], chosen: str | None = None
) -> SampleReference | None:
    """The prompt for samples from (path, language, text, seconds) clips.

    `chosen` when it is one of them (joined with the clips after it if it is shorter than 3 s), else
    the first clip of 3-10 s, else the first run of consecutive same-language clips that reaches 3 s
    when joined, else the first clip."""
    if not clips:
        return None
    lo, hi = SAMPLE_REF_SECONDS
    index = next((i for i, c in enumerate(clips) if chosen and c[0] == chosen), None)
    if index is None:
        index = next((i for i, c in enumerate(clips) if lo <= c[3] <= hi), None)
    if index is not None:
        run = _run_from(clips, index) if clips[index][3] < lo else [clips[index]]
    else:
        runs = (_run_from(clips, i) for i in range(len(clips)))
        run = next((r for r in runs if _joined_seconds(r) >= lo), [clips[0]])
    language = run[0][1]
    text = (" " if language in _SPACED else "").join(c[2].strip() for c in run)
    parts = tuple(c[0] for c in run) if len(run) > 1 else ()
    return SampleReference(run[0][0], text, language, sample_text(language), language, parts)


_SOVITS_NAME = r"{exp}_e(\d+)_s(\d+)(?:_l\d+)?\.pth"  # v3/v4 LoRA exports end in _l<rank>
_GPT_NAME = r"{exp}-e(\d+)\.ckpt"
_CLVP_NAME = r"{exp}-e(\d+)\.pt"


@dataclass(frozen=True)
class Export:
    model: str  # s2 | s1 | clvp
    epoch: int
    step: int | None
    path: str
    mtime: float


def list_exports(layout: Layout, exp: str, version: str) -> list[Export]:
    """The experiment's exported weights (what the Inference tab offers), newest first per model."""
    found: list[Export] = []
    folders = (
        ("s2", layout.sovits_dir(version), _SOVITS_NAME),
        ("s1", layout.gpt_dir(version), _GPT_NAME),
        ("clvp", layout.clvp_dir, _CLVP_NAME),
    )
    for model, folder, pattern in folders:
        if not folder.is_dir():
            continue
        regex = re.compile(pattern.format(exp=re.escape(exp)))
        for p in folder.iterdir():
            m = regex.fullmatch(p.name)
            if m and p.is_file():
                step = int(m.group(2)) if m.lastindex and m.lastindex >= 2 else None
                found.append(Export(model, int(m.group(1)), step, str(p), p.stat().st_mtime))
    order = {"s2": 0, "s1": 1, "clvp": 2}
    return sorted(found, key=lambda e: (order[e.model], -e.epoch, -(e.step or 0)))


def latest_export(exports: Sequence[Export], model: str) -> str | None:
    """The newest (highest epoch, then step) export of `model`."""
    ours = [e for e in exports if e.model == model]
    return max(ours, key=lambda e: (e.epoch, e.step or 0)).path if ours else None


def plan_sample(
    event: dict[str, Any],
    layout: Layout,
    exp: str,
    exports: Sequence[Export],
    pretrained_s1: str,
    pretrained_s2g: str,
    reference: SampleReference | None,
) -> SampleSpec | None:
    """The checkpoint pair for the sample after a `saved` event (None for CLVP or without a reference).

    An S2 save is heard with the newest exported GPT of the experiment (else the pretrained one);
    an S1 save with the newest exported SoVITS (else the pretrained generator), so each sample
    changes only through the model that was just trained, plus whatever was finished before.
    """
    model, path = event.get("model"), event.get("path")
    if reference is None or model not in ("s1", "s2") or not path:
        return None
    epoch = int(event.get("epoch") or 0)
    if model == "s2":
        gpt, sovits = latest_export(exports, "s1") or pretrained_s1, str(path)
    else:
        gpt, sovits = str(path), latest_export(exports, "s2") or pretrained_s2g
    out = layout.samples_dir(exp) / f"{model}_e{epoch}.wav"
    return SampleSpec(model, epoch, gpt, sovits, str(out), reference)


def sample_config(spec: SampleSpec, model_dir: Path, device: str = "auto") -> dict[str, Any]:
    """The request for `python -m gpt_sovits.infer.samples --config FILE` (see that module)."""
    ref = spec.reference
    return {
        "gpt_path": spec.gpt_path,
        "sovits_path": spec.sovits_path,
        "model_dir": str(model_dir),
        "device": device,
        "ref_audio": ref.audio,
        "ref_text": ref.text,
        "ref_lang": ref.language,
        "text": ref.target_text,
        "text_lang": ref.target_language,
        "out": spec.out_path,
        "seed": 1234,
    }


def saved_label(model: str, epoch: int, _: Translator = plain) -> str:
    names = {"s2": "SoVITS", "s1": "GPT"}
    return _("{model} epoch {epoch} sample", model=names.get(model, model), epoch=epoch)


# ---------------------------------------------------------------- reading the prompt clips


def reference_clips(list_path: Path, workspace: Path, limit: int = 60) -> list[tuple[str, str, str, float]]:
    """(audio path, language, text, seconds) of the first usable clips of a `.list` (for samples).

    Stops early at the first clip whose length suits a prompt (3-10 s): only that one is needed.
    """
    from core.audio import audio_info
    from tools.labels import LANGUAGES, LabelError, load_list

    try:
        doc = load_list(list_path, boundary=workspace)
    except LabelError:
        return []
    clips = []
    lo, hi = SAMPLE_REF_SECONDS
    for entry in doc.entries[:limit]:
        if entry.language not in LANGUAGES or not entry.text.strip():
            continue
        try:
            audio = doc.resolve_audio(entry)
            seconds = audio_info(audio).duration
        except Exception:  # noqa: BLE001 - missing/unreadable clips are the check's business
            continue
        clips.append((str(audio), entry.language, entry.text, seconds))
        if lo <= seconds <= hi:
            break
    return clips


def reference_clips_for(audio: str, list_path: Path, workspace: Path) -> list[tuple[str, str, str, float]]:
    """The chosen clip's (path, language, text, seconds), found by its audio path in the list."""
    from core.audio import audio_info
    from tools.labels import LabelError, load_list

    try:
        doc = load_list(list_path, boundary=workspace)
        for entry in doc.entries:
            path = doc.resolve_audio(entry)
            if str(path) == audio:
                return [(audio, entry.language, entry.text, audio_info(path).duration)]
    except (LabelError, ValueError, OSError):
        return []
    return []


def materialize_reference(ref: SampleReference, out: Path) -> SampleReference | None:
    """Join `ref.parts` (at DATASET_RATE, REF_GAP_SECONDS of silence between) into `out`; None if one
    is unreadable."""
    if not ref.parts:
        return ref
    import numpy as np

    from core.audio import AudioDecodeError, load_audio, save_wav

    gap = np.zeros(int(REF_GAP_SECONDS * DATASET_RATE), dtype=np.float32)
    pieces: list[np.ndarray] = []
    try:
        for i, part in enumerate(ref.parts):
            audio, _sr = load_audio(part, DATASET_RATE)
            pieces += [gap, audio] if i else [audio]
    except AudioDecodeError:
        return None
    save_wav(out, np.concatenate(pieces), DATASET_RATE)
    return dataclasses.replace(ref, audio=str(out))
