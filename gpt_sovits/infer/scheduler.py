"""Fair turns on one set of models for concurrent syntheses, and stopping one between sentences.

A server runs every person's synthesis on the same models. Running each request to its end before the
next (one lock per request) makes a one-sentence request wait behind a 200-sentence one. Here each
request is a ``Job`` of the app's ``TurnScheduler`` and takes a *turn* for every unit of model work (the
synthesiser takes one for its preparation, one per S1 batch and one per piece's scoring and S2 decode:
``Synthesizer(turn=job.turn)``). Turns are granted one at a time, in the order they were asked for, so
jobs that want turns alternate (round-robin): a request arriving during a long one waits for the unit
running now and one unit of each job already waiting, never for the rest of the long request.

``Job.cancel()`` stops a job between units: its waiting turn, or its next one, raises
``SynthesisCancelled`` and the turn passes on at once. The unit running when it is cancelled ends first
(one S1 batch or one piece: under a second with real models on a GPU).

Thread-safe. The state lives in the scheduler object (one per app, made by the app factory), never in a
module global. Turns of one job nest: a turn taken inside its own turn is the same turn.
"""

from __future__ import annotations

import threading
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

    def __repr__(self) -> str:
        return f"Job({self.name!r}, units={self.units}, cancelled={self.cancelled})"


class TurnScheduler:
    """Grants turns on the models to jobs one at a time, first asked first served."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: deque[Job] = deque()  # jobs asking for a turn, in order of asking
        self._holder: Job | None = None  # the job whose unit of work runs now

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
                    while not job.cancelled and (self._holder is not None or self._waiting[0] is not job):
                        self._cond.wait()
                    if job.cancelled:
                        raise SynthesisCancelled()
                except BaseException:
                    self._waiting.remove(job)
                    self._cond.notify_all()  # the job behind it may be first now
                    raise
                self._waiting.popleft()
                self._holder = job
        try:
            yield
        finally:
            if not nested:
                with self._cond:
                    self._holder = None
                    job.units += 1
                    self._cond.notify_all()
