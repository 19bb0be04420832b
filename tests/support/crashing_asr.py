"""An ASR worker that dies of SIGSEGV on any clip named `crash*` (tests of crash containment)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from core.jobs import serve_worker
from tools import asr


def _handle(state, path, progress):
    if Path(path).name.startswith("crash"):
        os.kill(os.getpid(), signal.SIGSEGV)  # what a native crash in CTranslate2 looks like
    return asr._worker_handle(state, path, progress)


def worker(conn, options) -> None:
    serve_worker(conn, asr._worker_init, _handle, options)
