"""Progress reporting for library functions, and long jobs run as subprocesses.

Library functions take a `progress: ProgressFn` callable (default: log lines) and a
`should_stop: StopFn` (default: never), so the same code serves the CLI, the tests and the UI
without importing gradio.

The UI starts long jobs with `Job.start([...argv...])`: a child `python -m tools.<stage> ...
--events events.jsonl` whose stdout/stderr go to `log.txt` in the job folder. The child appends
one JSON object per line to the events file (`EventWriter`); the parent tails it (`Job.poll`).
Stopping a job terminates the child process group, so nothing keeps running in the background.
A job outlives whoever follows it (a page that closes or reloads): its folder holds `job.json` (pid,
module, argv), `exit.json` (the exit code, written by the server when the child ends) and a stop marker,
so `Job.attach` / `latest_job` give a later page the same job to follow or stop.

How a job ended is told from its exit code *and* whether a stop was asked (`Job.stop_requested`):
`describe_end` gives stopped / done / some failed / all failed / user error / killed for memory
(SIGKILL that nobody asked for) / crashed (any other signal or code, named). `WorkerProcess` runs a
stage's files in a spawned child that is restarted after a native crash, so one file that kills
its process fails alone and the batch goes on.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UserError, file_reason, os_error_message

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]  # (done, total, message)
StopFn = Callable[[], bool]


def log_progress(done: int, total: int, message: str = "") -> None:
    logger.info("[%d/%d] %s", done, total, message)


# Exit codes of every job (stages, formatting, trainers, samples): 1 = some files failed (the rest ran),
# 2 = a person's mistake (message on stderr), 4 = every file failed (stages), 130 = stopped (SIGTERM
# handled). A negative code from subprocess means the process was killed by that signal.
EXIT_OK, EXIT_SOME_FAILED, EXIT_USER_ERROR, EXIT_ALL_FAILED, EXIT_STOPPED = 0, 1, 2, 4, 130


def batch_exit_code(report: BatchReport) -> int:
    """The exit code of a stage that ran a batch: stopped, all failed, some failed or fine."""
    if report.cancelled:
        return EXIT_STOPPED
    if report.failures and not report.outputs:
        return EXIT_ALL_FAILED
    return EXIT_SOME_FAILED if report.failures else EXIT_OK


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def memory_limit_bytes() -> int | None:
    """This machine's memory limit for jobs: the cgroup's (v2, then v1), else the physical memory."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            value = Path(path).read_text().strip()
            if value != "max" and int(value) < 1 << 60:  # v1 writes a huge number for "no limit"
                return int(value)
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return None


@dataclass(frozen=True)
class JobEnd:
    """How a job ended. `kind`: done, some_failed, all_failed, user_error, stopped, out_of_memory, crashed."""

    kind: str
    code: int
    signal: str = ""  # the signal's name when the process was killed by one
    memory_limit: int | None = None  # bytes, for out_of_memory when known

    @property
    def failed(self) -> bool:
        return self.kind in ("all_failed", "user_error", "out_of_memory", "crashed")

    @property
    def unexpected(self) -> bool:
        """Neither a normal end, nor a person's mistake, nor a stop: its log says why."""
        return self.kind in ("out_of_memory", "crashed")

    def sentence(self) -> str:
        """One English line (CLIs, logs); the UI translates the same cases in `ui.job_ui`."""
        if self.kind == "done":
            return "Done."
        if self.kind == "some_failed":
            return "Done, some files failed."
        if self.kind == "stopped":
            return "Stopped."
        if self.kind in ("all_failed", "user_error"):
            return "Failed."
        if self.kind == "out_of_memory":
            limit = f" (limit {self.memory_limit / 2**30:.1f} GiB)" if self.memory_limit else ""
            return f"Failed: the job was killed (SIGKILL) without a stop request, most likely for running out of memory{limit}."
        if self.signal:
            return f"Failed: the job crashed (killed by {self.signal}, exit code {self.code})."
        return f"Failed: the job crashed (exit code {self.code})."


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def describe_end(code: int, stop_requested: bool | None = None) -> JobEnd:
    """Classify an exit code. `stop_requested`: whether this app asked the job to stop (None: unknown,
    then only SIGTERM/SIGINT/SIGHUP and 130 count as a stop). A stop that came after the job had
    finished by itself does not hide how it finished; a SIGKILL nobody asked for is told as memory."""
    if code == EXIT_OK:
        return JobEnd("done", code)
    if code == EXIT_SOME_FAILED and not stop_requested:
        return JobEnd("some_failed", code)
    if code == EXIT_ALL_FAILED:
        return JobEnd("all_failed", code)
    if code == EXIT_USER_ERROR:
        return JobEnd("user_error", code)
    if stop_requested:
        return JobEnd("stopped", code, signal_name(-code) if code < 0 else "")
    if code == EXIT_STOPPED and stop_requested is None:
        return JobEnd("stopped", code)
    if code < 0:
        name = signal_name(-code)
        if -code == signal.SIGKILL:
            return JobEnd("out_of_memory", code, name, memory_limit_bytes())
        if stop_requested is None and -code in _STOP_SIGNALS:
            return JobEnd("stopped", code, name)
        return JobEnd("crashed", code, name)
    if code == EXIT_STOPPED:  # 130 without a stop from here: a SIGTERM/SIGINT from outside
        return JobEnd("crashed", code, "SIGTERM or SIGINT from outside the app")
    if code in (128 + signal.SIGKILL, 128 + signal.SIGSEGV):  # a shell's way of saying "killed by"
        return describe_end(-(code - 128), stop_requested)
    return JobEnd("crashed", code)


def never_stop() -> bool:
    return False


class JobCancelled(RuntimeError):
    """Raised inside a library function when `should_stop()` turned true."""


@dataclass
class FileFailure:
    """One file of a batch that failed: its path, and the reason as a person reads it after its name."""

    path: str
    error: str

    @classmethod
    def of(cls, path: str | Path, error: BaseException | str) -> FileFailure:
        """The failure of `path`, its reason worded once (`core.errors.file_reason`: the file's name not
        repeated, no errno, no internal path), for the line `name: reason` every stage and tab prints."""
        return cls(str(path), file_reason(error, path))


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


EXIT_INTERNAL_ERROR = 3  # a stage CLI's defect (an exception nobody expected): its log has the traceback


def stage_failure(error: BaseException, events: EventWriter, stage: str) -> int:
    """End a stage CLI on an exception its own `except` clauses did not expect; returns the exit code.

    An `OSError` about the person's files (no space, no permission, a folder gone) is theirs to fix:
    its message in words (`core.errors.os_error_message`), exit 2. Anything else is a defect: the
    traceback goes to the job's log, the event says so, exit 3 ("crashed"), never Python's own exit 1,
    which reads as "Done, some files failed.".
    """
    if isinstance(error, UserError) or (isinstance(error, OSError) and error.errno is not None):
        message = str(error) if isinstance(error, UserError) else os_error_message(error)
        events.emit("error", message=message)
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    logger.error("%s failed with an internal error", stage, exc_info=error)
    message = f"Internal error ({type(error).__name__}) in {stage}: a defect, not your input; the job's log has the details."
    events.emit("error", message=message)
    print(f"error: {message}", file=sys.stderr)
    return EXIT_INTERNAL_ERROR


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
    stop_requested: bool = False  # stop() was called while the child still ran

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
        (job_dir / JOB_RECORD).unlink(missing_ok=True)
        (job_dir / EXIT_RECORD).unlink(missing_ok=True)
        (job_dir / STOP_RECORD).unlink(missing_ok=True)
        record = {"pid": process.pid, "module": module, "argv": argv, "started": time.time()}
        (job_dir / JOB_RECORD).write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
        # The exit code is written by the server, not by whoever follows the job: a page that went away
        # (closed, reloaded) leaves it running, and the page that reopens the tab reads how it ended.
        threading.Thread(target=_record_exit, args=(process, job_dir), daemon=True, name="job-exit").start()
        return cls(argv=argv, job_dir=job_dir, process=process)

    @classmethod
    def attach(cls, job_dir: str | Path) -> Job | None:
        """The job started in `job_dir` (by this server or an earlier one), to follow or stop from a page
        that did not start it; None when the folder holds no job record."""
        job_dir = Path(job_dir)
        try:
            record = json.loads((job_dir / JOB_RECORD).read_text(encoding="utf-8"))
            pid, module, argv = int(record["pid"]), str(record["module"]), list(record["argv"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        job = cls(argv=argv, job_dir=job_dir, process=RecordedProcess(pid, module, job_dir))
        job.stop_requested = (job_dir / STOP_RECORD).exists()
        return job

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
        self.stop_requested = True
        with contextlib.suppress(OSError):  # a page that reopens the tab says "Stopped." too
            (self.job_dir / STOP_RECORD).write_text(str(time.time()), encoding="utf-8")
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
        with open(self.log_path, "rb") as f:  # only the end: a long job's log can be large
            f.seek(max(0, f.seek(0, os.SEEK_END) - max_chars))
            return f.read().decode("utf-8", errors="replace")[-max_chars:]

    def last_lines(self, n: int = 12) -> str:
        """The last `n` non-empty lines of the log (what a failure message shows)."""
        lines = [line for line in self.log_tail(8000).splitlines() if line.strip()]
        return "\n".join(lines[-n:])

    def end(self) -> JobEnd:
        """How the finished child ended (see `describe_end`)."""
        code = self.process.returncode
        if code is None:
            raise RuntimeError("the job is still running")
        return describe_end(code, self.stop_requested)

    def follow(self, interval: float = 0.25) -> Iterator[dict[str, Any]]:
        """Yield events until the child exits, then an "exit" event (returncode, stopped).

        A consumer that goes away (the page closed or reloaded: Gradio closes its generator) leaves the
        job running, as a training run does: only Stop ends it. `latest_job` finds it again.
        """
        while True:
            alive = self.running()
            yield from self.poll()
            if not alive:
                break
            time.sleep(interval)
        yield from self.poll()
        self.stop_requested = self.stop_requested or (self.job_dir / STOP_RECORD).exists()
        yield {"type": "exit", "returncode": self.process.returncode, "stopped": self.stop_requested}


JOB_RECORD = "job.json"  # in a job's folder: pid, module, argv, start time (`Job.attach` reads it)
EXIT_RECORD = "exit.json"  # written by the server when the child ends: its exit code
STOP_RECORD = "stop_requested"  # written by `Job.stop`: the end was asked for


def _record_exit(process: subprocess.Popen, job_dir: Path) -> None:
    """Wait for the child (no zombie is left) and note its exit code in the job's folder."""
    code = process.wait()
    with contextlib.suppress(OSError):
        payload = json.dumps({"returncode": code, "ended": time.time()})
        tmp = job_dir / f".{EXIT_RECORD}.tmp"
        tmp.write_text(payload, encoding="utf-8")
        os.replace(tmp, job_dir / EXIT_RECORD)  # a reader never sees half a record


def process_runs(pid: int, module: str) -> bool:
    """True while `pid` runs `python -m module` (a reused pid running something else is not ours).

    Reads `/proc/<pid>/cmdline` and `/proc/<pid>/stat`: a zombie (ended, not yet reaped) has ended."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and module.encode() in cmdline


ENDED = -1000  # PidProcess.poll() after the end of a process whose exit code cannot be known


class PidProcess:
    """The part of `subprocess.Popen` that `Job` uses, for a process this server did not start, known
    only by its pid and module: running while `process_runs`; its exit code is unknown (`returncode`
    stays None, `poll()` then gives ENDED: `Job.running()` only asks whether it is None)."""

    def __init__(self, pid: int, module: str) -> None:
        self.pid, self.module = pid, module
        self.returncode: int | None = None  # unknown for a non-child: read from its events

    def poll(self) -> int | None:
        """None while it runs, then ENDED."""
        return None if process_runs(self.pid, self.module) else ENDED

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until `poll()` says it ended (TimeoutExpired after `timeout` s); the known exit code."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.module, timeout)
            time.sleep(0.1)
        return self.returncode


class RecordedProcess(PidProcess):
    """A `PidProcess` for a job known from its folder (`Job.attach`), whose exit code is known.

    Running while its pid runs the job's module and no exit record exists; then `returncode` is the
    recorded exit code, or, when no server was there to record it (the server restarted meanwhile),
    what its events say: a result means done (0), an error a person's mistake (2), else crashed (3).
    """

    def __init__(self, pid: int, module: str, job_dir: Path) -> None:
        super().__init__(pid, module)
        self.job_dir = job_dir

    def _recorded(self) -> int | None:
        try:
            return int(json.loads((self.job_dir / EXIT_RECORD).read_text(encoding="utf-8"))["returncode"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _from_events(self) -> int:
        kinds = set()
        with contextlib.suppress(OSError):
            for line in (self.job_dir / "events.jsonl").read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(ValueError, AttributeError):
                    kinds.add(json.loads(line).get("type"))
        if "error" in kinds:
            return EXIT_USER_ERROR
        return EXIT_OK if kinds & {"result", "done"} else EXIT_INTERNAL_ERROR

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        code = self._recorded()
        if code is None and process_runs(self.pid, self.module):
            return None
        deadline = time.monotonic() + 1.0  # the server's watcher writes the record just after the exit
        while code is None and time.monotonic() < deadline:
            time.sleep(0.05)
            code = self._recorded()
        self.returncode = code if code is not None else self._from_events()
        return self.returncode


def latest_job(jobs_root: str | Path, prefix: str, within_s: float | None = 3600.0) -> Job | None:
    """The newest job in `jobs_root/<prefix>-*` (a tab's own), if it still runs or ended less than
    `within_s` seconds ago (None: however long ago): what a page reopening that tab shows."""
    root = Path(jobs_root)
    if not root.is_dir():
        return None
    folders = []
    for folder in root.glob(f"{prefix}-*"):
        with contextlib.suppress(OSError):
            folders.append(((folder / JOB_RECORD).stat().st_mtime, folder))
    for _mtime, folder in sorted(folders, reverse=True)[:1]:
        job = Job.attach(folder)
        if job is None:
            return None
        if job.running() or within_s is None:
            return job
        with contextlib.suppress(OSError):
            ended = (folder / EXIT_RECORD).stat().st_mtime
            if time.time() - ended < within_s:
                return job
    return None


# ---------------------------------------------------------------- a worker process that survives crashes


class WorkerCrashed(RuntimeError):
    """The worker process died while handling an item (a native crash, a kill): the item failed."""

    def __init__(self, code: int | None, pid: int | None = None) -> None:
        self.code, self.pid = code, pid  # pid: to find the temporaries the dead worker left
        if code is not None and code < 0:
            how = f"killed by {signal_name(-code)}"
            if -code == signal.SIGKILL:
                limit = memory_limit_bytes()
                how += ", most likely for running out of memory" + (
                    f" (limit {limit / 2**30:.1f} GiB)" if limit else ""
                )
        else:
            how = f"exit code {code}"
        super().__init__(f"the worker process crashed on this file ({how}); the other files go on")


def _raise_stop(signum: int, frame: object) -> None:
    # Once: the parent's own stop sends a second SIGTERM, which must not cut the cleanup (temp files
    # removed in `finally`) that the first one started; the parent kills a child that does not leave.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise JobCancelled("stopped")


def serve_worker(conn: Any, init: Callable[[Any], Any], handle: Callable[..., Any], init_arg: Any) -> None:
    """Child side of `WorkerProcess`: `state = init(init_arg)` once, then `handle(state, item, progress)`
    for each item received; replies ("ready"), ("fatal", exc), ("progress", d, t, m), ("done", value),
    ("error", exc) or ("cancelled",). A SIGTERM (the job's stop) unwinds as JobCancelled."""
    faulthandler.enable()  # a native crash leaves its Python stack in the job's log
    signal.signal(signal.SIGTERM, _raise_stop)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        _serve(conn, init, handle, init_arg)
    finally:  # leaving: a late SIGTERM must end the process quietly, not raise in interpreter shutdown
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _send(conn: Any, message: tuple) -> None:
    """Send to the parent; a parent that has gone (stopped, closed the pipe) means: stop here."""
    try:
        conn.send(message)
    except (BrokenPipeError, EOFError, OSError) as e:
        raise JobCancelled("the parent went away") from e


def _serve(conn: Any, init: Callable[[Any], Any], handle: Callable[..., Any], init_arg: Any) -> None:
    try:
        state = init(init_arg)
    except JobCancelled:
        return
    except Exception as e:  # the parent re-raises it: a missing model is the person's to fix
        with contextlib.suppress(JobCancelled):
            _send(conn, ("fatal", _picklable(e)))
        return
    with contextlib.suppress(JobCancelled):
        _send(conn, ("ready",))
    while True:
        try:
            item = conn.recv()
        except (EOFError, JobCancelled):  # the parent went away, or the job was stopped while idle
            return
        if item is None:
            return
        try:
            value = handle(state, item, lambda d, t, m: _send(conn, ("progress", d, t, m)))
            reply = ("done", value)
        except JobCancelled:
            with contextlib.suppress(JobCancelled):
                _send(conn, ("cancelled",))
            return
        except Exception as e:  # one file's error is reported; the worker serves the next one
            reply = ("error", _picklable(e))
        try:
            _send(conn, reply)
        except JobCancelled:
            return


def _picklable(e: BaseException) -> BaseException:
    import pickle

    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:  # an exception type with a custom __init__: keep its message
        return RuntimeError(f"{type(e).__name__}: {e}")


class WorkerProcess:
    """Parent side: items run one at a time in a spawned child; a crash fails that item only.

    `target` is a module-level function `(conn, init_arg) -> None` that calls `serve_worker`. The
    child is started on first use and again after a crash (its `init`, e.g. loading a model, runs
    again). `run` returns the handler's value, re-raises its exception, raises `WorkerCrashed` when
    the child died and `JobCancelled` when `should_stop()` turned true (the child is then ended).
    """

    def __init__(self, target: Callable[[Any, Any], None], init_arg: Any, poll: float = 0.2) -> None:
        self.target, self.init_arg, self.poll = target, init_arg, poll
        self._process: Any = None
        self._conn: Any = None

    def _start(self, should_stop: StopFn) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # the parent may hold torch threads: no fork
        parent, child = ctx.Pipe()
        self._process = ctx.Process(target=self.target, args=(child, self.init_arg), daemon=True)
        self._process.start()
        child.close()
        self._conn = parent
        reply = self._receive(should_stop, on_progress=None)
        if reply[0] == "fatal":
            self._process.join(10)  # it leaves by itself after saying why
            self.close()
            raise reply[1]

    def _receive(self, should_stop: StopFn, on_progress: ProgressFn | None) -> tuple:
        while True:
            if should_stop():
                self.close()
                raise JobCancelled("stopped")
            if self._conn.poll(self.poll):
                try:
                    reply = self._conn.recv()
                except EOFError:
                    reply = None
                if reply is None:
                    break
                if reply[0] == "progress":
                    if on_progress is not None:
                        on_progress(*reply[1:])
                    continue
                return reply
            if not self._process.is_alive():
                break
        self._process.join(5)
        code, pid = self._process.exitcode, self._process.pid
        self._process, self._conn = None, None
        raise WorkerCrashed(code, pid)

    def run(self, item: Any, on_progress: ProgressFn = log_progress, should_stop: StopFn = never_stop) -> Any:
        if self._process is None:
            self._start(should_stop)
        try:
            self._conn.send(item)
            reply = self._receive(should_stop, on_progress)
        except BaseException:
            if self._process is not None and not isinstance(sys.exc_info()[1], WorkerCrashed):
                self.close()  # a stop (SIGTERM/JobCancelled) while waiting: end the child too
            raise
        if reply[0] == "done":
            return reply[1]
        if reply[0] == "error":
            raise reply[1]
        self.close()
        raise JobCancelled("stopped")  # ("cancelled",): the child saw the stop first

    def finish(self) -> None:
        """The batch is over: let an idle child leave on its own, then make sure it is gone."""
        if self._process is not None and self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._process.join(5)
        self.close()

    def close(self, grace: float = 5.0) -> None:
        """End the child: ask it to stop (SIGTERM, so it removes its temp files), then kill it."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            self._conn.close()
        if process.is_alive():
            process.terminate()
            process.join(grace)
        if process.is_alive():
            process.kill()
            process.join()

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.close()
