"""Cantonese (yue) text -> phones for v2 models, as the reference ``text/cantonese.py``.

The pipeline: Chinese number/date normalisation (our zh normaliser, as the reference uses its Chinese
``TextNormalizer``; it also converts traditional characters to simplified, as the reference does), a
punctuation map, removal of everything that is not a CJK ideograph or a phone-table punctuation mark,
then Jyutping from the offline package ToJyutping (which ships its dictionary). Each syllable becomes an
initial and a tone-carrying final, both prefixed with ``Y`` so that they never collide with Mandarin
phones (``佢`` keoi5 -> ``Yk``, ``Yeoi5``); punctuation stays as is. ``word2ph`` has one entry per
character of the normalised text (2 for a syllable, 1 for a punctuation mark).
"""

from __future__ import annotations

import re
from functools import cache

from gpt_sovits.text import zh_normalization
from gpt_sovits.text.errors import LanguageNotInstalledError

# The phone-table punctuation marks the reference keeps (``text.symbols.punctuation``).
PUNCTUATION = ("!", "?", "…", ",", ".", "-")
_PUNCT_SET = frozenset(PUNCTUATION)

# Syllable onsets tried in this order by prefix match, exactly as the reference (order matters: "aa"
# before "a", "ts" before "t", "ng" before "n"; vowel-initial syllables use their first vowel group as
# the "initial"). The reference's trailing sp/spl/spn/sil entries can never match (``s`` comes first).
INITIALS = (
    "aa", "aai", "aak", "aap", "aat", "aau", "ai", "au", "ap", "at", "ak", "a", "p", "b", "e", "ts", "t",
    "dz", "d", "kw", "k", "gw", "g", "f", "h", "l", "m", "ng", "n", "s", "y", "w", "c", "z", "j", "ong",
    "on", "ou", "oi", "ok", "o", "uk", "ung",
)  # fmt: skip

# The reference's punctuation map (applied after the zh normaliser, before filtering).
_REP_MAP = {
    "：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ",",
    "...": "…", "$": ".", "“": "'", "”": "'", '"': "'", "‘": "'", "’": "'", "（": "'", "）": "'",
    "(": "'", ")": "'", "《": "'", "》": "'", "【": "'", "】": "'", "[": "'", "]": "'", "—": "-",
    "～": "-", "~": "-", "「": "'", "」": "'",
}  # fmt: skip
_REP_RE = re.compile("|".join(re.escape(k) for k in _REP_MAP))
# Everything but CJK unified ideographs U+4E00..U+9FA5 and the kept punctuation is dropped (the
# quote "'" produced above is not in the table, so it is dropped too, as in the reference).
_DROP_RE = re.compile("[^\u4e00-\u9fa5" + re.escape("".join(PUNCTUATION)) + "]+")
_SYLLABLE_RE = re.compile(r"^([a-z]+[1-6]+[ ]?)+$")


@cache
def _tojyutping():
    try:
        import ToJyutping
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise LanguageNotInstalledError("yue", "ToJyutping") from e
    return ToJyutping


def replace_punctuation(text: str) -> str:
    """Map Chinese punctuation to the table's marks and drop every other non-CJK character."""
    return _DROP_RE.sub("", _REP_RE.sub(lambda m: _REP_MAP[m.group()], text))


def _readings(text: str) -> list[tuple[str, str | None]]:
    """(character, Jyutping or None) for each character of ``text`` (ToJyutping reads words in context)."""
    return _tojyutping().get_jyutping_list(text)


def text_normalize(text: str) -> str:
    """The normalised text whose characters ``g2p`` aligns ``word2ph`` with.

    Differs from the reference in one case only: ideographs ToJyutping has no reading for (a handful of
    radicals such as 艹, 钅) are dropped here, where the reference fails on them.
    """
    out = "".join(replace_punctuation(s) for s in zh_normalization.normalize(text))
    if not out:
        return out
    return "".join(ch for ch, reading in _readings(out) if reading is not None or ch in _PUNCT_SET)


def jyutping_syllables(norm_text: str) -> list[str]:
    """One entry per character of ``norm_text``: its Jyutping (e.g. "keoi5"), or the punctuation mark.

    A few characters read as two syllables in one entry ("卅" -> "saa1 aa6"); they are kept as one entry,
    as the reference does.
    """
    out: list[str] = []
    for word, reading in _readings(norm_text):
        if all(ch in _PUNCT_SET for ch in word):
            out.extend(word)
        elif reading is not None and _SYLLABLE_RE.match(reading) and len(word) == 1:
            out.append(reading)
        else:  # pragma: no cover - text_normalize removes unreadable characters
            raise AssertionError(f"no Jyutping for {word!r}: {reading!r}")
    return out


def syllable_phones(syllable: str) -> list[str]:
    """The two phones of one Jyutping syllable, or ``[mark]`` for punctuation.

    The onset is the first entry of ``INITIALS`` the toneless syllable starts with, the rest (or, when
    nothing is left, the onset's last letter: "m4" -> Ym, Ym4) is the final, which carries the tone digit.
    """
    if syllable in _PUNCT_SET:
        return [syllable]
    tone, bare = syllable[-1], syllable[:-1]
    for initial in INITIALS:
        if bare.startswith(initial):
            if bare.startswith("nga"):  # the reference's special case; equal to the general rule
                initial = bare[:2]
            final = bare[len(initial) :] or initial[-1]
            return ["Y" + initial, f"Y{final}{tone}"]
    # No onset matched (does not happen for ToJyutping's syllables); the reference would drop the
    # syllable and then fail its alignment check, we keep the alignment with unknown phones.
    return ["UNK", "UNK"]


def g2p(norm_text: str) -> tuple[list[str], list[int]]:
    """Phones and per-character phone counts for text from ``text_normalize``."""
    phones: list[str] = []
    word2ph: list[int] = []
    for syllable in jyutping_syllables(norm_text):
        ph = syllable_phones(syllable)
        phones.extend(ph)
        word2ph.append(len(ph))
    return phones, word2ph
