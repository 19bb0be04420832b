"""ui.errors: a person's mistake is shown as its message; anything else as an internal error, logged."""

from __future__ import annotations

import logging

import gradio as gr
import pytest

from core.audio import AudioDecodeError
from tests.support.aio import run_in_own_loop
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


# ---------- in_status: a refusal goes to the status line and a warning, other outputs are skipped


def test_a_refusal_shows_in_the_status_output_and_skips_the_others(caplog):
    from ui.errors import UserMessage, in_status

    status = gr.Textbox()

    def handler(name: str):
        with shown_in_toast(what="slicing start"):
            raise AudioDecodeError(f"{name}: not a readable audio file")

    with caplog.at_level(logging.INFO, logger="ui.errors"), pytest.warns(UserWarning, match="not a readable"):
        out = in_status(handler, status)("clip.wav")
    assert out == {status: "clip.wav: not a readable audio file"}  # Gradio skips the outputs not named
    assert [r.getMessage() for r in caplog.records] == [
        "slicing start refused: clip.wav: not a readable audio file"
    ]
    assert issubclass(UserMessage, gr.Error)


def test_a_bare_user_error_and_a_generator_are_refused_the_same_way(caplog):
    from ui.errors import in_status

    status = gr.Markdown()

    def plain():
        raise AudioDecodeError("bad.wav: empty")

    def stream():
        yield {status: "Starting…"}
        raise AudioDecodeError("bad.wav: empty")

    with caplog.at_level(logging.INFO, logger="ui.errors"), pytest.warns(UserWarning):
        assert in_status(plain, status)() == {status: "bad.wav: empty"}
        assert list(in_status(stream, status)()) == [{status: "Starting…"}, {status: "bad.wav: empty"}]
    assert all(r.exc_info is None for r in caplog.records)
    assert "plain refused: bad.wav: empty" in caplog.text


def test_without_a_status_only_the_toast_shows_and_every_output_is_skipped():
    from ui.errors import in_status

    def plain():
        raise AudioDecodeError("bad.wav: empty")

    with pytest.warns(UserWarning, match="bad.wav: empty"):
        assert in_status(plain)() == gr.skip()


def test_an_internal_error_is_still_a_gradio_error_logged_once_with_its_traceback(caplog):
    from ui.errors import in_status

    def broken():
        raise KeyError("x")

    with caplog.at_level(logging.ERROR, logger="ui.errors"), pytest.raises(gr.Error) as info:
        in_status(broken, gr.Textbox())()
    assert "Internal error (KeyError)" in info.value.message
    (record,) = caplog.records
    assert record.exc_info is not None


def test_connect_wraps_the_handler_and_checks_the_status_is_an_output(tmp_path):
    from ui.context import AppContext
    from ui.wiring import connect

    ctx = AppContext.create(tmp_path)

    def handler(ctx, value):
        raise AudioDecodeError(f"{value}: empty")

    with gr.Blocks() as demo:
        box, status = gr.Textbox(), gr.Textbox()
        with pytest.raises(TypeError, match="not one of its outputs"):
            connect(box.submit, ctx, handler, {"value": box}, [box], status=status)
        connect(box.submit, ctx, handler, {"value": box}, [box, status], status=status)
    (fn,) = [f.fn for f in demo.fns.values()]
    assert fn.__name__ == "handler"
    with pytest.warns(UserWarning, match="a.wav: empty"):
        assert fn("a.wav") == {status: "a.wav: empty"}


def test_async_handlers_are_refused_the_same_way():
    import inspect

    from ui.errors import in_status

    status = gr.Markdown()

    async def stream(values, request=None):
        yield {status: "Starting…"}
        raise AudioDecodeError("ref.wav: too short")

    async def once():
        raise AudioDecodeError("ref.wav: too short")

    wrapped = in_status(stream, status)
    assert inspect.isasyncgenfunction(wrapped) and "request" in inspect.signature(wrapped).parameters

    async def collect():
        return [u async for u in wrapped({})], await in_status(once, status)()

    with pytest.warns(UserWarning, match="too short"):
        streamed, single = run_in_own_loop(collect())
    assert streamed == [{status: "Starting…"}, {status: "ref.wav: too short"}]
    assert single == {status: "ref.wav: too short"}


@pytest.mark.parametrize("kind", ["function", "generator", "coroutine", "async generator"])
def test_every_kind_of_handler_passes_gradio_errors_and_turns_defects_into_internal_errors(kind, caplog):
    from ui.errors import in_status

    status = gr.Markdown()

    def make(error: Exception):
        def function():
            raise error

        def generator():
            yield {status: "Starting…"}
            raise error

        async def coroutine():
            raise error

        async def async_generator():
            yield {status: "Starting…"}
            raise error

        return {"function": function, "generator": generator, "coroutine": coroutine}.get(
            kind, async_generator
        )

    def call(fn):
        wrapped = in_status(fn, status)
        if kind == "function":
            return [wrapped()]
        if kind == "generator":
            return list(wrapped())

        async def collect():
            if kind == "coroutine":
                return [await wrapped()]
            return [u async for u in wrapped()]

        return run_in_own_loop(collect())

    with pytest.raises(gr.Error) as info:
        call(make(gr.Error("Choose a file")))
    assert info.value.message == "Choose a file" and not isinstance(info.value.__cause__, Exception)
    with caplog.at_level(logging.ERROR, logger="ui.errors"), pytest.raises(gr.Error) as info:
        call(make(ValueError("bad shape")))
    assert info.value.message.startswith("Internal error (ValueError)")
    assert isinstance(info.value.__cause__, ValueError)
    (record,) = caplog.records
    assert record.exc_info is not None and "bad shape" in caplog.text
