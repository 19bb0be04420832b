"""Saved voices, .txt input, export format, live playback and regenerate, in a real browser on tiny models.

The app is the real one (webui's build_app and launch_kwargs), served in this process so that the
imports it shares with the test are not paid twice on a busy machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf

from tests.conftest import PAGE_TIMEOUT_MS
from tests.support.synth import voiced_segments


@pytest.fixture(scope="module")
def voice_app(tmp_path_factory, tiny_pretrained) -> Iterator[tuple[str, Path]]:
    from ui.context import AppContext
    from webui import build_app, launch_kwargs, make_parser

    ws = tmp_path_factory.mktemp("voices_ws")
    ctx = AppContext.create(ws, "en_US", tiny_pretrained.root)
    app = build_app(ctx)
    kwargs = launch_kwargs(make_parser().parse_args(["--workspace", str(ws)]), ctx, app.extra_routes)
    kwargs.pop("server_port")
    app.queue().launch(prevent_thread_lock=True, quiet=True, **kwargs)
    try:
        yield app.local_url, ws
    finally:
        app.close()


def _open(browser, url: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1400})
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto(url)
    page.get_by_role("tab", name="Voice cloning").click()
    page.wait_for_selector("#inf-voice")
    return context, page


def _choose(page, elem_id: str, option: str) -> None:
    page.locator(f"{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def _text_box(page, elem_id: str):
    return page.locator(f"{elem_id} textarea, {elem_id} input[type=text]").first


def _wait_text(page, elem_id: str, text: str, timeout: float = 60_000) -> None:
    page.wait_for_function(
        f"(document.querySelector('{elem_id}')?.innerText || '').includes({text!r})", timeout=timeout
    )


@pytest.mark.browser
def test_save_a_voice_reload_use_it_stream_export_and_regenerate(browser, voice_app, tmp_path):
    url, ws = voice_app
    ref = tmp_path / "ref.wav"
    sf.write(
        ref, voiced_segments([("silence", 0.3), ("voice", 3.4), ("silence", 0.3)]), 32000, subtype="PCM_16"
    )

    context, page = _open(browser, url)
    page.locator("#inf-ref input[type=file]").set_input_files(str(ref))
    _wait_text(page, "#inf-ref-status", "Reference: 4.0 s")
    _text_box(page, "#inf-ref-text").fill("你好世界。")
    _choose(page, "#inf-cut", "At every punctuation mark")
    _text_box(page, "#inf-voice-name").fill("narrator")
    page.locator("#inf-save-voice").click()
    _wait_text(page, "#inf-voice-status", "Voice narrator saved")
    assert (ws / "voices" / "narrator" / "voice.json").is_file()
    context.close()

    # A new page lists the voice; choosing it fills the reference, its text and the settings.
    context, page = _open(browser, url)
    streamed: list[str] = []
    page.on("request", lambda r: streamed.append(r.url) if "m3u8" in r.url or "stream" in r.url else None)
    _choose(page, "#inf-voice", "narrator")
    _wait_text(page, "#inf-voice-status", "Voice narrator loaded")
    _wait_text(page, "#inf-ref-status", "Reference: 4.0 s")
    assert _text_box(page, "#inf-ref-text").input_value() == "你好世界。"

    text = tmp_path / "speech.txt"
    text.write_bytes("\ufeff你好世界。今天天气很不错。".encode())
    page.locator("#inf-text-file input[type=file]").set_input_files(str(text))
    page.wait_for_function(
        "document.querySelector('#inf-text textarea').value === '你好世界。今天天气很不错。'"
    )
    _choose(page, "#inf-export-format", "MP3")
    page.get_by_text("Sampling", exact=True).click()
    box = page.locator("#inf-max-tokens input[type=number]")
    box.fill("12")
    box.press("Enter")
    page.locator("#inf-go").click()
    page.wait_for_function(
        "document.querySelector('#inf-used-seed textarea').value.length > 0", timeout=120_000
    )
    _wait_text(page, "#inf-summary", "2 sentence(s)")
    assert [p.suffix for p in (ws / "outputs").iterdir()] == [".mp3"]
    assert page.locator("#inf-download").inner_text().count(".mp3") >= 1
    assert any("m3u8" in u or "stream" in u for u in streamed), streamed  # the live player was fed

    page.locator("#inf-regen").click()  # the picker holds sentence 1, candidate 1
    toast = page.locator("[data-testid=toast-body]").filter(has_text="was drawn again")
    toast.first.wait_for(timeout=120_000)
    assert "Sentence 1" in toast.first.inner_text()
    assert len(list((ws / "outputs").glob("*.mp3"))) == 2
    context.close()
