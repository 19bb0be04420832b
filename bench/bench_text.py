"""Text frontend speed: characters per second after warm-up and first-call latency, Chinese and English.

    .venv/bin/python -m bench.bench_text [--repeats 3]

Target (issue): 2,000 Chinese characters per second on one core after warm-up. First-call latency is
measured in a fresh child process per language (imports + jieba / pypinyin / CMUdict loading + one
short sentence), which is what a user waits for on the first synthesis.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

ZH = (
    "2024年3月5日下午3:30，气温-3.5℃。今天天气很好，我们一起去公园散步吧！"
    "他花了1,234元买了一本书，涨幅约21.4%。小孩儿在胡同儿里玩儿，不要担心。"
)
EN = (
    "I paid $12.50 for 3 apples on Jan. 5th, 2024. The meeting is at 10:30 a.m., don't be late! "
    "It was the best of times, it was the worst of times; the GPU reached 85% load."
)

_FIRST_CALL = """
import time
t = time.perf_counter()
from gpt_sovits.text import clean_text
clean_text({text!r}, {lang!r}, "v2")
print(time.perf_counter() - t)
"""


def first_call_latency(text: str, lang: str) -> float:
    code = _FIRST_CALL.format(text=text, lang=lang)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def throughput(text: str, lang: str, n_chars: int, repeats: int) -> float:
    from gpt_sovits.text import clean_text

    block = (text * (n_chars // len(text) + 1))[:n_chars]
    clean_text(text, lang, "v2")  # warm-up: dictionaries loaded
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        clean_text(block, lang, "v2")
        best = min(best, time.perf_counter() - t)
    return n_chars / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chars", type=int, default=10_000)
    args = parser.parse_args()
    for lang, text in (("zh", ZH), ("en", EN)):
        latency = first_call_latency(text[:20], lang)
        rate = throughput(text, lang, args.chars, args.repeats)
        print(f"{lang}: {rate:,.0f} chars/s after warm-up ({args.chars} chars), first call {latency:.2f} s")


if __name__ == "__main__":
    main()
