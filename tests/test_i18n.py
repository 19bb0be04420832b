"""Every visible string goes through i18n, and zh_CN translates every key the UI uses."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from i18n import I18n, available_languages, system_language

REPO_ROOT = Path(__file__).resolve().parent.parent
UI_SOURCES = [REPO_ROOT / "webui.py", *sorted((REPO_ROOT / "ui").glob("*.py"))]


def ui_keys() -> set[str]:
    """String literals passed to `_()` or `i18n()` / `ctx.i18n()` in the UI sources, plus tab titles."""
    keys: set[str] = set()
    for path in UI_SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                func = node.func
                name = (
                    func.id
                    if isinstance(func, ast.Name)
                    else func.attr
                    if isinstance(func, ast.Attribute)
                    else ""
                )
                if name in {"_", "i18n"} and isinstance(node.args[0].value, str):
                    keys.add(node.args[0].value)
    from webui import TABS

    keys.update(title for _, title in TABS)
    return keys


def test_languages_available():
    assert {"en_US", "zh_CN"} <= set(available_languages())


def test_zh_cn_translates_every_ui_key():
    zh = I18n("zh_CN")
    keys = ui_keys()
    assert len(keys) > 10
    missing = sorted(k for k in keys if zh(k) == k)
    assert not missing, f"zh_CN lacks translations for: {missing}"


def test_en_us_shows_keys_and_formats():
    en = I18n("en_US")
    assert en("Slicing") == "Slicing"
    assert en("{n} clips", n=3) == "3 clips"


def test_unknown_language_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown UI language"):
        I18n("xx_XX")


def test_system_language_follows_locale(monkeypatch):
    monkeypatch.setenv("LC_ALL", "zh_CN.UTF-8")
    assert system_language() == "zh_CN"
    monkeypatch.setenv("LC_ALL", "fr_FR.UTF-8")
    assert system_language() == "en_US"


@pytest.mark.parametrize("language", available_languages())
def test_no_key_means_two_things_across_a_languages_files(language):
    """A language's files are merged into one table: a key translated differently in two of them would
    show one tab's wording in another (zh_CN once titled the ASR tab with a score column's name)."""
    import json

    from i18n import LOCALE_DIR

    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    for path in sorted((LOCALE_DIR / language).glob("*.json")):
        for key, text in json.loads(path.read_text(encoding="utf-8")).items():
            if key in seen and seen[key][1] != text:
                clashes.append(f"{key!r}: {seen[key][0]} {seen[key][1]!r} vs {path.name} {text!r}")
            seen.setdefault(key, (path.name, text))
    assert not clashes, "keys translated two ways: " + "; ".join(clashes)


def test_zh_cn_titles_the_asr_tab_as_speech_recognition():
    assert I18n("zh_CN")("ASR") == "语音识别"
    assert I18n("zh_CN")("ASR match") == "识别一致性"
