"""Text to speech on the tiny random v2 models: CLI, determinism, candidates, reassemble, streaming, bad input."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import clvp
from gpt_sovits.infer import __main__ as cli
from gpt_sovits.infer import pieces, reference
from gpt_sovits.infer import synthesizer as tts
from gpt_sovits.infer.cache import ModelCache
from gpt_sovits.infer.request import ReferenceLengthError, SynthesisRequest, TTSInputError
from gpt_sovits.infer.result import SynthesisResult
from gpt_sovits.infer.synthesizer import Synthesizer
from gpt_sovits.models import s2_stream as tts_stream
from tests.support.synth import voiced_segments

SR = 32000
SAMPLES_PER_TOKEN = 1280  # 25 Hz tokens -> 50 Hz frames x hop 640 at speed 1
TWO_PIECES = "今天天气很不错，我们去公园。"


def _clip(path: Path, seconds: float, seed: int = 0, amp: float = 0.5) -> Path:
    audio = voiced_segments(
        [("silence", 0.2), ("voice", seconds - 0.4), ("silence", 0.2)], amp=amp, seed=seed
    )
    sf.write(path, audio, SR, subtype="PCM_16")
    return path


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: torch's thread pool costs far more than it saves."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def refs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("refs")
    (d / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10)
    (d / "notes.txt").write_text("not audio at all")
    sf.write(d / "silent.wav", np.zeros(SR * 4, dtype=np.float32), SR)
    return {
        "ref": _clip(d / "ref.wav", 4.0),
        "aux": _clip(d / "aux.wav", 3.0, seed=7, amp=0.3),
        "short": _clip(d / "short.wav", 2.0),
        "long": _clip(d / "long.wav", 12.0),
        "corrupt": d / "corrupt.wav",
        "notes": d / "notes.txt",
        "silent": d / "silent.wav",
    }


@pytest.fixture(scope="module")
def cache() -> ModelCache:
    return ModelCache()


@pytest.fixture(scope="module")
def synth(tiny_pretrained, cache) -> Synthesizer:
    return Synthesizer(
        tiny_pretrained.s1,
        tiny_pretrained.s2g,
        tiny_pretrained.root,
        device="cpu",
        cache=cache,
        reranker_loader=clvp.load_scorer,
    )


def _req(refs, **kw) -> SynthesisRequest:
    base = dict(
        text="你好世界。", text_lang="zh", ref_audio=refs["ref"], ref_text="你好世界。", ref_lang="zh",
        seed=3, max_new_tokens=16, pause=0.1,
    )  # fmt: skip
    base.update(kw)
    return SynthesisRequest(**base)


def _expected_len(result: SynthesisResult, pause: float) -> int:
    return sum(
        len(s.candidates[s.chosen].tokens) * SAMPLES_PER_TOKEN + int(SR * pause) for s in result.sentences
    )


# ------------------------------------------------------------------------------------------ happy paths


def test_cli_writes_32k_wav(tiny_pretrained, refs, tmp_path, capsys) -> None:
    out = tmp_path / "out.wav"
    argv = [
        "--gpt", str(tiny_pretrained.s1), "--sovits", str(tiny_pretrained.s2g), "--model-dir",
        str(tiny_pretrained.root), "--ref-audio", str(refs["ref"]), "--ref-text", "你好世界。",
        "--text", TWO_PIECES, "--lang", "zh", "--cut", "cut5", "--out", str(out), "--candidates", "2",
        "--seed", "11", "--max-new-tokens", "20", "--pause", "0.2", "--device", "cpu",
    ]  # fmt: skip
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("candidate 1:") == 2 and printed.count("candidate 2:") == 2
    assert "* candidate" in printed and "logprob=" in printed
    audio, sr = sf.read(out)
    assert sr == SR and audio.ndim == 1
    # Two pieces of 12..20 tokens (EOS banned for 11 steps) each followed by 0.2 s of silence.
    assert 2 * (12 * SAMPLES_PER_TOKEN + 6400) <= audio.size <= 2 * (20 * SAMPLES_PER_TOKEN + 6400)
    assert np.abs(audio[-6400:]).max() == 0
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, no temp file left


def test_cli_text_file_trim_and_errors(tiny_pretrained, refs, tmp_path, capsys) -> None:
    text_file = tmp_path / "text.txt"
    text_file.write_text("你好世界。", encoding="utf-8")
    common = [
        "--gpt", str(tiny_pretrained.s1), "--sovits", str(tiny_pretrained.s2g), "--model-dir",
        str(tiny_pretrained.root), "--text-file", str(text_file), "--max-new-tokens", "12", "--device", "cpu",
    ]  # fmt: skip
    out = tmp_path / "a.wav"
    # A 12 s reference is refused with the offer to trim; --trim-reference trims a copy and goes on.
    assert cli.main([*common, "--ref-audio", str(refs["long"]), "--out", str(out)]) == 2
    assert "12.0 s long" in capsys.readouterr().err and not out.exists()
    argv = [*common, "--ref-audio", str(refs["long"]), "--trim-reference", "--aux-ref", str(refs["aux"])]
    assert cli.main([*argv, "--out", str(out)]) == 0
    assert "reference trimmed to" in capsys.readouterr().out
    assert sf.info(out).samplerate == SR and sf.info(out).frames > 0
    assert refs["long"].stat().st_size > 0  # the original is untouched
    assert cli.main([*common, "--ref-audio", str(refs["ref"]), "--lang", "xx", "--out", str(out)]) == 2
    assert "Unknown language mode 'xx'" in capsys.readouterr().err


def test_seed_reproducible_candidates_scored(synth, refs) -> None:
    a = synth.synthesize(_req(refs, candidates=3))
    b = synth.synthesize(_req(refs, candidates=3))
    c = synth.synthesize(_req(refs, candidates=3, seed=4))
    assert a.sample_rate == SR and a.audio.dtype == np.float32
    assert np.array_equal(a.audio, b.audio)
    assert [s.candidates[0].tokens for s in a.sentences] == [s.candidates[0].tokens for s in b.sentences]
    assert a.audio.shape != c.audio.shape or not np.array_equal(a.audio, c.audio)
    assert [cand.tokens for cand in a.sentences[0].candidates] != [
        cand.tokens for cand in c.sentences[0].candidates
    ]
    (sentence,) = a.sentences
    assert len(sentence.candidates) == 3
    for cand in sentence.candidates:
        assert set(cand.scores) == {"logprob"}
        assert cand.total == pytest.approx(cand.mean_logprob) and cand.mean_logprob < 0
    totals = [cand.total for cand in sentence.candidates]
    assert sentence.chosen == int(np.argmax(totals))
    assert a.audio.size == _expected_len(a, 0.1)
    assert a.seed == 3 and a.timings["total"] > 0


def test_random_seed_is_reported(synth, refs) -> None:
    r = synth.synthesize(_req(refs, seed=-1, max_new_tokens=12))
    assert r.seed >= 0
    again = synth.synthesize(_req(refs, seed=r.seed, max_new_tokens=12))
    assert np.array_equal(r.audio, again.audio)


def test_pluggable_scorer_decides(tiny_pretrained, refs, cache) -> None:
    calls = []

    def longest(phones: list[int], cands: list[list[int]]) -> list[float]:
        calls.append((phones, cands))
        return [float(sum(c) % 97) for c in cands]  # any deterministic preference

    s = Synthesizer(
        tiny_pretrained.s1,
        tiny_pretrained.s2g,
        tiny_pretrained.root,
        "cpu",
        cache,
        scorers={"fake": (longest, 10.0)},
    )
    r = s.synthesize(_req(refs, candidates=4))
    (sentence,) = r.sentences
    assert calls and calls[0][0] == sentence.phones and len(calls[0][1]) == 4
    totals = [c.mean_logprob + 10.0 * c.scores["fake"] for c in sentence.candidates]
    assert [c.total for c in sentence.candidates] == pytest.approx(totals)
    assert sentence.chosen == int(np.argmax(totals))


def test_clvp_blended_in(synth, refs, tmp_path) -> None:
    from clvp.checkpoint import save_clvp
    from clvp.model import ClvpConfig, ClvpModel

    torch.manual_seed(0)
    path = save_clvp(tmp_path / "clvp.pt", ClvpModel(ClvpConfig.preset("tiny")))
    r = synth.synthesize(_req(refs, candidates=3, clvp_path=str(path), clvp_weight=0.5))
    (sentence,) = r.sentences
    expected = clvp.rerank(
        clvp.load_clvp(str(path)), sentence.phones, [c.tokens for c in sentence.candidates]
    )
    for cand, score in zip(sentence.candidates, expected, strict=True):
        assert cand.scores["clvp"] == pytest.approx(score, abs=1e-4)
        assert cand.total == pytest.approx(cand.mean_logprob + 0.5 * score, abs=1e-4)
    assert sentence.chosen == int(np.argmax([c.total for c in sentence.candidates]))
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(TTSInputError, match="Cannot use the CLVP checkpoint broken.pt"):
        synth.synthesize(_req(refs, clvp_path=str(broken)))


def test_reassemble_swaps_one_piece(synth, refs) -> None:
    r = synth.synthesize(_req(refs, text=TWO_PIECES, cut="cut5", candidates=2))
    assert len(r.sentences) == 2
    original, first_audio = r.audio.copy(), r.sentences[0].audio.copy()
    chosen = [s.chosen for s in r.sentences]
    swapped = [chosen[0], 1 - chosen[1]]
    preview = synth.candidate_audio(r, 1, swapped[1])  # play a candidate: result unchanged
    assert [s.chosen for s in r.sentences] == chosen and np.array_equal(r.audio, original)
    assert preview.size == len(r.sentences[1].candidates[swapped[1]].tokens) * SAMPLES_PER_TOKEN
    audio = synth.reassemble(r, swapped)
    assert np.array_equal(r.sentences[1].audio, preview)
    assert [s.chosen for s in r.sentences] == swapped
    assert np.array_equal(r.sentences[0].audio, first_audio)  # untouched piece not re-decoded
    assert audio.size == _expected_len(r, 0.1)
    assert not np.array_equal(audio[: first_audio.size], np.zeros_like(first_audio))
    # Back to the original choice: the very same audio (S2 noise is seeded per piece).
    assert np.array_equal(synth.reassemble(r, chosen), original)
    with pytest.raises(TTSInputError, match="2 candidates; choice 3"):
        synth.reassemble(r, [0, 2])


def test_stream_yields_each_piece_as_synthesize(synth, refs) -> None:
    req = _req(refs, text=TWO_PIECES, cut="cut5", candidates=2)
    chunks = list(synth.stream(req))
    assert [(c.index, c.total) for c in chunks] == [(0, 2), (1, 2)]
    assert [c.sentence.text for c in chunks] == ["今天天气很不错，", "我们去公园。"]
    whole = synth.synthesize(req)
    assert np.array_equal(np.concatenate([c.audio for c in chunks]), whole.audio)


def test_stream_tokens_gives_each_piece_in_parts_while_s1_runs(synth, refs, monkeypatch) -> None:
    # 60 tokens per piece (EOS banned), parts of 16: S1 is still decoding when the first part comes out.
    req = _req(refs, text=TWO_PIECES, cut="cut5", force_tokens=60, stream_tokens=16)
    feeds: list[tuple[int, bool]] = []
    original_feed = tts_stream.StreamingDecode.feed

    def feed(self, tokens, final):
        feeds.append((tokens.numel(), final))
        return original_feed(self, tokens, final)

    monkeypatch.setattr(tts_stream.StreamingDecode, "feed", feed)
    chunks = list(synth.stream(req))
    # Piece 0: parts at 20 tokens (16 + the 4 of lookahead), then at 52 (parts double: 32), the rest at the end.
    assert feeds == [(20, False), (52, False), (60, True)] * 2
    assert [(c.index, c.total) for c in chunks] == [(0, 2)] * 3 + [(1, 2)] * 3
    assert [c.sentence is None for c in chunks] == [True, True, False] * 2
    # Parts hold the frames settled so far (2 per token, less the lookahead); the last one the rest + pause.
    sizes = [c.audio.size for c in chunks[:3]]
    assert sizes == [32 * 640, 64 * 640, (120 - 96) * 640 + int(SR * 0.1)]
    pieces = [c.sentence for c in chunks if c.sentence is not None]
    assert [len(p.candidates[p.chosen].tokens) for p in pieces] == [60, 60]
    parts = np.concatenate([c.audio for c in chunks[:2]] + [chunks[2].audio[: -int(SR * 0.1)]])
    assert np.array_equal(pieces[0].audio, parts) and np.abs(parts).max() > 0
    # synthesize gives the streamed audio, the same for the same seed.
    monkeypatch.undo()
    whole = synth.synthesize(req)
    assert np.array_equal(whole.audio, np.concatenate([c.audio for c in chunks]))
    assert [s.text for s in whole.sentences] == ["今天天气很不错，", "我们去公园。"]
    assert whole.audio.size == _expected_len(whole, 0.1)
    assert 0 < whole.timings["first_audio"] < whole.timings["total"]
    # Several candidates are chosen between whole pieces: no parts then.
    several = list(
        synth.stream(_req(refs, text=TWO_PIECES, cut="cut5", force_tokens=60, stream_tokens=16, candidates=2))
    )
    assert [c.sentence is not None for c in several] == [True, True]


def test_reference_free_mode_loads_no_hubert(tiny_pretrained, refs) -> None:
    cache = ModelCache()
    s = Synthesizer(tiny_pretrained.s1, tiny_pretrained.s2g, tiny_pretrained.root, "cpu", cache)
    r = s.synthesize(_req(refs, ref_text=""))
    assert r.audio.size == _expected_len(r, 0.1) and np.abs(r.audio).max() > 0
    assert not [k for k in cache.keys() if k[0] == "hubert"]


def test_aux_refs_change_timbre_not_tokens(synth, refs) -> None:
    plain = synth.synthesize(_req(refs))
    mixed = synth.synthesize(_req(refs, aux_refs=[refs["aux"]]))
    assert plain.sentences[0].candidates[0].tokens == mixed.sentences[0].candidates[0].tokens
    assert plain.audio.shape == mixed.audio.shape
    assert not np.allclose(plain.audio, mixed.audio)


def test_recorded_reference_tuple(synth, refs) -> None:
    audio, sr = sf.read(refs["ref"], dtype="int16")
    a = synth.synthesize(_req(refs, ref_audio=(sr, audio)))
    b = synth.synthesize(_req(refs))
    assert a.sentences[0].candidates[0].tokens == b.sentences[0].candidates[0].tokens


def test_long_text_is_split(synth, refs, monkeypatch) -> None:
    text = "今天天气很不错我们去公园" * 420  # 5040 characters without a single punctuation mark
    monkeypatch.setattr(synth, "max_text", None)  # splitting is under test here, not the length limit
    r = synth.synthesize(_req(refs, text=text, cut="cut0", force_tokens=2, pause=0.0))
    assert len(r.sentences) >= 10
    assert all(len(s.text) <= 511 for s in r.sentences)
    assert all(len(s.candidates[0].tokens) == 2 for s in r.sentences)
    assert r.audio.size == len(r.sentences) * 2 * SAMPLES_PER_TOKEN


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("ref", "pattern"),
    [
        ("short", r"2\.0 s long; it must be between 3 and 10 s"),
        ("long", r"12\.0 s long.*Trim"),
        ("silent", "silent"),
        ("corrupt", "could not be read"),
        ("notes", "could not be read"),
    ],
)
def test_bad_reference(synth, refs, ref, pattern) -> None:
    with pytest.raises(TTSInputError, match=pattern):
        synth.synthesize(_req(refs, ref_audio=refs[ref]))


def test_reference_length_error_carries_duration(synth, refs) -> None:
    with pytest.raises(ReferenceLengthError) as info:
        synth.synthesize(_req(refs, ref_audio=refs["long"]))
    assert info.value.duration == pytest.approx(12.0, abs=0.01)


@pytest.mark.parametrize(
    ("kw", "pattern"),
    [
        ({"text": ""}, "empty"),
        ({"text": "   \n"}, "empty"),
        ({"text": "。，！？……"}, "Nothing to say"),
        ({"text": "你好", "text_lang": "xx"}, "Unknown language mode 'xx'"),
        ({"ref_audio": None}, "reference clip"),
        ({"ref_text": "。，"}, "reference text has no words"),
        ({"candidates": 0}, "candidates must be between 1 and 32"),
        ({"cut": "cut9"}, "cut9"),
        ({"temperature": -1.0}, "temperature"),
        ({"clvp_path": "/nonexistent/clvp.pt"}, "CLVP checkpoint not found"),
    ],
)
def test_bad_request(synth, refs, kw, pattern) -> None:
    with pytest.raises(TTSInputError, match=pattern):
        synth.synthesize(_req(refs, **kw))


@pytest.mark.parametrize(
    ("text", "mode"), [("こんにちは、元気ですか。", "all_ja"), ("안녕하세요. 반갑습니다.", "all_ko")]
)
def test_japanese_and_korean_text_is_spoken(synth, refs, text, mode) -> None:
    r = synth.synthesize(_req(refs, text=text, text_lang=mode, seed=3))
    assert r.sample_rate == SR and r.audio.size > 0 and np.abs(r.audio).max() > 0


def test_mismatched_versions(tiny_pretrained, refs, tmp_path) -> None:
    from gpt_sovits.models.s1 import S1Config, Text2Semantic
    from gpt_sovits.models.weights import save_gpt_weights

    cfg = S1Config(
        phoneme_vocab_size=512, embedding_dim=32, hidden_dim=32, head=2, n_layer=1, linear_units=128
    )
    v1_gpt = save_gpt_weights(Text2Semantic(cfg), cfg, tmp_path / "v1.ckpt")
    s = Synthesizer(v1_gpt, tiny_pretrained.s2g, tiny_pretrained.root, "cpu")
    with pytest.raises(
        TTSInputError, match=r"v1 \(phone vocabulary 512\).*v2 \(the v2 phone set\); choose a GPT of"
    ):
        s.synthesize(_req(refs))


def test_missing_models(tiny_pretrained, refs, tmp_path) -> None:
    s = Synthesizer(tmp_path / "nope.ckpt", tiny_pretrained.s2g, tiny_pretrained.root, "cpu")
    with pytest.raises(TTSInputError, match="GPT weights not found"):
        s.synthesize(_req(refs))
    # The official pretrained name in an empty folder: the registry's message with the download command.
    empty = tmp_path / "models"
    from gpt_sovits.pretrained import pretrained_paths

    p = pretrained_paths(empty)
    s = Synthesizer(p.s1, p.s2g, empty, "cpu")
    with pytest.raises(TTSInputError, match="gpt_sovits.pretrained download gpt-v2"):
        s.synthesize(_req(refs))
    # Weights present, HuBERT folder missing.
    s = Synthesizer(tiny_pretrained.s1, tiny_pretrained.s2g, empty, "cpu")
    with pytest.raises(TTSInputError, match="chinese-hubert-base"):
        s.synthesize(_req(refs))


def test_not_a_gpt_file(tiny_pretrained, refs) -> None:
    s = Synthesizer(tiny_pretrained.s2g, tiny_pretrained.s2g, tiny_pretrained.root, "cpu")
    with pytest.raises(TTSInputError, match="Cannot use s2G2333k.pth"):
        s.synthesize(_req(refs))


# ------------------------------------------------------------------------------------------ helpers


def test_trim_reference(refs, tmp_path) -> None:
    dest = tmp_path / "trimmed.wav"
    dest.write_bytes(b"keep me")
    out = reference.trim_reference(refs["long"], dest)
    assert out != dest and dest.read_bytes() == b"keep me"
    audio, sr = sf.read(out)
    assert 3.0 <= audio.size / sr <= 10.0
    reference.check_reference(audio.astype(np.float32), sr)  # now accepted
    with pytest.raises(ReferenceLengthError, match="at least 3 s"):
        reference.trim_reference(refs["short"], tmp_path / "short.wav")


def test_cache_loads_each_model_once(tiny_pretrained, refs, synth, cache, tmp_path) -> None:
    synth.synthesize(_req(refs))
    assert all(n == 1 for n in cache.loads.values())
    kinds = {k[0] for k in cache.keys()}
    assert {"gpt", "sovits", "hubert", "bert"} <= kinds
    # Another GPT file: only the GPT is loaded; SoVITS, HuBERT and BERT are reused.
    other = tmp_path / "other.ckpt"
    other.write_bytes(tiny_pretrained.s1.read_bytes())
    before = {k: v for k, v in cache.loads.items() if k[0] != "gpt"}
    Synthesizer(other, tiny_pretrained.s2g, tiny_pretrained.root, "cpu", cache).synthesize(_req(refs))
    assert {k: v for k, v in cache.loads.items() if k[0] != "gpt"} == before
    assert sum(1 for k in cache.loads if k[0] == "gpt") == 2


def test_reference_prepared_once(synth, refs, cache, monkeypatch) -> None:
    synth.synthesize(_req(refs, aux_refs=[refs["aux"]]))
    reads = []
    real = tts.read_reference
    monkeypatch.setattr(tts, "read_reference", lambda ref: reads.append(ref) or real(ref))
    synth.synthesize(_req(refs, aux_refs=[refs["aux"]], text="我们去公园。"))
    assert reads == []  # HuBERT and the spectrograms were not computed again
    ref_keys = [k for k in cache.loads if k[0] == "ref"]
    assert ref_keys and all(cache.loads[k] == 1 for k in ref_keys)
    # Touching the file (new mtime) prepares it again.
    import os

    st = refs["aux"].stat()
    os.utime(refs["aux"], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    synth.synthesize(_req(refs, aux_refs=[refs["aux"]]))
    assert len(reads) == 2


def test_reference_text_features_computed_once(synth, refs, cache, monkeypatch) -> None:
    # BERT over the reference text runs once for texts synthesised one after another with it; another
    # reference text is computed (and gives other phones).
    first = synth.synthesize(_req(refs, ref_text="今天天气很好。"))
    calls = []
    real = synth._prompt_features
    monkeypatch.setattr(synth, "_prompt_features", lambda *a: calls.append(a) or real(*a))
    again = synth.synthesize(_req(refs, ref_text="今天天气很好。", text="我们去公园。"))
    assert calls == [] and again.duration > 0
    assert np.array_equal(synth.synthesize(_req(refs, ref_text="今天天气很好。")).audio, first.audio)
    assert calls == []
    synth.synthesize(_req(refs, ref_text="明天下雨。"))
    assert len(calls) == 1
    prompts = [k for k in cache.keys() if k[0] == "prompt"]
    assert {k[1] for k in prompts} >= {"今天天气很好。", "明天下雨。"}


def test_concurrent_requests_share_models(tiny_pretrained, refs) -> None:
    """Two users at once on a fresh cache: each model loads once and each gets its own seeded audio."""
    cache = ModelCache()
    make = lambda: Synthesizer(tiny_pretrained.s1, tiny_pretrained.s2g, tiny_pretrained.root, "cpu", cache)  # noqa: E731
    out: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def run(seed: int) -> None:
        try:
            out[seed] = make().synthesize(_req(refs, seed=seed)).audio
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (21, 22)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(n == 1 for n in cache.loads.values())
    assert np.array_equal(out[21], make().synthesize(_req(refs, seed=21)).audio)


def test_cache_one_load_under_concurrency() -> None:
    cache = ModelCache()
    calls = []

    def slow() -> object:
        calls.append(1)
        time.sleep(0.2)
        return object()

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get(("gpt", "x"), slow))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({id(r) for r in results}) == 1


def test_cache_keeps_at_most_n_per_kind() -> None:
    cache = ModelCache(max_per_kind=2)
    for name in ("a", "b", "c"):
        cache.get(("gpt", name), lambda: torch.zeros(1))
    cache.get(("sovits", "s"), lambda: torch.zeros(1))
    assert cache.keys() == [("gpt", "b"), ("gpt", "c"), ("sovits", "s")]


def test_g2pw_reads_chinese_v2_when_installed(tiny_pretrained, tmp_path) -> None:
    from tests.test_text_g2pw import build_tiny_g2pw_root

    root = build_tiny_g2pw_root(tmp_path / "pretrained")
    s = Synthesizer(tiny_pretrained.s1, tiny_pretrained.s2g, root, device="cpu", cache=ModelCache())
    g2pw = s.g2pw("v2")
    assert g2pw is not None and s.g2pw("v2") is g2pw  # loaded once, kept in the cache
    assert s.g2pw("v1") is None
    with_g2pw = pieces.text_pieces("他很重。", "zh", "cut0", "v2", g2pw)[0].phones
    plain = pieces.text_pieces("他很重。", "zh", "cut0", "v2")[0].phones
    assert with_g2pw != plain  # the tiny model reads 重 as chong2, pypinyin as zhong4
    no_model = Synthesizer(tiny_pretrained.s1, tiny_pretrained.s2g, tiny_pretrained.root, device="cpu")
    assert no_model.g2pw("v2") is None
