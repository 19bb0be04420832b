"""The text side of synthesis: cutting the text into pieces, and each piece into phone ids and language runs.

Needs no neural model (except the optional G2PW polyphone model), so the text is checked before any
model loads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

from gpt_sovits.infer.request import TTSInputError


@dataclass
class Piece:
    """One piece of the text: its phone ids and language segments; BERT features once computed."""

    text: str
    phones: list[int]
    segments: list[Any]  # gpt_sovits.text.lang_segment.TextSegment
    bert: torch.Tensor | None = None  # (1024, n_phones)


def split_text(text: str, lang: str, cut: str) -> list[str]:
    """The pieces as the reference cuts them; empty or punctuation-only text and unknown cut methods or
    language modes raise TTSInputError. Needs no model, so it runs before any model loads."""
    from gpt_sovits.text.cut import UnknownCutMethodError, prepare_segments
    from gpt_sovits.text.errors import TextFrontendError
    from gpt_sovits.text.lang_segment import split_languages

    if not isinstance(text, str) or not text.strip():
        raise TTSInputError("The text to speak is empty.")
    try:
        pieces = prepare_segments(text, cut, "en" if lang == "en" else "zh")
        split_languages(pieces[0] if pieces else text, lang)  # validates the language mode
    except (UnknownCutMethodError, TextFrontendError) as e:
        raise TTSInputError(str(e)) from None
    if not pieces:
        raise TTSInputError(
            f"Nothing to say in {text[:40]!r}: the text has no words (only punctuation or spaces)."
        )
    return pieces


def text_phones(text: str, lang: str, version: str, g2pw: Any = None) -> Piece:
    """One piece -> phone ids and its language segments (frontend errors become TTSInputError).

    `g2pw`: the G2PW polyphone model for Chinese v2 pinyin, or None for pypinyin.
    """
    from gpt_sovits.text.errors import TextFrontendError
    from gpt_sovits.text.lang_segment import get_phones

    try:
        ids, segments = get_phones(text, lang, version, g2pw=g2pw)
    except TextFrontendError as e:
        raise TTSInputError(str(e)) from None
    return Piece(text, ids, segments)


def has_words(piece: Piece) -> bool:
    return any(re.sub(r"[\W_]+", "", s.norm_text) for s in piece.segments)


def text_pieces(text: str, lang: str, cut: str, version: str, g2pw: Any = None) -> list[Piece]:
    """Cut ``text`` as the reference does and turn each piece into phone ids (no neural model needed
    unless `g2pw` is given)."""
    pieces = [text_phones(raw, lang, version, g2pw) for raw in split_text(text, lang, cut)]
    # As the reference, a piece whose text normalises to nothing is left out.
    pieces = [p for p in pieces if p.phones and has_words(p)]
    if not pieces:
        raise TTSInputError(
            f"Nothing to say in {text[:40]!r}: the text has no words (only punctuation or spaces)."
        )
    return pieces


def prompt_text(text: str, lang: str) -> str:
    from gpt_sovits.text.cut import SPLITS

    text = text.strip("\n").strip()
    if text and text[-1] not in SPLITS:
        text += "." if lang == "en" else "。"
    return text
