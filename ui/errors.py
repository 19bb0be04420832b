"""How every tab shows a failure: a person's mistake as its own message, anything else as an internal error.

A handler wraps the library call in ``with shown_in_toast(_):``. A ``UserError`` (wrong input, missing
model, unreadable file: every project error class derives from it) becomes a ``gr.Error`` with its
message, and the server log gets one line (no traceback: the person's input is not a defect). Any other
exception is a defect: it is logged with its traceback, once, and the toast says so, so a CUDA
out-of-memory or a bug is never disguised as the user's mistake. ``gr.Error`` raised inside passes
through unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import gradio as gr

from core.errors import UserError

logger = logging.getLogger(__name__)

INTERNAL_ERROR = "Internal error ({kind}): this is a defect, not your input. The server log has the details."


def internal_error_message(error: BaseException, translate: Callable[[str], str] = str) -> str:
    return translate(INTERNAL_ERROR).format(kind=type(error).__name__)


@contextmanager
def shown_in_toast(translate: Callable[[str], str] = str, what: str = "a handler") -> Iterator[None]:
    """Turn exceptions raised in the block into the toast a person sees (see the module docstring)."""
    try:
        yield
    except gr.Error:
        raise
    except UserError as e:
        logger.info("%s refused: %s", what, e)
        raise gr.Error(str(e), print_exception=False) from e
    except Exception as e:
        logger.exception("internal error in %s", what)  # Gradio need not print it a second time
        raise gr.Error(internal_error_message(e, translate), print_exception=False) from e
