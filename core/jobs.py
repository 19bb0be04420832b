"""Progress reporting for library functions, and long jobs run as subprocesses.

Library functions take a `progress: ProgressFn` callable (default: log lines) and a
`should_stop: StopFn` (default: never), so the same code serves the CLI, the tests and the UI
without importing gradio.

The UI starts long jobs with `Job.start([...argv...])`: a child `python -m tools.<stage> ...
--events events.jsonl` whose stdout/stderr go to `log.txt` in the job folder. The child appends
one JSON object per line to the events file (`EventWriter`); the parent tails it (`Job.poll`).
Stopping a job terminates the child process group, so nothing keeps running in the background.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]  # (done, total, message)
StopFn = Callable[[], bool]


def log_progress(done: int, total: int, message: str = "") -> None:
    logger.info("[%d/%d] %s", done, total, message)


# Exit codes of every job (stages, formatting, trainers, samples): 1 = some files failed (the rest ran),
# 2 = a person's mistake (message on stderr), 130 = stopped (SIGTERM handled). A negative code from
# subprocess means the process was killed by that signal.
EXIT_OK, EXIT_SOME_FAILED, EXIT_USER_ERROR, EXIT_STOPPED = 0, 1, 2, 130


def never_stop() -> bool:
    return False


class JobCancelled(RuntimeError):
    """Raised inside a library function when `should_stop()` turned true."""


@dataclass
class FileFailure:
    path: str
    error: str


@dataclass
class BatchReport:
    """What a stage did to many files: each failure is reported and the rest go on."""

    outputs: list[str] = field(default_factory=list)
    failures: list[FileFailure] = field(default_factory=list)
    cancelled: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "outputs": list(self.outputs),
            "failures": [{"path": f.path, "error": f.error} for f in self.failures],
            "cancelled": self.cancelled,
        }


class EventWriter:
    """Append JSON-lines events for a parent process to read (one flush per event)."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, type_: str, **data: Any) -> None:
        if not self.path:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"type": type_, "time": time.time(), **data}, ensure_ascii=False) + "\n")

    def progress(self, done: int, total: int, message: str = "") -> None:
        self.emit("progress", done=done, total=total, message=message)
        log_progress(done, total, message)


# OpenMP threads that spin while waiting thrash when the cores are shared (another job, the web UI, a
# browser): on 2 busy cores a tiny S2 training step took 50 s instead of 4 s. Passive waiting costs
# little on a quiet machine. Applied to job children and to the web UI process (before torch loads).
OPENMP_ENV: dict[str, str] = {"OMP_WAIT_POLICY": "PASSIVE"}


def runtime_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) with OPENMP_ENV where the user set nothing."""
    env = dict(os.environ if base is None else base)
    for key, value in OPENMP_ENV.items():
        env.setdefault(key, value)
    return env


@dataclass
class Job:
    """A running child process and the folder holding its events and log."""

    argv: list[str]
    job_dir: Path
    process: subprocess.Popen
    _offset: int = 0

    @property
    def events_path(self) -> Path:
        return self.job_dir / "events.jsonl"

    @property
    def log_path(self) -> Path:
        return self.job_dir / "log.txt"

    @classmethod
    def start(cls, module: str, args: list[str], job_dir: str | Path, cwd: str | Path | None = None) -> Job:
        job_dir = Path(job_dir)
        job_dir.mkdir(parents=True, exist_ok=True)
        events = job_dir / "events.jsonl"
        events.unlink(missing_ok=True)
        argv = [sys.executable, "-m", module, *args, "--events", str(events)]
        (job_dir / "argv.json").write_text(json.dumps(argv, ensure_ascii=False, indent=1), encoding="utf-8")
        log = open(job_dir / "log.txt", "ab")
        repo_root = Path(__file__).resolve().parent.parent
        process = subprocess.Popen(
            argv,
            cwd=str(cwd or repo_root),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=runtime_env(),
            start_new_session=True,  # its own process group, so stop() also ends its workers
        )
        log.close()
        return cls(argv=argv, job_dir=job_dir, process=process)

    def poll(self) -> list[dict[str, Any]]:
        """New events since the last call (complete lines only)."""
        if not self.events_path.exists():
            return []
        with open(self.events_path, encoding="utf-8") as f:
            f.seek(self._offset)
            chunk = f.read()
        complete, _, _ = chunk.rpartition("\n")
        if not complete:
            return []
        self._offset += len(complete.encode("utf-8")) + 1
        events = []
        for line in complete.split("\n"):
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                logger.warning("ignoring a malformed event line: %r", line[:200])
        return events

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace: float = 3.0) -> None:
        """Terminate the child and its process group; kill it if it does not exit in `grace` s."""
        if not self.running():
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=grace)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, max_chars: int = 4000) -> str:
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return text[-max_chars:]

    def follow(self, interval: float = 0.25) -> Iterator[dict[str, Any]]:
        """Yield events until the child exits; stops the child if the consumer goes away."""
        try:
            while True:
                alive = self.running()
                yield from self.poll()
                if not alive:
                    break
                time.sleep(interval)
            yield from self.poll()
            yield {"type": "exit", "returncode": self.process.returncode}
        finally:
            self.stop()
