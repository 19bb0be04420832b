"""Setting Gradio form fields from Playwright so that the value really reaches the app.

Under load (2 shared cores), a field that has just appeared, for example right after an accordion opens,
can take keystrokes before Gradio's handlers are attached: the box shows the number while the component
keeps its old value. These helpers type, then wait until the component itself shows the value (a slider's
range input is bound to the component's value, not to the box), and type again on a miss.
"""

from __future__ import annotations

import contextlib
from typing import Any

ATTEMPTS = 4
WAIT_MS = 10_000  # per attempt


def _css(target: str) -> str:
    """`#id` for a bare elem_id; a selector as given."""
    return target if target[:1] in "#.[" else f"#{target}"


def _same_number(js_value: str, value: float) -> str:
    """A JS test that `js_value` (a string) holds `value` as a number ('35' and '35.0' are the same)."""
    return f"Number({js_value}) === {float(value)!r}"


def set_slider(page: Any, target: str, value: float) -> None:
    """Type `value` into the slider `target` (elem_id or selector) until its range input holds it, then
    check it still holds it a moment later (an update racing the typing would show there)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    css = _css(target)
    box = page.locator(f"{css} input[type=number]")
    box.wait_for(state="visible")
    held = _same_number(f"document.querySelector('{css} input[type=range]').value", value)
    for attempt in range(ATTEMPTS):
        box.fill(str(value))
        box.press("Enter")
        box.blur()
        with contextlib.suppress(PlaywrightTimeout):  # not taken this time: type again
            page.wait_for_function(held, timeout=WAIT_MS)
            page.wait_for_timeout(300)
            if page.evaluate(held):
                return
        if attempt == ATTEMPTS - 1:
            shown = page.evaluate(f"document.querySelector('{css} input[type=range]').value")
            raise AssertionError(f"{css}: the slider holds {shown!r} after typing {value!r} {ATTEMPTS} times")


def set_number(page: Any, target: str, value: float) -> None:
    """Type `value` into the number field `target` (elem_id or selector), press Enter and leave the field
    (Gradio's Number takes its value on input and on blur)."""
    css = _css(target)
    box = page.locator(f"{css} input")
    box.wait_for(state="visible")
    box.fill(str(value))
    box.press("Enter")
    box.blur()
    shown = box.input_value()
    assert float(shown) == float(value), f"{css}: the field holds {shown!r} after typing {value!r}"
