"""A slicing task that dies of SIGSEGV on any file named `crash*` (tests of crash containment)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tools.slice import _slice_one


def task(job):
    if Path(job[0]).name.startswith("crash"):
        os.kill(os.getpid(), signal.SIGSEGV)  # what a native crash in a decoder looks like
    return _slice_one(job)
