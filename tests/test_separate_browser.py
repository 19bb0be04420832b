"""The Separation tab in a real browser: missing-model status, model refresh, a run to files on disk."""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf

from tests.support.tiny_demucs import build_tiny_model_dir

pytestmark = pytest.mark.browser


def open_tab(page) -> None:
    page.get_by_role("tab", name="Separation").click()
    page.wait_for_selector("#sep-model-status")


def test_missing_model_status_then_tiny_model_run(page, served_app, tmp_path):
    open_tab(page)
    status = page.locator("#sep-model-status")
    models = served_app.workspace / "models" / "demucs"
    assert "was not found" in status.inner_text()
    assert f"pretrained download demucs-htdemucs --model-dir {models.parent}" in status.inner_text()
    assert "955717e8.safetensors" in status.inner_text()

    build_tiny_model_dir(models, "tinyui")
    page.locator("#sep-refresh").click()
    page.locator("#sep-model input").click()
    page.get_by_role("option", name="tinyui").click()
    page.wait_for_function("document.querySelector('#sep-model-status').innerText.includes('found locally')")

    t = np.arange(int(1.5 * 44100)) / 44100
    song = tmp_path / "browsersong.wav"
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 330 * t)], axis=1)
    sf.write(song, stereo, 44100)
    page.locator("#sep-upload input[type=file]").set_input_files(str(song))
    page.wait_for_timeout(500)  # let gradio finish the upload before starting
    page.locator("#sep-start").click()

    out = served_app.workspace / "separated"
    deadline = time.monotonic() + 60
    expected = {"browsersong_vocals.wav", "browsersong_accompaniment.wav"}
    while time.monotonic() < deadline and not expected <= {p.name for p in out.iterdir()}:
        time.sleep(0.3)
    assert expected <= {p.name for p in out.iterdir()}
    assert sf.info(str(out / "browsersong_vocals.wav")).samplerate == 44100
    assert (served_app.workspace / "uploads" / "browsersong.wav").is_file()
    page.wait_for_function(
        "document.querySelector('#sep-status textarea').value.includes('Done')", timeout=30_000
    )
    page.locator("strong", has_text="browsersong.wav").wait_for()  # the rendered result heading
    assert page.get_by_text("Vocals", exact=True).first.is_visible()
    assert page.get_by_text("Accompaniment", exact=True).first.is_visible()
