"""End-to-end text to speech: full-size v2 architecture with random weights, CPU by default.

    python -m bench.bench_tts [--tokens 250] [--candidates 4] [--repeats 2] [--threads N] [--device cpu]

Builds the official v2 sizes with random weights: GPT `S1Config()` (24 layers, 512 wide) and SoVITS
`S2Config()` written in the official file formats and loaded by the pipeline's loaders, HuBERT-base
(12 layers, 768) and BERT-large (24 layers, 1024) from default `transformers` configs placed in the
pipeline's model cache. Then, through `gpt_sovits.Synthesizer` (reference: a 4 s clip with prompt
text, so HuBERT, prompt phones and BERT all run):

- RTF: one Chinese sentence with a forced token count (`--tokens`, 250 = 10 s of audio), 1 candidate;
  wall time / audio duration.
- Candidates: the same with N candidates, time relative to 1.
- Streaming: four sentences (`--tokens` / 4 each); time until the first piece's audio is ready.
- Streaming in parts: the 10 s sentence with `stream_tokens` (`--stream-tokens`, 16 as the reference's
  default chunk); time until its first part is ready, the whole run's time, and `synthesize` of it
  relative to the same sentence without parts.
- Peak RSS of the process (`ru_maxrss`).

Each figure is the best of `--repeats` runs after a warm-up; the runs of the figures alternate. Random weights never stop on EOS, which
is why the token count is forced (EOS is banned until it is reached).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

SENTENCE = (
    "今天天气很不错，我们一起去公园散步，看看湖边的花草树木，再找一家安静的小店喝杯茶，聊聊最近的生活。"
)
FOUR = "今天天气很不错。我们一起去公园散步。看看湖边的花草树木。再找一家小店喝杯茶。"
REF_TEXT = "你好，欢迎来到这里，今天我们聊一聊声音。"


def _build_models(root: Path, device: str):
    """Random full-size v2 GPT/SoVITS files in the official formats; HuBERT/BERT models in memory."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer, HubertConfig, HubertModel

    from gpt_sovits.models.features import BertBundle
    from gpt_sovits.models.s1 import S1Config, Text2Semantic
    from gpt_sovits.models.s2 import S2Config, SynthesizerTrn
    from gpt_sovits.models.weights import save_gpt_weights, save_sovits_weights

    torch.manual_seed(0)
    s1_cfg = S1Config()
    gpt = save_gpt_weights(Text2Semantic(s1_cfg), s1_cfg, root / "gpt.ckpt")
    s2_cfg = S2Config()
    s2 = SynthesizerTrn(s2_cfg, with_posterior=False)
    with torch.no_grad():  # non-zero codebook entries, as trained weights have
        s2.quantizer.vq.layers[0]._codebook.embed.normal_()
    sovits = save_sovits_weights(s2, s2_cfg, root / "sovits.pth")
    del s2

    hubert = HubertModel(HubertConfig()).eval().to(device)  # base: 12 layers, 768
    chars = sorted(set(SENTENCE + FOUR + REF_TEXT))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(root / "vocab.txt"))
    bert_cfg = BertConfig(
        vocab_size=21128,
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
    )  # chinese-roberta-wwm-ext-large sizes
    bert = BertBundle(tokenizer, BertForMaskedLM(bert_cfg).eval().to(device))
    return gpt, sovits, hubert, bert


def _reference(path: Path, seconds: float = 4.0) -> Path:
    import numpy as np
    import soundfile as sf

    from core.audio import DATASET_RATE

    sr = DATASET_RATE
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    audio = 0.4 * np.sin(2 * np.pi * np.cumsum(f0) / sr) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t) ** 2)
    audio += 0.01 * np.random.default_rng(0).standard_normal(audio.size)
    sf.write(path, audio.astype(np.float32), sr)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, default=250, help="forced semantic tokens (25 per second)")
    p.add_argument("--candidates", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--stream-tokens", type=int, default=16, help="tokens per streamed part of a sentence")
    args = p.parse_args(argv)

    import torch

    from gpt_sovits import ModelCache, SynthesisRequest, Synthesizer

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-tts-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        gpt, sovits, hubert, bert = _build_models(root, args.device)
        build_s = time.perf_counter() - t0
        rss_built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ref = _reference(root / "ref.wav")
        cache = ModelCache()
        synth = Synthesizer(gpt, sovits, root, device=args.device, cache=cache)
        cache.get(synth.feature_key("hubert"), lambda: hubert)
        cache.get(synth.feature_key("bert"), lambda: bert)

        def request(text: str, tokens: int, n: int, cut: str = "cut0", stream: int = 0) -> SynthesisRequest:
            # force_tokens counts per piece: cut0 keeps SENTENCE whole, cut5 splits FOUR at each stop.
            return SynthesisRequest(
                text=text, text_lang="zh", ref_audio=ref, ref_text=REF_TEXT, ref_lang="zh", cut=cut,
                seed=1, pause=0.0, candidates=n, force_tokens=tokens, stream_tokens=stream,
            )  # fmt: skip

        def timed(fn) -> tuple[float, float, object]:
            """(wall s, CPU s, result) of one run. CPU time (all threads of this process) is the steadier
            figure on a shared machine: with 1 thread it is the wall time a quiet core gives."""
            t, c = time.perf_counter(), time.process_time()
            out = fn()
            return time.perf_counter() - t, time.process_time() - c, out

        def first_audio(req: SynthesisRequest) -> tuple[float, float, float]:
            """(wall s, CPU s until the first chunk, wall s of the whole stream)."""
            t, c = time.perf_counter(), time.process_time()
            first = first_cpu = None
            for _chunk in synth.stream(req):
                if first is None:
                    first, first_cpu = time.perf_counter() - t, time.process_time() - c
            return first or 0.0, first_cpu or 0.0, time.perf_counter() - t

        t0 = time.perf_counter()
        synth.synthesize(request(SENTENCE, 20, 1))  # warm-up: loads GPT/SoVITS, first-call costs
        synth.synthesize(request(SENTENCE, 40, 1, stream=16))  # ... and the short decoder tile's
        warm_s = time.perf_counter() - t0

        # The figures alternate within each repeat (the machine's speed drifts), best of the repeats.
        per = max(1, args.tokens // 4)
        runs: dict[str, list] = {"n1": [], "n": [], "stream": [], "parts": []}
        for _ in range(args.repeats):
            runs["n1"].append(timed(lambda: synth.synthesize(request(SENTENCE, args.tokens, 1))))
            runs["n"].append(timed(lambda: synth.synthesize(request(SENTENCE, args.tokens, args.candidates))))
            runs["stream"].append(first_audio(request(FOUR, per, 1, cut="cut5")))
            parts = request(SENTENCE, args.tokens, 1, stream=args.stream_tokens)
            runs["parts"].append(first_audio(parts) + timed(lambda req=parts: synth.synthesize(req)))
        one_s, one_cpu, one = min(runs["n1"], key=lambda r: r[0])
        n_s, n_cpu, n_res = min(runs["n"], key=lambda r: r[0])
        firsts, parted = runs["stream"], runs["parts"]
        parts_whole = min(parted, key=lambda r: r[3])
        audio_s = one.duration
        assert len(one.sentences) == 1 and abs(audio_s - args.tokens / 25) < 1e-6, (
            len(one.sentences),
            audio_s,
        )
        result = {
            "device": args.device,
            "threads": torch.get_num_threads(),
            "build_models_s": round(build_s, 1),
            "warmup_s": round(warm_s, 2),
            "tokens": args.tokens,
            "audio_s": round(audio_s, 2),
            "n1_s": round(one_s, 2),
            "rtf_n1": round(one_s / audio_s, 3),
            "n1_cpu_s": round(one_cpu, 2),
            "rtf_n1_cpu": round(one_cpu / audio_s, 3),
            "n1_timings": {k: round(v, 2) for k, v in one.timings.items()},
            f"n{args.candidates}_s": round(n_s, 2),
            f"rtf_n{args.candidates}": round(n_s / audio_s, 3),
            f"n{args.candidates}_over_n1": round(n_s / one_s, 2),
            f"n{args.candidates}_cpu_s": round(n_cpu, 2),
            f"n{args.candidates}_over_n1_cpu": round(n_cpu / one_cpu, 2),
            f"n{args.candidates}_timings": {k: round(v, 2) for k, v in n_res.timings.items()},
            "stream_pieces": 4,
            "stream_first_audio_s": round(min(f[0] for f in firsts), 2),
            "stream_first_audio_cpu_s": round(min(f[1] for f in firsts), 2),
            "stream_total_s": round(min(f[2] for f in firsts), 2),
            "parts_stream_tokens": args.stream_tokens,
            "parts_first_audio_s": round(min(f[0] for f in parted), 2),
            "parts_first_audio_cpu_s": round(min(f[1] for f in parted), 2),
            "parts_total_s": round(min(f[2] for f in parted), 2),
            "parts_rtf": round(min(f[2] for f in parted) / audio_s, 3),
            "parts_synthesize_s": round(parts_whole[3], 2),
            "parts_over_n1": round(parts_whole[3] / one_s, 2),
            "parts_timings": {k: round(v, 2) for k, v in parts_whole[5].timings.items()},
            "peak_rss_after_build_mb": round(rss_built, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
