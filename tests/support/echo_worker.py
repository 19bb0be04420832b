"""A `core.jobs.WorkerProcess` target for tests: echoes items, crashes on "segv", raises on "raise"."""

from __future__ import annotations

import os
import signal
import time

from core.jobs import serve_worker


def _handle(state: str, item: str, progress) -> str:
    if item == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if item == "raise":
        raise ValueError("bad item")
    if item == "sleep":
        time.sleep(30)
    progress(1, 1, item)
    return f"{state}:{item}"


def worker(conn, init_arg: str) -> None:
    serve_worker(conn, lambda arg: arg, _handle, init_arg)
