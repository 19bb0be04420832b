"""Label editor and Dataset check tabs in a real headless chromium."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import PAGE_TIMEOUT_MS

pytestmark = pytest.mark.browser

SR = 32000


def make_dataset(workspace: Path) -> Path:
    root = workspace / "datasets" / "t1"
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (seconds, text) in enumerate([(0.8, "first clip"), (1.0, "second clip"), (1.2, "third clip")]):
        t = np.arange(int(seconds * SR)) / SR
        sf.write(
            root / f"c{i}.wav", (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), SR, subtype="PCM_16"
        )
        lines.append(f"{root / f'c{i}.wav'}|spk|en|{text}")
    path = root / "t1.list"
    if not path.exists():
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        scores = [
            {"path": line.split("|")[0], "avg_logprob": -0.1 * (i + 1), "no_speech_prob": 0.05}
            for i, line in enumerate(lines)
        ]
        (root / "t1.asr.jsonl").write_text("".join(json.dumps(s) + "\n" for s in scores), encoding="utf-8")
    return path


def wait_for_file_text(path: Path, needle: str, present: bool = True, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = path.read_text(encoding="utf-8")
        if (needle in text) == present:
            return text
        time.sleep(0.2)
    raise AssertionError(f"{path} {'lacks' if present else 'still has'} {needle!r}:\n{text}")


def test_label_editor_edits_are_saved_and_undone(page, served_app):
    list_path = make_dataset(served_app.workspace)
    page.get_by_role("tab", name="Label editor").click()
    page.locator("#labels_path input, #labels_path textarea").first.fill("datasets/t1/t1.list")
    page.locator("#labels_load").click()
    first = page.locator("#labels_text_1 input, #labels_text_1 textarea").first
    page.wait_for_function(
        "() => { const e = document.querySelector('#labels_text_1 input, #labels_text_1 textarea');"
        " return e && e.value === 'second clip'; }"
    )
    assert "3 clips" in page.locator("#labels_status").inner_text()
    assert page.locator("#labels_audio_0 audio, #labels_audio_0 button").count() > 0  # a player is shown
    assert "log-prob -0.10" in page.locator("#labels_conf_0").inner_text()  # ASR sidecar column
    first.fill("edited in the browser")
    first.press("Enter")
    text = wait_for_file_text(list_path, "|spk|en|edited in the browser")
    assert "first clip" in text and "third clip" in text
    assert list((list_path.parent / ".history").glob("t1.list.*.bak"))

    page.locator("#labels_undo").click()
    text = wait_for_file_text(list_path, "edited in the browser", present=False)
    assert "|spk|en|second clip" in text


def test_dataset_check_shows_clip_count(page, served_app):
    make_dataset(served_app.workspace)
    page.get_by_role("tab", name="Dataset check").click()
    page.locator("#dataset_path input, #dataset_path textarea").first.fill("datasets/t1/t1.list")
    page.locator("#dataset_run").click()
    summary = page.locator("#dataset_summary")
    summary.get_by_text("Clips: 3").wait_for()
    assert "Total duration: 3.0 s" in summary.inner_text()
    page.locator(
        "#dataset_plot img, #dataset_plot svg, #dataset_plot canvas"
    ).first.wait_for()  # histogram drawn


def make_long_dataset(workspace: Path, n: int = 12) -> Path:
    root = workspace / "datasets" / "t2"
    root.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(0.7 * SR)) / SR
    tone = (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
    for i in range(n):
        sf.write(root / f"clip{i:02d}.wav", tone, SR, subtype="PCM_16")
    path = root / "t2.list"
    path.write_text("".join(f"clip{i:02d}.wav|spk|zh|text {i}\n" for i in range(n)), encoding="utf-8")
    return path


def row_value(page, i: int) -> str:
    return page.locator(f"#labels_text_{i} input, #labels_text_{i} textarea").first.input_value()


def test_label_editor_paging_keeps_unsubmitted_edit_and_deletes_to_trash(page, served_app):
    list_path = make_long_dataset(served_app.workspace)
    page.get_by_role("tab", name="Label editor").click()
    page.locator("#labels_path input, #labels_path textarea").first.fill("datasets/t2/t2.list")
    page.locator("#labels_load").click()
    page.get_by_text("Page 1 of 2").wait_for()
    # Type without Enter, then page: the blur that paging causes must save the edit.
    page.locator("#labels_text_9 input, #labels_text_9 textarea").first.fill("typed then paged")
    page.locator("#labels_next").click()
    page.get_by_text("Page 2 of 2").wait_for()
    assert row_value(page, 0) == "text 10" and row_value(page, 1) == "text 11"
    assert not page.locator("#labels_row_2").is_visible()
    wait_for_file_text(list_path, "clip09.wav|spk|zh|typed then paged")

    page.locator("#labels_select_1 input").check()
    page.locator("#labels_trash_audio input").check()
    page.locator("#labels_delete").click()
    text = wait_for_file_text(list_path, "clip11.wav", present=False)
    assert text.count("\n") == 11
    assert not (list_path.parent / "clip11.wav").exists()
    assert (served_app.workspace / "trash" / "clip11.wav").is_file()  # moved, not deleted


def open_list(page, rel: str, first_text: str) -> None:
    page.get_by_role("tab", name="Label editor").click()
    page.locator("#labels_path input, #labels_path textarea").first.fill(rel)
    page.locator("#labels_load").click()
    page.wait_for_function(
        "(t) => { const e = document.querySelector('#labels_text_0 input, #labels_text_0 textarea');"
        " return e && e.value === t; }",
        arg=first_text,
    )


def type_and_enter(page, i: int, text: str) -> None:
    box = page.locator(f"#labels_text_{i} input, #labels_text_{i} textarea").first
    box.fill(text)
    box.press("Enter")


def test_label_editor_two_sessions_lose_nothing(page, browser, served_app):
    list_path = make_long_dataset(served_app.workspace, n=4)
    other_context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        other = other_context.new_page()
        other.set_default_timeout(PAGE_TIMEOUT_MS)
        other.goto(served_app.url)
        other.wait_for_selector("button[role=tab]")
        for p in (page, other):
            open_list(p, "datasets/t2/t2.list", "text 0")
        type_and_enter(page, 0, "from A")
        wait_for_file_text(list_path, "clip00.wav|spk|zh|from A")
        type_and_enter(other, 2, "from B")
        text = wait_for_file_text(list_path, "clip02.wav|spk|zh|from B")
        assert "clip00.wav|spk|zh|from A" in text  # A's edit survived B's save
        other.wait_for_function(  # and B's page shows it
            "() => document.querySelector('#labels_text_0 input, #labels_text_0 textarea').value === 'from A'"
        )
        # Both change clip 1: B's save is refused, shows both versions, and B keeps its own.
        type_and_enter(page, 1, "A's words")
        wait_for_file_text(list_path, "clip01.wav|spk|zh|A's words")
        type_and_enter(other, 1, "B's words")
        status = other.locator("#labels_status")
        status.get_by_text("was changed elsewhere").wait_for()
        assert "A's words" in status.inner_text() and "B's words" in status.inner_text()
        assert "clip01.wav|spk|zh|A's words" in list_path.read_text(encoding="utf-8")
        other.locator("#labels_keep_mine").click()
        text = wait_for_file_text(list_path, "clip01.wav|spk|zh|B's words")
        assert "from A" in text and "from B" in text
        other.locator("#labels_keep_mine").wait_for(state="hidden")
    finally:
        other_context.close()
