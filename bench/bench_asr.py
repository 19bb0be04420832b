"""ASR stage throughput (x real time) on espeak-ng clips: sequential vs batched decoding.

    .venv/bin/python -m bench.bench_asr [--clips 20] [--model PATH_OR_SIZE] [--device auto]

Without `--model` it uses the tiny wired test Whisper (tests/support/tiny_whisper.py), so the figure is the
pipeline's own cost per clip (decode + resample, Silero VAD, log-mel features, beam search, list and
sidecar writes), not a real model's: with large-v3 the model dominates. Give `--model large-v3`
(with the model in pretrained_models/) for real figures.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

if __package__:  # run as `python -m bench.bench_asr` from the repository root
    from tests.support.synth import espeak_speech
    from tests.support.tiny_whisper import build_tiny_whisper
    from tools.asr import AsrOptions, load_whisper, transcribe_folder

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "she sells sea shells by the sea shore",
    "a short sentence for the speech recognizer",
    "how much wood would a woodchuck chuck",
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clips", type=int, default=20)
    p.add_argument("--model", default=None, help="size name or folder (default: the tiny test model)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model_name = args.model or str(build_tiny_whisper(tmp_path / "tiny", quantization="int8"))
        clips = tmp_path / "spk"
        clips.mkdir()
        for i in range(args.clips):
            espeak_speech(SENTENCES[i % len(SENTENCES)], clips / f"{i:03d}.wav")
        t = time.perf_counter()
        model = load_whisper(model_name, device=args.device)
        print(
            f"model load: {time.perf_counter() - t:.2f} s ({model.model.device}, {model.model.compute_type})"
        )
        for batch in (0, args.batch_size):
            options = AsrOptions(model=model_name, device=args.device, batch_size=batch)
            transcribe_folder(clips, tmp_path / "warm.list", options, progress=lambda *a: None, model=model)
            t = time.perf_counter()
            result = transcribe_folder(
                clips, tmp_path / "out.list", options, progress=lambda *a: None, model=model
            )
            elapsed = time.perf_counter() - t
            audio = sum(e.duration for e in result.entries)
            mode = "sequential" if batch <= 1 else f"batched ({batch})"
            print(
                f"{mode:>14}: {len(result.entries)} clips, {audio:.1f} s audio in {elapsed:.2f} s "
                f"= {audio / elapsed:.1f}x real time, {1000 * elapsed / args.clips:.0f} ms/clip"
            )


if __name__ == "__main__":
    main()
