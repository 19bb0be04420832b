"""Starting, refusing a second start, stopping, and the status line of a tab's job."""

from __future__ import annotations

import pytest

from core.jobs import EXIT_OK, EXIT_SOME_FAILED, EXIT_STOPPED, EXIT_USER_ERROR
from ui.context import AppContext
from ui.job_ui import JobAlreadyRunning, crashed, exit_message, start_job, stop_job, was_stopped


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
    assert was_stopped(job.process.returncode)
    stop_job(other_state)


def test_exit_messages(tmp_path):
    _ = AppContext.create(tmp_path, "en_US").i18n
    assert exit_message(_, EXIT_OK) == "Done."
    assert exit_message(_, EXIT_SOME_FAILED) == "Done, some files failed."
    assert exit_message(_, EXIT_STOPPED) == exit_message(_, -15) == "Stopped."
    assert exit_message(_, EXIT_USER_ERROR) == "Failed."
    assert "exit code 3" in exit_message(_, 3)


def test_only_an_unexpected_exit_is_a_crash():
    assert [crashed(c) for c in (EXIT_OK, EXIT_SOME_FAILED, EXIT_USER_ERROR, EXIT_STOPPED, -9)] == [False] * 5
    assert crashed(3) and crashed(137)
