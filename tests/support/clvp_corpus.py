"""A synthetic phones/semantic-token corpus for CLVP tests and evaluation, written as experiment folders.

Phones come from random text through the real frontend (``gpt_sovits.text``: Chinese sentences of common
characters, English sentences of common words), so phone statistics look like a real dataset. The
"speech" is a deterministic function of the phones plus the randomness real speech has:

- a fixed table (per ``voice_seed``) maps each phone id to a pattern of ``tokens_per_phone`` codes;
- each code of the pattern lasts 1..``max_repeat`` frames (speaking rate varies);
- punctuation becomes a run of a silence code, and clips start and end with a little silence;
- each frame is replaced by a random code with probability ``noise``.

A model can only match text to tokens by learning the table, so the corpus checks that CLVP learns
content, and the corruptions of ``clvp.negatives`` then check what S1's failure modes cost it.

    .venv/bin/python -m tests.support.clvp_corpus --out /tmp/clvp_corpus --items 2000 --seed 0
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gpt_sovits.data.experiment import PhoneEntry, write_name2semantic, write_name2text

ZH_CHARS = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说"
    "产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点"
    "从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原"
    "又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革"
)
EN_WORDS = (
    "time person year way day thing man world life hand part child eye woman place work week case point "
    "government company number group problem fact be have do say get make go know take see come think look "
    "want give use find tell ask seem feel try leave call good new first last long great little own other "
    "old right big high different small large next early young important few public bad same able to of in "
    "for on with at by from up about into over after beneath under above the and a that i it not he as you "
    "this but his they her she or an will my one all would there their river mountain garden window letter "
    "music picture morning evening summer winter yellow purple quickly slowly happy strange simple careful"
).split()
PUNCT = (",", ".", "?", "!")
_PAUSES = (",", ".", "?", "!", "…", "-")


@dataclass(frozen=True)
class CorpusSpec:
    """How the corpus is drawn; equal specs give byte-identical folders."""

    items: int = 400
    seed: int = 0
    voice_seed: int = 1234
    languages: tuple[str, ...] = ("zh", "en")
    min_words: int = 2
    max_words: int = 8
    tokens_per_phone: int = 2
    max_repeat: int = 2
    noise: float = 0.02
    silence_code: int = 0
    vocabulary: int = 0  # draw words/characters from the first N only (0 = all): a smaller, easier corpus


def phone_table(voice_seed: int, tokens_per_phone: int, n_phones: int = 732) -> list[tuple[int, ...]]:
    """phone id -> its fixed code pattern (codes 1..1023; 0 is silence)."""
    rng = random.Random(voice_seed)
    return [tuple(rng.randrange(1, 1024) for _ in range(tokens_per_phone)) for _ in range(n_phones)]


def phones_to_tokens(
    phone_ids: Sequence[int],
    phones: Sequence[str],
    table: Sequence[tuple[int, ...]],
    rng: random.Random,
    spec: CorpusSpec,
) -> list[int]:
    """Semantic tokens for one utterance (see the module docstring)."""
    sil = spec.silence_code
    out = [sil] * rng.randint(1, 3)
    for pid, ph in zip(phone_ids, phones, strict=True):
        if ph in _PAUSES:
            out += [sil] * rng.randint(2, 4)
            continue
        for code in table[pid]:
            out += [code] * rng.randint(1, spec.max_repeat)
    out += [sil] * rng.randint(1, 3)
    return [rng.randrange(1024) if rng.random() < spec.noise else t for t in out]


def _random_sentence(lang: str, rng: random.Random, spec: CorpusSpec) -> str:
    n = rng.randint(spec.min_words, spec.max_words)
    limit = spec.vocabulary or None
    if lang == "zh":
        chars = [rng.choice(ZH_CHARS[:limit]) for _ in range(n * 2)]
        if n > 6:
            chars.insert(rng.randint(2, len(chars) - 2), "，")
        return "".join(chars) + "。"
    words = [rng.choice(EN_WORDS[:limit]) for _ in range(n)]
    return " ".join(words).capitalize() + rng.choice(PUNCT[1:])


def build_corpus(out_dir: str | Path, spec: CorpusSpec = CorpusSpec()) -> list[str]:
    """Write ``2-name2text.txt`` and ``6-name2semantic.tsv`` for ``spec.items`` utterances; returns the names.

    English phones are looked up word by word through the frontend and cached (its g2p costs ~50 ms per
    call), Chinese sentences go through it whole (tone sandhi depends on context).
    """
    from gpt_sovits.text import clean_text, cleaned_text_to_sequence

    rng = random.Random(spec.seed)
    table = phone_table(spec.voice_seed, spec.tokens_per_phone)
    en_cache: dict[str, list[str]] = {}
    entries: list[PhoneEntry] = []
    semantic: dict[str, list[int]] = {}
    for i in range(spec.items):
        lang = spec.languages[i % len(spec.languages)]
        text = _random_sentence(lang, rng, spec)
        if lang == "en":
            phones: list[str] = []
            for word in text.rstrip(".?!").lower().split():
                if word not in en_cache:
                    # a lone word may come back wrapped in pause marks; keep its phones only
                    en_cache[word] = [p for p in clean_text(word, "en", "v2")[0] if p not in _PAUSES]
                phones += en_cache[word]
            phones.append(text[-1])
            word2ph = None
        else:
            phones, word2ph, text = clean_text(text, "zh", "v2")
        name = f"syn_{spec.seed}_{i:05d}_{lang}.wav"
        ids = cleaned_text_to_sequence(phones, "v2")
        entries.append(PhoneEntry(name, phones, word2ph, text, lang))
        semantic[name] = phones_to_tokens(ids, phones, table, rng, spec)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_name2text(out / "2-name2text.txt", entries)
    write_name2semantic(out / "6-name2semantic.tsv", semantic)
    return [e.name for e in entries]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="experiment folder to write")
    ap.add_argument("--items", type=int, default=CorpusSpec.items)
    ap.add_argument("--seed", type=int, default=0, help="draws the sentences, durations and noise")
    ap.add_argument(
        "--voice-seed", type=int, default=CorpusSpec.voice_seed, help="draws the phone->code table"
    )
    ap.add_argument("--noise", type=float, default=CorpusSpec.noise)
    ap.add_argument("--languages", default="zh,en")
    args = ap.parse_args(argv)
    spec = CorpusSpec(
        items=args.items,
        seed=args.seed,
        voice_seed=args.voice_seed,
        noise=args.noise,
        languages=tuple(args.languages.split(",")),
    )
    names = build_corpus(args.out, spec)
    print(f"wrote {len(names)} items to {args.out}")


if __name__ == "__main__":
    main()
