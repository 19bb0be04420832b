"""Audio blends for choosing among S1 candidates: ASR agreement (a tiny CTranslate2 Whisper) and speaker
similarity (S2's style vector), on the tiny random models. Random models say nothing of quality: these
tests check the mechanics (ranges, weighting, choice, reuse of the decoded audio, reproducibility, errors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from gpt_sovits.infer import __main__ as cli
from gpt_sovits.infer import blends
from gpt_sovits.infer.cache import ModelCache
from gpt_sovits.infer.request import SynthesisRequest, TTSInputError
from gpt_sovits.infer.synthesizer import Synthesizer
from tests.support.synth import voiced_segments
from tests.support.tiny_whisper import build_tiny_whisper

SR = 32000


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ref_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("refs") / "ref.wav"
    audio = voiced_segments([("silence", 0.2), ("voice", 3.6), ("silence", 0.2)], amp=0.5, seed=0)
    sf.write(path, audio, SR, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def model_dir(tiny_pretrained, tmp_path_factory) -> Path:
    """The tiny pretrained models plus a tiny Whisper in `faster-whisper-tiny/` (found by default)."""
    root = tmp_path_factory.mktemp("models-with-whisper")
    for entry in Path(tiny_pretrained.root).iterdir():
        (root / entry.name).symlink_to(entry)
    build_tiny_whisper(root / "faster-whisper-tiny", quantization="int8")
    return root


@pytest.fixture(scope="module")
def synth(tiny_pretrained, model_dir) -> Synthesizer:
    return Synthesizer(tiny_pretrained.s1, tiny_pretrained.s2g, model_dir, device="cpu", cache=ModelCache())


def _req(ref: Path, **kw) -> SynthesisRequest:
    base = dict(
        text="hello world.", text_lang="en", ref_audio=ref, ref_text="你好世界。", ref_lang="zh",
        seed=5, max_new_tokens=16, pause=0.1, candidates=3,
    )  # fmt: skip
    base.update(kw)
    return SynthesisRequest(**base)


# ----------------------------------------------------------------------------------- unit: text


def test_error_rate_characters_and_words() -> None:
    assert blends.error_rate("你好世界。", "你好世界", "zh") == 0.0
    assert blends.error_rate("你好世界。", "你好世节", "zh") == pytest.approx(0.25)  # one substitution
    assert blends.error_rate("你好，世界！", "你 好 世", "all_zh") == pytest.approx(0.25)  # one deletion
    assert blends.error_rate("今天", "今天天天", "yue") == pytest.approx(1.0)  # two insertions / two chars
    # English counts words, ignoring case and punctuation.
    assert blends.error_rate("Hello, world!", "hello world", "en") == 0.0
    assert blends.error_rate("Hello, world!", "hello word", "en") == pytest.approx(0.5)
    assert blends.error_rate("the cat sat", "the sat", "en") == pytest.approx(1 / 3)
    # auto: characters when the text holds CJK, else words.
    assert blends.error_rate("你好", "你坏", "auto") == pytest.approx(0.5)
    assert blends.error_rate("good day", "good night", "auto") == pytest.approx(0.5)
    assert blends.error_rate("", "", "zh") == 0.0 and blends.error_rate("。", "啊", "zh") == 1.0
    assert blends.agreement_score("今天", "今天天天天天", "zh") == 0.0  # error rate 2 -> clipped
    assert blends.agreement_score("Hello, world!", "hello word", "en") == pytest.approx(0.5)
    assert blends.edit_distance(list("kitten"), list("sitting")) == 3


def test_whisper_language_and_model_resolution(tiny_pretrained, model_dir, tmp_path, monkeypatch) -> None:
    assert blends.whisper_language("zh") == "zh" and blends.whisper_language("all_ja") == "ja"
    assert blends.whisper_language("en") == "en"
    assert blends.whisper_language("auto") is None and blends.whisper_language("auto_yue") is None
    assert blends.whisper_language("yue", ["zh", "en", "yue"]) == "yue"
    assert blends.whisper_language("all_yue", ["zh", "en"]) == "zh"
    assert blends.local_whisper_models(model_dir) == ["tiny"]
    whisper = Synthesizer(tiny_pretrained.s1, tiny_pretrained.s2g, model_dir, "cpu").whisper()
    langs = blends.model_languages(whisper)
    assert "en" in langs and "zh" in langs
    assert ("yue" in langs) == (whisper.hf_tokenizer.token_to_id("<|yue|>") is not None)
    assert blends.resolve_whisper(None, model_dir) == str(model_dir / "faster-whisper-tiny")
    assert blends.resolve_whisper("tiny", model_dir) == "tiny"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))  # an empty cache, whatever is here
    from tools.asr import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="faster-whisper-large-v3"):
        blends.resolve_whisper(None, tmp_path)


# --------------------------------------------------------------------------------- synthesis


def test_scores_in_range_and_choice_is_weighted_argmax(synth, ref_wav) -> None:
    weights = dict(asr_weight=2.0, speaker_weight=3.0, logprob_weight=1.0)
    r = synth.synthesize(_req(ref_wav, **weights))
    (sentence,) = r.sentences
    assert len(sentence.candidates) == 3
    for c in sentence.candidates:
        assert set(c.scores) == {"logprob", "asr", "speaker"}
        assert 0.0 <= c.scores["asr"] <= 1.0
        assert -1.0 - 1e-6 <= c.scores["speaker"] <= 1.0 + 1e-6
        expected = c.mean_logprob + 2.0 * c.scores["asr"] + 3.0 * c.scores["speaker"]
        assert c.total == pytest.approx(expected)
    assert sentence.chosen == int(np.argmax([c.total for c in sentence.candidates]))
    assert r.timings["asr"] > 0 and r.timings["speaker"] > 0
    # The reused candidate audio is exactly what decoding the chosen candidate gives: same seed, same audio.
    again = synth.synthesize(_req(ref_wav, **weights))
    assert np.array_equal(r.audio, again.audio)
    assert [c.scores for c in again.sentences[0].candidates] == [c.scores for c in sentence.candidates]
    plain = synth.synthesize(_req(ref_wav))
    assert [c.tokens for c in plain.sentences[0].candidates] == [c.tokens for c in sentence.candidates]
    assert sorted(sentence.decoded) == [0, 1, 2] and not plain.sentences[0].decoded
    for j in range(3):  # kept audio (blends) == a fresh decode (plain): playing/swapping costs nothing
        assert np.array_equal(synth.candidate_audio(plain, 0, j), synth.candidate_audio(r, 0, j))
    assert np.array_equal(sentence.audio, synth.candidate_audio(plain, 0, sentence.chosen))


def test_asr_weight_decides(synth, ref_wav, monkeypatch) -> None:
    """With a transcript that matches only the last candidate, a large ASR weight picks it."""
    heard: list[int] = []

    def fake_transcribe(whisper, audio, sample_rate, language):
        heard.append(audio.size)
        assert language == "en" and sample_rate == SR
        return "hello world" if len(heard) == 3 else "something else entirely"

    monkeypatch.setattr(blends, "transcribe", fake_transcribe)
    r = synth.synthesize(_req(ref_wav, asr_weight=100.0))
    (sentence,) = r.sentences
    assert [c.scores["asr"] for c in sentence.candidates] == [0.0, 0.0, 1.0]
    assert "speaker" not in sentence.candidates[0].scores
    assert sentence.chosen == 2 and len(heard) == 3


def test_weight_zero_or_one_candidate_is_unchanged(synth, ref_wav, monkeypatch) -> None:
    base = synth.synthesize(_req(ref_wav))
    off = synth.synthesize(_req(ref_wav, asr_weight=0.0, speaker_weight=0.0))
    assert np.array_equal(base.audio, off.audio) and base.sentences[0].chosen == off.sentences[0].chosen
    assert all(set(c.scores) == {"logprob"} for c in off.sentences[0].candidates)
    # One candidate: nothing to choose, so nothing is decoded twice nor transcribed.
    monkeypatch.setattr(blends, "transcribe", lambda *a: pytest.fail("transcribed one candidate"))
    one = synth.synthesize(_req(ref_wav, candidates=1))
    weighted = synth.synthesize(_req(ref_wav, candidates=1, asr_weight=1.0, speaker_weight=1.0))
    assert np.array_equal(one.audio, weighted.audio)
    assert set(weighted.sentences[0].candidates[0].scores) == {"logprob"}


def test_speaker_similarity_self_and_deterministic(synth, ref_wav) -> None:
    samples, sr = sf.read(ref_wav, dtype="float32")
    ref = synth.reference_embedding([synth._spec(samples, sr)])
    own = synth.speaker_embedding(samples, sr)
    assert ref.ndim == 1 and ref.size == own.size > 1
    assert blends.cosine(own, ref) == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(own, synth.speaker_embedding(samples, sr))
    other = voiced_segments([("voice", 2.0)], amp=0.3, seed=9)
    sim = blends.cosine(synth.speaker_embedding(other, SR), ref)
    assert -1.0 <= sim <= 1.0 + 1e-6


def test_missing_whisper_is_a_clear_error(tiny_pretrained, ref_wav, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    s = Synthesizer(tiny_pretrained.s1, tiny_pretrained.s2g, tiny_pretrained.root, "cpu", ModelCache())
    with pytest.raises(TTSInputError) as err:
        s.synthesize(_req(ref_wav, asr_weight=1.0))
    msg = str(err.value)
    assert "faster-whisper" in msg and str(Path(tiny_pretrained.root) / "faster-whisper-large-v3") in msg
    assert "pretrained download faster-whisper-large-v3" in msg
    with pytest.raises(TTSInputError, match="no faster-whisper model in"):
        s.synthesize(_req(ref_wav, asr_weight=1.0, asr_model=str(tmp_path / "nowhere")))
    with pytest.raises(TTSInputError, match="speaker_weight must be 0"):
        s.synthesize(_req(ref_wav, speaker_weight=-1.0))


def test_cli_flags(tiny_pretrained, model_dir, ref_wav, tmp_path, capsys) -> None:
    out = tmp_path / "out.wav"
    argv = [
        "--gpt", str(tiny_pretrained.s1), "--sovits", str(tiny_pretrained.s2g), "--model-dir", str(model_dir),
        "--ref-audio", str(ref_wav), "--text", "hello world.", "--lang", "en", "--out", str(out),
        "--candidates", "2", "--seed", "2", "--max-new-tokens", "14", "--device", "cpu",
        "--asr-weight", "1", "--speaker-weight", "0.5",
    ]  # fmt: skip
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("asr=") == 2 and printed.count("speaker=") == 2
    args = cli.make_parser().parse_args([*argv, "--asr-model", "tiny"])
    assert (args.asr_weight, args.asr_model, args.speaker_weight) == (1.0, "tiny", 0.5)


def test_inference_tab_form_passes_the_blends(tiny_pretrained, model_dir, ref_wav, tmp_path) -> None:
    from ui import inference_helpers as H

    form = H.form_from_values(dict(
        text="hello world.", text_lang="en", ref_audio=str(ref_wav), candidates=2, seed=3,
        max_new_tokens=14, asr_weight=1.5, speaker_weight=0.5, asr_model="tiny",
    ))  # fmt: skip
    outcome = H.synthesize(form, tmp_path, model_dir, H.LazyCache())
    assert (outcome.request.asr_weight, outcome.request.speaker_weight) == (1.5, 0.5)
    assert outcome.request.asr_model == "tiny"
    rows = H.candidate_rows(outcome.result)
    assert len(rows) == 2 and all(0 <= r[5] <= 1 and -1 <= r[6] <= 1 for r in rows)
    assert [r[8] for r in rows].count("✓") == 1
