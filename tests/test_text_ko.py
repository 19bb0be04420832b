"""Korean (ko, v2) frontend: the reference's phones on its 20 cases, its rules, no network, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpt_sovits.text import clean_text, cleaned_text_to_sequence, get_symbols, korean
from gpt_sovits.text.__main__ import main
from gpt_sovits.text.lang_segment import clean_mixed_text
from tests.support.reference_data import REFERENCE_DIR

CASES = json.loads((REFERENCE_DIR / "ko_frontend_cases.json").read_text(encoding="utf-8"))["cases"]
V2 = set(get_symbols("v2"))


@pytest.mark.parametrize("case", CASES, ids=[c["text"][:10] for c in CASES])
def test_reference_cases(case):
    phones, word2ph, norm = clean_text(case["text"], "ko", "v2")
    assert norm == case["norm_text"]
    assert phones == case["phones"]
    assert cleaned_text_to_sequence(phones, "v2") == case["phone_ids"]
    assert word2ph is None


def test_jamo_split_spaces_and_trailing_mark():
    # 의사: ㅢ splits into ㅡ ㅣ; a text ending in a jamo gets "."; a space is 空.
    assert clean_text("의사", "ko")[0] == ["ㅇ", "ㅡ", "ㅣ", "ㅅ", "ㅏ", "."]
    assert clean_text("나 너", "ko")[0] == ["ㄴ", "ㅏ", "空", "ㄴ", "ㅓ", "."]
    assert clean_text("안녕?", "ko")[0][-1] == "?"  # ends in a mark: no "." added


def test_pronunciation_rules_numbers_and_latin():
    assert (
        korean.pronounce("사과 2개를 샀다") == "ㅅㅏㄱㅗㅏ ㄷㅜㄱㅐㄹㅡㄹ ㅅㅏㄷㄸㅏ."
    )  # native counter, tensing
    assert korean.spell_latin("AI k") == "에이아이 케이"
    assert korean.spell_latin("\u212a\u017f") == "케이에스"  # Kelvin sign and long s match as k and s
    assert clean_text("ABC", "ko")[0] == clean_text("에이비시", "ko")[0]


def test_eul_rieul_liaison_fix():
    # g2pk2 leaves "물을 라면" as "무를 라면"; the reference reads the ㄹ after "을 " as ㄴ.
    assert korean.pronounce("물을 라면") == "ㅁㅜㄹㅡㄹ ㄴㅏㅁㅣㅓㄴ."


def test_quotes_do_not_load_the_english_dictionary():
    # g2pk2's English step only ever sees apostrophes here (Latin letters are spelled first).
    phones, _, _ = clean_text("'안녕' 하고 ABC", "ko")
    assert phones[0] == "停" and len(korean._g2pk2().cmu) == 0


def test_unknown_characters_become_stop_symbol():
    phones, _, norm = clean_text("漢字 😀", "ko")
    assert norm == "漢字 😀" and phones == ["停", "停", "空", "停"]


BAD = ["", "。，！？……", "😀🎉👍", "\x00\x07\x1b\x7f", "|", "\u200b\ufeff", "^", "１２３", "123", "１０",
       "3.14", "ㄳ", "ㅋㅋ", "𠀀", "%", "漢字かなabc한글", "\n\n", "   ", "'안녕'"]  # fmt: skip


@pytest.mark.parametrize("text", BAD)
def test_bad_input_gives_phones_in_table(text):
    phones, word2ph, norm = clean_text(text, "ko", "v2")
    assert set(phones) <= V2 and word2ph is None and norm == text


def test_long_input():
    text = "오늘 날씨가 좋네요. " * 910  # 10,010 characters
    phones, _, _ = clean_text(text, "ko")
    assert len(phones) > 20_000 and set(phones) <= V2


def test_mixed_korean_english():
    segs = clean_mixed_text("안녕하세요 GPT 모델", "ko")
    assert [s.language for s in segs] == ["ko", "en", "ko"]
    segs = clean_mixed_text("안녕하세요. 你好", "auto")
    assert [s.language for s in segs] == ["ko", "zh"]


def test_cli_shows_korean_phones(capsys):
    assert main(["안녕", "--lang", "ko"]) == 0
    out = capsys.readouterr().out
    assert "[ko]" in out and "ㅇ ㅏ ㄴ ㄴ ㅣ ㅓ ㅇ ." in out


def test_offline_first_use_writes_only_the_project_cache(tmp_path):
    # Fresh process, sockets and NLTK's downloader disabled, a fresh cache folder and HOME: Korean and
    # Japanese must load from installed files and write only under the cache folder.
    cache, home = tmp_path / "cache", tmp_path / "home"
    home.mkdir()
    code = f"""
import socket
def _no(*a, **k):
    raise OSError("network used")
socket.socket.connect = _no
socket.create_connection = _no
import nltk
nltk.download = _no
from pathlib import Path
from gpt_sovits.text import local_cache
local_cache.CACHE_DIR = Path({str(cache)!r})
from gpt_sovits.text import clean_text
print(clean_text("안녕하세요", "ko")[0], clean_text("こんにちは", "ja")[0])
"""
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env={"HOME": str(home)}
    )
    assert r.returncode == 0, r.stderr
    assert "'ㅇ', 'ㅏ', 'ㄴ'" in r.stdout and "'k', 'o', '['" in r.stdout
    assert (cache / "nltk_data" / "corpora" / "cmudict.zip").is_file()
    # Only onnxruntime's own device-id file (written by its import, for pyopenjtalk-plus's 何 model) may appear.
    written = {p.relative_to(home).parts[:2] for p in home.rglob("*") if p.is_file()}
    assert written <= {(".cache", "Microsoft")}, written


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=30))
def test_property_arbitrary_unicode(text):
    assert set(clean_text(text, "ko", "v2")[0]) <= V2


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(
        alphabet=st.sampled_from(list("가나다라마바사아자차카타파하값닭읽ㄱㅏㅢ 123,.!?。abcXYZ漢'")),
        max_size=30,
    )
)
def test_property_korean_alphabet(text):
    assert set(clean_text(text, "ko", "v2")[0]) <= V2


def test_formatting_accepts_korean_lines(tmp_path):
    from gpt_sovits.data.prepare import _clean_one, read_sources

    wav = tmp_path / "a.wav"
    (tmp_path / "x.list").write_text(f"{wav}|spk|KO|안녕하세요.\n", "utf-8")
    sources, skipped = read_sources(tmp_path / "x.list", version="v2")
    assert [s.language for s in sources] == ["ko"] and not skipped
    assert _clean_one("안녕하세요.", "ko", "v2")[0] == clean_text("안녕하세요.", "ko", "v2")[0]
    _, skipped_v1 = read_sources(tmp_path / "x.list", version="v1")  # v1 models have no Korean
    assert [s.reason for s in skipped_v1] == ["unsupported_language"]


def test_heavy_packages_load_on_first_use_only():
    code = (
        "import sys\n"
        "import gpt_sovits.text, gpt_sovits.text.japanese, gpt_sovits.text.korean, gpt_sovits.text.english\n"
        "print(sorted(m for m in ('pyopenjtalk', 'g2pk2', 'mecab', 'jamo', 'nltk', 'cmudict') if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
