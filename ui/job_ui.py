"""The part of a tab that runs a stage as a subprocess job: start, stop, and say how it ended.

A tab keeps its running `Job` in its per-session `gr.State` dict under "job"; the Stop handler
reads the same dict, so it stops that user's job and nobody else's. The exit codes are the stage
CLIs' own (`core.jobs`); a negative code means the process was killed by a signal.
"""

from __future__ import annotations

import tempfile
from typing import Any

from core.errors import UserError
from core.jobs import EXIT_OK, EXIT_SOME_FAILED, EXIT_STOPPED, EXIT_USER_ERROR, Job
from i18n import I18n
from ui.context import AppContext


class JobAlreadyRunning(UserError, RuntimeError):
    """A tab was asked to start a job while its previous one still runs."""


def start_job(ctx: AppContext, state: dict[str, Any], module: str, args: list[str], name: str) -> Job:
    """Start `python -m module args...` in a fresh `jobs/<name>-*` folder and remember it in `state`."""
    running = state.get("job")
    if running is not None and running.running():
        raise JobAlreadyRunning(ctx.i18n("A job is already running in this tab: stop it or wait for it."))
    job_dir = tempfile.mkdtemp(prefix=f"{name}-", dir=ctx.folder("jobs"))
    job = Job.start(module, args, job_dir)
    state["job"] = job
    return job


def stop_job(state: dict[str, Any]) -> None:
    job = state.get("job")
    if job is not None:
        job.stop()


def was_stopped(code: int) -> bool:
    return code == EXIT_STOPPED or code < 0


def crashed(code: int) -> bool:
    """The job ended neither normally, nor on a user error, nor because it was stopped: its log says why."""
    return code not in (EXIT_OK, EXIT_SOME_FAILED, EXIT_USER_ERROR) and not was_stopped(code)


def exit_message(i18n: I18n, code: int) -> str:
    """A short status line for a finished job."""
    _ = i18n
    if code == EXIT_OK:
        return _("Done.")
    if code == EXIT_SOME_FAILED:
        return _("Done, some files failed.")
    if was_stopped(code):
        return _("Stopped.")
    if code == EXIT_USER_ERROR:
        return _("Failed.")
    return _("Failed: the job crashed (exit code {code}); see its log below.", code=code)
