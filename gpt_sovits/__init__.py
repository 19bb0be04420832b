"""GPT-SoVITS: text frontend, models, data formatting, training and inference, by role.

The front door re-exports what a program needs to clone a voice, loaded on first use (``import gpt_sovits``
itself imports no torch):

    from gpt_sovits import SynthesisRequest, Synthesizer

    synth = Synthesizer("GPT.ckpt", "SoVITS.pth", "pretrained_models", device="auto")
    result = synth.synthesize(SynthesisRequest(text="你好，世界。", ref_audio="ref.wav", ref_text="参考文本。"))

* ``Synthesizer``, ``SynthesisRequest``, ``SynthesisResult``, ``ModelCache``, ``TTSInputError``
  (gpt_sovits.infer); ``SYNTHESIS_PARAMS``, the one schema of the synthesis knobs;
* ``load_gpt`` (gpt_sovits.models.weights), ``load_sovits`` (gpt_sovits.infer.sovits): official weight files
  -> (model, config); ``load_sovits`` takes every SoVITS version (v1, v2, v2Pro, v2ProPlus: SynthesizerTrn;
  v3, v4 and their LoRA exports: SynthesizerTrnV3, whose vocoder ``weights_v3.load_vocoder`` loads).
* ``load_sv`` (gpt_sovits.models.sv): the v2Pro/v2ProPlus speaker-verification model, ``embed(wav16k)``.

Sub-packages: ``models/`` (S1, S2 and their modules), ``text/`` (frontends), ``data/`` (experiment layout,
formatting, datasets), ``train/`` (the trainers), ``infer/`` (the synthesiser, blends, listening samples);
``pretrained.py`` is the registry of downloadable models.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the module that defines it (imported on first access).
_EXPORTS = {
    "Synthesizer": "gpt_sovits.infer.synthesizer",
    "SynthesisRequest": "gpt_sovits.infer.request",
    "SYNTHESIS_PARAMS": "gpt_sovits.infer.request",
    "TTSInputError": "gpt_sovits.infer.request",
    "SynthesisResult": "gpt_sovits.infer.result",
    "ModelCache": "gpt_sovits.infer.cache",
    "load_gpt": "gpt_sovits.models.weights",
    "load_sovits": "gpt_sovits.infer.sovits",
    "load_sv": "gpt_sovits.models.sv",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gpt_sovits' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
