"""ui.errors: a person's mistake is shown as its message; anything else as an internal error, logged."""

from __future__ import annotations

import logging

import gradio as gr
import pytest

from core.audio import AudioDecodeError
from ui.errors import shown_in_toast


def test_user_error_is_shown_as_its_message():
    with pytest.raises(gr.Error) as info, shown_in_toast():
        raise AudioDecodeError("clip.wav: not a readable audio file")
    assert info.value.message == "clip.wav: not a readable audio file"


def test_unexpected_error_is_an_internal_error_with_its_traceback_logged(caplog):
    with caplog.at_level(logging.ERROR, logger="ui.errors"):
        with pytest.raises(gr.Error) as info, shown_in_toast(what="synthesis"):
            raise RuntimeError("CUDA out of memory")
    assert "Internal error (RuntimeError)" in info.value.message and "CUDA" not in info.value.message
    assert "internal error in synthesis" in caplog.text and "CUDA out of memory" in caplog.text
    assert caplog.records[0].exc_info is not None


def test_gradio_errors_pass_through_and_translation_is_applied():
    with pytest.raises(gr.Error) as info, shown_in_toast():
        raise gr.Error("Choose a file")
    assert info.value.message == "Choose a file"
    with pytest.raises(gr.Error) as info, shown_in_toast(lambda s: "INTERNAL {kind}"):
        raise OSError(5, "Input/output error")
    assert info.value.message == "INTERNAL OSError"


def test_a_users_mistake_is_logged_as_one_line_without_traceback(caplog):
    with caplog.at_level(logging.INFO, logger="ui.errors"):
        with pytest.raises(gr.Error) as info, shown_in_toast(what="slicing"):
            raise AudioDecodeError("clip.wav: not a readable audio file")
    assert info.value.print_exception is False  # Gradio prints no traceback for it either
    (record,) = caplog.records
    assert record.levelno == logging.INFO and record.exc_info is None
    assert record.getMessage() == "slicing refused: clip.wav: not a readable audio file"
