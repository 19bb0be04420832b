"""Japanese (ja) frontend: the reference's phones on its 20 cases, v1/v2 rules, user dictionary, bad input."""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpt_sovits.text import (
    LanguageNotInstalledError,
    clean_text,
    cleaned_text_to_sequence,
    get_symbols,
    japanese,
)
from gpt_sovits.text.__main__ import main
from gpt_sovits.text.lang_segment import clean_mixed_text, get_phones
from tests.support.reference_data import REFERENCE_DIR

CASES = json.loads((REFERENCE_DIR / "ja_frontend_cases.json").read_text(encoding="utf-8"))["cases"]
V1, V2 = set(get_symbols("v1")), set(get_symbols("v2"))


@pytest.mark.parametrize("case", CASES, ids=[c["text"][:12] for c in CASES])
def test_reference_cases(case):
    phones, word2ph, norm = clean_text(case["text"], "ja", "v2")
    assert norm == case["norm_text"]
    assert phones == case["phones"]
    assert cleaned_text_to_sequence(phones, "v2") == case["phone_ids"]
    assert word2ph is None


def test_prosody_marks_and_unk_border():
    # こんにちは: rise after the first mora; the accent-phrase border "#" is not in the v2 table -> UNK.
    assert clean_text("こんにちは", "ja", "v2")[0][:3] == ["k", "o", "["]
    raw = japanese.g2p("今日はいい天気")
    assert raw[:4] == ["ky", "o", "]", "o"] and "#" in raw  # before clean_text's table mapping
    phones, _, _ = clean_text("今日はいい天気", "ja", "v2")
    assert phones == ["UNK" if p == "#" else p for p in raw]


def test_v1_reads_without_prosody_marks():
    phones, word2ph, _ = clean_text("こんにちは、今日はいい天気ですね。", "ja", "v1")
    assert phones[:10] == ["k", "o", "N", "n", "i", "ch", "i", "w", "a", ","]
    assert not {"[", "]", "#"} & set(phones) and set(phones) <= V1 and word2ph is None


def test_normalize_collapses_repeated_punctuation():
    assert japanese.text_normalize("えっ!!??本当…") == "えっ!本当…"
    assert clean_text("はい!!!", "ja")[2] == "はい!"


def test_marks_between_runs():
    phones, _, _ = clean_text("「はい」。", "ja")
    assert phones[0] == "UNK" and phones[-2:] == ["UNK", "."]  # brackets are not phones; 。 -> .
    assert "UNK" not in clean_text("はい はい", "ja")[0]  # a space between runs is dropped
    assert clean_text("５０％", "ja")[0] == clean_text("50パーセント", "ja")[0]


def test_user_dictionary_reading():
    # The reference's user dictionary reads 主殿 as アルジドノ (OpenJTalk alone: しゅでん).
    assert "".join(japanese.plain_phones("主殿")) == "arujidono"


def test_missing_package_gives_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyopenjtalk", None)  # import fails
    japanese._pyopenjtalk.cache_clear()
    japanese._jtalk.cache_clear()
    try:
        with pytest.raises(LanguageNotInstalledError, match="pyopenjtalk-plus"):
            clean_text("こんにちは", "ja")
    finally:
        japanese._pyopenjtalk.cache_clear()
        japanese._jtalk.cache_clear()


BAD = ["", "。，！？……", "😀🎉👍", "\x00\x07\x1b\x7f", "|", "\u200b\ufeff", "^", "ー", "々", "〜", "①",
       "１２３", "123", "１０", "３.１４", "ｱｲｳ", "%", "𠀀", "안녕ㅋㅋ", "漢字かなカナabcＡＢＣ", "\n\n", "   "]  # fmt: skip


@pytest.mark.parametrize("text", BAD)
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_bad_input_gives_phones_in_table(text, version):
    phones, word2ph, _ = clean_text(text, "ja", version)
    assert set(phones) <= (V2 if version == "v2" else V1) and word2ph is None


def test_empty_and_digit_widths():
    assert clean_text("", "ja") == ([], None, "")
    assert clean_text("123", "ja")[0] == clean_text("１２３", "ja")[0]


def test_long_input():
    text = "今日はいい天気ですね。" * 910  # 10,010 characters
    phones, _, norm = clean_text(text, "ja")
    assert norm == text and len(phones) > 15_000 and set(phones) <= V2


def test_mixed_japanese_english_and_kanji_detection():
    segs = clean_mixed_text("今日はNiceな天気", "ja")
    assert [s.language for s in segs] == ["ja", "en", "ja"]
    segs = clean_mixed_text("今日は雨。你好世界！", "auto")
    assert [(s.language, s.text) for s in segs] == [("ja", "今日は雨。"), ("zh", "你好世界！")]
    ids, segs = get_phones("はい", "all_ja")
    assert ids == cleaned_text_to_sequence([p for s in segs for p in s.phones], "v2")


def test_cli_shows_japanese_phones(capsys):
    assert main(["こんにちは", "--lang", "ja"]) == 0
    out = capsys.readouterr().out
    assert "[ja]" in out and "k o [ N n i ch i w a" in out and "ids:" in out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=30), st.sampled_from(["v1", "v2"]))
def test_property_arbitrary_unicode(text, version):
    phones, _, _ = clean_text(text, "ja", version)
    assert set(phones) <= (V2 if version == "v2" else V1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(
        alphabet=st.sampled_from(list("あいうえおかきっゃーンヴ日本語東京々１２０9 ,.!?。、「」ａAbc%％")),
        max_size=30,
    )
)
def test_property_japanese_alphabet(text):
    phones, _, norm = clean_text(text, "ja", "v2")
    assert set(phones) <= V2 and norm == japanese.text_normalize(text)


def test_formatting_accepts_japanese_lines(tmp_path):
    from gpt_sovits.data.prepare import _clean_one, read_sources

    wav = tmp_path / "a.wav"
    wav.write_bytes(b"")
    (tmp_path / "x.list").write_text(
        f"{wav}|spk|JA|こんにちは。\n{wav.with_name('b.wav')}|spk|jp|はい\n", "utf-8"
    )
    sources, skipped = read_sources(tmp_path / "x.list")
    assert [s.language for s in sources] == ["ja", "ja"] and not skipped
    phones, word2ph, norm = _clean_one("こんにちは。", "ja", "v2")
    assert phones == clean_text("こんにちは。", "ja", "v2")[0] and word2ph is None and norm == "こんにちは。"
