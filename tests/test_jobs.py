from __future__ import annotations

import json
import time

from core.jobs import EventWriter, Job


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
    assert events[-1] == {"type": "exit", "returncode": 0}
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
