"""How every tab shows a failure: a person's mistake in the tab's status line, anything else as an internal error.

Two layers, so that a handler stays a plain function and the registration decides where messages go:

- Inside a handler, ``with shown_in_toast(_):`` around the library call. A ``UserError`` (wrong input,
  missing model, unreadable file: every project error class derives from it) becomes a ``UserMessage``
  (a ``gr.Error`` carrying the message), and the server log gets one line (no traceback: the person's
  input is not a defect). Any other exception is a defect: it is logged with its traceback, once, and the
  toast says so, so a CUDA out-of-memory or a bug is never disguised as the user's mistake. A
  ``gr.Error`` raised inside passes through unchanged.
- At the registration, ``in_status(fn, status)`` (``ui.wiring.connect`` applies it to every handler it
  connects). A person's mistake -- a ``UserMessage`` or a bare ``UserError`` -- is shown as the text
  of the tab's ``status`` component and as a warning toast, and every other output is left as it was
  (``gr.skip()``). Raising ``gr.Error`` would instead mark *every* output of the event with a red
  "Error" badge, which in the Label editor covers the rows and blocks their controls. Internal errors
  still end as ``gr.Error`` (logged once, with their traceback).

Applying it where a tab registers its own events is one line:

    button.click(in_status(bound(start, tc), page.status_md), inputs=..., outputs=[..., page.status_md])
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import gradio as gr

from core.errors import UserError

logger = logging.getLogger(__name__)

INTERNAL_ERROR = "Internal error ({kind}): this is a defect, not your input. The server log has the details."


class UserMessage(gr.Error):
    """The message of a person's mistake, raised by `shown_in_toast` (`in_status` shows it in the status line)."""


def internal_error_message(error: BaseException, translate: Callable[[str], str] = str) -> str:
    return translate(INTERNAL_ERROR).format(kind=type(error).__name__)


@contextmanager
def shown_in_toast(translate: Callable[[str], str] = str, what: str = "a handler") -> Iterator[None]:
    """Turn exceptions raised in the block into the message a person sees (see the module docstring)."""
    try:
        yield
    except gr.Error:
        raise
    except UserError as e:
        logger.info("%s refused: %s", what, e)
        raise UserMessage(str(e), print_exception=False) from e
    except Exception as e:
        logger.exception("internal error in %s", what)  # Gradio need not print it a second time
        raise gr.Error(internal_error_message(e, translate), print_exception=False) from e


def status_update(status: Any, message: str) -> Any:
    """What an event returns to show `message` in `status` and leave every other output as it was."""
    if status is None:
        return gr.skip()
    return {status: message}


def _refused(error: Exception, name: str) -> str:
    """The person's message of a refused event (logged as one line when no `shown_in_toast` did)."""
    if isinstance(error, UserMessage):
        return error.message
    logger.info("%s refused: %s", name, error)
    return str(error)


def _internal(error: Exception, name: str, translate: Callable[[str], str]) -> gr.Error:
    logger.error("internal error in %s", name, exc_info=error)
    return gr.Error(internal_error_message(error, translate), print_exception=False)


def _settle(error: Exception, name: str, status: Any, translate: Callable[[str], str]) -> Any:
    """What an `in_status` wrapper does with an exception its handler raised: a person's mistake (a
    `UserMessage` or a bare `UserError`) becomes a warning toast and the update that shows it in `status`
    (returned, for the wrapper to return or yield); another `gr.Error` is raised again unchanged; any
    other exception is a defect, raised as the internal-error `gr.Error` (logged once, with its traceback)."""
    if isinstance(error, (UserMessage, UserError)):
        message = _refused(error, name)
        gr.Warning(message)
        return status_update(status, message)
    if isinstance(error, gr.Error):
        raise error
    raise _internal(error, name, translate) from error


def in_status(
    fn: Callable[..., Any], status: Any = None, translate: Callable[[str], str] = str
) -> Callable[..., Any]:
    """`fn` (a function or a generator function) whose refusals show in `status` and a warning toast.

    `status` is the output component that shows the message (None: only the toast); it must be one of
    the event's outputs. A generator that already yielded keeps its other outputs as they were too.
    """
    name = getattr(fn, "__name__", "handler")

    def is_kind(check: Callable[[Any], bool]) -> bool:
        return check(fn) or check(getattr(fn, "func", None))  # a functools.partial: its function

    if is_kind(inspect.isasyncgenfunction):

        @functools.wraps(fn)
        async def run_async_generator(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            try:
                async for update in fn(*args, **kwargs):
                    yield update
            except Exception as e:
                yield _settle(e, name, status, translate)

        wrapped_async: Callable[..., Any] = run_async_generator
        wrapped_async.__name__ = name
        return wrapped_async
    if is_kind(inspect.iscoroutinefunction):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except Exception as e:
                return _settle(e, name, status, translate)

        run_async.__name__ = name
        return run_async
    if is_kind(inspect.isgeneratorfunction):

        @functools.wraps(fn)
        def run_generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except Exception as e:
                yield _settle(e, name, status, translate)

        wrapped: Callable[..., Any] = run_generator
    else:

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                return _settle(e, name, status, translate)

        wrapped = run
    wrapped.__name__ = name  # Gradio names the event (and its API) after it
    return wrapped
