"""The whole workshop in a real browser, without typing a path: experiment -> upload -> separate -> slice
(the separated vocals) -> ASR -> edit -> check -> format + train -> clone, on tiny models.

Each step asserts that the next tab is pre-filled with what the previous one wrote, and a validation
error (Slicing with nothing chosen, Merge with nothing loaded) shows in the tab's status line with no
red "Error" badge on any output.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import ServedApp, serve_webui
from tests.support.browser import set_number, set_slider
from tests.support.synth import voiced_segments
from tests.support.tiny_demucs import build_tiny_model_dir
from tests.support.tiny_whisper import EXPECTED_TEXT, build_tiny_whisper

pytestmark = pytest.mark.browser

EXP = "flow"
# The tiny random demucs keeps a few dB between the voiced parts and the pauses of its input: a
# threshold between them cuts the vocals into one clip per voiced part (6 of about 1 s).
SLICE_SETTINGS = {"slice-threshold": -35, "slice-min-length": 600, "slice-min-interval": 200}


@pytest.fixture(scope="module")
def flow_app(tmp_path_factory: pytest.TempPathFactory, tiny_pretrained) -> Iterator[ServedApp]:
    """webui.py with an empty workspace and a model folder: the tiny pretrained set, a tiny demucs and a
    tiny Whisper."""
    root = tmp_path_factory.mktemp("flow")
    models = root / "models"
    models.mkdir()
    for entry in tiny_pretrained.root.iterdir():
        (models / entry.name).symlink_to(entry)
    build_tiny_model_dir(models / "demucs", "tinyui")
    build_tiny_whisper(models / "faster-whisper-tiny-test", quantization="int8")
    workspace = root / "workspace"
    with serve_webui(workspace, models, root / "flow_webui.log") as app:
        yield app


def recording(path: Path) -> Path:
    """About 11 s of stereo 32 kHz: six voiced parts of 1.2 s between pauses of 0.5 s."""
    pattern = [part for _ in range(6) for part in (("silence", 0.5), ("voice", 1.2))] + [("silence", 0.5)]
    mono = voiced_segments(pattern)
    sf.write(path, np.stack([mono, mono], axis=1), 32000, subtype="PCM_16")
    return path


def reference(path: Path) -> Path:
    pattern = [("silence", 0.3), ("voice", 3.4), ("silence", 0.3)]
    sf.write(path, voiced_segments(pattern), 32000, subtype="PCM_16")
    return path


# ---------------------------------------------------------------------------------------- helpers


def value_of(page, selector: str) -> str:
    return page.locator(selector).first.input_value()


def wait_text(page, elem_id: str, text: str, timeout: float = 60_000, field: str = "") -> None:
    """Wait until `#elem_id` (its `field` element, e.g. textarea) shows `text`."""
    target = f"#{elem_id} {field}".strip()
    prop = "value" if field in ("textarea", "input") else "innerText"
    page.wait_for_function(
        f"(document.querySelector({target!r}) || {{}}).{prop}?.includes({text!r})", timeout=timeout
    )


def choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def open_tab(page, title: str) -> None:
    page.get_by_role("tab", name=title, exact=True).click()


def selected_tab(page) -> str:
    return page.locator("button[role=tab][aria-selected=true]").inner_text().strip()


def error_badges(page) -> int:
    """Outputs marked as failed: Gradio's status tracker shows an "Error" badge (class `error`)."""
    return page.locator(".wrap.error, .error:visible").count() + page.get_by_text("Error", exact=True).count()


def wait_files(folder: Path, pattern: str, n: int, timeout: float) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(folder.glob(pattern)) if folder.is_dir() else []
        if len(found) >= n:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{folder}/{pattern}: fewer than {n} files after {timeout} s")


def boxes_overlap(a: dict, b: dict) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


# ---------------------------------------------------------------------------------------- the walk


def test_the_whole_flow_without_typing_a_path(browser, flow_app, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(90_000)  # a shared 2-core machine can be slow to answer
    try:
        walk(page, flow_app, tmp_path)
    except BaseException:
        if page.locator("#train-stop").count():  # a failed walk leaves no training running behind it
            page.locator("#train-stop").click(timeout=5_000)
        raise
    finally:
        context.close()


def walk(page, app: ServedApp, tmp_path: Path) -> None:
    ws = app.workspace
    page.goto(app.url)
    # 1. The experiment, once, at the top.
    page.locator("#exp-new-name input, #exp-new-name textarea").first.fill(EXP)
    page.locator("#exp-speaker input, #exp-speaker textarea").first.fill("flowspeaker")
    choose(page, "exp-language", "en")
    page.locator("#exp-create").click()
    wait_text(page, "exp-info", f"experiments/{EXP}/")
    assert (ws / "experiments" / EXP / "experiment.json").is_file()

    # A validation error stays in the status line: Slicing with nothing chosen, no badge anywhere.
    open_tab(page, "Slicing")
    assert value_of(page, "#slice-out-name textarea, #slice-out-name input") == EXP
    page.locator("#slice-run").click()
    wait_text(page, "slice-status", "Choose audio files", field="textarea")
    page.wait_for_timeout(500)
    assert error_badges(page) == 0

    # 2. Separation: upload, run; the vocals are chosen in Slicing.
    open_tab(page, "Separation")
    choose(page, "sep-model", "tinyui")
    page.locator("#sep-upload input[type=file]").set_input_files(str(recording(tmp_path / "rec.wav")))
    page.wait_for_timeout(800)  # let Gradio finish the upload
    page.locator("#sep-start").click()
    wait_text(page, "sep-status", "Done", timeout=150_000, field="textarea")
    assert (ws / "uploads" / EXP / "rec.wav").is_file()
    assert (ws / "separated" / EXP / "rec_vocals.wav").is_file()
    page.locator("#sep-next").click()
    page.wait_for_function(
        "document.querySelector('button[role=tab][aria-selected=true]').innerText.includes('Slicing')"
    )
    wait_text(page, "slice-pick", f"separated/{EXP}/rec_vocals.wav")
    assert "accompaniment" not in page.locator("#slice-pick").inner_text()

    # 3. Slicing the separated vocals (no path typed) into sliced/<exp>.
    page.get_by_text("Parameters", exact=True).click()
    set_slider(page, "slice-threshold", SLICE_SETTINGS["slice-threshold"])
    set_number(page, "slice-min-length", SLICE_SETTINGS["slice-min-length"])
    set_number(page, "slice-min-interval", SLICE_SETTINGS["slice-min-interval"])
    assert value_of(page, "#slice-path textarea, #slice-path input") == ""
    page.locator("#slice-run").click()
    wait_text(page, "slice-status", "Done", timeout=90_000, field="textarea")
    clips = sorted((ws / "sliced" / EXP).glob("*.wav"))
    assert len(clips) >= 5, [c.name for c in clips]
    page.locator("#slice-next").click()
    page.wait_for_function(
        "document.querySelector('button[role=tab][aria-selected=true]').innerText.includes('ASR')"
    )
    assert value_of(page, "#asr-folder input") == f"sliced/{EXP}"
    assert value_of(page, "#asr-language input") == "en"  # the experiment's language

    # 4. ASR (the tiny Whisper says "hello world" to anything: VAD off so noise-like clips are kept).
    choose(page, "asr-model", "tiny-test (local)")
    page.get_by_text("Advanced", exact=True).last.click()
    page.locator("#asr-vad input").uncheck()
    page.locator("#asr-start").click()
    wait_text(page, "asr-status", "Done", timeout=90_000, field="textarea")
    listed = (ws / "asr" / f"{EXP}.list").read_text(encoding="utf-8").splitlines()
    assert len(listed) == len(clips) and all(line.endswith(f"|{EXPECTED_TEXT}") for line in listed)

    # 5. Label editor: opened with the list; a merge with nothing selected stays in the status line.
    page.locator("#asr-next").click()
    wait_text(page, "labels_status", f"{EXP}.list: {len(clips)} clips")
    assert value_of(page, "#labels_list_choice input") == f"asr/{EXP}.list"
    page.locator("#labels_merge").click()
    wait_text(page, "labels_status", "select at least two clips")
    page.wait_for_timeout(500)
    assert error_badges(page) == 0
    text = page.locator("#labels_text_0 textarea")
    text.fill("hello world again")
    text.blur()
    wait_text(page, "labels_status", "Saved")
    # Rows usable at 800 px: the text box, player and tick box side by side or wrapped, never covered.
    page.set_viewport_size({"width": 800, "height": 1000})
    page.wait_for_timeout(300)
    parts = [page.locator(f"#labels_{p}_0").bounding_box() for p in ("audio", "text", "lang", "select")]
    assert all(b is not None and b["x"] >= 0 and b["x"] + b["width"] <= 800 for b in parts), parts
    assert not any(boxes_overlap(a, b) for i, a in enumerate(parts) for b in parts[i + 1 :]), parts
    page.set_viewport_size({"width": 1400, "height": 1000})

    # 6. Dataset check: the edited list, checked on arrival.
    page.locator("#labels_next_step").click()
    wait_text(page, "dataset_summary", f"Clips: {len(clips)}")
    assert value_of(page, "#dataset_list_choice input") == f"asr/{EXP}.list"

    # 7. Training: the experiment's name and list are there. Format, then GPT (S1) for one epoch: S2 on
    # CPU takes minutes even tiny, and the pretrained SoVITS serves the clone (its list is refreshed too).
    page.locator("#dataset_next").click()
    page.wait_for_function(
        "document.querySelector('button[role=tab][aria-selected=true]').innerText.includes('Training')"
    )
    assert value_of(page, "#train-exp input, #train-exp textarea") == EXP
    assert value_of(page, "#train-list input") == f"asr/{EXP}.list"
    for elem_id in ("train-s1-epochs", "train-s1-save"):
        set_slider(page, elem_id, 1)
    page.locator("#train-format").click()
    exp_dir = ws / "experiments" / EXP
    wait_files(exp_dir, "6-name2semantic.tsv", 1, timeout=180)
    page.wait_for_function(
        "!document.querySelector('#train-status').innerText.includes('running')", timeout=120_000
    )
    page.locator("#train-s1").click()
    gpt = wait_files(ws / "weights" / "GPT_weights_v2", f"{EXP}*.ckpt", 1, timeout=240)

    # 8. Voice cloning lists the experiment's weights first and has them chosen.
    open_tab(page, "Voice cloning")
    page.wait_for_function(
        f"document.querySelector('#inf-gpt input').value.includes({gpt[-1].name!r})", timeout=30_000
    )
    page.locator("#inf-ref input[type=file]").set_input_files(str(reference(tmp_path / "ref.wav")))
    wait_text(page, "inf-ref-status", "Reference: 4.0 s")
    page.locator("#inf-text textarea").fill("你好世界。")
    page.get_by_text("Sampling", exact=True).click()
    box = page.locator("#inf-max-tokens input[type=number]")
    box.fill("20")
    box.press("Enter")
    page.locator("#inf-go").click()
    page.wait_for_function(
        "document.querySelector('#inf-used-seed textarea').value.length > 0", timeout=120_000
    )
    assert error_badges(page) == 0
