"""A short listening sample from one GPT/SoVITS checkpoint pair, for hearing how training goes.

The Training tab runs this after each `saved` event, in a subprocess so synthesis never blocks the
web server; the request is a JSON file written beside the sample (`<exp>/samples/<model>_e<N>.json`)
so each sample records exactly which weights, reference and text made it.

    python -m gpt_sovits.infer.samples --config REQUEST.json [--events FILE]

REQUEST keys: gpt_path, sovits_path, model_dir, ref_audio, ref_text, ref_lang, text, text_lang, out,
and optionally device (auto) and seed (1234: the same seed for every sample, so samples differ
only through the weights).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError
from core.jobs import EXIT_OK, EventWriter, stage_failure


class SampleRequestError(UserError, ValueError):
    """The request file is missing, unreadable or lacks a key."""


@dataclass(frozen=True)
class SampleRequest:
    gpt_path: str
    sovits_path: str
    model_dir: str
    ref_audio: str
    ref_text: str
    ref_lang: str
    text: str
    text_lang: str
    out: str
    device: str = "auto"
    seed: int = 1234

    @classmethod
    def read(cls, path: str | Path) -> SampleRequest:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise SampleRequestError(f"cannot read the sample request {path}: {e}") from None
        if not isinstance(data, dict):
            raise SampleRequestError(f"{path} must hold a JSON object")
        fields = set(cls.__dataclass_fields__)
        missing = sorted(k for k in fields - {"device", "seed"} if k not in data)
        if missing:
            raise SampleRequestError(f"{path} lacks: {', '.join(missing)}")
        return cls(**{k: v for k, v in data.items() if k in fields})


def make_sample(req: SampleRequest) -> Path:
    """Synthesise `req.text` with the pair of weights and write a 32 kHz wav atomically to `req.out`."""
    from core.audio import save_wav
    from gpt_sovits.infer.request import SynthesisRequest
    from gpt_sovits.infer.synthesizer import Synthesizer

    synth = Synthesizer(req.gpt_path, req.sovits_path, req.model_dir, device=req.device)
    result = synth.synthesize(
        SynthesisRequest(
            text=req.text,
            text_lang=req.text_lang,
            ref_audio=req.ref_audio,
            ref_text=req.ref_text,
            ref_lang=req.ref_lang,
            seed=int(req.seed),
            candidates=1,
        )
    )
    return save_wav(req.out, result.audio, result.sample_rate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gpt_sovits.infer.samples",
        description="Synthesise a short listening sample from a GPT/SoVITS checkpoint pair.",
    )
    parser.add_argument("--config", required=True, help="JSON request file (see the module docstring)")
    parser.add_argument("--events", default=None, help="append JSON-lines events to this file")
    args = parser.parse_args(argv)
    events = EventWriter(args.events)
    try:
        req = SampleRequest.read(args.config)
        out = make_sample(req)
    except UserError as e:  # SampleRequestError, TTSInputError and the other errors a person can act on
        return stage_failure(e, events, "sample")
    events.emit("result", path=str(out))
    print(out)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
