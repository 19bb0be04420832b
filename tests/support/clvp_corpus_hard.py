"""A harder synthetic phones/semantic-token corpus for the reranker, written as experiment folders.

Closer to real speech than ``tests.support.clvp_corpus``, in the spirit of issue 14:

- phones come from real Chinese and English sentences (clauses of ``ZH_SENTENCES``/``EN_SENTENCES``
  recombined, a few words swapped) through our frontend (``gpt_sovits.text``);
- each phone has a code pattern of 1-3 codes (its length fixed per phone by ``voice_seed``) whose first
  code depends on the phone before it (coarticulation), by one of several ``RULES``:

  - ``pair``  a code of its own for every (previous phone, phone) pair (hashed);
  - ``class`` the previous phone's class (one of ``classes`` buckets) picks one of a few variants;
  - ``shift`` the phone's base code moved by an offset that belongs to the previous phone;

- each code lasts 1-3 frames (``max_repeat``), the speaking rate of a clip scales that a little;
- ``noise`` of the frames become a random code (``noise_mode="replace"``) or get a random code inserted
  before them (``"insert"``);
- punctuation becomes a run of silence codes (one of ``silence_codes``), clips start and end in silence.

Seeds draw the sentences (``seed``) and the voice (``voice_seed``: tables, pattern lengths); the rule and its
parameters are the "pattern rules", so a model tuned on one rule can be checked on another.

    .venv/bin/python -m tests.support.clvp_corpus_hard --out /tmp/hard --items 1800 --seed 0 --rule pair
"""

from __future__ import annotations

import argparse
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gpt_sovits.data.experiment import PhoneEntry, write_name2semantic, write_name2text
from tests.support.clvp_corpus import EN_WORDS, ZH_CHARS

RULES = ("pair", "class", "shift")
_PAUSES = (",", ".", "?", "!", "…", "-")

ZH_SENTENCES = (
    "今天天气很好，我们一起去公园散步吧。",
    "他每天早上六点起床，然后去跑步。",
    "这本书我已经看了三遍，还是觉得很有意思。",
    "请把窗户关上，外面风太大了。",
    "我们明年打算去北京看看长城。",
    "你知道最近的地铁站在哪里吗？",
    "妈妈做的饭总是特别好吃。",
    "会议推迟到下午三点开始。",
    "这个问题比我想象的要复杂得多。",
    "小猫在沙发上睡了一整个下午。",
    "谢谢你的帮助，我真的非常感激。",
    "经过大家的努力，项目终于完成了。",
    "冬天来了，山上下了第一场雪。",
    "他说话的声音很轻，我几乎听不见。",
    "如果明天下雨，我们就在家看电影。",
    "学习一门新的语言需要很多耐心。",
    "火车晚点了半个小时，大家都很着急。",
    "这家店的咖啡又香又便宜。",
    "孩子们在操场上开心地踢足球。",
    "请问这件衣服有没有大一点的？",
)
EN_SENTENCES = (
    "The weather is lovely today, so let us take a walk in the park.",
    "She gets up at six every morning and goes for a run.",
    "I have read this book three times and it still surprises me.",
    "Please close the window, the wind is far too strong.",
    "We are planning to visit the mountains next summer.",
    "Do you know where the nearest station is?",
    "My mother always cooks the most wonderful dinner.",
    "The meeting has been moved to three in the afternoon.",
    "This problem is much harder than I expected.",
    "The cat slept on the sofa for the whole afternoon.",
    "Thank you for your help, I really appreciate it.",
    "After a long winter, the first flowers finally opened.",
    "He spoke so quietly that I could barely hear him.",
    "If it rains tomorrow, we will stay home and watch a film.",
    "Learning a new language takes a lot of patience.",
    "The train was half an hour late and everyone was worried.",
    "This little shop sells good coffee at a fair price.",
    "The children are playing football on the field.",
    "Could you show me a larger size of this coat?",
    "Nobody expected the river to rise so quickly.",
)


@dataclass(frozen=True)
class HardSpec:
    """How the corpus is drawn; equal specs give byte-identical folders."""

    items: int = 400
    seed: int = 0
    voice_seed: int = 4321
    rule: str = "pair"
    languages: tuple[str, ...] = ("zh", "en")
    max_codes: int = 3  # codes per phone pattern: 1..max_codes
    max_repeat: int = 3  # frames per code: 1..max_repeat
    noise: float = 0.05
    noise_mode: str = "replace"  # or "insert"
    classes: int = 4  # "class" rule: buckets of previous phones
    silence_codes: tuple[int, ...] = (0,)
    swap: float = 0.2  # chance that a word/character of a sentence is replaced by a random one
    max_clauses: int = 2

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown rule {self.rule!r}; use one of {RULES}")
        if self.noise_mode not in ("replace", "insert"):
            raise ValueError("noise_mode must be 'replace' or 'insert'")


class Voice:
    """The phone -> codes rules of one ``voice_seed`` (see the module docstring)."""

    def __init__(self, spec: HardSpec, n_phones: int = 733) -> None:
        rng = random.Random(spec.voice_seed)
        sil = set(spec.silence_codes)
        codes = [c for c in range(1, 1024) if c not in sil]
        self.spec = spec
        self.lengths = [rng.randint(1, spec.max_codes) for _ in range(n_phones)]
        self.tail = [[rng.choice(codes) for _ in range(spec.max_codes)] for _ in range(n_phones)]
        self.base = [rng.choice(codes) for _ in range(n_phones)]
        self.variants = [[rng.choice(codes) for _ in range(spec.classes)] for _ in range(n_phones)]
        self.klass = [rng.randrange(spec.classes) for _ in range(n_phones)]
        self.offset = [rng.randrange(1, 64) for _ in range(n_phones)]
        self.codes = codes
        self.salt = str(spec.voice_seed).encode()

    def first_code(self, prev: int, pid: int) -> int:
        rule = self.spec.rule
        if rule == "pair":
            h = hashlib.blake2b(self.salt + f"{prev}:{pid}".encode(), digest_size=4).digest()
            return self.codes[int.from_bytes(h, "big") % len(self.codes)]
        if rule == "class":
            return self.variants[pid][self.klass[prev]]
        i = (self.codes.index(self.base[pid]) + self.offset[prev]) % len(self.codes)
        return self.codes[i]

    def pattern(self, prev: int, pid: int) -> list[int]:
        n = self.lengths[pid]
        return [self.first_code(prev, pid)] + self.tail[pid][: n - 1]


def phones_to_tokens(
    phone_ids: Sequence[int], phones: Sequence[str], voice: Voice, rng: random.Random
) -> list[int]:
    """Semantic tokens of one utterance: patterns, durations, silences, then noise frames."""
    spec = voice.spec
    sil = list(spec.silence_codes)
    slow = rng.random() < 0.3  # a slower clip: durations drawn from the upper half more often
    out = [rng.choice(sil)] * rng.randint(1, 4)
    prev = 732  # the utterance start is its own context (the padding id)
    for pid, ph in zip(phone_ids, phones, strict=True):
        if ph in _PAUSES:
            out += [rng.choice(sil)] * rng.randint(2, 5)
            prev = 732
            continue
        for code in voice.pattern(prev, pid):
            lo = 2 if slow and spec.max_repeat > 1 and rng.random() < 0.5 else 1
            out += [code] * rng.randint(lo, spec.max_repeat)
        prev = pid
    out += [rng.choice(sil)] * rng.randint(1, 4)
    if spec.noise_mode == "replace":
        return [rng.randrange(1024) if rng.random() < spec.noise else t for t in out]
    noisy: list[int] = []
    for t in out:
        if rng.random() < spec.noise:
            noisy.append(rng.randrange(1024))
        noisy.append(t)
    return noisy


def _sentence(lang: str, rng: random.Random, spec: HardSpec) -> str:
    pool = ZH_SENTENCES if lang == "zh" else EN_SENTENCES
    clauses = [rng.choice(pool) for _ in range(rng.randint(1, spec.max_clauses))]
    if lang == "zh":
        text = "".join(clauses)
        return "".join(
            rng.choice(ZH_CHARS) if "\u4e00" <= ch <= "\u9fff" and rng.random() < spec.swap else ch
            for ch in text
        )
    words = " ".join(clauses).split()
    out = []
    for w in words:
        if rng.random() < spec.swap and w.isalpha():
            out.append(rng.choice(EN_WORDS))
        else:
            out.append(w)
    return " ".join(out)


def _en_phones(text: str, cache: dict[str, list[str]]) -> list[str]:
    """Phones word by word (the English g2p costs ~50 ms a call, so words are cached); punctuation kept."""
    from gpt_sovits.text import clean_text

    phones: list[str] = []
    for raw in text.split():
        word = raw.strip(",.?!").lower()
        if word:
            if word not in cache:
                cache[word] = [p for p in clean_text(word, "en", "v2")[0] if p not in _PAUSES]
            phones += cache[word]
        if raw[-1] in ",.?!":
            phones.append(raw[-1])
    return phones


def build_corpus(out_dir: str | Path, spec: HardSpec = HardSpec()) -> list[str]:
    """Write ``2-name2text.txt`` and ``6-name2semantic.tsv`` for ``spec.items`` utterances; returns the names."""
    from gpt_sovits.text import clean_text, cleaned_text_to_sequence

    rng = random.Random(spec.seed)
    voice = Voice(spec)
    en_cache: dict[str, list[str]] = {}
    zh_cache: dict[str, tuple[list[str], list[int] | None, str]] = {}
    entries: list[PhoneEntry] = []
    semantic: dict[str, list[int]] = {}
    for i in range(spec.items):
        lang = spec.languages[i % len(spec.languages)]
        text = _sentence(lang, rng, spec)
        if lang == "en":
            phones, word2ph = _en_phones(text, en_cache), None
        else:
            if text not in zh_cache:
                zh_cache[text] = clean_text(text, "zh", "v2")
            phones, word2ph, text = zh_cache[text]
        name = f"hard_{spec.rule}_{spec.seed}_{i:05d}_{lang}.wav"
        ids = cleaned_text_to_sequence(phones, "v2")
        entries.append(PhoneEntry(name, phones, word2ph, text, lang))
        semantic[name] = phones_to_tokens(ids, phones, voice, rng)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_name2text(out / "2-name2text.txt", entries)
    write_name2semantic(out / "6-name2semantic.tsv", semantic)
    return [e.name for e in entries]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="experiment folder to write")
    ap.add_argument("--items", type=int, default=HardSpec.items)
    ap.add_argument("--seed", type=int, default=0, help="draws the sentences, durations and noise")
    ap.add_argument("--voice-seed", type=int, default=HardSpec.voice_seed, help="draws the code tables")
    ap.add_argument(
        "--rule", choices=RULES, default="pair", help="how a phone's first code depends on the last"
    )
    ap.add_argument("--noise", type=float, default=HardSpec.noise)
    ap.add_argument("--noise-mode", choices=("replace", "insert"), default="replace")
    ap.add_argument("--max-codes", type=int, default=HardSpec.max_codes)
    ap.add_argument("--max-repeat", type=int, default=HardSpec.max_repeat)
    ap.add_argument("--languages", default="zh,en")
    args = ap.parse_args(argv)
    spec = HardSpec(
        items=args.items,
        seed=args.seed,
        voice_seed=args.voice_seed,
        rule=args.rule,
        noise=args.noise,
        noise_mode=args.noise_mode,
        max_codes=args.max_codes,
        max_repeat=args.max_repeat,
        languages=tuple(args.languages.split(",")),
    )
    names = build_corpus(args.out, spec)
    print(f"wrote {len(names)} items to {args.out}")


if __name__ == "__main__":
    main()
