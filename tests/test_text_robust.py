"""Bad input, mixed languages, the CLI, and a property test on arbitrary unicode."""

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpt_sovits.text import (
    LanguageNotInstalledError,
    UnknownLanguageError,
    clean_text,
    cleaned_text_to_sequence,
    get_symbols,
)
from gpt_sovits.text.__main__ import main
from gpt_sovits.text.lang_segment import clean_mixed_text, get_phones, split_by_script, split_languages

BAD = [
    "",
    "。，！？……",
    "😀🎉👍",
    "\x00\x07\x1b\x7f",
    "|",
    "你好|世界",
    "\u200b\ufeff",
    "^",
    "￥",
    "１２３",
    "𠀀",
]


@pytest.mark.parametrize("text", BAD)
@pytest.mark.parametrize(
    ("lang", "version"), [("zh", "v1"), ("zh", "v2"), ("en", "v1"), ("en", "v2"), ("ja", "v1"), ("ja", "v2"),
                          ("ko", "v2"), ("yue", "v2")],
)  # fmt: skip
def test_bad_input_gives_phones_in_table(text, lang, version):
    phones, word2ph, norm = clean_text(text, lang, version)
    assert set(phones) <= set(get_symbols(version))
    if lang == "zh":
        assert len(word2ph) == len(norm) and sum(word2ph) == len(phones)


def test_empty_and_punctuation_only():
    assert clean_text("", "zh") == ([], [], "")
    assert clean_text("😀", "zh") == ([], [], "")
    phones, _, norm = clean_text("！！！", "zh")
    assert phones == ["!"] and norm == "!"


def test_long_input():
    text = "今天天气很好，我们去公园散步吧！" * 625  # 10,000 characters
    phones, word2ph, norm = clean_text(text, "zh")
    assert len(norm) == len(word2ph) == 10_000 and len(phones) == sum(word2ph)
    phones, _, _ = clean_text("The quick brown fox jumps over the lazy dog. " * 222, "en")
    assert len(phones) > 5000


def test_unknown_language_and_missing_packages(monkeypatch):
    with pytest.raises(UnknownLanguageError, match="'fr'"):
        clean_text("bonjour", "fr")
    with pytest.raises(UnknownLanguageError, match="ko"):
        clean_text("안녕", "ko", "v1")  # v1 has no Korean
    from gpt_sovits.text import korean

    monkeypatch.setitem(sys.modules, "mecab", None)  # python-mecab-ko missing: a clear error, not a crash
    korean._g2pk2.cache_clear()
    try:
        with pytest.raises(LanguageNotInstalledError, match="mecab"):
            clean_text("안녕", "ko")
    finally:
        korean._g2pk2.cache_clear()
    with pytest.raises(TypeError):
        clean_text(None, "zh")  # type: ignore[arg-type]


def test_split_by_script_and_modes():
    assert split_by_script("我用GPT写代码3次") == [("zh", "我用"), ("en", "GPT"), ("zh", "写代码3次")]
    assert split_languages("Hello 世界", "en") == [("en", "Hello 世界")]
    assert split_languages("你好hello", "all_zh") == [("zh", "你好"), ("en", "hello")]
    assert split_languages("你好。こんにちは", "auto") == [("zh", "你好。"), ("ja", "こんにちは")]
    # Auto modes: ideographs in a clause with kana are kanji; in other modes the chosen language decides.
    assert split_languages("今日は雨です", "auto") == [("ja", "今日は雨です")]
    assert split_languages("今日は雨。明天下雨", "auto") == [("ja", "今日は雨。"), ("zh", "明天下雨")]
    assert split_languages("안녕하세요 hello", "auto") == [("ko", "안녕하세요 "), ("en", "hello")]
    assert split_languages("今日はhello", "ko") == [("ko", "今日は"), ("en", "hello")]
    with pytest.raises(UnknownLanguageError):
        split_languages("x", "xx")


def test_mixed_text_segments_and_ids():
    segs = clean_mixed_text("我喜欢Python编程。", "zh")
    assert [s.language for s in segs] == ["zh", "en", "zh"]
    assert segs[0].word2ph == [2, 2, 2] and segs[1].word2ph is None
    ids, segs = get_phones("好", "zh")
    phones = [p for s in segs for p in s.phones]
    assert ids == cleaned_text_to_sequence(phones, "v2")


def test_cli_prints_phones_and_ids(capsys):
    assert main(["你好", "--lang", "zh"]) == 0
    out = capsys.readouterr().out
    assert "n i2 h ao3" in out
    assert "ids:" in out
    assert main(["x", "--lang", "fr"]) == 2


def test_cli_module_entry_point():
    r = subprocess.run(
        [sys.executable, "-m", "gpt_sovits.text", "hello world", "--lang", "en"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "HH AH0 L OW1" in r.stdout


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=40), st.sampled_from(["zh", "en", "ja"]), st.sampled_from(["v1", "v2"]))
def test_property_arbitrary_unicode(text, lang, version):
    phones, word2ph, norm = clean_text(text, lang, version)
    assert set(phones) <= set(get_symbols(version))
    if lang == "zh":
        assert len(word2ph) == len(norm) and sum(word2ph) == len(phones)


@settings(max_examples=30, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("你好世界一不儿123.,!？ abcXYZ%$")), max_size=30))
def test_property_mixed_chinese_latin_digits(text):
    for seg in clean_mixed_text(text, "zh"):
        assert set(seg.phones) <= set(get_symbols("v2"))


@pytest.mark.parametrize("text", ["𑶠", "٣٤", "X$,1", "£,5.,"])
def test_found_by_property_tests(text):
    # Non-ASCII decimal digits and stray commas in money made the reference's regex rules raise.
    for lang in ("zh", "en"):
        phones, _, _ = clean_text(text, lang)
        assert set(phones) <= set(get_symbols("v2"))
    assert clean_text("٣", "zh")[2] == "三"


def test_no_network_on_first_use():
    # Fresh process with sockets disabled: every dictionary and model must load from installed files.
    code = (
        "import socket\n"
        "def _no(*a, **k):\n"
        "    raise OSError('network used')\n"
        "socket.socket.connect = _no\n"
        "socket.create_connection = _no\n"
        "from gpt_sovits.text import clean_text\n"
        "from gpt_sovits.text.english import lookup\n"
        "print(clean_text('你好，世界', 'zh')[0], clean_text('hello zorbled', 'en')[0], lookup('zorbled'))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "'n', 'i2'" in r.stdout and "'Z'" in r.stdout
