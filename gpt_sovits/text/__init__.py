"""GPT-SoVITS-compatible text frontend: text -> phones -> ids, offline.

``clean_text(text, language, version)`` gives ``(phones, word2ph, norm_text)``;
``cleaned_text_to_sequence(phones, version)`` the phone ids. Heavy dictionaries (jieba, pypinyin,
CMUdict) load on first use, not at import.
"""

from gpt_sovits.text.cleaner import clean_text
from gpt_sovits.text.errors import (
    LanguageNotInstalledError,
    TextFrontendError,
    UnknownLanguageError,
    UnknownVersionError,
)
from gpt_sovits.text.symbols import cleaned_text_to_sequence, get_symbols

__all__ = [
    "LanguageNotInstalledError",
    "TextFrontendError",
    "UnknownLanguageError",
    "UnknownVersionError",
    "clean_text",
    "cleaned_text_to_sequence",
    "get_symbols",
]
