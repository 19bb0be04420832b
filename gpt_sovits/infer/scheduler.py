"""Fair turns on one set of models for concurrent syntheses, and stopping one between sentences.

A server runs every person's synthesis on the same models. Running each request to its end before the
next (one lock per request) makes a one-sentence request wait behind a 200-sentence one. Here each
request is a ``Job`` of the app's ``TurnScheduler`` and takes a *turn* for every unit of model work (the
synthesiser takes one for its preparation, one per S1 batch and one per piece's scoring and S2 decode:
``Synthesizer(turn=job.turn)``). Turns are granted one at a time, in the order they were asked for, so
jobs that want turns alternate (round-robin): a request arriving during a long one waits for the unit
running now and one unit of each job already waiting, never for the rest of the long request.

A unit can be long (one S1 batch decodes up to 16 rows for up to 1500 steps), so S1 also calls
``Job.pass_turn`` between decoding steps (``Synthesizer(yield_turn=job.pass_turn)``): once the turn has
been held for ``slice_s`` seconds and another job waits, the waiting jobs have their turns first and
the S1 batch then goes on where it was (the same tokens: nothing but the order of work changes). The
wait of a request that arrives is therefore about a slice per job ahead of it, plus its own work.

``Job.cancel()`` stops a job between units: its waiting turn, or its next one (or its next pass in
S1), raises ``SynthesisCancelled`` and the turn passes on at once.

Thread-safe. The state lives in the scheduler object (one per app, made by the app factory), never in a
module global. Turns of one job nest: a turn taken inside its own turn is the same turn.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from core.errors import UserError


class SynthesisCancelled(UserError):
    """The synthesis was cancelled (by the person, or by an API client) before it ended."""

    def __init__(self, message: str = "Cancelled.") -> None:
        super().__init__(message)


class Job:
    """One synthesis (or candidate playback) as the scheduler sees it: its turns and whether to stop."""

    def __init__(self, scheduler: TurnScheduler, name: str = "") -> None:
        self.scheduler = scheduler
        self.name = name
        self.units = 0  # turns ended (units of model work done)
        self._cancelled = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Stop at the next turn (a turn being waited for ends now, raising SynthesisCancelled)."""
        self.scheduler.cancel(self)

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the models for one unit of work (see TurnScheduler.turn)."""
        with self.scheduler.turn(self):
            yield

    def pass_turn(self) -> None:
        """Inside a turn: let waiting jobs go first once the slice is used up (see TurnScheduler)."""
        self.scheduler.pass_turn(self)

    def __repr__(self) -> str:
        return f"Job({self.name!r}, units={self.units}, cancelled={self.cancelled})"


class TurnScheduler:
    """Grants turns on the models to jobs one at a time, first asked first served.

    ``slice_s``: how long a job holds the turn before ``pass_turn`` hands it to waiting jobs.
    """

    def __init__(self, slice_s: float = 0.25) -> None:
        self.slice_s = slice_s
        self._cond = threading.Condition()
        self._waiting: deque[Job] = deque()  # jobs asking for a turn, in order of asking
        self._holder: Job | None = None  # the job whose unit of work runs now
        self._since = 0.0  # monotonic time the holder got the turn

    def job(self, name: str = "") -> Job:
        return Job(self, name)

    @property
    def waiting(self) -> int:
        """How many jobs wait for a turn now."""
        with self._cond:
            return len(self._waiting)

    @property
    def busy(self) -> bool:
        """Whether a unit of work runs now."""
        with self._cond:
            return self._holder is not None

    def cancel(self, job: Job) -> None:
        with self._cond:
            job._cancelled.set()
            self._cond.notify_all()  # a waiting turn of the job gives up at once

    @contextmanager
    def turn(self, job: Job) -> Iterator[None]:
        """Wait for ``job``'s turn, hold it for the block, then hand it to the next job asking.

        Raises SynthesisCancelled, without running the block, when the job is (or gets) cancelled.
        """
        with self._cond:
            if job.cancelled:
                raise SynthesisCancelled()
            nested = self._holder is job  # a turn inside its own turn: nothing to wait for
            if not nested:
                self._waiting.append(job)
                try:
                    self._wait_first(job)
                except BaseException:
                    self._waiting.remove(job)
                    self._cond.notify_all()  # the job behind it may be first now
                    raise
                self._take(job)
        try:
            yield
        finally:
            if not nested:
                with self._cond:
                    if self._holder is job:  # (a cancelled pass_turn has given it up already)
                        self._release(job)

    def pass_turn(self, job: Job) -> None:
        """Called by ``job`` inside its turn, between small steps of a long unit: when it has held the
        turn for ``slice_s`` and others wait, it queues behind them and returns when its turn is back.

        Returns at once otherwise. Raises SynthesisCancelled when the job is (or gets) cancelled; the
        turn is then given up.
        """
        with self._cond:
            if self._holder is not job:
                raise RuntimeError(f"{job!r} passed a turn it does not hold")
            if job.cancelled:
                self._release(job)
                raise SynthesisCancelled()
            if not self._waiting or time.monotonic() - self._since < self.slice_s:
                return
            self._release(job)
            self._waiting.append(job)
            try:
                self._wait_first(job)
            except BaseException:
                self._waiting.remove(job)
                self._cond.notify_all()
                raise
            self._take(job)

    # -- with the condition held -----------------------------------------------------------------

    def _wait_first(self, job: Job) -> None:
        """Wait until ``job`` is first in line and nobody holds the turn; raise if it is cancelled."""
        while not job.cancelled and (self._holder is not None or self._waiting[0] is not job):
            self._cond.wait()
        if job.cancelled:
            raise SynthesisCancelled()

    def _take(self, job: Job) -> None:
        self._waiting.popleft()
        self._holder, self._since = job, time.monotonic()

    def _release(self, job: Job) -> None:
        self._holder = None
        job.units += 1
        self._cond.notify_all()
