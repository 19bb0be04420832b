"""Symbol tables and text splitting against the reference fixtures."""

import json

import pytest

from gpt_sovits.text.cut import (
    UnknownCutMethodError,
    get_method,
    merge_short_pieces,
    prepare_segments,
    split_big_text,
)
from gpt_sovits.text.errors import UnknownVersionError
from gpt_sovits.text.symbols import UNK, cleaned_text_to_sequence, get_symbols
from tests.support.reference_data import REFERENCE_DIR

REF = REFERENCE_DIR


def _load(name: str):
    path = REF / name
    if not path.exists():
        pytest.fail(f"reference fixture {path} is missing")
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("version,size", [("v1", 322), ("v2", 732)])
def test_symbol_tables_match_reference_order(version, size):
    ref = _load(f"symbols_{version}.json")
    table = get_symbols(version)
    assert len(table) == size
    assert list(table) == ref


def test_sequence_ids_and_unknown_phone():
    v2 = get_symbols("v2")
    ids = cleaned_text_to_sequence(["n", "i2", "h", "ao3", ",", "not-a-phone"], "v2")
    assert [v2[i] for i in ids[:5]] == ["n", "i2", "h", "ao3", ","]
    assert ids[5] == v2.index(UNK)
    assert cleaned_text_to_sequence(["AA"], "v1") == [get_symbols("v1").index("AA")]


def test_unknown_version():
    with pytest.raises(UnknownVersionError, match="v3"):
        cleaned_text_to_sequence(["a"], "v3")


def _cut_cases():
    data = _load("cut_cases.json")
    return [
        (i, m, c["text"], c[m]) for i, c in enumerate(data["cases"]) for m in data["meta"]["method_names"]
    ]


@pytest.mark.parametrize("idx,method,text,expected", _cut_cases())
def test_cut_matches_reference(idx, method, text, expected):
    assert get_method(method)(text) == expected


def test_cut1_groups_of_four_and_eight_sentences_stay_one():
    nine = "".join(f"句{i}。" for i in range(9))
    assert get_method("cut1")(nine).split("\n") == ["句0。句1。句2。句3。", "句4。句5。句6。句7。句8。"]
    eight = "".join(f"句{i}。" for i in range(8))
    assert get_method("cut1")(eight) == eight


def test_unknown_cut_method():
    with pytest.raises(UnknownCutMethodError, match="cut9"):
        get_method("cut9")


def test_merge_short_and_split_big():
    assert merge_short_pieces(["a", "bc", "defgh", "i"], 5) == ["abcdefghi"]
    assert merge_short_pieces(["abc", "de", "fgh", "ij"], 3) == ["abc", "defghij"]
    assert merge_short_pieces(["abcde", "fg"], 5) == ["abcdefg"]
    assert merge_short_pieces(["ab"], 5) == ["ab"]
    text = "字" * 300 + "。" + "字" * 300 + "。"
    parts = split_big_text(text)
    assert "".join(parts) == text
    assert all(len(p) <= 510 for p in parts)


def test_prepare_segments():
    assert prepare_segments("", "cut5") == []
    assert prepare_segments("……。", "cut5") == []
    segs = prepare_segments("你好，今天天气很好。我们去公园吧", "cut5")
    assert all(s[-1] in "，。？！,.?!~:：—…" for s in segs)
    assert all(len(s) >= 5 for s in segs[:-1])
    # A first sentence under 4 characters gets a leading stop (the reference avoids a too-short start).
    assert prepare_segments("好的", "cut0")[0].startswith("。")
    long = "字" * 600 + "，" + "字" * 100
    segs = prepare_segments(long, "cut0")
    assert all(0 < len(s) <= 510 for s in segs)
    assert "".join(segs) == long + "。"
