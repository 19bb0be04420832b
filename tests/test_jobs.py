from __future__ import annotations

import json
import time

import pytest

from core.jobs import (
    EXIT_ALL_FAILED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_STOPPED,
    BatchReport,
    EventWriter,
    FileFailure,
    Job,
    JobCancelled,
    WorkerCrashed,
    WorkerProcess,
    batch_exit_code,
    describe_end,
)
from tests.support.echo_worker import worker as echo_worker


def test_event_writer_and_poll_roundtrip(tmp_path):
    w = EventWriter(tmp_path / "events.jsonl")
    w.progress(1, 3, "a")
    w.emit("result", outputs=["x"])
    lines = [json.loads(s) for s in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["type"] for e in lines] == ["progress", "result"]
    assert lines[0]["done"] == 1 and lines[0]["total"] == 3


def test_job_runs_module_and_reports_exit(tmp_path):
    job = Job.start("core.audio", ["--help"], tmp_path / "job")
    events = list(job.follow(interval=0.05))
    assert events[-1] == {"type": "exit", "returncode": 0, "stopped": False}
    assert "usage" in job.log_tail().lower()
    argv = json.loads((tmp_path / "job" / "argv.json").read_text())
    assert argv[1:3] == ["-m", "core.audio"] and "--events" in argv


def test_job_stop_terminates_child(tmp_path):
    # A child that would run for a minute: stop() must end it quickly.
    job = Job.start("tests.support.sleeper", [], tmp_path / "job")
    deadline = time.monotonic() + 20
    events = []
    while not events and time.monotonic() < deadline:
        events = job.poll()
        time.sleep(0.05)
    assert events and events[0]["message"] == "started"
    assert job.running()
    t0 = time.monotonic()
    job.stop(grace=2)
    assert not job.running() and time.monotonic() - t0 < 5

    assert job.stop_requested and job.end().kind == "stopped"


def test_describe_end_tells_stops_crashes_and_memory_kills_apart():
    assert describe_end(-15, stop_requested=True).kind == "stopped"
    assert describe_end(-9, stop_requested=True).kind == "stopped"  # killed after the grace period
    segv = describe_end(-11, stop_requested=False)
    assert (segv.kind, segv.signal) == ("crashed", "SIGSEGV") and "SIGSEGV" in segv.sentence()
    oom = describe_end(-9, stop_requested=False)
    assert oom.kind == "out_of_memory" and oom.unexpected and "out of memory" in oom.sentence()
    assert describe_end(137, stop_requested=False).kind == "out_of_memory"  # a shell's 128 + SIGKILL
    assert describe_end(EXIT_STOPPED, stop_requested=False).kind == "crashed"  # a SIGTERM from elsewhere
    assert describe_end(EXIT_ALL_FAILED).sentence() == "Failed."
    assert describe_end(EXIT_SOME_FAILED).kind == "some_failed"


def test_batch_exit_code_only_failure_is_failed_not_done():
    assert batch_exit_code(BatchReport(outputs=["a"])) == EXIT_OK
    assert batch_exit_code(BatchReport(failures=[FileFailure("a", "bad")])) == EXIT_ALL_FAILED
    assert batch_exit_code(BatchReport(outputs=["b"], failures=[FileFailure("a", "bad")])) == EXIT_SOME_FAILED
    assert batch_exit_code(BatchReport(outputs=["b"], cancelled=True)) == EXIT_STOPPED


def test_worker_process_survives_a_crash_and_reports_errors():
    with WorkerProcess(echo_worker, "init") as worker:
        seen = []
        assert worker.run("hello", on_progress=lambda d, t, m: seen.append(m)) == "init:hello"
        assert seen == ["hello"]
        first_pid = worker._process.pid
        with pytest.raises(WorkerCrashed, match="SIGSEGV") as crash:
            worker.run("segv")
        assert crash.value.pid == first_pid and crash.value.code == -11
        with pytest.raises(ValueError, match="bad item"):  # an ordinary error: the worker lives on
            worker.run("raise")
        assert worker.run("again") == "init:again"  # a fresh child after the crash
        assert worker._process.pid != first_pid
        with pytest.raises(JobCancelled):
            worker.run("sleep", should_stop=lambda: True)
        assert worker._process is None  # the stop ended the child
