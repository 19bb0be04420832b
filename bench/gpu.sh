#!/usr/bin/env bash
# GPU figures in one go (< 5 min on one lent GPU): S1 tokens/s at batch 1 and 8 (fp32 and bf16, CUDA graph
# step), S2 real-time factor, end-to-end real-time factor and time to first streamed audio, peak memory.
#
#     bash bench/gpu.sh [cuda:0]
#
# Random full-size v2 weights throughout (no downloads). Run from the repository root with the project's
# venv. Not run in the session that wrote it (no GPU was lent); see bench/README.md.
set -euo pipefail
DEVICE="${1:-cuda:0}"
PY="${PYTHON:-.venv/bin/python}"
cd "$(dirname "$0")/.."

# with_peak SECONDS MODULE ARGS...: run a bench module (time-limited), then print its CUDA memory peak.
with_peak() {
    local limit="$1"
    shift
    timeout "$limit" "$PY" - "$@" <<'PY'
import runpy, sys, torch
mod = sys.argv[1]
sys.argv = [mod] + sys.argv[2:]
try:
    runpy.run_module(mod, run_name="__main__")
except SystemExit as e:
    if e.code:
        raise
print(f"peak CUDA memory allocated: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
PY
}

echo "== device"
"$PY" - "$DEVICE" <<'PY'
import sys, torch
d = torch.device(sys.argv[1])
print(torch.__version__, torch.cuda.get_device_name(d), f"{torch.cuda.get_device_properties(d).total_memory / 2**30:.0f} GiB")
PY

echo "== S1 decode: tokens/s per row, 300 new tokens after a 150-token prompt, EOS banned"
timeout 150 "$PY" - "$DEVICE" <<'PY'
import sys, time, torch
from gpt_sovits.models.fastpath import apply_precision
from gpt_sovits.models.s1 import S1Config, Text2Semantic
from gpt_sovits.models.sampling import SamplingParams

dev = torch.device(sys.argv[1])
torch.manual_seed(0)
g = torch.Generator().manual_seed(0)
x = torch.randint(0, 732, (60,), generator=g)
bert = torch.randn(1024, 60, generator=g)
prompt = torch.randint(0, 1024, (150,), generator=g)
n = 300
for dtype in (torch.float32, torch.bfloat16):
    model = apply_precision(Text2Semantic(S1Config()).to(dev, dtype), "auto", dev)
    for graph in (True, False):
        model.cuda_graph = graph
        for batch in (1, 8):
            params = SamplingParams(top_k=15, max_new_tokens=n, eos_ban_steps=n)
            model.generate([x], [bert], prompt, SamplingParams(top_k=15, max_new_tokens=8, eos_ban_steps=8))
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            best = float("inf")
            for _ in range(2):
                t0 = time.perf_counter()
                res = model.generate([x], [bert], prompt, params, num_candidates=batch)
                torch.cuda.synchronize(dev)
                best = min(best, time.perf_counter() - t0)
            assert all(c.tokens.numel() == n for c in res.candidates[0])
            peak = torch.cuda.max_memory_allocated(dev) / 2**20
            print(
                f"S1 {str(dtype).removeprefix('torch.'):>8} graph={graph!s:5} batch {batch}: "
                f"{n / best:7.1f} tokens/s per row ({batch * n / best:7.1f} total), peak {peak:6.0f} MiB",
                flush=True,
            )
    del model
    torch.cuda.empty_cache()
PY

echo "== S2 decode of 10 s (real-time factor)"
with_peak 60 bench.bench_s2 --device "$DEVICE" --seconds 10 --repeats 3

echo "== end to end (10 s sentence), streaming first audio, peak memory"
with_peak 180 bench.bench_tts --device "$DEVICE" --repeats 2
