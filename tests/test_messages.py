"""What a person reads when files are missing, empty or not audio: the file named once, by its name, no
errno numbers, no internal paths, no reader library names; and "Failed." when nothing in a batch worked.

Each stage (slicing, separation, ASR, conversion) runs on a batch whose only file is missing, empty, or
a text file named .wav, as the UI runs it (the CLI with an events file), and the person's view is checked:
the exit sentence and each failure line `name: reason`.
"""

from __future__ import annotations

import errno
import json
import re
from pathlib import Path

import pytest

from core.audio import (
    AudioDecodeError,
    AudioInputNotFoundError,
    audio_info,
    list_audio_files,
    load_audio,
    open_audio,
)
from core.errors import file_reason, os_error_message, plain_detail
from core.jobs import EXIT_ALL_FAILED, EXIT_USER_ERROR, EventWriter, FileFailure, describe_end, stage_failure
from ui.context import AppContext, WorkspaceFileError, person_files

LEAKS = re.compile(r"Errno|WinError|\.gradio|/tmp/|pytest-|soundfile|libsndfile|ffmpeg|PyAV|\bav\b")


def bad_inputs(folder: Path) -> dict[str, Path]:
    """One folder per case, each holding `clip.wav`: missing, empty (0 bytes), a text file named .wav."""
    out = {}
    for case in ("missing", "empty", "text"):
        d = folder / case
        d.mkdir(parents=True)
        f = d / "clip.wav"
        if case == "empty":
            f.write_bytes(b"")
        elif case == "text":
            f.write_text("hello, this is not audio\n", encoding="utf-8")
        out[case] = f
    return out


REASONS = {
    "empty": "the file is empty (0 bytes)",
    "text": "not a readable audio file (it is not audio, or it is damaged)",
}


def events_of(path: Path) -> list[dict]:
    return (
        [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []
    )


def person_view(events: list[dict]) -> tuple[list[str], list[str]]:
    """(error messages, failure lines `name: reason`) as the tabs show them."""
    errors = [e["message"] for e in events if e["type"] == "error"]
    lines = [f"{Path(f['path']).name}: {f['error']}" for e in events for f in e.get("failures", [])]
    return errors, lines


# ---------- the one place that words system errors


def test_an_os_error_is_worded_with_the_name_only():
    e = FileNotFoundError(errno.ENOENT, "No such file or directory", "/ws/.gradio/3f2a9c/take 1.wav")
    assert str(e).startswith("[Errno 2]")
    assert os_error_message(e) == "Not found: take 1.wav"
    assert os_error_message(e, name="my take.wav") == "Not found: my take.wav"  # an upload's original name
    assert os_error_message(PermissionError(errno.EACCES, "Permission denied", "/ws/sliced")) == (
        "Permission denied: sliced"
    )
    assert os_error_message(OSError(errno.ENOSPC, "No space left on device")) == "No space left on the disk"
    odd = OSError(errno.EXDEV, "Invalid cross-device link", "/a/b.wav")
    assert os_error_message(odd) == "Invalid cross-device link: b.wav"  # the system's words, no number


def test_library_details_lose_errno_and_paths():
    av_text = "[Errno 1094995529] Invalid data found when processing input: '/ws/.gradio/ab12/x.wav'"
    assert plain_detail(av_text) == "Invalid data found when processing input"
    assert (
        plain_detail("Error opening '/ws/uploads/x.wav': Format not recognised.") == "Format not recognised"
    )


def test_a_failure_line_names_the_file_once():
    path = "/ws/.gradio/ab12/clip.wav"
    assert file_reason("clip.wav: the file is empty (0 bytes)", path) == "the file is empty (0 bytes)"
    assert file_reason("Not found: clip.wav", path) == "not found"
    assert file_reason(f"{path}: cannot open", path) == "cannot open"
    assert (
        file_reason(FileNotFoundError(errno.ENOENT, "No such file or directory", path), path) == "not found"
    )
    assert file_reason(RuntimeError("RMS of /ws/x/y/z.wav"), path) == "RMS of z.wav"
    assert FileFailure.of(path, AudioDecodeError("clip.wav: the file is empty (0 bytes)")).error == (
        "the file is empty (0 bytes)"
    )


def test_copying_a_persons_file_says_what_happened_in_words(tmp_path):
    with pytest.raises(WorkspaceFileError) as info, person_files():
        raise FileNotFoundError(
            errno.ENOENT, "No such file or directory", str(tmp_path / ".gradio" / "h" / "a.wav")
        )
    assert str(info.value) == "Not found: a.wav"


def test_a_stage_never_ends_with_pythons_exit_1(tmp_path, capsys):
    events = EventWriter(tmp_path / "ev.jsonl")
    denied = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "sliced"))
    assert stage_failure(denied, events, "slicing") == EXIT_USER_ERROR
    assert stage_failure(KeyError("segments"), events, "slicing") == 3  # a defect: "crashed", log has it
    errors, _ = person_view(events_of(tmp_path / "ev.jsonl"))
    assert errors[0] == "Permission denied: sliced" and "Internal error (KeyError) in slicing" in errors[1]
    assert describe_end(3, False).kind == "crashed" and describe_end(EXIT_USER_ERROR).sentence() == "Failed."


# ---------- audio reading


def test_reading_bad_files_names_them_once_in_words(tmp_path):
    files = bad_inputs(tmp_path)
    for read in (load_audio, audio_info, lambda p: list(open_audio(p, 32000).blocks())):
        with pytest.raises(AudioDecodeError) as missing:
            read(files["missing"])
        assert str(missing.value) == "Not found: clip.wav"
        for case in ("empty", "text"):
            with pytest.raises(AudioDecodeError) as info:
                read(files[case])
            assert str(info.value) == f"clip.wav: {REASONS[case]}"
            assert not LEAKS.search(str(info.value))
    with pytest.raises(AudioInputNotFoundError, match=r"^Not found: clip\.wav$"):
        list_audio_files([files["missing"]])


# ---------- each stage's batch whose only file fails


def test_slicing_a_batch_whose_only_file_fails(tmp_path):
    from tools.slice import main

    for case, f in bad_inputs(tmp_path / "in").items():
        ev = tmp_path / f"slice-{case}.jsonl"
        code = main([str(f), "--out", str(tmp_path / "out"), "--workers", "1", "--events", str(ev)])
        errors, lines = person_view(events_of(ev))
        assert describe_end(code, False).sentence() == "Failed.", case
        if case == "missing":
            assert code == EXIT_USER_ERROR and errors == ["Not found: clip.wav"]
        else:
            assert code == EXIT_ALL_FAILED and lines == [f"clip.wav: {REASONS[case]}"]
        assert not LEAKS.search(" ".join(errors + lines))


def test_the_slicing_tab_says_failed_and_names_the_file_once(tmp_path):
    from tools.slice import SliceParams, slice_inputs
    from ui.slice_tab import summary

    ctx = AppContext.create(tmp_path / "ws", "en_US")
    f = bad_inputs(tmp_path / "in")["text"]
    report = slice_inputs([f], ctx.folder("sliced"), SliceParams(), workers=1)
    text = summary(ctx, report.to_dict(), ctx.folder("sliced"), EXIT_ALL_FAILED)
    assert text.endswith(f"1 files failed:\n- clip.wav: {REASONS['text']}")
    assert text.count("clip.wav") == 1


def test_separating_a_batch_whose_only_file_fails(tmp_path):
    from tests.support.tiny_demucs import build_tiny_model_dir
    from tools.separate import main

    models = build_tiny_model_dir(tmp_path / "models", "tiny")
    for case, f in bad_inputs(tmp_path / "in").items():
        ev = tmp_path / f"sep-{case}.jsonl"
        argv = [str(f), "--out", str(tmp_path / "sep"), "--model", "tiny", "--model-dir", str(models)]
        code = main([*argv, "--in-process", "--events", str(ev)])
        errors, lines = person_view(events_of(ev))
        assert describe_end(code, False).sentence() == "Failed.", case
        if case == "missing":
            assert code == EXIT_USER_ERROR and errors == ["Not found: clip.wav"]
        else:
            assert code == EXIT_ALL_FAILED and lines == [f"clip.wav: {REASONS[case]}"]
        assert not LEAKS.search(" ".join(errors + lines))


def test_transcribing_a_batch_whose_only_file_fails(tmp_path):
    from tests.support.tiny_whisper import build_tiny_whisper
    from tools.asr import main

    model = build_tiny_whisper(tmp_path / "faster-whisper-tiny-test", quantization="int8")
    for case, f in bad_inputs(tmp_path / "in").items():
        if case == "missing":
            continue  # ASR reads a folder: a missing one is below
        ev = tmp_path / f"asr-{case}.jsonl"
        args = ["--model", str(model), "--device", "cpu", "--compute-type", "int8", "--events", str(ev)]
        code = main([str(f.parent), "--out", str(tmp_path / f"{case}.list"), *args])
        errors, lines = person_view(events_of(ev))
        assert code == EXIT_ALL_FAILED and describe_end(code, False).sentence() == "Failed."
        assert lines == [f"clip.wav: {REASONS[case]}"] and not LEAKS.search(" ".join(lines))
    ev = tmp_path / "asr-gone.jsonl"
    code = main([str(tmp_path / "gone"), "--out", str(tmp_path / "g.list"), "--events", str(ev)])
    assert code == EXIT_USER_ERROR and person_view(events_of(ev))[0] == ["Not found: gone"]


def test_converting_a_batch_whose_only_file_fails(tmp_path, capsys):
    from core.audio import main

    files = bad_inputs(tmp_path / "in")
    assert main([str(files["missing"]), "--to", str(tmp_path / "out")]) == EXIT_USER_ERROR
    assert capsys.readouterr().err.strip() == "error: Not found: clip.wav"  # no traceback
    for case in ("empty", "text"):
        assert main([str(files[case]), "--to", str(tmp_path / "out")]) == EXIT_ALL_FAILED
        assert capsys.readouterr().err.strip() == f"error: clip.wav: {REASONS[case]}"
