"""The Slicing tab in a real browser: upload, preview (plot + table, nothing written), slice to disk."""

from __future__ import annotations

import time

import pytest
import soundfile as sf

from tests.support.synth import voiced_segments

pytestmark = pytest.mark.browser

PATTERN = [("silence", 1.0), ("voice", 5.0), ("silence", 1.5), ("voice", 5.0), ("silence", 1.0)]


def test_upload_preview_then_slice(page, served_app, tmp_path):
    src = tmp_path / "browserslice.wav"
    sf.write(src, voiced_segments(PATTERN), 32000, subtype="PCM_16")
    page.get_by_role("tab", name="Slicing").click()
    page.wait_for_selector("#slice-upload")
    page.locator("#slice-upload input[type=file]").set_input_files(str(src))
    page.wait_for_timeout(500)  # let gradio finish the upload

    page.locator("#slice-preview").click()
    page.wait_for_function(
        "document.querySelector('#slice-status textarea').value.includes('Preview: 2 clips')", timeout=30_000
    )
    page.wait_for_selector("#slice-plot img, #slice-plot svg, #slice-plot canvas", timeout=30_000)
    table = page.locator("#slice-table")
    assert "browserslice.wav" in table.inner_text()
    out = served_app.workspace / "sliced"
    assert not any(out.glob("browserslice.wav_*.wav"))  # preview wrote nothing
    assert (served_app.workspace / "uploads" / "browserslice.wav").is_file()
    # The first proposed clip is ready to play before anything is written; the second can be picked.
    page.wait_for_selector(
        "#slice-segment-audio audio[src]",
        state="attached",
        timeout=30_000,  # the waveform hides it
    )
    page.locator("#slice-segment input").click()
    page.get_by_role("option", name="browserslice.wav #2", exact=False).click()
    played = served_app.workspace / "jobs" / "preview-clips"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list(played.glob("browserslice.wav_*.wav"))) < 2:
        time.sleep(0.2)
    assert len(list(played.glob("browserslice.wav_*.wav"))) == 2
    assert not any(out.glob("browserslice.wav_*.wav"))  # still nothing written to sliced/

    page.locator("#slice-run").click()
    page.wait_for_function(
        "document.querySelector('#slice-status textarea').value.includes('Done')", timeout=60_000
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(list(out.glob("browserslice.wav_*.wav"))) < 2:
        time.sleep(0.2)
    clips = sorted(out.glob("browserslice.wav_*.wav"))
    assert len(clips) == 2
    assert all(sf.info(str(c)).samplerate == 32000 for c in clips)
    assert "2 clips written" in page.locator("#slice-result").inner_text()


def test_non_audio_upload_gives_a_clear_error(page, served_app, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("this is a shopping list, not a recording\n")
    page.get_by_role("tab", name="Slicing").click()
    page.locator("#slice-upload input[type=file]").set_input_files(str(bad))
    page.wait_for_timeout(500)
    page.locator("#slice-preview").click()
    toast = page.get_by_text("not a readable audio file", exact=False)
    toast.first.wait_for(timeout=30_000)
    assert "notes.wav" in toast.first.inner_text()
    assert not any((served_app.workspace / "sliced").glob("notes.wav_*"))
