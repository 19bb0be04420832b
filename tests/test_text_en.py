"""English frontend: normalisation parity with the reference, dictionary and offline OOV fallback."""

import json

import pytest

from gpt_sovits.text import clean_text, get_symbols
from gpt_sovits.text.english import _oov_model, g2p, lookup, text_normalize
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
