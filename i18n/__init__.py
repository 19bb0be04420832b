"""Display-string translation. Keys are the English strings; logic never compares translations.

`I18n("zh_CN")("Slicing")` returns the zh_CN text, or the key itself when a locale lacks it.
Locale files live in `i18n/locale/<lang>/*.json` (one file per tab or area, merged) as flat
`{"English key": "translation"}` maps.
"""

from __future__ import annotations

import json
import locale
import os
from functools import cache
from pathlib import Path

LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT_LANGUAGE = "en_US"


def available_languages() -> list[str]:
    return sorted(p.name for p in LOCALE_DIR.iterdir() if p.is_dir())


def system_language() -> str:
    """The system locale (LANG / LC_ALL) mapped to an available language, else en_US."""
    name = os.environ.get("LC_ALL") or os.environ.get("LANG") or (locale.getlocale()[0] or "")
    name = name.split(".")[0].replace("-", "_")
    langs = available_languages()
    if name in langs:
        return name
    prefix = name.split("_")[0].lower()
    for lang in langs:
        if prefix and lang.lower().startswith(prefix + "_"):
            return lang
    return DEFAULT_LANGUAGE


@cache
def _load_table(language: str) -> dict[str, str]:
    folder = LOCALE_DIR / language
    if not folder.is_dir():
        raise ValueError(f"unknown UI language {language!r}; available: {', '.join(available_languages())}")
    table: dict[str, str] = {}
    for path in sorted(folder.glob("*.json")):
        table.update(json.loads(path.read_text(encoding="utf-8")))
    return table


class I18n:
    """Callable translator bound to one language."""

    def __init__(self, language: str | None = None) -> None:
        self.language = language or system_language()
        self._table = _load_table(self.language)

    def __call__(self, key: str, **fmt: object) -> str:
        text = self._table.get(key) or key
        return text.format(**fmt) if fmt else text

    def __repr__(self) -> str:
        return f"I18n({self.language!r})"
