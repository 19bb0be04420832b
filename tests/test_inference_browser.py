"""The Voice cloning tab in a real browser and the `/synthesize` API from gradio_client, on tiny models.

The app is served by this module's own fixture with `--model-dir` pointing at the tiny pretrained
models (conftest's `served_app` has no models), so synthesis really runs: reference upload, text,
candidates table, candidate playback, history; a too-short reference gives a visible message. Each
result is written once (to outputs/, served from there: no copy in Gradio's cache); Cancel stops a long
synthesis; a short request is served while a long one runs; a text over the limit is refused.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf

from tests.conftest import PAGE_TIMEOUT_MS, ServedApp, serve_webui
from tests.support.browser import set_slider
from tests.support.synth import voiced_segments

# Tiny random models seldom emit EOS: cap S1 so each sentence is under a second of audio (fast on CPU).
MAX_TOKENS = 20
LONG_TEXT = (
    "你好世界。今天天气。" * 200
)  # 400 pieces when cut at every punctuation mark (cut5), 2,000 characters


def _reference(path: Path, seconds: float) -> Path:
    pattern = [("silence", 0.3), ("voice", max(seconds - 0.6, 0.1)), ("silence", 0.3)]
    sf.write(path, voiced_segments(pattern)[: int(seconds * 32000)], 32000, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def tts_app(tmp_path_factory: pytest.TempPathFactory, tiny_pretrained) -> Iterator[ServedApp]:
    """`python webui.py --model-dir <tiny pretrained>` on a free port with a fresh workspace."""
    workspace = tmp_path_factory.mktemp("tts_workspace")
    with serve_webui(workspace, tiny_pretrained.root, workspace.parent / "tts_webui.log") as app:
        yield app


@pytest.fixture
def tts_page(browser, tts_app):
    context = browser.new_context(viewport={"width": 1400, "height": 1200})
    p = context.new_page()
    p.set_default_timeout(PAGE_TIMEOUT_MS)
    p.goto(tts_app.url)
    p.get_by_role("tab", name="Voice cloning").click()
    p.wait_for_selector("#inf-ref")
    yield p
    context.close()


def _served_wav(page, elem_id: str, dest: Path, timeout: float = 30_000) -> Path:
    """Wait for the audio player `elem_id` to hold a file and fetch what the browser would play."""
    import urllib.request

    link = page.locator(f"{elem_id} a[data-testid=download-link]")
    link.wait_for(timeout=timeout)
    with urllib.request.urlopen(link.get_attribute("href"), timeout=10) as r:
        dest.write_bytes(r.read())
    return dest


def _gradio_copies(workspace: Path, wav: Path) -> list[Path]:
    """Files in Gradio's cache (`<workspace>/.gradio`) with the bytes of `wav`: none when written once."""
    data = wav.read_bytes()
    cache = workspace / ".gradio"
    return [
        p
        for p in cache.rglob("*")
        if p.is_file() and p.stat().st_size == len(data) and p.read_bytes() == data
    ]


def _upload_reference(page, path: Path) -> None:
    page.locator("#inf-ref input[type=file]").set_input_files(str(path))


@pytest.mark.browser
def test_synthesise_then_play_and_swap_a_candidate(tts_page, tts_app, tmp_path):
    page = tts_page
    assert page.locator("#inf-model-status").inner_text().count("found") == 4
    _upload_reference(page, _reference(tmp_path / "ref.wav", 4.0))
    page.wait_for_function("document.querySelector('#inf-ref-status').innerText.includes('Reference: 4.0 s')")
    page.locator("#inf-text textarea").fill("你好世界。今天天气很不错。")
    page.get_by_text("Sampling", exact=True).click()
    set_slider(page, "inf-max-tokens", MAX_TOKENS)
    set_slider(page, "inf-candidates", 2)
    held = "document.querySelector('#inf-max-tokens input[type=range]').value"
    assert page.evaluate(held) == str(MAX_TOKENS)  # still there when Synthesise is pressed
    page.locator("#inf-go").click()

    page.wait_for_function(
        "document.querySelector('#inf-used-seed textarea').value.length > 0", timeout=60_000
    )
    assert "1 sentence(s)" in page.locator("#inf-summary").inner_text()  # cut1 keeps both in one piece
    table = page.locator("#inf-candidates-table").inner_text()
    assert "Mean log-prob" in table and table.count("✓") >= 1
    outputs = sorted((tts_app.workspace / "outputs").glob("*.wav"))
    assert len(outputs) == 1 and sf.info(str(outputs[0])).samplerate == 32000
    # The token cap took effect: at most MAX_TOKENS / 25 s of speech plus the pause.
    assert sf.info(str(outputs[0])).duration <= MAX_TOKENS / 25 * 2 + 0.35
    result = _served_wav(page, "#inf-out", tmp_path / "result.wav")
    assert result.read_bytes() == outputs[0].read_bytes()
    # Written once: the player is served the file in outputs/, and Gradio's cache holds no copy.
    href = page.locator("#inf-out a[data-testid=download-link]").get_attribute("href")
    assert "/outputs/" in urllib.parse.unquote(href)
    assert _gradio_copies(tts_app.workspace, outputs[0]) == []
    assert page.locator("#inf-download").inner_text().count(".wav") >= 1
    # gr.render draws the history in a second round trip after the outputs.
    page.wait_for_function("document.querySelectorAll('.inf-history').length === 1", timeout=15_000)

    page.locator("#inf-pick input").click()
    page.get_by_role("option").nth(1).click()  # sentence 1, candidate 2
    page.locator("#inf-play").click()
    cand = _served_wav(page, "#inf-cand-audio", tmp_path / "cand.wav")
    assert sf.info(str(cand)).samplerate == 32000 and sf.info(str(cand)).frames > 0
    page.locator("#inf-cand-audio button[aria-label=Play]").click()  # the player takes it

    page.locator("#inf-swap").click()
    page.wait_for_function("document.querySelectorAll('.inf-history').length === 2", timeout=30_000)
    assert len(list((tts_app.workspace / "outputs").glob("*.wav"))) == 2
    # the swap is confirmed, naming the sentence and the candidate as the picker shows them
    confirmation = page.locator("[data-testid=toast-body]").filter(has_text="now uses candidate")
    confirmation.first.wait_for(timeout=30_000)
    assert "Sentence 1 now uses candidate 2" in confirmation.first.inner_text()


@pytest.mark.browser
def test_too_short_reference_is_a_visible_error(tts_page, tmp_path):
    page = tts_page
    _upload_reference(page, _reference(tmp_path / "short.wav", 1.0))
    page.wait_for_function("document.querySelector('#inf-ref-status').innerText.includes('1.0 s')")
    assert "3–10 s" in page.locator("#inf-ref-status").inner_text()
    assert not page.locator("#inf-trim").is_visible()
    page.locator("#inf-text textarea").fill("你好世界。")
    page.locator("#inf-go").click()
    toast = page.locator("[data-testid=toast-body]").filter(has_text="1.0 s")
    toast.first.wait_for(timeout=30_000)
    assert "10 s" in toast.first.inner_text()
    assert page.locator("#inf-used-seed textarea").input_value() == ""  # nothing was synthesised


@pytest.mark.browser
def test_too_long_reference_can_be_trimmed(tts_page, tts_app, tmp_path):
    page = tts_page
    _upload_reference(page, _reference(tmp_path / "long.wav", 12.0))
    page.wait_for_function("document.querySelector('#inf-ref-status').innerText.includes('12.0 s')")
    page.locator("#inf-trim").click()
    page.wait_for_function("document.querySelector('#inf-ref-status').innerText.includes('Reference: ')")
    assert not page.locator("#inf-trim").is_visible()
    trimmed = tts_app.workspace / "uploads" / "long_trimmed.wav"
    assert 3.0 <= sf.info(str(trimmed)).duration <= 10.0


def test_api_from_gradio_client(tts_app, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(tts_app.url, verbose=False)
    ref = _reference(tmp_path / "api_ref.wav", 5.0)
    wav, details = client.predict(
        "你好世界。",
        "zh",
        handle_file(str(ref)),
        candidates=3,
        seed=7,
        max_new_tokens=MAX_TOKENS,
        api_name="/synthesize",
    )
    info = json.loads(details)
    audio, sr = sf.read(wav)
    assert sr == 32000 and audio.ndim == 1
    assert len(audio) / sr == pytest.approx(info["duration"], abs=0.01)
    assert info["seed"] == 7 and len(info["sentences"]) == 1
    cands = info["sentences"][0]["candidates"]
    assert len(cands) == 3 and all("logprob" in c["scores"] for c in cands)
    chosen = info["sentences"][0]["chosen"]
    assert cands[chosen]["total"] == max(c["total"] for c in cands)
    assert Path(info["path"]).parent == tts_app.workspace / "outputs"
    assert _gradio_copies(tts_app.workspace, Path(info["path"])) == []  # served from outputs/, not copied

    again, details2 = client.predict(
        "你好世界。",
        "zh",
        handle_file(str(ref)),
        candidates=3,
        seed=7,
        max_new_tokens=MAX_TOKENS,
        api_name="/synthesize",
    )
    assert (sf.read(again)[0] == audio).all()  # same seed, same audio

    # Auxiliary references and a CLVP reranker exported into the workspace.
    from clvp.checkpoint import save_clvp
    from clvp.model import ClvpConfig, ClvpModel

    save_clvp(tts_app.workspace / "weights" / "clvp" / "tiny-e1.pt", ClvpModel(ClvpConfig.preset("tiny")))
    with_aux, details3 = client.predict(
        "你好世界。",
        "zh",
        handle_file(str(ref)),
        aux_refs=[handle_file(str(_reference(tmp_path / "aux.wav", 3.5)))],
        clvp="weights/clvp/tiny-e1.pt",
        candidates=2,
        seed=7,
        max_new_tokens=MAX_TOKENS,
        api_name="/synthesize",
    )
    assert sf.info(with_aux).samplerate == 32000
    reranked = json.loads(details3)["sentences"][0]["candidates"]
    assert all(set(c["scores"]) == {"logprob", "clvp"} for c in reranked)

    listed = json.loads(client.predict(api_name="/weights"))
    assert listed["gpt"][0]["path"] == info["gpt"] and listed["gpt"][0]["present"]
    assert [w["pretrained"] for w in listed["sovits"]] == [True]
    assert [Path(p).name for p in listed["clvp"]] == ["tiny-e1.pt"]

    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=r"1\.0 s.*10 s"):
        client.predict(
            "你好。", "zh", handle_file(str(_reference(tmp_path / "s.wav", 1.0))), api_name="/synthesize"
        )
    with pytest.raises(AppError, match=r"has 100,000 characters; .* at most 2,000 characters"):
        client.predict("你" * 100_000, "zh", handle_file(str(ref)), api_name="/synthesize")


@pytest.mark.browser
def test_refresh_lists_newly_exported_weights(tts_page, tts_app, tiny_pretrained):
    import shutil

    page = tts_page
    exported = tts_app.workspace / "weights" / "GPT_weights_v2" / "myvoice-e4.ckpt"
    exported.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(tiny_pretrained.s1, exported)
    page.locator("#inf-gpt input").click()
    assert page.get_by_role("option", name="myvoice-e4.ckpt", exact=False).count() == 0
    page.keyboard.press("Escape")
    from clvp.checkpoint import save_clvp
    from clvp.model import ClvpConfig, ClvpModel

    save_clvp(tts_app.workspace / "weights" / "clvp" / "mine-e2.pt", ClvpModel(ClvpConfig.preset("tiny")))
    page.locator("#inf-refresh").click()
    page.locator("#inf-clvp").wait_for(state="visible", timeout=15_000)
    page.wait_for_timeout(500)
    page.locator("#inf-gpt input").click()
    page.get_by_role("option", name="GPT_weights_v2/myvoice-e4.ckpt").wait_for(timeout=15_000)
    assert page.get_by_role("option", name="pretrained v2", exact=False).count() == 1
    # Refresh keeps the person's current choice (the pretrained file) rather than jumping to the new one.
    assert "pretrained v2" in page.locator("#inf-gpt input").input_value()
    page.keyboard.press("Escape")

    # A fresh page starts from the newest fine-tuned file.
    page.reload()
    page.get_by_role("tab", name="Voice cloning").click()
    page.wait_for_function(
        "document.querySelector('#inf-gpt input').value.includes('myvoice-e4.ckpt')", timeout=15_000
    )


@pytest.mark.browser
def test_cancel_stops_a_long_synthesis(tts_page, tts_app, tmp_path):
    page = tts_page
    _upload_reference(page, _reference(tmp_path / "ref.wav", 4.0))
    page.wait_for_function("document.querySelector('#inf-ref-status').innerText.includes('Reference: 4.0 s')")
    page.locator("#inf-text textarea").fill(LONG_TEXT)
    page.get_by_text("Sampling", exact=True).click()
    set_slider(page, "inf-max-tokens", MAX_TOKENS)
    page.locator("#inf-cut input").click()
    page.get_by_role("option", name="At every punctuation mark").click()
    before = set((tts_app.workspace / "outputs").glob("*.wav"))
    page.locator("#inf-go").click()
    # The first "done" comes after planning all 400 pieces (text, BERT) and the first S1 batch: 10-20 s on a
    # quiet machine, over 60 s once on a loaded CI machine (whose model work went on: 261 units by then).
    page.get_by_text(re.compile(r"piece \d+/400 done")).first.wait_for(timeout=150_000)
    # The button's own click event: while 200 pieces stream in on a loaded machine, Playwright's wait for the
    # button to be "stable" (two animation frames in the same place) timed out twice in 60 s.
    page.locator("#inf-cancel").dispatch_event("click")
    page.wait_for_function(
        "document.querySelector('#inf-summary').innerText.includes('Cancelled.')", timeout=15_000
    )
    page.wait_for_timeout(2000)
    assert set((tts_app.workspace / "outputs").glob("*.wav")) == before  # nothing written

    # The models are free at once: a short synthesis right after is done in seconds, not after 200.
    page.locator("#inf-text textarea").fill("你好世界。")
    page.locator("#inf-go").click()
    page.wait_for_function(
        "document.querySelector('#inf-summary').innerText.includes('1 sentence(s)')", timeout=30_000
    )
    assert len(set((tts_app.workspace / "outputs").glob("*.wav")) - before) == 1


def test_other_requests_are_served_during_a_long_synthesis(tts_app, tmp_path):
    """Synthesis runs in its own queue: a long job holds up neither the rest of the app nor a short
    synthesis. Kept last in the module: the cancelled long job ends with the server.
    """
    from gradio_client import Client, handle_file

    client = Client(tts_app.url, verbose=False)
    ref = handle_file(str(_reference(tmp_path / "ref.wav", 4.0)))
    job = client.submit(
        LONG_TEXT, "zh", ref, cut="cut5", candidates=4, max_new_tokens=MAX_TOKENS, api_name="/synthesize"
    )
    deadline = time.monotonic() + 30
    while job.status().code.name != "PROCESSING" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.status().code.name == "PROCESSING"
    t0 = time.monotonic()
    listed = json.loads(Client(tts_app.url, verbose=False).predict(api_name="/weights"))
    assert time.monotonic() - t0 < 10 and listed["gpt"]
    # A short synthesis takes its turns between the long one's sentences (the long one alone takes
    # minutes here); tests/test_synthesis_fairness.py counts the sentences in between.
    t0 = time.monotonic()
    wav, _details = Client(tts_app.url, verbose=False).predict(
        "你好世界。", "zh", ref, max_new_tokens=MAX_TOKENS, api_name="/synthesize"
    )
    print(f"short /synthesize during a long one: {time.monotonic() - t0:.1f} s")
    assert sf.info(wav).frames > 0 and time.monotonic() - t0 < 60
    assert not job.done()  # answered while the synthesis was still running
    job.cancel()
