"""Splitting of inference text into pieces, as the reference's ``cut0``..``cut5`` do.

Each method takes the whole text and returns the pieces joined with ``"\\n"`` (the reference's return
convention). ``prepare_segments`` applies the callers' post-processing: a leading stop for a very short
first sentence, removal of blank / punctuation-only pieces, merging of pieces shorter than 5 characters
and splitting of pieces longer than 510 characters (BERT's limit).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from core.errors import UserError

# Characters that end a sentence for split() / split_big_text().
SPLITS = frozenset("，。？！,.?!~:：—…")
# A piece made only of these is dropped.
_PUNCT_ONLY = frozenset("!?…,.- ")
_CUT5_PUNCT = frozenset(",.;?!、，。？！：…")
MAX_SEGMENT_LEN = 510
MIN_SEGMENT_LEN = 5


class UnknownCutMethodError(UserError, ValueError):
    """The requested text-splitting method does not exist."""


def _is_punct_only(piece: str, allowed: frozenset[str] = _PUNCT_ONLY) -> bool:
    return set(piece) <= allowed


def split_sentences(text: str) -> list[str]:
    """Split after every sentence-ending mark (a final "。" is added when the text lacks one)."""
    text = text.replace("……", "。").replace("——", "，")
    if not text:
        return []
    if text[-1] not in SPLITS:
        text += "。"
    pieces, start = [], 0
    for i, ch in enumerate(text):
        if ch in SPLITS:
            pieces.append(text[start : i + 1])
            start = i + 1
    return pieces


def cut0(text: str) -> str:
    """No split (text made only of punctuation becomes an empty line)."""
    return "\n" if _is_punct_only(text) else text


def cut1(text: str) -> str:
    """Every 4 sentences."""
    text = text.strip("\n")
    sentences = split_sentences(text)
    starts = list(range(0, len(sentences), 4))
    if len(starts) > 1:
        # As the reference: the last start index is replaced by "to the end", so the final group takes
        # the last 4..7 sentences (8 sentences stay one piece).
        bounds: list[int | None] = [*starts[:-1], None]
        pieces = ["".join(sentences[bounds[k] : bounds[k + 1]]) for k in range(len(bounds) - 1)]
    else:
        pieces = [text]
    return "\n".join(p for p in pieces if not _is_punct_only(p))


def cut2(text: str, max_chars: int = 50) -> str:
    """About every 50 characters, at sentence ends; a short tail joins the piece before it."""
    text = text.strip("\n")
    sentences = split_sentences(text)
    if len(sentences) < 2:
        return text
    pieces: list[str] = []
    buf, count = "", 0
    for s in sentences:
        count += len(s)
        buf += s
        if count > max_chars:
            pieces.append(buf)
            buf, count = "", 0
    if buf:
        pieces.append(buf)
    if len(pieces) > 1 and len(pieces[-1]) < max_chars:
        tail = pieces.pop()
        pieces[-1] += tail
    return "\n".join(p for p in pieces if not _is_punct_only(p))


def cut3(text: str) -> str:
    """At every Chinese full stop "。" (which is dropped)."""
    text = text.strip("\n")
    pieces = text.strip("。").split("。")
    return "\n".join(p for p in pieces if not _is_punct_only(p))


def cut4(text: str) -> str:
    """At every "." that is not between two digits (the "." is dropped)."""
    text = text.strip("\n")
    pieces = re.split(r"(?<!\d)\.(?!\d)", text.strip("."))
    return "\n".join(p for p in pieces if not _is_punct_only(p))


def cut5(text: str) -> str:
    """After every punctuation mark (a "." between digits is kept inside the number)."""
    text = text.strip("\n")
    pieces: list[str] = []
    buf: list[str] = []
    n = len(text)
    for i, ch in enumerate(text):
        buf.append(ch)
        if ch in _CUT5_PUNCT:
            in_number = ch == "." and 0 < i < n - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()
            if not in_number:
                pieces.append("".join(buf))
                buf = []
    if buf:
        pieces.append("".join(buf))
    return "\n".join(p for p in pieces if not _is_punct_only(p, _CUT5_PUNCT))


METHODS: dict[str, Callable[[str], str]] = {
    "cut0": cut0,
    "cut1": cut1,
    "cut2": cut2,
    "cut3": cut3,
    "cut4": cut4,
    "cut5": cut5,
}


def get_method(name: str) -> Callable[[str], str]:
    """The splitting function called ``name`` (cut0..cut5)."""
    try:
        return METHODS[name]
    except KeyError:
        raise UnknownCutMethodError(
            f"Unknown text-splitting method {name!r}: expected one of {', '.join(METHODS)}."
        ) from None


def merge_short_pieces(pieces: list[str], threshold: int = MIN_SEGMENT_LEN) -> list[str]:
    """Join consecutive pieces until each has at least ``threshold`` characters; a short tail joins the last."""
    if len(pieces) < 2:
        return list(pieces)
    out: list[str] = []
    buf = ""
    for p in pieces:
        buf += p
        if len(buf) >= threshold:
            out.append(buf)
            buf = ""
    if buf:
        if out:
            out[-1] += buf
        else:
            out.append(buf)
    return out


def split_big_text(text: str, max_len: int = MAX_SEGMENT_LEN) -> list[str]:
    """Split text longer than ``max_len`` at sentence marks into pieces of at most ``max_len`` characters
    (a single run without marks longer than that stays whole, as in the reference)."""
    marks = "".join(sorted(SPLITS))
    parts = re.split("([" + re.escape(marks) + "])", text)
    out: list[str] = []
    cur = ""
    for part in parts:
        if len(cur + part) > max_len:
            out.append(cur)
            cur = part
        else:
            cur += part
    if cur:
        out.append(cur)
    return out


def _first_sentence(text: str) -> str:
    pattern = "[" + re.escape("".join(sorted(SPLITS))) + "]"
    return re.split(pattern, text)[0].strip()


def prepare_segments(text: str, method: str = "cut0", lang: str = "zh") -> list[str]:
    """The pieces inference synthesises one by one, as the reference's ``TextPreprocessor.pre_seg_text``.

    Returns an empty list for text with nothing to say (empty, blank or punctuation only).
    """
    stop = "." if lang == "en" else "。"
    text = text.strip("\n")
    if not text:
        return []
    if text[0] not in SPLITS and len(_first_sentence(text)) < 4:
        text = stop + text
    text = get_method(method)(text)
    while "\n\n" in text:
        text = text.replace("\n\n", "\n")
    pieces = [p for p in text.split("\n") if p not in ("", " ")]
    pieces = merge_short_pieces(pieces, MIN_SEGMENT_LEN)
    out: list[str] = []
    for p in pieces:
        if not p.strip() or not re.sub(r"\W+", "", p):
            continue
        if p[-1] not in SPLITS:
            p += stop
        if len(p) <= MAX_SEGMENT_LEN:
            out.append(p)
            continue
        # The reference can emit an empty piece and keeps a mark-free run over 510 characters whole (BERT
        # then fails on it); here empties are dropped and such runs are cut every 510 characters.
        for q in split_big_text(p):
            out.extend(q[i : i + MAX_SEGMENT_LEN] for i in range(0, len(q), MAX_SEGMENT_LEN))
    return out
