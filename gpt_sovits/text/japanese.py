"""Japanese (ja) text -> phones, as the reference ``text/japanese.py``, offline with pyopenjtalk-plus.

``text_normalize`` only collapses repeated punctuation (the reference has no other Japanese
normalisation: OpenJTalk reads numbers and symbols itself). ``g2p`` splits the text into runs of
"Japanese" characters (kana, kanji, ``々``, Latin letters, any Unicode decimal digit, full-width letters,
half-width katakana) and the marks between them; each run goes through OpenJTalk, each mark stays a
phone (a space is dropped; the table's punctuation map applies; others become ``UNK`` in ``clean_text``).

- v2 reads each run with prosody marks (ESPnet's ``pyopenjtalk_g2p_prosody`` rules on OpenJTalk's
  full-context labels): ``[`` pitch rise, ``]`` pitch fall, ``#`` accent-phrase border, ``_`` pause,
  unvoiced vowels lower-cased. ``#`` is not in the v2 table, so ``clean_text`` turns it into ``UNK``
  exactly as the reference does.
- v1 reads the runs with plain ``pyopenjtalk.g2p`` (no prosody marks), the rule v1 models were trained
  with; the reference at its current commit sends prosody marks to v1 too, which its v1 table lacks.

pyopenjtalk-plus ships the OpenJTalk dictionary (no download) and reads 何 with its bundled ONNX model
when onnxruntime is installed. The reference's user dictionary (``data/ja_userdict.csv``, OpenJTalk CSV
rows; add your own lines there) is compiled once into the project's cache and used by a private
OpenJTalk instance, so pyopenjtalk's global state is never changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from gpt_sovits.text.errors import LanguageNotInstalledError
from gpt_sovits.text.local_cache import CacheNotWritableError, cache_dir
from gpt_sovits.text.symbols import PUNCTUATION

log = logging.getLogger(__name__)
USER_DICT_CSV = Path(__file__).parent / "data" / "ja_userdict.csv"

_JA_CHARS = r"A-Za-z\d\u3005\u3040-\u30ff\u4e00-\u9fff\uff11-\uff19\uff21-\uff3a\uff41-\uff5a\uff66-\uff9d"
_JA_RUN_RE = re.compile(f"[{_JA_CHARS}]+")
_PUNCT_CLASS = "".join(re.escape(p) for p in PUNCTUATION)
_REPEATED_PUNCT_RE = re.compile(f"([{_PUNCT_CLASS}])([{_PUNCT_CLASS}])+")
# Marks between runs -> table punctuation (the reference's post_replace_ph).
_MARK_MAP = {"：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ","}

# Full-context label fields (HTS format) the prosody rules read.
_PHONE_RE = re.compile(r"-(.*?)\+")
_A1_RE = re.compile(r"/A:([0-9\-]+)\+")  # accent nucleus position relative to the mora
_A2_RE = re.compile(r"\+(\d+)\+")  # mora position in the accent phrase, forward
_A3_RE = re.compile(r"\+(\d+)/")  # mora position in the accent phrase, backward
_F1_RE = re.compile(r"/F:(\d+)_")  # morae in the accent phrase
_E3_RE = re.compile(r"!(\d+)_")  # 1 when the utterance is a question


@cache
def _pyopenjtalk():
    try:
        import pyopenjtalk
    except ImportError as e:
        raise LanguageNotInstalledError(
            "ja", "pyopenjtalk-plus", "It ships the OpenJTalk dictionary (imported as pyopenjtalk)."
        ) from e
    return pyopenjtalk


@contextlib.contextmanager
def _quiet_c_output() -> Iterator[None]:
    """Send the process's stdout/stderr file descriptors to /dev/null for the block (C code's prints)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def _compiled_user_dict(pyopenjtalk) -> Path | None:
    """The user dictionary compiled for OpenJTalk (cached by the CSV's hash), or None when unusable."""
    if not USER_DICT_CSV.is_file() or not USER_DICT_CSV.read_text(encoding="utf-8").strip():
        return None
    digest = hashlib.md5(USER_DICT_CSV.read_bytes()).hexdigest()
    try:
        target = cache_dir("ja_userdic") / f"user-{digest}.dic"
        if not target.is_file():
            partial = target.with_suffix(".part")
            with _quiet_c_output():  # MeCab's compiler prints progress from C
                pyopenjtalk.mecab_dict_index(str(USER_DICT_CSV), str(partial))
            partial.replace(target)
    except (CacheNotWritableError, OSError, RuntimeError) as e:
        log.warning("Japanese user dictionary %s not used: %s", USER_DICT_CSV, e)
        return None
    return target


@cache
def _jtalk():
    """A private OpenJTalk instance with the user dictionary (created on first use)."""
    pyopenjtalk = _pyopenjtalk()
    user_dict = _compiled_user_dict(pyopenjtalk)
    userdic = str(user_dict).encode("utf-8") if user_dict else b""
    return pyopenjtalk.OpenJTalk(dn_mecab=pyopenjtalk.OPEN_JTALK_DICT_DIR, userdic=userdic)


def text_normalize(text: str) -> str:
    """Collapse runs of table punctuation to their first mark (``!!?`` -> ``!``), as the reference."""
    return _REPEATED_PUNCT_RE.sub(r"\1", text)


def _feature(pattern: re.Pattern, label: str) -> int:
    m = pattern.search(label)
    return int(m.group(1)) if m else -50


def _prosody_mark(label: str, next_label: str, phone: str) -> str | None:
    """The mark after a phone: accent-phrase border ``#``, pitch fall ``]``, pitch rise ``[`` or none."""
    a1, a2, a3 = _feature(_A1_RE, label), _feature(_A2_RE, label), _feature(_A3_RE, label)
    a2_next = _feature(_A2_RE, next_label)
    if a3 == 1 and a2_next == 1 and phone in "aeiouAEIOUNcl":
        return "#"
    if a1 == 0 and a2_next == a2 + 1 and a2 != _feature(_F1_RE, label):
        return "]"
    if a2 == 1 and a2_next == 2:
        return "["
    return None


def prosody_phones(run: str) -> list[str]:
    """Phones and prosody marks of one run of Japanese characters, without the ``^``/``$`` ends."""
    pyopenjtalk, jtalk = _pyopenjtalk(), _jtalk()
    labels = pyopenjtalk.make_label(pyopenjtalk.run_frontend(run, jtalk=jtalk), jtalk=jtalk)
    out: list[str] = []
    for n, label in enumerate(labels):
        m = _PHONE_RE.search(label)
        phone = m.group(1) if m else ""
        if phone in ("A", "E", "I", "O", "U"):  # unvoiced vowels read as voiced ones
            phone = phone.lower()
        if phone == "sil":  # only at the ends: "^", then "$" (or "?" for a question)
            if n == 0:
                out.append("^")
            elif n == len(labels) - 1:
                out.extend({0: ["$"], 1: ["?"]}.get(_feature(_E3_RE, label), []))
            continue
        if phone == "pau":
            out.append("_")
            continue
        out.append(phone)
        next_label = labels[n + 1] if n + 1 < len(labels) else ""
        mark = _prosody_mark(label, next_label, phone)
        if mark:
            out.append(mark)
    return out[1:-1]  # without the "^" and "$" of the end labels, as the reference


def plain_phones(run: str) -> list[str]:
    """Phones of one run without prosody marks (``pyopenjtalk.g2p``: ``pau`` pauses, capital unvoiced vowels)."""
    return [p for p in _pyopenjtalk().g2p(run, jtalk=_jtalk()).split(" ") if p]


def g2p(norm_text: str, version: str = "v2") -> list[str]:
    """Phones (and v2 prosody marks) of text from ``text_normalize``; marks between runs kept."""
    read = prosody_phones if version == "v2" else plain_phones
    text = norm_text.replace("％", "パーセント").lower()
    phones: list[str] = []
    pos = 0
    for m in _JA_RUN_RE.finditer(text):
        phones.extend(_marks(text[pos : m.start()]))
        phones.extend(read(m.group()))
        pos = m.end()
    phones.extend(_marks(text[pos:]))
    return phones


def _marks(between: str) -> list[str]:
    return [_MARK_MAP.get(ch, ch) for ch in between if ch != " "]
