"""Cantonese (yue, v2) frontend: the reference text/cantonese.py algorithm on top of ToJyutping."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpt_sovits.text import cantonese
from gpt_sovits.text.cleaner import clean_text
from gpt_sovits.text.errors import TextFrontendError, UnknownLanguageError
from gpt_sovits.text.lang_segment import clean_mixed_text, get_phones
from gpt_sovits.text.symbols import cleaned_text_to_sequence, get_symbols

V2 = set(get_symbols("v2"))


def _check_aligned(phones: list[str], word2ph: list[int] | None, norm: str) -> None:
    assert word2ph is not None
    assert len(word2ph) == len(norm)
    assert sum(word2ph) == len(phones)
    assert all(p in V2 for p in phones), [p for p in phones if p not in V2]


def test_sentence_phones_by_hand():
    # ToJyutping reads 佢個鋤頭太短啦 as keoi5 go3 co4 tau2 taai3 dyun2 laa1 (頭 is tau2 after 鋤);
    # the reference splits each at its first matching onset and puts the tone on the final.
    phones, word2ph, norm = clean_text("佢個鋤頭太短啦。", "yue", "v2")
    assert norm == "佢个锄头太短啦."  # the zh normaliser converts to simplified, as the reference's
    assert phones == [
        "Yk", "Yeoi5", "Yg", "Yo3", "Yc", "Yo4", "Yt", "Yau2", "Yt", "Yaai3", "Yd", "Yyun2", "Yl", "Yaa1", ".",
    ]  # fmt: skip
    assert word2ph == [2, 2, 2, 2, 2, 2, 2, 1]


@pytest.mark.parametrize(
    ("syllable", "expected"),
    [
        ("keoi5", ["Yk", "Yeoi5"]),
        ("gwong2", ["Ygw", "Yong2"]),
        ("kwaa1", ["Ykw", "Yaa1"]),
        ("jyut6", ["Yj", "Yyut6"]),
        ("ngaa4", ["Yng", "Yaa4"]),  # the reference's "nga" special case
        ("m4", ["Ym", "Ym4"]),  # syllabic m: the final is the onset's last letter
        ("ng5", ["Yng", "Yg5"]),
        ("aa3", ["Yaa", "Ya3"]),
        ("aai3", ["Yaa", "Yi3"]),  # "aa" is tried before "aai", as in the reference list
        ("ou1", ["You", "Yu1"]),
        ("ei6", ["Ye", "Yi6"]),
        ("uk1", ["Yuk", "Yk1"]),
        (",", [","]),
        ("…", ["…"]),
    ],
)
def test_syllable_mapping(syllable, expected):
    assert cantonese.syllable_phones(syllable) == expected
    assert all(p in V2 for p in expected)


def test_jyutping_is_toJyutping_in_context():
    import ToJyutping

    text = "我哋今日去咗銀行"
    norm = cantonese.text_normalize(text)
    expected = [j for _, j in ToJyutping.get_jyutping_list(norm)]
    assert cantonese.jyutping_syllables(norm) == expected
    phones, word2ph = cantonese.g2p(norm)
    assert phones == [p for j in expected for p in cantonese.syllable_phones(j)]
    assert "Yng" in phones and "Yo5" in phones  # 我 ngo5
    _check_aligned(phones, word2ph, norm)


def test_numbers_and_punctuation():
    phones, word2ph, norm = clean_text("我哋去咗3間餐廳，食咗12.5蚊！真係？「好」……好~", "yue", "v2")
    assert norm == "我哋去咗三间餐厅,食咗十二点五蚊!真系?好……好-"
    assert [p for p in phones if not p.startswith("Y")] == [",", "!", "?", "…", "…", "-"]
    assert "UNK" not in phones
    _check_aligned(phones, word2ph, norm)


def test_latin_letters_and_symbols_are_dropped():
    phones, word2ph, norm = clean_text("hello你好 world 😀", "yue", "v2")
    assert norm == "你好"
    assert phones == ["Yn", "Yei5", "Yh", "You2"]
    assert word2ph == [2, 2]


def test_no_unknown_phones_for_ordinary_text():
    text = "今日天氣好好，我哋一齊去飲茶啦！你食咗飯未呀？唔該晒，呢度有好多人排隊。"
    phones, word2ph, norm = clean_text(text, "yue", "v2")
    assert "UNK" not in phones
    _check_aligned(phones, word2ph, norm)


def test_every_ideograph_aligns_and_few_are_unknown():
    # The whole U+4E00..U+9FA5 block: aligned, and UNK only where the reference's onset split yields a phone
    # missing from its own table (two-syllable characters such as 卅 saa1 aa6, or ang1/ong2/ung3/ap1).
    text = "".join(chr(c) for c in range(0x4E00, 0x9FA6))
    norm = cantonese.text_normalize(text)
    assert len(norm) > 20800  # a few radicals without a reading are dropped
    phones, word2ph = cantonese.g2p(norm)
    assert len(word2ph) == len(norm) and sum(word2ph) == len(phones)
    unknown = {ch for ch, start in zip(norm, _starts(word2ph), strict=True) if phones[start + 1] not in V2}
    assert 0 < len(unknown) < 80
    assert "卅" in unknown


def _starts(word2ph: list[int]) -> list[int]:
    out, i = [], 0
    for n in word2ph:
        out.append(i)
        i += n
    return out


def test_unreadable_radicals_are_dropped():
    phones, word2ph, norm = clean_text("艹你", "yue", "v2")
    assert norm == "你" and phones == ["Yn", "Yei5"] and word2ph == [2]


def test_empty_and_punctuation_only():
    assert clean_text("", "yue", "v2") == ([], [], "")
    phones, word2ph, norm = clean_text("。！", "yue", "v2")
    assert (phones, word2ph, norm) == ([".", "!"], [1, 1], ".!")


def test_v1_has_no_cantonese():
    with pytest.raises(UnknownLanguageError, match="yue"):
        clean_text("你好", "yue", "v1")
    with pytest.raises(UnknownLanguageError):
        clean_text("你好", "all_yue", "v1")


def test_inference_modes():
    segments = clean_mixed_text("佢話hello啊", "yue", "v2")
    assert [s.language for s in segments] == ["yue", "en", "yue"]
    assert segments[0].phones == ["Yk", "Yeoi5", "Yw", "Yaa6"]
    all_yue = clean_mixed_text("你好", "all_yue", "v2")
    assert [s.language for s in all_yue] == ["yue"]
    auto = clean_mixed_text("你好", "auto_yue", "v2")
    assert auto[0].phones == all_yue[0].phones
    ids, segs = get_phones("你好", "all_yue", "v2")
    # fewer than 6 phones: retried with a leading "." as the reference
    assert [p for s in segs for p in s.phones] == [".", "Yn", "Yei5", "Yh", "You2"]
    assert ids == cleaned_text_to_sequence([".", "Yn", "Yei5", "Yh", "You2"], "v2")


def test_prepare_formats_yue_lines(tmp_path):
    from gpt_sovits.data.prepare import _clean_one, read_sources

    phones, word2ph, norm = _clean_one("佢個鋤頭太短啦。", "yue", "v2")
    _check_aligned(phones, word2ph, norm)
    assert _clean_one("Bonjour", "fr", "v2").reason == "unsupported_language"
    listing = tmp_path / "a.list"
    listing.write_text(f"{tmp_path / 'a.wav'}|spk|yue|佢個鋤頭太短啦。\n", encoding="utf-8")
    sources, skipped = read_sources(listing)
    assert [s.language for s in sources] == ["yue"] and skipped == []
    sources_v1, skipped_v1 = read_sources(listing, version="v1")  # a v1 model has no Cantonese
    assert sources_v1 == [] and [s.reason for s in skipped_v1] == ["unsupported_language"]


_CJKISH = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
        st.sampled_from(list("，。！？、：；「」《》（）…~～-—0123456789.%$ abcXYZ\n\t|")),
    ),
    max_size=40,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_CJKISH, st.text(max_size=40)))
def test_arbitrary_text(text):
    try:
        phones, word2ph, norm = clean_text(text, "yue", "v2")
    except TextFrontendError:
        return
    _check_aligned(phones, word2ph, norm)
