"""Inference tab helpers without a browser: weight discovery, reference checks, tables, outputs, history."""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gpt_sovits.infer.request import SynthesisRequest, param
from gpt_sovits.infer.result import CandidateInfo, SentenceResult, SynthesisResult
from i18n import I18n
from tests.support.aio import run_in_own_loop
from tests.support.reference_data import REFERENCE_DIR
from tests.support.synth import voiced_segments
from ui import inference_helpers as H
from ui.context import AppContext


def _touch(path: Path, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _weights(path: Path, mtime: float | None = None) -> Path:
    """A loadable fine-tuned file (the tiny reference GPT .ckpt or SoVITS .pth) at `path`."""
    src = REFERENCE_DIR / ("s1_tiny.ckpt" if path.suffix == ".ckpt" else "s2_tiny_weights.pth")
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, path)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _wav(path: Path, seconds: float, sr: int = 32000) -> Path:
    audio = voiced_segments([("silence", 0.2), ("voice", max(seconds - 0.4, 0.05)), ("silence", 0.2)], sr=sr)
    sf.write(path, audio[: int(seconds * sr)], sr, subtype="PCM_16")
    return path


def _result(n_sentences: int = 2, n_cand: int = 3, clvp: bool = False) -> SynthesisResult:
    sentences = []
    for i in range(n_sentences):
        cands = []
        for j in range(n_cand):
            lp = -1.0 - 0.1 * j - i
            scores = {"logprob": lp, **({"clvp": 0.5 - 0.2 * j} if clvp else {})}
            cands.append(CandidateInfo(tokens=[1] * (5 + j), mean_logprob=lp, scores=scores, total=lp))
        sentences.append(SentenceResult(text=f"句子{i}。", phones=[1, 2, 3], candidates=cands, chosen=0))
    return SynthesisResult(32000, np.zeros(32000, dtype=np.float32), sentences, seed=42)


# ------------------------------------------------------------------------------------ weights


def test_weight_discovery_lists_fine_tuned_newest_first_then_pretrained(tmp_path, tiny_pretrained):
    ws = tmp_path / "ws"
    old = _touch(ws / "weights" / "GPT_weights_v2" / "me-e5.ckpt", time.time() - 100)
    new = _weights(ws / "weights" / "GPT_weights_v2" / "me-e10.ckpt", time.time())
    v1 = _touch(ws / "weights" / "GPT_weights" / "old-e2.ckpt", time.time() - 50)
    _touch(ws / "weights" / "GPT_weights_v2" / "notes.txt")
    s2 = _touch(ws / "weights" / "SoVITS_weights_v2" / "me_e8_s80.pth")

    gpt = H.gpt_choices(ws, tiny_pretrained.root)
    assert [c.path for c in gpt if not c.pretrained] == [str(new), str(v1), str(old)]
    pretrained = [c for c in gpt if c.pretrained]
    assert pretrained[0].path == str(tiny_pretrained.s1)  # v2 first; the missing v1 file is not offered
    assert len(pretrained) == 1
    assert H.default_weight(gpt) == str(new)

    sovits = H.sovits_choices(ws, tiny_pretrained.root)
    assert [c.path for c in sovits] == [str(s2), str(tiny_pretrained.s2g)]


def test_default_weight_is_the_newest_file_that_loads_and_says_what_it_skipped(tmp_path, tiny_pretrained):
    folder = tmp_path / "weights" / "GPT_weights_v2"
    good = _weights(folder / "me-e4.ckpt", time.time() - 300)
    data = good.read_bytes()
    (folder / "me-e8.ckpt").write_bytes(data[: len(data) // 2])  # an export cut short
    os.utime(folder / "me-e8.ckpt", (time.time() - 100,) * 2)
    (folder / "me-e9.ckpt").mkdir()  # a folder is not listed at all
    _weights(folder / "wrong-e1.ckpt", time.time() - 50).write_bytes(
        (REFERENCE_DIR / "s2_tiny_weights.pth").read_bytes()
    )
    gpt = H.gpt_choices(tmp_path, tiny_pretrained.root)
    assert H.default_weight(gpt) == str(good)
    note = H.default_weight_note(gpt)
    assert "GPT_weights_v2/me-e8.ckpt (truncated" in note and "wrong-e1.ckpt (a SoVITS (S2) generator" in note
    assert "me-e4" not in note
    roots = [tmp_path, tiny_pretrained.root]
    assert H.resolve_weight(None, gpt, roots, "GPT") == good  # API calls without `gpt` too
    (folder / "me-e4.ckpt").write_bytes(b"")  # nothing fine-tuned loads: the pretrained file
    assert H.default_weight(H.gpt_choices(tmp_path, tiny_pretrained.root)) == str(tiny_pretrained.s1)


def test_hidden_and_temporary_files_are_never_listed(tmp_path, tiny_pretrained):
    from core.fsutil import make_temp_path

    for folder, name in (
        ("GPT_weights_v2", "me-e1.ckpt"),
        ("SoVITS_weights_v2", "me_e1_s9.pth"),
        ("clvp", "c.pt"),
    ):
        target = _touch(tmp_path / "weights" / folder / name)
        make_temp_path(target, target.suffix).write_bytes(b"x")  # a killed save's ".me-e1.tmp-xxxxxxxx.ckpt"
        _touch(target.with_name("." + name))
    fine_tuned = [
        Path(c.path).name
        for c in H.gpt_choices(tmp_path, tiny_pretrained.root)
        + H.sovits_choices(tmp_path, tiny_pretrained.root)
        if not c.pretrained
    ]
    assert fine_tuned == ["me-e1.ckpt", "me_e1_s9.pth"]
    assert [Path(p).name for p in H.clvp_choices(tmp_path)] == ["c.pt"]


def test_default_weight_is_the_pretrained_file_when_nothing_is_trained(tmp_path, tiny_pretrained):
    assert H.default_weight(H.gpt_choices(tmp_path, tiny_pretrained.root)) == str(tiny_pretrained.s1)
    assert H.default_weight(H.sovits_choices(tmp_path, tiny_pretrained.root)) == str(tiny_pretrained.s2g)


def test_missing_pretrained_is_still_listed_so_the_status_can_say_so(tmp_path):
    choices = H.gpt_choices(tmp_path, tmp_path / "models")
    assert len(choices) == 1 and choices[0].pretrained and not Path(choices[0].path).exists()


def test_resolve_weight_accepts_listed_names_and_paths_inside_but_refuses_outside(tmp_path, tiny_pretrained):
    ws = tmp_path / "ws"
    mine = _weights(ws / "weights" / "GPT_weights_v2" / "me-e3.ckpt")
    outside = _touch(tmp_path / "elsewhere" / "evil.ckpt")
    choices = H.gpt_choices(ws, tiny_pretrained.root)
    roots = [ws, tiny_pretrained.root]
    assert H.resolve_weight("me-e3.ckpt", choices, roots, "GPT") == mine
    assert H.resolve_weight("weights/GPT_weights_v2/me-e3.ckpt", choices, roots, "GPT") == mine
    assert H.resolve_weight("", choices, roots, "GPT") == mine
    assert H.resolve_weight(str(tiny_pretrained.s1), choices, roots, "GPT") == tiny_pretrained.s1
    with pytest.raises(H.InferenceUIError, match="not found"):
        H.resolve_weight(str(outside), choices, roots, "GPT")
    with pytest.raises(H.InferenceUIError, match="not found"):
        H.resolve_weight("../elsewhere/evil.ckpt", choices, roots, "GPT")


def test_clvp_choices_and_resolution(tmp_path):
    assert H.clvp_choices(tmp_path) == []
    a = _touch(tmp_path / "weights" / "clvp" / "a-e1.pt", time.time() - 10)
    b = _touch(tmp_path / "weights" / "clvp" / "b-e2.pt", time.time())
    assert H.clvp_choices(tmp_path) == [str(b), str(a)]
    assert H.resolve_clvp("none", tmp_path) is None and H.resolve_clvp("", tmp_path) is None
    assert H.resolve_clvp(str(a), tmp_path) == a
    with pytest.raises(H.InferenceUIError, match="inside the workspace"):
        H.resolve_clvp("/etc/passwd", tmp_path)


def test_model_status_names_missing_models_and_the_command(tmp_path, tiny_pretrained):
    from ui.inference_layout import models_markdown

    empty = AppContext.create(tmp_path / "ws", "en_US", tmp_path / "none")
    text = models_markdown(empty)
    assert text.count("⚠️") == 4 and "python -m gpt_sovits.pretrained download gpt-v2" in text
    full = AppContext.create(tmp_path / "ws", "en_US", tiny_pretrained.root)
    assert models_markdown(full).count("✅") == 4


# ---------------------------------------------------------------------------------- reference


@pytest.mark.parametrize(
    ("seconds", "ok", "too_long"), [(1.0, False, False), (5.0, True, False), (12.5, False, True)]
)
def test_check_reference_window(tmp_path, seconds, ok, too_long):
    check = H.check_reference(_wav(tmp_path / "r.wav", seconds))
    assert check.ok is ok and check.too_long is too_long
    assert check.duration == pytest.approx(seconds, abs=0.01)


def test_reference_message_offers_trim_only_when_too_long(tmp_path):
    from ui.inference_tab import reference_message

    ctx = AppContext.create(tmp_path / "ws", "en_US")
    msg, offer = reference_message(ctx, str(_wav(tmp_path / "long.wav", 12.0)))
    assert offer and "12.0 s" in msg and "Trim" in msg
    msg, offer = reference_message(ctx, str(_wav(tmp_path / "short.wav", 1.0)))
    assert not offer and "1.0 s" in msg and "longer clip" in msg
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    msg, offer = reference_message(ctx, str(tmp_path / "bad.wav"))
    assert not offer and msg.count("bad.wav") == 1 and "not a readable audio file" in msg  # named once


def test_trim_cuts_in_a_pause_and_keeps_the_original(tmp_path):
    sr = 32000
    # Voice until 9.0 s, a 0.3 s pause, then voice to 12 s: the cut must fall inside the pause.
    audio = voiced_segments([("voice", 9.0), ("silence", 0.3), ("voice", 2.7)], sr=sr)
    src = tmp_path / "long.wav"
    sf.write(src, audio, sr, subtype="PCM_16")
    out = H.write_trimmed_reference(src, tmp_path / "uploads")
    trimmed, tsr = sf.read(out)
    assert tsr == sr and 9.0 <= len(trimmed) / sr <= 9.3
    assert H.check_reference(out).ok
    assert sf.info(src).duration == pytest.approx(12.0, abs=0.01)  # the upload is untouched
    assert out.parent == tmp_path / "uploads" and out.name == "long_trimmed.wav"
    assert H.write_trimmed_reference(src, tmp_path / "uploads") != out  # never replaces an earlier trim


def test_trimming_a_too_short_clip_says_so(tmp_path):
    from gpt_sovits.infer.request import TTSInputError

    with pytest.raises(TTSInputError, match="at least 3 s"):
        H.write_trimmed_reference(_wav(tmp_path / "short.wav", 1.5), tmp_path / "uploads")


# ------------------------------------------------------------------------------- form inputs


def test_seed_resolution():
    assert H.resolve_seed(1234, False) == 1234
    drawn = {H.resolve_seed(1234, True) for _ in range(5)}
    assert all(0 <= s < 2**31 for s in drawn) and len(drawn) > 1
    assert H.resolve_seed(-1, False) >= 0
    assert H.resolve_seed(2**32 - 1, False) == 2**32 - 1
    for bad in (2**32, 2**70, -2, 1e30):
        with pytest.raises(
            H.InferenceUIError, match=r"seed must be between -1 and 4294967295 \(-1: a random"
        ):
            H.resolve_seed(bad, False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ref_audio": None}, "reference clip"),
        ({"text": "   "}, "Type the text"),
        ({"text_lang": "fr"}, "Unknown language 'fr'"),
        ({"cut": "cut9"}, "Unknown cut method"),
        ({"candidates": 0}, "between 1 and 16"),
    ],
)
def test_form_checks(change, message):
    form = H.SynthesisForm(SynthesisRequest(text="你好", text_lang="zh", ref_audio="ref.wav"))
    H.check_form(form)
    for key, value in change.items():
        setattr(form.request, key, value)
    with pytest.raises(H.InferenceUIError, match=message):
        H.check_form(form)


def test_a_text_over_the_limit_is_refused_before_anything_loads(tmp_path, tiny_pretrained):
    from gpt_sovits.infer.request import TextTooLongError

    form = H.SynthesisForm(SynthesisRequest(text="字" * 2001, text_lang="zh", ref_audio="ref.wav"))
    with pytest.raises(TextTooLongError, match="has 2,001 characters; .* at most 2,000"):
        H.check_form(form)
    H.check_form(form, max_text=3000)  # the server's --max-text
    with pytest.raises(TextTooLongError, match=r"at most 9 characters at a time \(about 1 second of"):
        H.check_form(H.SynthesisForm(SynthesisRequest(text="你好世界。你好世界。", ref_audio="r.wav")), 9)
    # Through the whole synthesis: refused without a model loaded or a file written.
    cache = H.LazyCache()
    with pytest.raises(TextTooLongError, match="has 2,001 characters"):
        H.synthesize(form, tmp_path, tiny_pretrained.root, cache)
    assert cache._tts_cache is None and not (tmp_path / "outputs").exists()


def test_the_synthesis_service_is_built_with_the_apps_limit(tmp_path):
    import gradio as gr

    from ui import inference_tab

    ctx = AppContext.create(tmp_path / "ws", "en_US", tmp_path / "models")
    for limit, shown in ((None, "At most 2,000 characters"), (500, "At most 500 characters")):
        with gr.Blocks() as app:
            c = inference_tab.build(replace(ctx, max_text=limit))
        assert any(getattr(fn.fn, "__name__", "") == "synthesize_form" for fn in app.fns.values())
        assert c.service.max_text == (limit or 2000)
        assert c.ui.text.info.startswith(shown)
        named = {getattr(fn.fn, "__name__", ""): fn._id for fn in app.fns.values()}
        cancels = {i for fn in app.fns.values() for i in fn.cancels}
        # Cancel stops a running synthesis, candidate playback or swap, and says so in the status.
        stoppable = ("synthesize_form", "play_candidate", "swap_candidate", "regenerate_sentence")
        assert {named[n] for n in stoppable} <= cancels
        message = next(fn for fn in app.fns.values() if getattr(fn.fn, "__name__", "") == "cancelled")
        session = type("Request", (), {"session_hash": "s1"})()  # what Gradio hands in: the session
        # Nothing runs in this session: the summary is left as it is (a toast says there was nothing to stop).
        assert message.outputs == [c.ui.summary] and message.fn({}, session) == {}


def test_language_and_cut_keys_are_what_the_pipeline_accepts():
    from gpt_sovits.text.cut import METHODS
    from gpt_sovits.text.lang_segment import MODES

    assert set(H.LANGUAGE_CODES) == set(MODES)
    assert [k for k, _ in H.CUT_METHODS] == list(METHODS)
    zh = I18n("zh_CN")
    labels = [label for _, label in H.LANGUAGES] + [label for _, label in H.CUT_METHODS]
    assert all(zh(label) != label for label in labels)


def test_prompt_language_from_whisper():
    assert H.prompt_language("zh") == "zh" and H.prompt_language("EN") == "en"
    assert H.prompt_language("de") == "auto" and H.prompt_language("") == "auto"


# ------------------------------------------------------------------------------------- tables


def test_candidate_rows_mark_the_chosen_and_show_clvp():
    # Columns: sentence, text, candidate, log-prob, CLVP, ASR, speaker, total, chosen.
    result = _result(2, 3, clvp=True)
    rows = H.candidate_rows(result)
    assert len(rows) == 6 and all(len(r) == 9 for r in rows)
    assert rows[0][:3] == [1, "句子0。", 1] and rows[0][8] == "✓"
    assert rows[1][3] == pytest.approx(-1.1) and rows[1][4] == pytest.approx(0.3) and rows[1][8] == ""
    assert rows[1][7] == pytest.approx(-1.1)  # the total
    swapped = H.candidate_rows(result, [2, 0])
    assert [r[8] for r in swapped] == ["", "", "✓", "✓", "", ""]
    assert H.candidate_rows(_result(1, 2))[0][4] is None  # no CLVP column value without CLVP
    assert rows[0][5] is None and rows[0][6] is None  # no ASR / speaker scores without those blends


def test_candidate_rows_show_asr_and_speaker_scores():
    result = _result(1, 2)
    result.sentences[0].candidates[1].scores.update({"asr": 0.75, "speaker": 0.912345})
    row = H.candidate_rows(result)[1]
    assert row[5] == pytest.approx(0.75) and row[6] == pytest.approx(0.9123)
    summary = H.result_summary(result)
    assert summary["sentences"][0]["candidates"][1]["scores"]["asr"] == pytest.approx(0.75)


def test_blend_weights_are_checked():
    form = H.SynthesisForm(
        SynthesisRequest(text="你好", text_lang="zh", ref_audio="ref.wav", asr_weight=-1.0)
    )
    with pytest.raises(H.InferenceUIError, match="ASR agreement weight"):
        H.check_form(form)
    too_much = param("speaker_weight").web_range[1] + 1
    form = H.SynthesisForm(
        SynthesisRequest(text="你好", text_lang="zh", ref_audio="ref.wav", speaker_weight=too_much)
    )
    with pytest.raises(H.InferenceUIError, match="speaker similarity weight"):
        H.check_form(form)


def test_summary_line_gives_length_time_and_real_time_factor(tmp_path):
    from ui.inference_tab import summary_line

    result = _result(2, 1)
    result.timings["total"] = 0.5
    en = AppContext.create(tmp_path / "ws", "en_US")
    assert summary_line(en, result) == "2 sentence(s), 1.0 s of audio in 0.5 s (real-time factor 0.50)"
    zh = AppContext.create(tmp_path / "ws", "zh_CN")
    assert summary_line(zh, result) == "2 句，1.0 秒音频，用时 0.5 秒（实时率 0.50）"


def test_candidate_picker_values_round_trip():
    result = _result(2, 2)
    options = H.candidate_options(result)
    assert [v for _, v in options] == ["0:0", "0:1", "1:0", "1:1"]
    assert options[1][0].startswith("1.2 · 句子0")
    assert H.parse_candidate("1:1", result) == (1, 1)
    for bad in ("2:0", "0:5", "x", None):
        with pytest.raises(H.InferenceUIError):
            H.parse_candidate(bad, result)


def test_result_summary_is_json_ready():
    import json

    summary = H.result_summary(_result(2, 3, clvp=True), [1, 0])
    again = json.loads(json.dumps(summary))
    assert again["seed"] == 42 and again["sample_rate"] == 32000 and again["duration"] == 1.0
    assert [s["chosen"] for s in again["sentences"]] == [1, 0]
    cand = again["sentences"][0]["candidates"][2]
    assert cand["index"] == 2 and cand["tokens"] == 7 and set(cand["scores"]) == {"logprob", "clvp"}


# ---------------------------------------------------------------------------- outputs, history


def test_output_names_are_unique_safe_and_atomic(tmp_path):
    a = H.output_path(tmp_path, "你好, world/../x", 7, now=0)
    assert a.parent == tmp_path and a.suffix == ".wav"
    assert re.fullmatch(r"\d{8}-\d{6}_你好_world_x_s7_[0-9a-f]{6}\.wav", a.name), a.name
    audio = np.sin(np.linspace(0, 100, 16000)).astype(np.float32) * 0.5
    p1 = H.save_output(tmp_path / "outputs", audio, "same text", 1)
    p2 = H.save_output(tmp_path / "outputs", audio, "same text", 1)
    assert p1 != p2 and p1.is_file() and p2.is_file()
    data, sr = sf.read(p1, dtype="float32")
    assert sr == 32000 and data.shape == (16000,)
    assert np.abs(data - audio).max() < 1e-3
    assert not [p for p in (tmp_path / "outputs").iterdir() if p.suffix != ".wav"]  # no temp files left


def test_history_keeps_newest_first_without_mutating_state():
    state: list = []
    for n in range(H.HISTORY_SIZE + 3):
        new = H.push_history(state, H.HistoryEntry(f"/o/{n}.wav", f"t{n}", n, 1000.0 + n, "g", "s"))
        assert new is not state
        state = new
    assert len(state) == H.HISTORY_SIZE
    assert state[0].path == f"/o/{H.HISTORY_SIZE + 2}.wav" and state[-1].path == "/o/3.wav"
    assert "seed 12" in state[0].label and "t12" in state[0].label


def test_lazy_cache_builds_nothing_until_asked():
    cache = H.LazyCache()
    assert cache._tts_cache is None and cache._whisper == {}
    assert cache.tts() is cache.tts()  # one ModelCache per app


# ------------------------------------------------------------------------ synthesis, in process


def test_synthesis_writes_output_and_candidates_play_without_changing_the_result(tmp_path, tiny_pretrained):
    from gpt_sovits.infer.synthesizer import Synthesizer

    ref = _wav(tmp_path / "ref.wav", 4.0)
    form = H.form_from_values(
        {"text": "你好世界。今天天气很不错。", "text_lang": "zh", "ref_audio": str(ref), "cut": "cut5"}
        | {"candidates": 2.0, "seed": 11.0, "max_new_tokens": 15, "asr_weight": None}  # as widgets give them
    )
    assert (form.request.candidates, form.request.seed, form.request.asr_weight) == (2, 11, 0.0)
    cache = H.LazyCache()
    outcome = H.synthesize(form, tmp_path, tiny_pretrained.root, cache)
    result = outcome.result
    assert outcome.path.parent == tmp_path / "outputs" and "_s11_" in outcome.path.name
    assert sf.info(str(outcome.path)).samplerate == 32000
    assert sf.info(str(outcome.path)).frames == result.audio.shape[0]
    assert outcome.gpt == tiny_pretrained.s1 and outcome.sovits == tiny_pretrained.s2g
    assert len(result.sentences) == 2 and all(len(s.candidates) == 2 for s in result.sentences)

    synth = Synthesizer(outcome.gpt, outcome.sovits, tiny_pretrained.root, cache=cache.tts())
    other = 1 - result.sentences[1].chosen
    before = result.audio.copy()
    piece = H.candidate_audio(synth, result, 1, other)
    assert np.array_equal(result.audio, before) and result.sentences[1].chosen != other  # untouched
    chosen_piece = H.candidate_audio(synth, result, 0, result.sentences[0].chosen)
    assert np.array_equal(chosen_piece, result.sentences[0].audio)
    # Swapping that candidate in gives exactly the piece that was played.
    synth.reassemble(result, [result.sentences[0].chosen, other])
    assert np.array_equal(result.sentences[1].audio, piece)


def test_a_synthesis_cancelled_after_its_last_turn_writes_nothing(tmp_path, tiny_pretrained, monkeypatch):
    """Cancel can land after the last sentence and before the file is written: the person asked for no file."""
    from gpt_sovits.infer.scheduler import SynthesisCancelled, TurnScheduler

    ref = _wav(tmp_path / "ref.wav", 4.0)
    form = H.form_from_values(
        {"text": "你好世界。", "text_lang": "zh", "ref_audio": str(ref), "max_new_tokens": 8}
    )
    job = TurnScheduler().job("tab")
    real = H.make_synthesizer

    def cancelled_at_the_end(*args, **kwargs):
        synth = real(*args, **kwargs)
        inner = synth.synthesize

        def then_cancel(*a, **k):
            result = inner(*a, **k)
            job.cancel()
            return result

        synth.synthesize = then_cancel
        return synth

    monkeypatch.setattr(H, "make_synthesizer", cancelled_at_the_end)
    with pytest.raises(SynthesisCancelled):
        H.synthesize(form, tmp_path, tiny_pretrained.root, H.LazyCache(), job=job)
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").iterdir())


def test_cancel_says_cancelled_only_when_a_synthesis_was_running(tab):
    """After the synthesis ended, Cancel leaves its summary (the file it wrote is there) and says so."""
    import asyncio
    import threading

    from gpt_sovits.infer.scheduler import SynthesisCancelled
    from ui.inference_tab import cancelled

    c = tab
    assert c.ui.summary not in cancelled(c, {}, "session-a")  # nothing ran: the summary stays
    started, release = threading.Event(), threading.Event()

    def work(job, emit):
        with job.turn():
            started.set()
        release.wait(10)
        with job.turn():  # raises: the job was cancelled meanwhile
            pass

    async def run_then_cancel() -> dict:
        events = c.service.run_streaming(work, "tab", key="session-a")
        pending = asyncio.ensure_future(anext(events))
        await asyncio.to_thread(started.wait, 10)
        updates = cancelled(c, {}, "session-a")
        release.set()
        with pytest.raises(SynthesisCancelled):
            await pending
        return updates

    assert run_in_own_loop(run_then_cancel()) == {c.ui.summary: "Cancelled."}


def test_synthesis_refuses_weights_outside_the_allowed_folders(tmp_path, tiny_pretrained):
    import shutil

    stray = tmp_path / "elsewhere" / "gpt.ckpt"
    stray.parent.mkdir()
    shutil.copy(tiny_pretrained.s1, stray)
    request = SynthesisRequest(text="你好。", text_lang="zh", ref_audio=str(_wav(tmp_path / "r.wav", 4.0)))
    form = H.SynthesisForm(request, gpt=str(stray))
    with pytest.raises(H.InferenceUIError, match="not found"):
        H.synthesize(form, tmp_path / "ws", tiny_pretrained.root, H.LazyCache())


def test_transcribe_reference_with_a_local_whisper(tmp_path):
    from tests.support.tiny_whisper import EXPECTED_TEXT, build_tiny_whisper
    from tests.test_asr import speech_wav

    models = tmp_path / "models"
    assert H.whisper_models(models) == []
    build_tiny_whisper(models / "faster-whisper-tiny-test", quantization="int8")
    (models / "faster-whisper-broken").mkdir()  # no model files: not offered
    assert H.whisper_models(models) == ["tiny-test"]
    cache = H.LazyCache()
    text, lang = H.transcribe_reference(cache, speech_wav(tmp_path / "ref.wav"), "tiny-test", models)
    assert (text, lang) == (EXPECTED_TEXT, "en")
    assert list(cache._whisper) == ["tiny-test"]  # loaded once, kept for the next click


# ------------------------------------------------------------- .txt input, export, voices, regenerate


def test_a_text_file_is_read_as_utf8_or_utf16_and_binary_or_long_files_are_refused(tmp_path):
    from gpt_sovits.infer.request import TextTooLongError

    text = "你好世界。\nHello there."
    for name, data in (
        ("plain.txt", text.replace("\n", "\r\n").encode("utf-8")),
        ("bom.txt", b"\xef\xbb\xbf" + text.encode("utf-8")),
        ("le.txt", text.encode("utf-16")),  # with its BOM
        ("be.txt", b"\xfe\xff" + text.encode("utf-16-be")),
    ):
        (tmp_path / name).write_bytes(data)
        assert H.read_text_file(tmp_path / name) == text, name
    (tmp_path / "song.txt").write_bytes(b"ID3\x03\x00\x00\x00\x00\x0f" + bytes(range(256)))
    with pytest.raises(H.TextFileError, match="song.txt is not a text file"):
        H.read_text_file(tmp_path / "song.txt")
    (tmp_path / "latin.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(H.TextFileError, match="latin.txt is not UTF-8 or UTF-16 text: save it as UTF-8"):
        H.read_text_file(tmp_path / "latin.txt")
    (tmp_path / "long.txt").write_text("好" * 301, encoding="utf-8")
    with pytest.raises(TextTooLongError, match="301 characters.*at most 300"):
        H.read_text_file(tmp_path / "long.txt", max_text=300)
    (tmp_path / "blank.txt").write_text(" \n ", encoding="utf-8")
    with pytest.raises(H.TextFileError, match="holds no text"):
        H.read_text_file(tmp_path / "blank.txt")


@pytest.mark.parametrize("fmt", H.EXPORT_FORMATS)
def test_results_are_saved_in_the_chosen_export_format(tmp_path, fmt):
    audio = (0.3 * np.sin(np.arange(32000) * 2 * np.pi * 220 / 32000)).astype(np.float32)
    path = H.save_output(tmp_path, audio, "你好", 5, fmt=fmt)
    assert path.suffix == f".{fmt}" and "_s5_" in path.name
    decoded, sr = sf.read(path)
    assert sr == 32000 and abs(decoded.shape[0] - 32000) < 2000  # mp3/vorbis pad a little
    assert np.abs(decoded).max() > 0.2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # written atomically


def test_stream_chunks_and_formats():
    audio = np.full(3200, 0.5, dtype=np.float32)
    header = H.stream_header("wav")
    assert len(header) == 44 and header[:4] == b"RIFF" and header[40:44] == b"\xff\xff\xff\xff"
    from core.audio import to_int16

    samples = np.frombuffer(H.encode_chunk(audio, 32000, "wav"), "<i2")
    assert np.array_equal(samples, to_int16(audio)) and samples[0] in (
        16383,
        16384,
    )  # raw, as the header says
    assert len(H.encode_chunk(audio, 32000, "pcm")) == 2 * 2400  # OpenAI's pcm: 24 kHz
    assert H.encoded_rate("opus") == 48000 and H.stream_header("mp3") == b""
    with pytest.raises(H.AudioFormatError, match="flac cannot be streamed"):
        H.encode_chunk(audio, 32000, "flac")
    with pytest.raises(H.AudioFormatError, match="Unknown audio format 'aac'"):
        H.encode_audio(audio, 32000, "aac")


@pytest.fixture
def tab(tmp_path, tiny_pretrained):
    """The Voice cloning tab built on tiny models; its handlers are called directly."""
    import gradio as gr

    from ui.inference_tab import build

    ctx = AppContext.create(tmp_path / "ws", "en_US", tiny_pretrained.root)
    with gr.Blocks():
        c = build(ctx)
    return c


def _form_values(c, tiny, ref: Path) -> dict:
    ui = c.ui
    values = {
        comp: comp.value
        for comp in (*ui.knobs.values(), *ui.components(("random_seed", "exact_fp32")).values())
    }
    values |= {ui.knobs["max_new_tokens"]: 12, ui.knobs["cut"]: "cut5", ui.knobs["candidates"]: 2}
    values |= {
        ui.text: "你好世界。今天天气很不错。",
        ui.ref_audio: str(ref),
        ui.aux_refs: None,
        ui.clvp: "none",
    }
    values |= {ui.gpt: str(tiny.s1), ui.sovits: str(tiny.s2g), ui.asr_model: None, ui.history: []}
    return values


def test_a_voice_saved_in_the_tab_fills_every_field_when_chosen(tab, tiny_pretrained, tmp_path):
    import gradio as gr

    from ui.inference_tab import refresh, save_voice_form, text_from_file, use_voice

    ui = tab.ui
    ref = _wav(tmp_path / "ref.wav", 4.0)
    values = _form_values(tab, tiny_pretrained, ref)
    values |= {ui.knobs["top_k"]: 33, ui.knobs["ref_text"]: "你好世界。", ui.knobs["ref_lang"]: "zh"}
    values |= {ui.voice_name: "narrator", ui.voice_overwrite: False}
    saved = save_voice_form(tab, values)
    assert saved[ui.voice]["choices"] == ["narrator"] and saved[ui.voice]["value"] == "narrator"
    assert "Voice narrator saved" in saved[ui.voice_status]
    with pytest.raises(gr.Error, match="exists already"):
        save_voice_form(tab, values)
    with pytest.raises(gr.Error, match="not a usable voice name"):
        save_voice_form(tab, values | {ui.voice_name: "../x"})
    assert refresh(tab, {ui.voice: "narrator"})[ui.voice]["choices"] == ["narrator"]  # listed fresh

    filled = use_voice(tab, {ui.voice: "narrator"})
    voice_ref = tab.app.workspace / "voices" / "narrator" / "ref.wav"
    assert filled[ui.ref_audio] == str(voice_ref) and voice_ref.read_bytes() == ref.read_bytes()
    assert filled[ui.gpt]["value"] == str(tiny_pretrained.s1) and filled[ui.sovits]["value"] == str(
        tiny_pretrained.s2g
    )
    assert filled[ui.knobs["top_k"]] == 33 and filled[ui.knobs["ref_text"]] == "你好世界。"
    assert filled[ui.knobs["cut"]] == "cut5" and filled[ui.knobs["max_new_tokens"]] == 12
    assert ui.knobs["seed"] not in filled  # the seed belongs to one synthesis, not to the voice

    text = tmp_path / "long.txt"
    text.write_bytes(b"\xef\xbb\xbf" + "第一句。第二句。".encode())
    assert text_from_file(tab, {ui.text_file: str(text)}) == {ui.text: "第一句。第二句。"}
    text.write_bytes(bytes(range(256)))
    with pytest.raises(gr.Error, match="long.txt is not a text file"):
        text_from_file(tab, {ui.text_file: str(text)})


def _collect(agen) -> list:

    async def run() -> list:
        return [u async for u in agen]

    return run_in_own_loop(run())


def test_the_tab_streams_sentences_then_regenerates_one_with_a_new_seed(tab, tiny_pretrained, tmp_path):

    from ui.inference_tab import pick_from_table, regenerate_sentence, synthesize_form

    ui = tab.ui
    values = _form_values(tab, tiny_pretrained, _wav(tmp_path / "ref.wav", 4.0))
    values[ui.export_format] = "mp3"
    updates = _collect(synthesize_form(tab, values, progress=lambda *a, **k: None))
    streamed, final = updates[:-1], updates[-1]
    assert len(streamed) == 2 and all(set(u) == {ui.stream_audio} for u in streamed)  # one per sentence
    rate, first = streamed[0][ui.stream_audio]
    assert rate == 32000 and first.dtype == np.int16 and first.size > 0
    outcome = final[ui.session]["outcome"]
    assert final[ui.out_audio].endswith(".mp3") and sf.info(final[ui.out_audio]).samplerate == 32000
    assert sum(u[ui.stream_audio][1].size for u in streamed) == outcome.result.audio.size  # the same audio

    class Select:  # what Gradio hands a .select handler: the clicked cell
        index = [3, 1]  # row 4: sentence 2, candidate 2

    assert pick_from_table(tab, {ui.session: final[ui.session]}, Select()) == {ui.pick: "1:1"}

    before = [s.audio.copy() for s in outcome.result.sentences]
    old_tokens = [c.tokens for c in outcome.result.sentences[1].candidates]
    values |= {ui.pick: "1:0", ui.session: final[ui.session], ui.history: final[ui.history]}
    regen = run_in_own_loop(regenerate_sentence(tab, values))
    result = outcome.result
    assert np.array_equal(result.sentences[0].audio, before[0])  # the other sentence is kept
    assert [c.tokens for c in result.sentences[1].candidates] != old_tokens  # drawn again
    assert len(result.sentences[1].candidates) == 2
    assert regen[ui.out_audio].endswith(".mp3") and regen[ui.out_audio] != final[ui.out_audio]
    assert len(regen[ui.history]) == 2 and regen[ui.pick]["value"] == f"1:{result.sentences[1].chosen}"
    pause = int(32000 * result.request.pause)
    assert result.audio.size == sum(s.audio.size + pause for s in result.sentences)

    # The regenerated piece keeps the result's S2 noise: re-decoding its chosen candidate gives its audio.
    from gpt_sovits.infer.synthesizer import Synthesizer

    synth = Synthesizer(outcome.gpt, outcome.sovits, tiny_pretrained.root, cache=tab.cache.tts())
    chosen = result.sentences[1].chosen
    other = 1 - chosen
    piece = synth.candidate_audio(result, 1, other)
    synth.reassemble(result, [result.sentences[0].chosen, other])
    assert np.array_equal(result.sentences[1].audio, piece)
    synth.reassemble(result, [result.sentences[0].chosen, chosen])
    result.sentences[1].decoded.clear()
    assert np.array_equal(synth.candidate_audio(result, 1, other), piece)


def test_the_tab_streams_parts_of_sentences_with_a_streaming_chunk(tab, tiny_pretrained, tmp_path):
    from ui.inference_tab import synthesize_form

    ui = tab.ui
    values = _form_values(tab, tiny_pretrained, _wav(tmp_path / "ref.wav", 4.0))
    # One candidate, parts of 4 tokens: every sentence (at least 11 tokens: EOS is banned for 11 steps)
    # comes to the live player in two parts or more.
    values |= {ui.knobs["candidates"]: 1, ui.knobs["stream_tokens"]: 4, ui.knobs["max_new_tokens"]: 40}
    updates = _collect(synthesize_form(tab, values, progress=lambda *a, **k: None))
    streamed, final = updates[:-1], updates[-1]
    assert len(streamed) >= 4 and all(set(u) == {ui.stream_audio} for u in streamed)
    result = final[ui.session]["outcome"].result
    assert len(result.sentences) == 2 and result.request.stream_tokens == 4
    assert sum(u[ui.stream_audio][1].size for u in streamed) == result.audio.size  # what was heard is saved


def test_an_api_call_naming_a_voice_gets_its_values_where_it_left_defaults(tmp_path):
    from gpt_sovits.infer.voices import VoiceError, save_voice

    ref = _wav(tmp_path / "ref.wav", 4.0)
    gpt = _touch(tmp_path / "w" / "g.ckpt")
    save_voice(tmp_path, "v", ref, "你好。", "en", [], gpt, "", {"top_k": 40, "speed": 1.2, "pause": 0.1})
    given = {"voice": "v", "text": "Hi.", "ref_audio": None, "ref_lang": "zh", "top_k": 15, "speed": 0.9}
    values = H.with_voice(given, tmp_path)
    assert (
        values["ref_audio"] == str(tmp_path / "voices" / "v" / "ref.wav") and values["ref_text"] == "你好。"
    )
    assert values["ref_lang"] == "en" and values["top_k"] == 40  # left at their defaults: the voice's
    assert values["speed"] == 0.9 and values["text"] == "Hi."  # given: kept
    assert values["gpt"] == str(gpt) and values["sovits"] == ""  # "" = the default weights
    form = H.form_from_values(values)
    assert (form.request.top_k, form.request.pause, form.gpt) == (40, 0.1, str(gpt))
    assert H.with_voice({"text": "x", "voice": ""}, tmp_path) == {"text": "x", "voice": ""}
    with pytest.raises(VoiceError, match="no saved voice called 'w'"):
        H.with_voice({"voice": "w"}, tmp_path)


def test_streamed_work_hands_over_chunks_as_they_come_and_stops_when_the_consumer_leaves():
    import threading

    from gpt_sovits.infer.scheduler import SynthesisCancelled

    service = H.SynthesisService()
    ended = threading.Event()
    done_units: list[int] = []

    def work(job, emit):
        try:
            for i in range(200):
                with job.turn():  # a cancelled job stops here
                    done_units.append(i)
                    emit(i)
                time.sleep(0.01)
            return "all"
        finally:
            ended.set()

    async def take_two() -> list:
        got = []
        events = service.run_streaming(work, "test")
        async for kind, value in events:
            got.append((kind, value))
            if len(got) == 2:
                break
        await events.aclose()  # the consumer leaves (a client hangs up)
        return got

    assert run_in_own_loop(take_two()) == [("chunk", 0), ("chunk", 1)]
    assert ended.wait(10) and len(done_units) < 200  # the work stopped at its next turn

    def failing(job, emit):
        emit("first")
        raise SynthesisCancelled("stopped")

    async def everything() -> list:
        return [e async for e in service.run_streaming(failing)]

    with pytest.raises(SynthesisCancelled, match="stopped"):
        run_in_own_loop(everything())

    async def whole() -> list:
        return [e async for e in service.run_streaming(lambda job, emit: (emit(1), emit(2), "r")[-1])]

    assert run_in_own_loop(whole()) == [("chunk", 1), ("chunk", 2), ("done", "r")]


def test_a_sessions_streamed_synthesis_is_cancelled_by_its_key_while_its_consumer_is_away():
    """Gradio cancels a streaming handler without closing the iterators it reads: Cancel goes by the
    session's key instead, and the work stops at its next turn even though nobody reads its chunks."""
    import asyncio
    import threading

    service = H.SynthesisService()
    ended, units = threading.Event(), []

    def work(job, emit):
        try:
            for i in range(300):
                with job.turn():
                    units.append(i)
                    emit(i)
                time.sleep(0.01)
        finally:
            ended.set()

    async def start_then_leave() -> None:
        events = service.run_streaming(work, "tab", key="session-a")
        assert await anext(events) == ("chunk", 0)  # then the consumer is suspended, as at a yield
        assert not service.cancel_streaming("session-b") and service.cancel_streaming("session-a")
        await asyncio.to_thread(ended.wait, 10)

    run_in_own_loop(start_then_leave())
    assert ended.is_set() and len(units) < 300
    assert service._streaming == {}  # the finished job is forgotten
    assert not service.cancel_streaming("session-a")


def _tiny_sovits_v3(path: Path, version: str = "v3") -> Path:
    """A tiny random SynthesizerTrnV3 saved as the trainers save it (weights + hparams naming the version)."""
    import torch

    from gpt_sovits.models.s2v3 import S2V3Config, SynthesizerTrnV3
    from tests.test_s2_v3 import TINY_DIT, TINY_HPARAMS

    torch.manual_seed(0)
    cfg = S2V3Config.from_hparams(TINY_HPARAMS, version=version, **TINY_DIT)
    weights = {k: v.half() for k, v in SynthesizerTrnV3(cfg).state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": weights, "config": cfg.to_hparams(), "info": f"tiny random {version}"}, path)
    return path


def test_the_sampling_steps_show_only_while_v3_or_v4_sovits_weights_are_chosen(
    tab, tiny_pretrained, tmp_path
):
    import gradio as gr

    from ui.inference_tab import refresh, show_v3v4_knobs

    ui, steps = tab.ui, tab.ui.knobs["sample_steps"]
    assert H.sovits_version(tiny_pretrained.s2g) == "v2"
    assert steps.visible is False  # the tab opened on the (v2) pretrained weights
    v3 = _tiny_sovits_v3(tab.app.workspace / "weights" / "SoVITS_weights_v3" / "voice_e1_s2.pth")
    v4 = _tiny_sovits_v3(tab.app.workspace / "weights" / "SoVITS_weights_v4" / "voice_e1_s2.pth", "v4")
    os.utime(v3, (time.time() - 60, time.time() - 60))  # v4 is the newest file
    assert (H.sovits_version(v3), H.sovits_version(v4)) == ("v3", "v4")
    # the SoVITS dropdown changed
    assert show_v3v4_knobs(tab, {ui.sovits: str(tiny_pretrained.s2g)}) == {steps: gr.update(visible=False)}
    assert show_v3v4_knobs(tab, {ui.sovits: str(v3)}) == {steps: gr.update(visible=True)}
    assert show_v3v4_knobs(tab, {ui.sovits: str(v4)}) == {steps: gr.update(visible=True)}
    assert show_v3v4_knobs(tab, {ui.sovits: None}) == {steps: gr.update(visible=False)}
    # Refresh (and page load): the kept choice decides
    assert refresh(tab, {ui.sovits: str(v3)})[steps] == gr.update(visible=True)
    assert refresh(tab, {ui.sovits: str(tiny_pretrained.s2g)})[steps] == gr.update(visible=False)
    # the page load (nothing kept): the newest trained weights, v4 here, show it
    assert refresh(tab, {})[ui.sovits]["value"] == str(v4) and refresh(tab, {})[steps] == gr.update(
        visible=True
    )
    # the events that update it: the dropdown's change, the page load, Refresh (and a saved voice's knobs)
    blocks = ui.sovits.parent
    while blocks.parent is not None:
        blocks = blocks.parent
    names = sorted(fn.name for fn in blocks.fns.values() if steps._id in [o._id for o in fn.outputs])
    assert names == ["refresh", "refresh", "show_v3v4_knobs", "use_voice"]
    assert any(
        fn.name == "show_v3v4_knobs" and ui.sovits._id in [t[0] for t in fn.targets]
        for fn in blocks.fns.values()
    )
