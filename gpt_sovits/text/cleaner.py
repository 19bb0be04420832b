"""``clean_text``: raw text and a language -> (phones, word2ph, norm_text), as the reference ``text/cleaner.py``.

Languages per model version: v1 has zh/ja/en; v2 adds ko and yue. ``all_<lang>`` codes (the inference UI's
"only this language") are accepted as ``<lang>``. Mixed text (zh + en, "auto") goes through
``gpt_sovits.text.lang_segment.clean_mixed_text``. Each language's module (and its packages) is imported
on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpt_sovits.text.errors import UnknownLanguageError
from gpt_sovits.text.symbols import UNK, _check_version, get_symbols

if TYPE_CHECKING:
    from gpt_sovits.text.g2pw import G2PW

LANGUAGES = {"v1": ("zh", "ja", "en"), "v2": ("zh", "ja", "en", "ko", "yue")}
# Characters the reference turns into a pause symbol in Chinese text (instead of ",").
SPECIAL_PAUSES = (("￥", "SP2"), ("^", "SP3"))


def _language(language: str, version: str) -> str:
    lang = language.strip().lower()
    if lang.startswith("all_"):
        lang = lang[4:]
    if lang not in LANGUAGES[version]:
        raise UnknownLanguageError(
            f"Unknown language {language!r} for a {version} model: expected one of "
            f"{', '.join(LANGUAGES[version])} (or all_<lang>; mixed text: 'auto')."
        )
    return lang


def _language_module(lang: str):
    if lang == "zh":
        from gpt_sovits.text import chinese

        return chinese
    if lang == "en":
        from gpt_sovits.text import english

        return english
    if lang == "ja":
        from gpt_sovits.text import japanese

        return japanese
    if lang == "ko":
        from gpt_sovits.text import korean

        return korean
    from gpt_sovits.text import cantonese

    return cantonese


def clean_text(
    text: str, language: str, version: str = "v2", *, g2pw: G2PW | None = None
) -> tuple[list[str], list[int] | None, str]:
    """Phones, per-character phone counts (zh and yue, else None) and the normalised text.

    Raises ``LanguageNotInstalledError`` when the language's package is missing (e.g. pyopenjtalk-plus).

    ``g2pw``: a loaded G2PW polyphone model (``gpt_sovits.text.load_g2pw(model_dir)``) for Chinese v2
    pinyin, as the reference with G2PW installed; None (default) reads pinyin with pypinyin.

    Every returned phone is in the version's symbol table (unknown ones become ``UNK``). For zh and yue,
    ``len(word2ph) == len(norm_text)`` and ``sum(word2ph) == len(phones)``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    version = _check_version(version)
    lang = _language(language, version)
    module = _language_module(lang)
    symbols = set(get_symbols(version))
    if lang == "zh":
        special = next(((s, sym) for s, sym in SPECIAL_PAUSES if s in text), None)
        if special is not None:
            norm_text = module.text_normalize(text.replace(special[0], ","))
            phones, word2ph = module.g2p(norm_text, version, g2pw)
            phones = [special[1] if p == "," else p for p in phones]
        else:
            norm_text = module.text_normalize(text)
            phones, word2ph = module.g2p(norm_text, version, g2pw)
        if len(word2ph) != len(norm_text) or sum(word2ph) != len(phones):  # pragma: no cover - invariant
            raise AssertionError(f"word2ph misaligned for {norm_text!r}")
    elif lang == "yue":
        norm_text = module.text_normalize(text)
        phones, word2ph = module.g2p(norm_text)
        if len(word2ph) != len(norm_text) or sum(word2ph) != len(phones):  # pragma: no cover - invariant
            raise AssertionError(f"word2ph misaligned for {norm_text!r}")
    elif lang in ("ja", "ko"):
        norm_text = module.text_normalize(text)
        phones = module.g2p(norm_text, version)
        word2ph = None
    else:
        norm_text = module.text_normalize(text)
        phones = module.g2p(norm_text)
        word2ph = None
        if len(phones) < 4:  # the reference pads very short English with a leading pause
            phones = [",", *phones]
    phones = [p if p in symbols else UNK for p in phones]
    return phones, word2ph, norm_text
