"""A separation worker that dies of SIGSEGV on any file named `crash*` (tests of crash containment)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from core.jobs import serve_worker
from tools import separate


def _crash(*_args) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)  # what a native crash in a decoder or a kernel looks like


def _handle(model, item, progress):
    # Crash at the first window's progress: the temp folder and half-written stems exist by then.
    crash = Path(item[0]).name.startswith("crash")
    return separate._worker_handle(model, item, _crash if crash else progress)


def worker(conn, options) -> None:
    serve_worker(conn, separate._worker_init, _handle, options)
