"""Dataset formatting throughput (clips per minute) and peak memory, CPU by default.

    python -m bench.bench_prepare [--size tiny|full] [--clips 20] [--seconds 4] [--threads N] [--device cpu]

Builds a pretrained-models folder in the official layout with random weights (no download):
``tiny`` uses the test suite's tiny models; ``full`` uses full-size configs: HuBERT base (hidden 768,
12 layers, 512-channel conv front end, as chinese-hubert-base), BERT-large (hidden 1024, 24 layers,
16 heads, vocabulary 21128, as chinese-roberta-wwm-ext-large) and the v2 S2 generator (configs/s2.json
sizes). Writes `clips` synthetic voiced clips of `seconds` at 32 kHz with alternating Chinese and English
labels, then runs ``python -m gpt_sovits.data.prepare`` in a child process and reports:

- wall time of the whole run (process start, imports, model loads included),
- processing throughput: clips per minute from the first progress event (after start-up and the
  model checks) to the last clip finished: text frontend, BERT, audio, HuBERT and S2 work with
  their model loads, without the Python/torch start-up,
- the child's peak RSS (``ru_maxrss``),
- the wall time of a re-run with nothing to do (no model is loaded then).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

TEXTS = (
    ("zh", "今天天气很不错，我们去公园。"),
    ("en", "The weather is nice today, we will go to the park."),
    ("zh", "一二三四五六七八九十，你好世界。"),
    ("en", "Hello world, this is a test of the formatting step."),
)


def _build_full(root: Path) -> None:
    """Full-size random HuBERT, BERT-large and S2 v2 generator in the official names."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer, HubertConfig, HubertModel

    from gpt_sovits.models.s2 import S2Config, SynthesizerTrn
    from gpt_sovits.pretrained import pretrained_paths
    from tests.support.tiny_models import _BERT_CHARS

    torch.manual_seed(0)
    paths = pretrained_paths(root, "v2")
    HubertModel(HubertConfig()).eval().save_pretrained(paths.hubert)  # defaults = hubert-base sizes
    paths.bert.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"，。！？、；：", *dict.fromkeys(_BERT_CHARS)]
    vocab += [f"[unused{i}]" for i in range(21128 - len(vocab))]  # the real vocabulary's size
    (paths.bert / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizer(str(paths.bert / "vocab.txt")).save_pretrained(paths.bert)
    cfg = BertConfig(
        vocab_size=21128,
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        max_position_embeddings=512,
    )
    BertForMaskedLM(cfg).eval().save_pretrained(paths.bert)
    s2_cfg = S2Config()
    gen = SynthesizerTrn(s2_cfg, with_posterior=True)
    with torch.no_grad():  # a codebook with distinct entries, as trained weights have
        gen.quantizer.vq.layers[0]._codebook.embed.normal_()
    paths.s2g.parent.mkdir(parents=True, exist_ok=True)
    weight = OrderedDict((k, v.half()) for k, v in gen.state_dict().items())
    torch.save({"weight": weight, "config": s2_cfg.to_hparams(), "info": "random full-size"}, paths.s2g)


def _write_clips(folder: Path, n: int, seconds: float) -> Path:
    import soundfile as sf

    from tests.support.synth import voiced_segments

    wavs = folder / "wavs"
    wavs.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        lang, text = TEXTS[i % len(TEXTS)]
        audio = voiced_segments([("silence", 0.2), ("voice", seconds - 0.4), ("silence", 0.2)], seed=i)
        path = wavs / f"clip_{i:03d}.wav"
        sf.write(path, audio, 32000, subtype="PCM_16")
        lines.append(f"{path}|bench|{lang}|{text}")
    list_path = folder / "bench.list"
    list_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return list_path


def _run_prepare(list_path: Path, exp: Path, models: Path, device: str, threads: int, events: Path) -> float:
    cmd = [sys.executable, "-m", "gpt_sovits.data.prepare", "--list", str(list_path), "--exp-dir", str(exp)]
    cmd += ["--pretrained-dir", str(models), "--device", device, "--workers", "1", "--events", str(events)]
    env = None
    if threads:
        import os

        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=("tiny", "full"), default="tiny")
    p.add_argument("--clips", type=int, default=20)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--threads", type=int, default=0, help="torch threads in the child (0: default)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_prepare_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        if args.size == "tiny":
            from tests.support.tiny_models import build_tiny_pretrained

            build_tiny_pretrained(tmp / "models")
        else:
            _build_full(tmp / "models")
        build_s = time.perf_counter() - t0
        list_path = _write_clips(tmp / "data", args.clips, args.seconds)
        events = tmp / "events.jsonl"
        wall = _run_prepare(list_path, tmp / "exp", tmp / "models", args.device, args.threads, events)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        rows = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
        progress_times = [r["time"] for r in rows if r["type"] == "progress"]
        result = next(r for r in rows if r["type"] == "result")
        work_s = progress_times[-1] - progress_times[0]
        rerun = _run_prepare(
            list_path, tmp / "exp", tmp / "models", args.device, args.threads, tmp / "ev2.jsonl"
        )
    out = {
        "size": args.size,
        "device": args.device,
        "clips": args.clips,
        "seconds_per_clip": args.seconds,
        "formatted": len(result["formatted"]),
        "skipped": len(result["skipped"]),
        "build_models_s": round(build_s, 1),
        "wall_s": round(wall, 1),
        "processing_s": round(work_s, 1),
        "clips_per_min_overall": round(args.clips / wall * 60, 1),
        "clips_per_min_processing": round(args.clips / work_s * 60, 1),
        "audio_x_realtime_processing": round(args.clips * args.seconds / work_s, 2),
        "peak_rss_mb": round(peak_mb),
        "rerun_nothing_to_do_s": round(rerun, 1),
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
