"""The part of a tab that runs a stage as a subprocess job: start, stop, and say how it ended.

A tab keeps its running `Job` in its per-session `gr.State` dict under "job"; the Stop handler
reads the same dict, so it stops that user's job and nobody else's. The exit codes are the stage
CLIs' own (`core.jobs`); a negative code means the process was killed by a signal. Whether the
person asked for the stop comes with the job's "exit" event (`stopped`): only then is the end
"Stopped."; a signal nobody asked for is a crash (named), a SIGKILL most likely the memory limit.

A job outlives its page: closing or reloading the page leaves it running (only Stop ends it), and a
page that opens the tab later follows it again from its folder (`wire_reopen`), as Training does.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from core.errors import UserError
from core.jobs import Job, JobEnd, describe_end, latest_job
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


def stop_message(i18n: I18n, state: dict[str, Any]) -> str:
    """What the Stop button's status says: a job that had already ended is not "Stopped."."""
    job = state.get("job")
    if job is None:
        return i18n("Nothing is running.")
    was_running = job.running()
    job.stop()
    return i18n("Stopped.") if was_running else exit_message(i18n, job.process.returncode, job.stop_requested)


def was_stopped(code: int, stopped: bool | None = None) -> bool:
    return describe_end(code, stopped).kind == "stopped"


def crashed(code: int, stopped: bool | None = None) -> bool:
    """The job ended neither normally, nor on a user error, nor because it was stopped: its log says why."""
    return describe_end(code, stopped).unexpected


def end_message(i18n: I18n, end: JobEnd) -> str:
    """A short status line for a finished job."""
    _ = i18n
    if end.kind == "done":
        return _("Done.")
    if end.kind == "some_failed":
        return _("Done, some files failed.")
    if end.kind == "stopped":
        return _("Stopped.")
    if end.kind in ("all_failed", "user_error"):
        return _("Failed.")
    if end.kind == "out_of_memory":
        if end.memory_limit:
            return _(
                "Failed: the job was killed (SIGKILL) although nobody stopped it, most likely because it ran "
                "out of memory (limit {limit} GiB); the last lines of its log are below.",
                limit=f"{end.memory_limit / 2**30:.1f}",
            )
        return _(
            "Failed: the job was killed (SIGKILL) although nobody stopped it, most likely because it ran "
            "out of memory; the last lines of its log are below."
        )
    if end.signal:
        return _(
            "Failed: the job crashed (killed by {signal}, exit code {code}); the last lines of its log are below.",
            signal=end.signal,
            code=end.code,
        )
    return _("Failed: the job crashed (exit code {code}); see its log below.", code=end.code)


def exit_message(i18n: I18n, code: int, stopped: bool | None = None) -> str:
    """`end_message` for an exit code; `stopped`: whether the person asked for the stop (None: unknown)."""
    return end_message(i18n, describe_end(code, stopped))


def failure_details(job: Job, code: int, stopped: bool | None = None, lines: int = 12) -> str:
    """The last log lines of a job that crashed or was killed (empty for any other end)."""
    return job.last_lines(lines) if crashed(code, stopped) else ""


# ---------- a job outlives its page


def reopened_job(ctx: AppContext, state: dict[str, Any], name: str) -> Job | None:
    """The tab's latest job (`jobs/<name>-*`: still running, or ended within the hour), for a page that
    opens the tab; kept in `state` while it runs, so this page's Stop reaches it. None when there is none,
    or when this page already follows a job of its own."""
    if state.get("job") is not None:
        return None
    job = latest_job(ctx.folder("jobs"), name)
    if job is not None and job.running():
        state["job"] = job
    return job


def wire_reopen(
    ctx: AppContext,
    name: str,
    state: Any,
    outputs: list[Any],
    follow: Callable[[AppContext, Job], Iterator[Any]],
) -> None:
    """On page load, show the tab's latest job in `outputs` (`follow(ctx, job)`, the tab's own view of
    a job's events): live while it runs, else how it ended. Closing the page never stops a job (only Stop
    does), so a separation, a slicing or a transcription outlives the page as a training run does."""
    import gradio as gr  # here, not at the top: the training supervisor imports this module, without gradio

    from ui.wiring import connect

    root = gr.context.Context.root_block
    if root is None:
        return

    def resume_job(ctx: AppContext, state: dict[str, Any]) -> Iterator[Any]:
        job = reopened_job(ctx, state, name)
        if job is None:
            yield tuple(gr.skip() for _ in outputs)
            return
        yield from follow(ctx, job)
        if state.get("job") is job:
            state.pop("job", None)

    resume_job.__name__ = f"resume_{name}"
    # Not queued behind other pages' loads: each one follows for as long as the job runs. The job's own
    # error (a person's mistake) shows in the first output, the tab's status line.
    connect(
        root.load,
        ctx,
        resume_job,
        {"state": state},
        outputs,
        status=outputs[0],
        concurrency_limit=None,
        show_progress="hidden",
    )
