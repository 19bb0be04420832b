"""Running a coroutine from a test, whatever else the test process runs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any


def run_in_own_loop(coro: Coroutine[Any, Any, Any]) -> Any:
    """`asyncio.run(coro)` in a thread of its own: the browser tests' Playwright (sync API) keeps an event
    loop running in the main thread for the whole session, where asyncio.run refuses to start."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as e:  # re-raised in the test's thread
            box["error"] = e

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")
