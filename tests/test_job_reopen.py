"""A job outlives its page: closing the page (Gradio closes the handler's generator) leaves a separation,
a slicing or a transcription running, as a training run does; reopening the tab follows it again, and
its Stop still works and still reads "Stopped."."""

from __future__ import annotations

import time

import gradio as gr

from core.jobs import EXIT_RECORD, Job, latest_job
from tests.conftest import write_wav
from tests.support.synth import voiced_segments
from ui.context import AppContext
from ui.job_ui import exit_message, reopened_job, start_job, stop_message


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_closing_the_page_leaves_the_job_running_and_another_page_stops_it(tmp_path):
    ctx = AppContext.create(tmp_path, "en_US")
    first_page: dict = {}
    job = start_job(ctx, first_page, "tests.support.sleeper", [], "sleep")
    following = job.follow(interval=0.05)
    assert next(following)["type"] == "progress"  # the child reported "started"
    following.close()  # the page went away
    time.sleep(0.3)
    assert job.running() and not job.stop_requested

    second_page: dict = {}
    again = reopened_job(ctx, second_page, "sleep")
    assert again is not None and again.process.pid == job.process.pid and second_page["job"] is again
    assert again.running() and reopened_job(ctx, second_page, "sleep") is None  # this page follows it already
    assert stop_message(ctx.i18n, second_page) == "Stopped."
    job.process.wait(10)
    wait_for(lambda: (job.job_dir / EXIT_RECORD).exists())

    third_page = latest_job(ctx.folder("jobs"), "sleep")  # after the end: how it ended, from its folder
    assert third_page is not None and not third_page.running() and third_page.stop_requested
    last = list(third_page.follow(interval=0.05))[-1]
    assert last == {"type": "exit", "returncode": job.process.returncode, "stopped": True}
    assert exit_message(ctx.i18n, last["returncode"], last["stopped"]) == "Stopped."


def test_a_finished_job_is_read_back_from_its_folder(tmp_path):
    jobs = tmp_path / "jobs"
    job = Job.start("tests.support.sleeper", ["--print-env", "HOME"], jobs / "quick-1")
    job.process.wait(30)
    wait_for(lambda: (job.job_dir / EXIT_RECORD).exists())
    found = latest_job(jobs, "quick")
    assert found is not None and not found.running() and found.process.returncode == 0  # the recorded code
    assert found.end().kind == "done" and found.argv == job.argv
    assert latest_job(jobs, "quick", within_s=0.0) is None  # ended too long ago to show
    assert latest_job(jobs, "other") is None and Job.attach(tmp_path) is None


def test_reopening_the_slicing_tab_shows_the_job_a_closed_page_started(tmp_path):
    from ui import slice_tab

    ctx = AppContext.create(tmp_path / "ws", "en_US")
    write_wav(
        ctx.folder("uploads") / "talk.wav",
        voiced_segments([("voice", 5.0), ("silence", 1.0), ("voice", 5.0)]),
        32000,
    )
    with gr.Blocks() as app:
        ui = slice_tab.build(ctx)
    resume = [f for f in app.fns.values() if f.targets == [(app._id, "load")] and f.name == "resume_slice"]
    assert len(resume) == 1 and resume[0].concurrency_limit is None  # never queued behind another page

    params = {k: c.value for k, c in ui.params.items()}
    page = slice_tab.start_slicing(
        ctx, files=None, typed="uploads/talk.wav", out_name="", workers=1, params=params, state={}
    )
    assert next(page)[0] == "Starting…"
    page.close()  # the page went away: the job goes on
    wait_for(lambda: latest_job(ctx.folder("jobs"), "slice") is not None)
    job = latest_job(ctx.folder("jobs"), "slice")
    wait_for(lambda: not job.running())

    shown = list(resume[0].fn({}))  # a new page loads: the tab's status and summary come back
    status, summary = shown[-1]
    assert status == "Done." and summary.startswith("2 clips written to")
    assert len(list(ctx.folder("sliced").glob("*.wav"))) == 2
