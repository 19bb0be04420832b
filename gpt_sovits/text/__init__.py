"""GPT-SoVITS-compatible text frontend: text -> phones -> ids, offline.

``clean_text(text, language, version)`` gives ``(phones, word2ph, norm_text)``;
``cleaned_text_to_sequence(phones, version)`` the phone ids. Languages: zh, en, ja (pyopenjtalk-plus), ko
(g2pk2 on MeCab-ko), yue. Heavy packages and dictionaries (jieba, pypinyin, CMUdict, OpenJTalk, MeCab-ko)
load on first use of their language, not at import. Chinese v2 pinyin comes from pypinyin, or from the optional
G2PW polyphone model when the caller loads it once and passes it: ``g2pw = load_g2pw(model_dir)`` (None
when ``model_dir/G2PWModel`` is absent or broken, with a logged reason), ``clean_text(..., g2pw=g2pw)``.
"""

from gpt_sovits.text.cleaner import clean_text
from gpt_sovits.text.errors import (
    LanguageNotInstalledError,
    TextFrontendError,
    UnknownLanguageError,
    UnknownVersionError,
)
from gpt_sovits.text.g2pw import G2PW, G2PWUnavailableError, load_g2pw
from gpt_sovits.text.symbols import cleaned_text_to_sequence, get_symbols

__all__ = [
    "G2PW",
    "G2PWUnavailableError",
    "LanguageNotInstalledError",
    "TextFrontendError",
    "UnknownLanguageError",
    "UnknownVersionError",
    "clean_text",
    "cleaned_text_to_sequence",
    "get_symbols",
    "load_g2pw",
]
