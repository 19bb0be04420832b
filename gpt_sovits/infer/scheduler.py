"""Fair turns on one set of models for concurrent syntheses, and stopping one between sentences.

A server runs every person's synthesis on the same models. Running each request to its end before the
next (one lock per request) makes a one-sentence request wait behind a 200-sentence one. Here each
request is a ``Job`` of the app's ``TurnScheduler`` and takes a *turn* for every unit of model work (the
synthesiser takes one for its preparation, one per S1 batch and one per piece's scoring and S2 decode:
``Synthesizer(turn=job.turn)``). One job holds the turn at a time.

Who goes next: the waiting job that has had the least model time (seconds holding the turn; first
asked first served among equals). So jobs share the models by time, whatever the size of their units.
A job arriving while others run starts ``head_start_s`` seconds behind the least served of them: a
short request (less work than that) runs to its end at once, after the unit running now; a long one
gets that much model time first and then shares equally, so the requests already running are held up
by at most ``head_start_s``.

A unit can be long (one S1 batch decodes up to 16 rows for up to 1500 steps), so S1 also calls
``Job.pass_turn`` between decoding steps (``Synthesizer(yield_turn=job.pass_turn)``): once the turn has
been held for ``slice_s`` seconds and a waiting job has had less model time, that job goes first and
the S1 batch then goes on where it was (the same tokens: only the order of work changes). A request
that arrives waits for the S2 decode running now, or for a slice of S1, and then for nothing.

``Job.cancel()`` stops a job between units: its waiting turn, or its next one (or its next pass in
S1), raises ``SynthesisCancelled`` and the turn passes on at once.

Thread-safe. The state lives in the scheduler object (one per app, made by the app factory), never in a
module global. Turns of one job nest: a turn taken inside its own turn is the same turn.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
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
        self.served = 0.0  # model time counted for it, in seconds (a newcomer's starts with its head start)
        self.arrived = False  # whether it has asked for a turn yet
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
        """Inside a turn: let a less served waiting job go first once the slice is used up."""
        self.scheduler.pass_turn(self)

    def __repr__(self) -> str:
        return f"Job({self.name!r}, units={self.units}, served={self.served}, cancelled={self.cancelled})"


class TurnScheduler:
    """Grants the turn on the models to one job at a time, the least served first.

    ``slice_s``: how long a job holds the turn before ``pass_turn`` lets a less served job in.
    ``head_start_s``: how far behind the least served running job a newly arriving job starts.
    ``clock``: seconds (monotonic), replaceable in tests.
    """

    def __init__(
        self,
        slice_s: float = 0.25,
        head_start_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.slice_s, self.head_start_s, self.clock = slice_s, head_start_s, clock
        self._cond = threading.Condition()
        self._waiting: deque[Job] = deque()  # jobs asking for the turn, in order of asking
        self._holder: Job | None = None  # the job whose unit of work runs now
        self._since = 0.0  # clock() when the holder got the turn
        # The least model time among running jobs, never decreasing (a job finishing between two
        # turns does not make a newcomer's head start larger); newcomers start from it.
        self._floor = 0.0

    def job(self, name: str = "") -> Job:
        return Job(self, name)

    @property
    def waiting(self) -> int:
        """How many jobs wait for the turn now."""
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
        """Wait for ``job``'s turn, hold it for the block, then hand it to the next job.

        Raises SynthesisCancelled, without running the block, when the job is (or gets) cancelled.
        """
        with self._cond:
            if job.cancelled:
                raise SynthesisCancelled()
            nested = self._holder is job  # a turn inside its own turn: nothing to wait for
            if not nested:
                self._ask(job)
        try:
            yield
        finally:
            if not nested:
                with self._cond:
                    if self._holder is job:  # (a cancelled pass_turn has given it up already)
                        self._release(job)

    def pass_turn(self, job: Job) -> None:
        """Called by ``job`` inside its turn, between small steps of a long unit: when it has held the
        turn for ``slice_s`` and a waiting job has had less model time, it lets that job go first and
        returns when its turn is back.

        Returns at once otherwise. Raises SynthesisCancelled when the job is (or gets) cancelled; the
        turn is then given up.
        """
        with self._cond:
            if self._holder is not job:
                raise RuntimeError(f"{job!r} passed a turn it does not hold")
            if job.cancelled:
                self._release(job)
                raise SynthesisCancelled()
            held = self.clock() - self._since
            nxt = self._next()
            if held < self.slice_s or nxt is None or nxt.served >= job.served + held:
                return
            self._release(job)
            self._ask(job)

    # -- with the condition held -----------------------------------------------------------------

    def _next(self) -> Job | None:
        """The waiting job to go next: the least served, the first to ask among equals."""
        return min(self._waiting, key=lambda j: j.served) if self._waiting else None

    def _ask(self, job: Job) -> None:
        """Queue ``job`` and wait until it holds the turn (raise SynthesisCancelled if cancelled)."""
        if not job.arrived:  # a newcomer: a head start on the least served running job
            job.arrived = True
            self._floor = max(self._floor, self._least_served())
            job.served = max(0.0, self._floor - self.head_start_s)
        self._waiting.append(job)
        try:
            while not job.cancelled and (self._holder is not None or self._next() is not job):
                self._cond.wait()
            if job.cancelled:
                raise SynthesisCancelled()
        except BaseException:
            self._waiting.remove(job)
            self._cond.notify_all()  # the job behind it may be next now
            raise
        self._waiting.remove(job)
        self._holder, self._since = job, self.clock()

    def _least_served(self, *also: Job) -> float:
        """The least model time among the jobs holding or waiting for the turn (and ``also``)."""
        served = [j.served for j in (self._holder, *self._waiting, *also) if j is not None]
        return min(served) if served else self._floor

    def _release(self, job: Job) -> None:
        job.served += self.clock() - self._since
        job.units += 1
        self._holder = None
        # Kept up to date here too, for a newcomer arriving while the running jobs are between turns.
        self._floor = max(self._floor, self._least_served(job))
        self._cond.notify_all()
