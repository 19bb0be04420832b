"""The ASR tab in a real browser: missing-model status, model refresh, a run to a .list on disk."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import soundfile as sf

from tests.support.tiny_whisper import EXPECTED_TEXT, build_tiny_whisper
from tests.test_asr import speech_wav

pytestmark = pytest.mark.browser


def test_tiny_model_run_writes_list_and_sidecar(page, served_app):
    page.get_by_role("tab", name="ASR").click()
    status = page.locator("#asr-model-status")
    status.wait_for()
    models = served_app.workspace / "models"
    assert "Model missing" in status.inner_text()
    assert "pretrained download faster-whisper-large-v3 " in status.inner_text()

    build_tiny_whisper(models / "faster-whisper-tiny-test", quantization="int8")
    clips = served_app.workspace / "sliced" / "asrtest"
    clips.mkdir(parents=True)
    speech_wav(clips / "one.wav")
    speech_wav(clips / "two.wav", "a second short sentence")
    sf.write(clips / "three_silent.wav", np.zeros(16000, dtype=np.float32), 16000)

    page.locator("#asr-refresh").click()
    page.locator("#asr-model input").click()
    page.get_by_role("option", name="tiny-test (local)").click()
    page.wait_for_function("document.querySelector('#asr-model-status').innerText.includes('Model found')")
    page.locator("#asr-folder input").click()
    page.get_by_role("option", name="sliced/asrtest").click()
    page.locator("#asr-start").click()

    out = served_app.workspace / "asr" / "asrtest.list"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not out.exists():
        time.sleep(0.3)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [line.split("|")[1:] for line in lines] == [["asrtest", "en", EXPECTED_TEXT]] * 2
    sidecar = [
        json.loads(x) for x in (served_app.workspace / "asr" / "asrtest.asr.jsonl").read_text().splitlines()
    ]
    assert [s["path"] for s in sidecar] == [line.split("|")[0] for line in lines]

    page.wait_for_function(
        "document.querySelector('#asr-status textarea').value.includes('Done')", timeout=30_000
    )
    report = page.locator("#asr-summary").inner_text()
    assert "Wrote 2 clips" in report and "Clips without text: 1" in report and "three_silent.wav" in report
    table = page.locator("#asr-preview").inner_text()
    assert "one.wav" in table and "two.wav" in table and EXPECTED_TEXT in table
