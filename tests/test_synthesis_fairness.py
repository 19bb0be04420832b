"""Synthesis is fair and can be stopped: concurrent requests take turns on the models unit by unit.

The scheduler's order is checked with a fake clock (the least served job goes next; a newcomer gets a
head start, then shares). The synthesiser's bounds are counted in units of work (sentences, S1 steps),
not seconds, so a busy machine cannot make them fail: a one-sentence request sent while a 200-sentence
one runs must end before the long one has done more than a few more sentences, and one sent during a
long S1 batch waits for a few of its steps, not for the batch; a cancelled job stops at its next turn
and the next job gets the models at once. The last test does the same through Gradio (`/synthesize`
from gradio_client and `job.cancel()`).
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import soundfile as sf

from gpt_sovits.infer.request import SynthesisRequest
from gpt_sovits.infer.scheduler import SynthesisCancelled, TurnScheduler
from tests.support.aio import run_in_own_loop
from tests.support.synth import voiced_segments

# Tiny random models seldom emit EOS: a few S1 tokens per sentence keep each unit short on CPU.
TOKENS = 6
LONG_TEXT = "你好世界。今天天气。" * 100  # cut5: 200 pieces
# The short request (3 turns: preparation, one S1 batch, one piece) has less work than the head start:
# it goes once the long one's current unit ends. Even taking turns one by one the long one would end
# at most one piece between each; 5 leaves a margin and is far below 200.
MAX_LONG_PIECES_MEANWHILE = 5


def _wait_for(condition, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _holding(
    scheduler: TurnScheduler, name: str, release: threading.Event, log: list[str]
) -> threading.Thread:
    """A thread whose job holds one turn until `release` is set."""

    def hold() -> None:
        with scheduler.job(name).turn():
            log.append(name)
            release.wait(30)

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    _wait_for(lambda: scheduler.busy, 10, f"{name} to hold the turn")
    return t


def _units(scheduler: TurnScheduler, name: str, n: int, log: list[str], errors: list[BaseException]):
    job = scheduler.job(name)

    def work() -> None:
        try:
            for _ in range(n):
                with job.turn():
                    log.append(name)
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    return job, t


# ------------------------------------------------------------------------------------ the scheduler


class FakeClock:
    """Model time that passes only when a unit of work says so (``advance``)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def _costly_units(scheduler, clock, name, costs, log, errors, first=None):
    """A thread whose job does one unit per cost (advancing the clock by it inside its turn)."""
    job = scheduler.job(name)

    def work() -> None:
        try:
            for k, cost in enumerate(costs):
                with job.turn():
                    if k == 0 and first is not None:
                        first()
                    clock.advance(cost)
                    log.append(name)
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    return job, t


def test_the_least_served_job_goes_next_so_jobs_share_the_model_by_time():
    clock, log, errors = FakeClock(), [], []
    scheduler = TurnScheduler(head_start_s=0.0, clock=clock)
    release = threading.Event()
    holder = _holding(scheduler, "H", release, log)
    _, a = _costly_units(scheduler, clock, "A", [1.0] * 3, log, errors)
    _wait_for(lambda: scheduler.waiting == 1, 10, "A to wait")
    _, b = _costly_units(scheduler, clock, "B", [0.5] * 4, log, errors)
    _wait_for(lambda: scheduler.waiting == 2, 10, "B to wait")
    release.set()
    for t in (holder, a, b):
        t.join(10)
    assert not errors
    # B's units cost half of A's: it gets two turns for each of A's (equal served first asked first).
    assert log == ["H", "A", "B", "B", "A", "B", "B", "A"]
    assert not scheduler.busy and scheduler.waiting == 0


def test_a_newcomer_gets_a_head_start_then_shares_and_never_starves_the_others():
    clock, log, errors = FakeClock(), [], []
    scheduler = TurnScheduler(head_start_s=2.0, clock=clock)
    newcomer_waits = threading.Event()
    long_job = scheduler.job("L")

    def run_long() -> None:
        try:
            for k in range(16):  # 16 units of 1 s; the newcomer arrives during the 11th
                with long_job.turn():
                    if k == 10:
                        newcomer_waits.wait(10)
                    clock.advance(1.0)
                    log.append("L")
        except BaseException as e:
            errors.append(e)

    long_thread = threading.Thread(target=run_long, daemon=True)
    long_thread.start()
    _wait_for(lambda: log.count("L") == 10 and scheduler.busy, 10, "the long job's 11th unit")

    def long_is_back_in_line() -> None:  # every later choice is between two waiting jobs
        _wait_for(lambda: scheduler.waiting == 1, 10, "the long job to ask again")

    _, n = _costly_units(scheduler, clock, "N", [0.9] * 5, log, errors, first=long_is_back_in_line)
    _wait_for(lambda: scheduler.waiting == 1, 10, "the newcomer to wait")
    newcomer_waits.set()
    for t in (long_thread, n):
        t.join(10)
    assert not errors
    # L had 10 s when N came: N starts at 8 s, runs until it has had more than L (11 s), then they share.
    assert log == ["L"] * 11 + ["N", "N", "N", "N", "L", "N"] + ["L"] * 4


def test_a_cancelled_job_gives_up_its_waiting_turn_at_once():
    scheduler, log, errors = TurnScheduler(), [], []
    release = threading.Event()
    holder = _holding(scheduler, "H", release, log)
    waiter, w = _units(scheduler, "W", 5, log, errors)
    _wait_for(lambda: scheduler.waiting == 1, 10, "W to wait")
    _, x = _units(scheduler, "X", 1, log, errors)
    _wait_for(lambda: scheduler.waiting == 2, 10, "X to wait")

    waiter.cancel()
    w.join(5)
    assert not w.is_alive() and scheduler.busy  # W gave up while H still holds the turn
    assert [type(e) for e in errors] == [SynthesisCancelled] and str(errors[0]) == "Cancelled."
    assert scheduler.waiting == 1  # only X is left in line
    release.set()
    for t in (holder, x):
        t.join(10)
    assert log == ["H", "X"] and waiter.units == 0  # W never ran; X came right after H
    with pytest.raises(SynthesisCancelled):  # and a cancelled job takes no turn again
        with waiter.turn():
            raise AssertionError("a cancelled job's block ran")


@pytest.mark.parametrize(
    ("slice_s", "order"), [(0.0, ["A1", "A2", "B", "A3"]), (60.0, ["A1", "A2", "A3", "B"])]
)
def test_a_long_unit_lets_waiting_jobs_in_between_its_steps_once_its_slice_is_used(slice_s, order):
    scheduler, log, errors = TurnScheduler(slice_s=slice_s), [], []
    a = scheduler.job("A")
    with a.turn():  # one long unit (S1 decoding), with a step boundary between A2 and A3
        log.append("A1")
        _, b = _units(scheduler, "B", 1, log, errors)
        _wait_for(lambda: scheduler.waiting == 1, 10, "B to wait")
        log.append("A2")
        a.pass_turn()
        log.append("A3")
    b.join(10)
    assert log == order and not errors
    assert not scheduler.busy and scheduler.waiting == 0


def test_a_job_cancelled_inside_its_turn_stops_at_its_next_step_and_frees_the_turn():
    scheduler, log, errors = TurnScheduler(slice_s=60.0), [], []
    a = scheduler.job("A")
    with pytest.raises(SynthesisCancelled):
        with a.turn():
            _, b = _units(scheduler, "B", 1, log, errors)
            _wait_for(lambda: scheduler.waiting == 1, 10, "B to wait")
            a.cancel()
            a.pass_turn()  # the next step boundary: stops here, whatever the slice
            log.append("A went on")
    b.join(10)
    assert log == ["B"] and not errors and not scheduler.busy
    with pytest.raises(RuntimeError, match="does not hold"):
        scheduler.job("C").pass_turn()


def test_turns_of_one_job_nest():
    scheduler = TurnScheduler()
    job = scheduler.job("nested")
    with job.turn():
        with job.turn():  # would deadlock if it queued behind itself
            assert scheduler.busy
    assert job.units == 1 and not scheduler.busy


# ---------------------------------------------------------------------- the synthesiser, in process


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    path = tmp_path / "ref.wav"
    sf.write(
        path, voiced_segments([("silence", 0.3), ("voice", 3.4), ("silence", 0.3)]), 32000, subtype="PCM_16"
    )
    return path


def _request(text: str, reference: Path) -> SynthesisRequest:
    return SynthesisRequest(
        text=text, text_lang="zh", ref_audio=str(reference), cut="cut5", max_new_tokens=TOKENS, seed=3
    )


@pytest.fixture
def synthesizer_for(tiny_pretrained):
    """Synthesizers over one model cache whose model work takes `job`'s turns (as the web app's)."""
    from gpt_sovits.infer.cache import ModelCache
    from gpt_sovits.infer.synthesizer import Synthesizer

    cache = ModelCache()

    def make(job, yield_turn=None):
        return Synthesizer(
            tiny_pretrained.s1,
            tiny_pretrained.s2g,
            tiny_pretrained.root,
            "cpu",
            cache=cache,
            turn=job.turn,
            yield_turn=yield_turn or job.pass_turn,
        )

    return make


def test_a_short_request_waits_a_few_s1_steps_not_for_a_long_s1_batch(synthesizer_for, reference):
    """One S1 batch of 15 sentences x 150 tokens is one long unit: S1 passes the turn between steps."""
    scheduler = TurnScheduler(slice_s=0.0)  # pass at every step boundary someone waits at
    long_job = scheduler.job("long")
    steps: list[int] = []  # the long request's S1 steps
    in_second_batch = threading.Event()
    long_done: list[int] = []
    outcome: list[object] = []

    def long_step() -> None:
        steps.append(1)
        if len(steps) == 170:  # 150 steps of the first batch (piece 0 alone), then 20 of the second
            in_second_batch.set()
        long_job.pass_turn()

    def run_long() -> None:
        request = replace(_request("你好世界。今天天气。" * 8, reference), force_tokens=150)
        try:
            synthesizer_for(long_job, long_step).synthesize(
                request, progress=lambda done, total, _m: long_done.append(done)
            )
        except BaseException as e:
            outcome.append(e)

    thread = threading.Thread(target=run_long, daemon=True)
    thread.start()
    assert in_second_batch.wait(120), "the long request did not reach its second S1 batch"
    before, done_before = len(steps), max(long_done)
    short = synthesizer_for(scheduler.job("short")).synthesize(_request("你好世界。", reference))
    meanwhile = len(steps) - before
    print(f"the long request did {meanwhile} S1 step(s) while the short one ran")
    assert len(short.sentences) == 1
    # It went at the long batch's next step and ran to its end (its work is less than the head start),
    # instead of waiting for the rest of the batch (about 130 steps).
    assert meanwhile <= 20 and max(long_done) == done_before
    long_job.cancel()
    thread.join(30)
    assert not thread.is_alive() and isinstance(outcome[0], SynthesisCancelled)
    assert len(steps) < 16 * 150 and not scheduler.busy


def test_a_short_request_during_a_long_one_ends_within_a_few_of_its_sentences(synthesizer_for, reference):
    scheduler, synthesizer = TurnScheduler(), synthesizer_for
    long_job = scheduler.job("long")
    long_done: list[int] = []  # pieces the long request has finished, as it reports them
    long_outcome: list[BaseException | object] = []

    def run_long() -> None:
        try:
            long_outcome.append(
                synthesizer(long_job).synthesize(
                    _request(LONG_TEXT, reference), progress=lambda done, total, _m: long_done.append(done)
                )
            )
        except BaseException as e:
            long_outcome.append(e)

    thread = threading.Thread(target=run_long, daemon=True)
    thread.start()
    _wait_for(lambda: len(long_done) >= 4, 120, "the long request to get going")  # models loaded
    assert long_done[0] == 0 and not long_outcome  # 200 pieces announced, far from done

    before = max(long_done)
    t0 = time.perf_counter()
    short = synthesizer(scheduler.job("short")).synthesize(_request("你好世界。", reference))
    waited = time.perf_counter() - t0
    meanwhile = max(long_done) - before
    print(f"short request: {waited:.2f} s while the long one did {meanwhile} piece(s)")
    assert len(short.sentences) == 1 and short.audio.size > 0
    assert meanwhile <= MAX_LONG_PIECES_MEANWHILE
    assert not long_outcome  # the long one is still running

    long_job.cancel()
    thread.join(30)
    assert not thread.is_alive()
    assert len(long_outcome) == 1 and isinstance(long_outcome[0], SynthesisCancelled)
    stopped_at = max(long_done)
    assert stopped_at < 100  # stopped between sentences, not run to its end
    assert not scheduler.busy and scheduler.waiting == 0  # the models are free at once
    again = synthesizer(scheduler.job("after")).synthesize(_request("今天天气。", reference))
    assert len(again.sentences) == 1 and max(long_done) == stopped_at


# ---------------------------------------------------------------------- the web app's service


def test_cancelling_the_awaiting_handler_cancels_the_job():
    from ui.inference_helpers import SynthesisService

    service = SynthesisService()
    seen: dict[str, object] = {}
    started = threading.Event()

    def work(job) -> str:
        seen["job"] = job
        try:
            for _ in range(1000):  # about 10 s unless stopped
                with job.turn():
                    started.set()
                    time.sleep(0.01)
        except SynthesisCancelled:
            seen["stopped_after"] = job.units
            raise
        return "finished"

    async def main() -> None:
        assert await service.run(lambda job: "quick") == "quick"
        task = asyncio.ensure_future(service.run(work, "long"))
        while not started.is_set():
            await asyncio.sleep(0.01)
        t0 = time.monotonic()
        task.cancel()  # as Gradio does on Cancel or a client's job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - t0 < 2  # the handler does not wait for the work to end

    run_in_own_loop(main())
    _wait_for(lambda: "stopped_after" in seen, 5, "the work to stop")
    assert seen["job"].cancelled and seen["stopped_after"] < 1000
    assert not service.scheduler.busy


def test_an_error_in_the_work_reaches_the_handler():
    from ui.inference_helpers import InferenceUIError, SynthesisService

    def fail(job) -> None:
        raise InferenceUIError("Type the text to synthesise.")

    with pytest.raises(InferenceUIError, match="Type the text"):
        run_in_own_loop(SynthesisService().run(fail))


# ---------------------------------------------------------------------- through Gradio


def test_through_gradio_a_short_call_is_served_during_a_long_one_and_cancel_stops_it(
    tiny_pretrained, reference, tmp_path
):
    import gradio as gr
    from gradio_client import Client, handle_file

    from tests.conftest import free_port
    from ui import inference_tab
    from ui.context import AppContext

    ctx = AppContext.create(tmp_path / "ws", "en_US", tiny_pretrained.root)
    with gr.Blocks() as app:
        tab = inference_tab.build(ctx)
    scheduler = tab.service.scheduler  # the app's one scheduler, shared with /synthesize
    port = free_port()
    app.queue().launch(server_port=port, prevent_thread_lock=True, quiet=True, _frontend=False)
    try:
        url = f"http://127.0.0.1:{port}/"
        client = Client(url, verbose=False)
        ref = handle_file(str(reference))
        args = {"cut": "cut5", "max_new_tokens": TOKENS, "seed": 5, "api_name": "/synthesize"}
        long_call = client.submit(LONG_TEXT, "zh", ref, **args)
        _wait_for(lambda: _synthesis_threads() == 1 and scheduler.busy, 120, "the long call to run")
        long_thread = next(t for t in threading.enumerate() if t.name.startswith("synthesis"))

        t0 = time.perf_counter()
        wav, _details = Client(url, verbose=False).predict("你好世界。", "zh", ref, **args)
        waited = time.perf_counter() - t0
        print(f"short /synthesize call: {waited:.2f} s during a 200-sentence one")
        assert sf.info(wav).frames > 0
        assert not long_call.done()  # served while the long one still runs

        long_call.cancel()
        long_thread.join(30)  # stopped at its next turn, long before its 200 sentences
        assert not long_thread.is_alive()
        assert not scheduler.busy and scheduler.waiting == 0
        outputs = sorted(p.name for p in (ctx.workspace / "outputs").glob("*.wav"))
        assert len(outputs) == 1 and re.match(
            r"\d{8}-\d{6}_你好世界_s5_", outputs[0]
        )  # the short call's only
    finally:
        app.close()


def _synthesis_threads() -> int:
    return sum(t.name.startswith("synthesis") for t in threading.enumerate())
