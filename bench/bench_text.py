"""Text frontend speed: characters per second after warm-up and first-call latency, zh, en, ja and ko.

    .venv/bin/python -m bench.bench_text [--repeats 3] [--langs zh en ja ko]

Target (issue): 2,000 Chinese characters per second on one core after warm-up. First-call latency is
measured in a fresh child process per language (imports + dictionaries / OpenJTalk / MeCab-ko loading +
one short sentence), which is what a user waits for on the first synthesis. The child runs twice and the
second figure is reported: the very first use of ja/ko also writes the project's cache once (compiled
Japanese user dictionary, NLTK-layout CMUdict for g2pk2's import check), reported as "first use ever".
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
JA = (
    "今日は2024年3月15日、金曜日です。駅まで歩いて15分くらいかかります。"
    "新しいスマートフォンを買いました！ちょっと待って、それは本当？"
)
KO = "안녕하세요. 오늘 날씨가 좋네요. 사과 2개를 샀어요! 한국어를 공부하는 것은 재미있어요. 이것은 얼마예요? "
TEXTS = {"zh": ZH, "en": EN, "ja": JA, "ko": KO}

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
    parser.add_argument("--langs", nargs="+", default=list(TEXTS), choices=list(TEXTS))
    args = parser.parse_args()
    for lang in args.langs:
        text = TEXTS[lang]
        first_ever = first_call_latency(text[:20], lang)
        latency = first_call_latency(text[:20], lang)
        rate = throughput(text, lang, args.chars, args.repeats)
        print(
            f"{lang}: {rate:,.0f} chars/s after warm-up ({args.chars} chars), first call {latency:.2f} s "
            f"(first use ever: {first_ever:.2f} s)"
        )


if __name__ == "__main__":
    main()
