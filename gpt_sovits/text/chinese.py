"""Chinese grapheme-to-phoneme conversion, as the reference ``text/chinese2.py`` (v2) and ``chinese.py`` (v1).

Pipeline: ``text_normalize`` (verbalisation, punctuation mapping, removal of everything that is not a
Chinese character or one of the phone punctuation marks) then ``g2p``: jieba POS segmentation per
sentence, regrouping for tone sandhi, pypinyin initials/finals per word, tone sandhi, erhua (v2 only),
and the mapping of each syllable to two phones of the symbol table (initial + toned final). ``word2ph``
has one entry per character of the normalised text: 2 for a syllable, 1 for a punctuation mark.

Pinyin source: pypinyin per jieba word (the reference with G2PW off), or, for v2 when the caller passes a
``G2PW`` object (``gpt_sovits.text.g2pw.load_g2pw(model_dir)``), the reference's G2PW path: the polyphone
model reads whole sentences, then the reference's word corrections apply. ``pinyin_backend(g2pw)`` says
which one is in use.
"""

from __future__ import annotations

import logging
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from gpt_sovits.text import zh_normalization
from gpt_sovits.text.symbols import PUNCTUATION, UNK

if TYPE_CHECKING:
    from gpt_sovits.text.g2pw import G2PW

log = logging.getLogger(__name__)
_DATA = Path(__file__).parent / "data"

# Full-width / other punctuation -> phone punctuation.
_PUNCT_MAP = {
    "：": ",",
    "；": ",",
    "，": ",",
    "。": ".",
    "！": "!",
    "？": "?",
    "\n": ".",
    "·": ",",
    "、": ",",
    "...": "…",
    "$": ".",
    "/": ",",
    "—": "-",
    "~": "…",
    "～": "…",
}
_PUNCT_RE = re.compile("|".join(re.escape(p) for p in _PUNCT_MAP))
_PUNCT_CLASS = "".join(re.escape(p) for p in PUNCTUATION)
_NOT_KEPT_RE = re.compile(r"[^\u4e00-\u9fa5" + _PUNCT_CLASS + r"]+")
_REPEATED_PUNCT_RE = re.compile(f"([{_PUNCT_CLASS}])([{_PUNCT_CLASS}])+")
_SENTENCE_RE = re.compile(rf"(?<=[{_PUNCT_CLASS}])\s*")
_LATIN_RE = re.compile("[a-zA-Z]+")

MUST_ERHUA = frozenset({"小院儿", "胡同儿", "范儿", "老汉儿", "撒欢儿", "寻老礼儿", "妥妥儿", "媳妇儿"})
NOT_ERHUA = frozenset(
    "虐儿 为儿 护儿 瞒儿 救儿 替儿 有儿 一儿 我儿 俺儿 妻儿 拐儿 聋儿 乞儿 患儿 幼儿 孤儿 婴儿 婴幼儿 连体儿 脑瘫儿 "
    "流浪儿 体弱儿 混血儿 蜜雪儿 舫儿 祖儿 美儿 应采儿 可儿 侄儿 孙儿 侄孙儿 女儿 男儿 红孩儿 花儿 虫儿 马儿 鸟儿 猪儿 "
    "猫儿 狗儿 少儿".split()
)
# Syllable spelling fixes before the table lookup (pypinyin gives e.g. "uei" after an initial, "i" alone).
_AFTER_INITIAL = {"uei": "ui", "iou": "iu", "uen": "un"}
_ALONE = {"ing": "ying", "i": "yi", "in": "yin", "u": "wu"}
_ALONE_FIRST = {"v": "yu", "e": "e", "i": "y", "u": "w"}


def pinyin_backend(g2pw: G2PW | None = None) -> str:
    """Which pinyin source ``g2p`` uses with this ``g2pw`` argument: "g2pw" or "pypinyin".

    "g2pw" needs a loaded G2PW object (``load_g2pw``, which logs the choice once) that has not failed;
    v1 always reads with pypinyin, as the reference v1 frontend does.
    """
    return "g2pw" if g2pw is not None and g2pw.usable else "pypinyin"


@cache
def _pinyin_table() -> dict[str, tuple[str, str]]:
    table = {}
    with open(_DATA / "zh_pinyin_to_phones.tsv", encoding="utf-8") as f:
        for line in f:
            key, phones = line.rstrip("\n").split("\t")
            ini, fin = phones.split(" ")
            table[key] = (ini, fin)
    return table


@cache
def _tone_sandhi():
    from gpt_sovits.text.tone_sandhi import ToneSandhi

    return ToneSandhi()


@cache
def _posseg():
    """jieba (the C-accelerated jieba_fast when installed) POS tagger, dictionary loaded once."""
    try:
        import jieba_fast as jieba
        import jieba_fast.posseg as psg
    except ImportError:  # pragma: no cover - plain jieba gives the same segmentation, slower
        import jieba
        import jieba.posseg as psg
    jieba.setLogLevel(logging.CRITICAL)
    jieba.initialize()
    return psg


def replace_punctuation(text: str) -> str:
    """Map punctuation to phone punctuation and drop everything but Chinese characters and those marks."""
    text = text.replace("嗯", "恩").replace("呣", "母")
    text = _PUNCT_RE.sub(lambda m: _PUNCT_MAP[m.group()], text)
    return _NOT_KEPT_RE.sub("", text)


def text_normalize(text: str) -> str:
    """The normalised text whose characters ``g2p`` aligns ``word2ph`` with."""
    out = "".join(replace_punctuation(s) for s in zh_normalization.normalize(text))
    # Collapse repeated punctuation (the reference: avoids prompt leakage at sentence ends).
    return _REPEATED_PUNCT_RE.sub(r"\1", out)


def _initials_finals(word: str) -> tuple[list[str], list[str]]:
    from pypinyin import Style, lazy_pinyin

    initials = lazy_pinyin(word, neutral_tone_with_five=True, style=Style.INITIALS)
    finals = lazy_pinyin(word, neutral_tone_with_five=True, style=Style.FINALS_TONE3)
    return initials, finals


def _split_pinyins(pinyins: list[str]) -> tuple[list[str], list[str]]:
    """Initials and toned finals of TONE3 syllables ("zhang3" -> "zh", "ang3"); other items (punctuation)
    are their own initial and final, as pypinyin's lazy_pinyin returns them."""
    from pypinyin.contrib.tone_convert import to_finals_tone3, to_initials

    initials: list[str] = []
    finals: list[str] = []
    for py in pinyins:
        if py[:1].isascii() and py[:1].isalpha():
            initials.append(to_initials(py))
            finals.append(to_finals_tone3(py, neutral_tone_with_five=True))
        else:
            initials.append(py)
            finals.append(py)
    return initials, finals


def _merge_erhua(initials: list[str], finals: list[str], word: str, pos: str) -> tuple[list[str], list[str]]:
    # A final 儿 read er1 is er2.
    if finals and len(finals) <= len(word) and word[len(finals) - 1] == "儿" and finals[-1] == "er1":
        finals[-1] = "er2"
    if word not in MUST_ERHUA and (word in NOT_ERHUA or pos in {"a", "j", "nr"}):
        return initials, finals
    if len(finals) != len(word):
        return initials, finals
    new_finals: list[str] = []
    for i, phn in enumerate(finals):
        # Erhua: the trailing 儿 takes the tone of the syllable before it.
        if i == len(finals) - 1 and word[i] == "儿" and phn in {"er2", "er5"} and word[-2:] not in NOT_ERHUA:
            if new_finals:
                phn = "er" + new_finals[-1][-1]
        new_finals.append(phn)
    return list(initials), new_finals


def _syllable_phones(initial: str, final: str) -> list[str]:
    """Two phones (initial, toned final) of one syllable, or ``[UNK]`` for one the table lacks."""
    tone = final[-1:]
    bare = final[:-1]
    if not tone or tone not in "12345":
        return [UNK]
    if initial:
        pinyin = initial + _AFTER_INITIAL.get(bare, bare)
    else:
        pinyin = bare
        if pinyin in _ALONE:
            pinyin = _ALONE[pinyin]
        elif pinyin and pinyin[0] in _ALONE_FIRST:
            pinyin = _ALONE_FIRST[pinyin[0]] + pinyin[1:]
    entry = _pinyin_table().get(pinyin)
    if entry is None:
        return [UNK]
    return [entry[0], entry[1] + tone]


def _sentence_g2p(
    sentence: str, version: str, readings: list[str] | None = None
) -> tuple[list[str], list[int]]:
    """Phones of one sentence (Latin letters already removed). ``readings``: G2PW's TONE3 pinyin of each
    character of the sentence (None: pypinyin per jieba word)."""
    sandhi = _tone_sandhi()
    seg = [(p.word, p.flag) for p in _posseg().lcut(sentence)]
    initials: list[str] = []
    finals: list[str] = []
    words = sandhi.pre_merge(seg)
    if readings is not None and "".join(w for w, _ in words) != sentence:  # pragma: no cover - defensive
        readings = None  # per-character readings cannot be matched to words that do not tile the sentence
    offset = 0
    for word, pos in words:
        start, offset = offset, offset + len(word)
        if pos == "eng":
            continue
        if readings is None:
            sub_i, sub_f = _initials_finals(word)
        else:
            from gpt_sovits.text.g2pw import correct_pronunciation

            sub_i, sub_f = _split_pinyins(correct_pronunciation(word, readings[start:offset]))
        sub_f = sandhi.modified_tone(word, pos, sub_f)
        if version != "v1":
            sub_i, sub_f = _merge_erhua(sub_i, sub_f, word, pos)
        initials += sub_i
        finals += sub_f
    phones: list[str] = []
    word2ph: list[int] = []
    for c, v in zip(initials, finals, strict=False):
        if c == v:
            # pypinyin returns punctuation (and characters it cannot read) unchanged.
            ph = [c] if c in PUNCTUATION else [UNK]
        else:
            ph = _syllable_phones(c, v)
        phones += ph
        word2ph.append(len(ph))
    return phones, word2ph


def _g2pw_readings(sentences: list[str], g2pw: G2PW | None) -> list[list[str]] | None:
    """G2PW's readings of all sentences at once (as the reference batches them), or None for pypinyin."""
    if g2pw is None or not g2pw.usable:
        return None
    from gpt_sovits.text.g2pw import G2PWUnavailableError

    try:
        return g2pw.pinyins(sentences)
    except G2PWUnavailableError as e:  # the object is now marked unusable: this is said once
        log.warning("G2PW polyphone model failed; Chinese pinyin falls back to pypinyin: %s", e)
        return None


def g2p(norm_text: str, version: str = "v2", g2pw: G2PW | None = None) -> tuple[list[str], list[int]]:
    """Phones and per-character phone counts of normalised text (output of ``text_normalize``).

    ``g2pw``: read pinyin with the G2PW polyphone model (v2 only, as the reference); None: pypinyin.
    """
    sentences = [_LATIN_RE.sub("", s) for s in _SENTENCE_RE.split(norm_text) if s.strip()]
    readings = _g2pw_readings(sentences, g2pw) if version != "v1" else None
    phones: list[str] = []
    word2ph: list[int] = []
    for i, s in enumerate(sentences):
        p, w = _sentence_g2p(s, version, None if readings is None else readings[i])
        phones += p
        word2ph += w
    return phones, word2ph
