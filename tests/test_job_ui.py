"""Starting, refusing a second start, stopping, and the status line of a tab's job."""

from __future__ import annotations

import pytest

from core.jobs import EXIT_ALL_FAILED, EXIT_OK, EXIT_SOME_FAILED, EXIT_STOPPED, EXIT_USER_ERROR, Job
from ui.context import AppContext
from ui.job_ui import (
    JobAlreadyRunning,
    crashed,
    exit_message,
    failure_details,
    start_job,
    stop_job,
    stop_message,
    was_stopped,
)


def test_one_job_per_tab_state_and_stop(tmp_path):
    ctx = AppContext.create(tmp_path, "en_US")
    state: dict = {}
    job = start_job(ctx, state, "tests.support.sleeper", [], "sleep")
    assert state["job"] is job and job.job_dir.parent == ctx.folder("jobs")
    with pytest.raises(JobAlreadyRunning):
        start_job(ctx, state, "tests.support.sleeper", [], "sleep")
    other_state: dict = {}  # another browser session has its own state and is not blocked
    other = start_job(ctx, other_state, "tests.support.sleeper", [], "sleep")
    stop_job(state)
    assert not job.running() and other.running()
    assert job.stop_requested and not other.stop_requested
    assert was_stopped(job.process.returncode, job.stop_requested)
    assert exit_message(ctx.i18n, job.process.returncode, job.stop_requested) == "Stopped."
    stop_job(other_state)


def test_exit_messages(tmp_path):
    _ = AppContext.create(tmp_path, "en_US").i18n
    assert exit_message(_, EXIT_OK) == "Done."
    assert exit_message(_, EXIT_SOME_FAILED) == "Done, some files failed."
    assert exit_message(_, EXIT_ALL_FAILED) == "Failed."  # a batch whose only file failed
    assert exit_message(_, EXIT_STOPPED) == exit_message(_, -15) == "Stopped."  # unknown who stopped it
    assert exit_message(_, -15, stopped=True) == exit_message(_, -9, stopped=True) == "Stopped."
    assert exit_message(_, EXIT_USER_ERROR) == "Failed."
    assert "exit code 3" in exit_message(_, 3)


def test_a_crash_or_a_kill_nobody_asked_for_is_not_told_as_a_stop(tmp_path):
    _ = AppContext.create(tmp_path, "en_US").i18n
    segv = exit_message(_, -11, stopped=False)
    assert "crashed" in segv and "SIGSEGV" in segv and "-11" in segv
    oom = exit_message(_, -9, stopped=False)
    assert "SIGKILL" in oom and "out of memory" in oom and "GiB" in oom  # the machine's limit is known here
    assert "Stopped" not in exit_message(_, -15, stopped=False)
    assert exit_message(_, EXIT_OK, stopped=True) == "Done."  # it had finished before the stop arrived


def test_only_an_unexpected_exit_is_a_crash():
    assert [
        crashed(c) for c in (EXIT_OK, EXIT_SOME_FAILED, EXIT_USER_ERROR, EXIT_STOPPED, EXIT_ALL_FAILED)
    ] == [False] * 5
    assert crashed(3) and crashed(-11) and crashed(-9, stopped=False)
    assert not crashed(-9, stopped=True)


def test_failure_details_are_the_last_log_lines_of_a_crashed_job(tmp_path):
    code = "import os, signal; print('\\n'.join(f'line {i}' for i in range(30)), flush=True); os.kill(os.getpid(), signal.SIGSEGV)"
    job = Job.start("tests.support.run_code", [code], tmp_path / "job")
    events = list(job.follow(interval=0.05))
    assert events[-1] == {"type": "exit", "returncode": -11, "stopped": False}
    details = failure_details(job, -11, stopped=False)
    assert details.splitlines()[-1] == "line 29" and "line 17" not in details  # the last 12 lines
    assert failure_details(job, EXIT_OK, stopped=False) == ""


def test_stop_button_on_a_finished_job_says_how_it_ended(tmp_path):
    ctx = AppContext.create(tmp_path, "en_US")
    assert stop_message(ctx.i18n, {}) == "Nothing is running."
    state = {"job": Job.start("tests.support.run_code", ["raise SystemExit(4)"], tmp_path / "j")}
    state["job"].process.wait(timeout=60)
    assert stop_message(ctx.i18n, state) == "Failed."
    running = {"job": Job.start("tests.support.sleeper", [], tmp_path / "s")}
    assert stop_message(ctx.i18n, running) == "Stopped."


def test_tabs_tell_a_crash_with_its_signal_and_log(tmp_path):
    from ui.asr_tab import follow_transcription
    from ui.separate_tab import follow_separation
    from ui.slice_tab import follow_slicing

    ctx = AppContext.create(tmp_path, "en_US")
    code = "import os, signal; print('decoding file 3', flush=True); os.kill(os.getpid(), signal.SIGSEGV)"

    def crashed_job(name: str) -> Job:
        return Job.start("tests.support.run_code", [code], tmp_path / name)

    status, failures, _results = list(follow_separation(ctx, crashed_job("sep")))[-1]
    assert "SIGSEGV" in status and "Stopped" not in status and "decoding file 3" in failures
    status, _summary = list(follow_slicing(ctx, crashed_job("slice"), tmp_path / "out"))[-1]
    assert "SIGSEGV" in status and "decoding file 3" in status
    status, text, _rows = list(follow_transcription(ctx, crashed_job("asr")))[-1]
    assert "SIGSEGV" in status and "decoding file 3" in text
