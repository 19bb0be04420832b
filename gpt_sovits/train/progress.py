"""What a running trainer tells its caller: progress with ETA, ``saved``/``result`` events, stop requests, failures."""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from core.errors import UserError
from core.jobs import EXIT_OK, EXIT_USER_ERROR, EventWriter
from gpt_sovits.train.cli import jsonable
from gpt_sovits.train.distributed import is_main_process
from gpt_sovits.train.run_dir import RunDir

logger = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class ProgressReporter:
    """Emits ``progress`` (with ETA), ``saved`` and ``result`` events; silent on ranks other than 0.

    ETA = remaining steps x mean seconds per step measured in THIS process (a resumed run starts its
    clock at the resume step). ``progress`` events are throttled to one per ``min_interval`` seconds."""

    def __init__(
        self,
        events: EventWriter,
        model: str,
        total_steps: int,
        start_step: int = 0,
        enabled: bool = True,
        min_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.events = events
        self.model = model
        self.total = max(1, int(total_steps))
        self.start_step = start_step
        self.enabled = enabled
        self.min_interval = min_interval
        self.clock = clock
        self.t0 = clock()
        self._last_emit = -math.inf

    def eta_seconds(self, step: int) -> float | None:
        done_here = step - self.start_step
        if done_here <= 0:
            return None
        per_step = (self.clock() - self.t0) / done_here
        return per_step * max(0, self.total - step)

    def step(
        self, step: int, epoch: int, metrics: Mapping[str, float] | None = None, force: bool = False
    ) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if not force and now - self._last_emit < self.min_interval and step < self.total:
            return
        self._last_emit = now
        parts = [f"epoch {epoch + 1}", f"step {step}/{self.total}"]
        for k, v in (metrics or {}).items():
            parts.append(f"{k} {float(v):.4f}")
        eta = self.eta_seconds(step)
        if eta is not None:
            parts.append(f"ETA {format_duration(eta)}")
        self.events.progress(step, self.total, ", ".join(parts))

    def saved(self, path: Path, epoch: int, step: int) -> None:
        """After each export: the ``saved`` event the Training tab turns into a sample + a weights choice."""
        if self.enabled:
            self.events.emit("saved", model=self.model, path=str(path), epoch=int(epoch), step=int(step))

    def result(self, **data: Any) -> None:
        if self.enabled:
            self.events.emit("result", model=self.model, **jsonable(data))


class StopFlag:
    """Set by SIGTERM/SIGINT (``core.jobs.Job.stop`` sends SIGTERM) or by an extra ``should_stop`` callable.

    ``run_trainer`` enters it around ``train`` and hands it over as ``should_stop``; the previous handlers
    are restored on exit. Signal handlers can only be installed from the main thread, so elsewhere (e.g. a
    test calling a trainer's main from a worker thread) only ``should_stop`` is consulted."""

    def __init__(self, should_stop: Callable[[], bool] | None = None) -> None:
        self.should_stop = should_stop
        self.signalled = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        with contextlib.suppress(ValueError):  # not the main thread
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signalled:  # a second signal: give up at once
            raise KeyboardInterrupt
        self.signalled = True
        logger.info("stop requested (signal %d): saving and exiting at the next step", signum)

    def __call__(self) -> bool:
        return self.signalled or bool(self.should_stop and self.should_stop())


def report_failure(error: BaseException, events: EventWriter, run: RunDir | None = None) -> int:
    """For a trainer's ``main``: an error a person can act on becomes an ``error`` event, one line on
    stderr and a line in log.txt (no stack trace); returns the exit code 2, as the other stage CLIs do."""
    message = str(error)
    if run is not None:
        run.log(f"error: {message}")
    events.emit("error", message=message)
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USER_ERROR


def report_internal_error(error: BaseException, events: EventWriter, run: RunDir | None = None) -> None:
    """For a trainer's ``main`` before it re-raises an unexpected exception (a defect, not the person's
    mistake): an ``error`` event that says so, and the traceback in log.txt. Python prints the traceback on
    stderr (the job's log) as the process ends."""
    summary = f"{type(error).__name__}: {error}"
    if run is not None:
        run.log(f"internal error: {summary}", echo=False)
        run.log("".join(traceback.format_exception(error)).rstrip(), echo=False)
    events.emit("error", message=f"internal error (a bug, not a problem with your data): {summary}")


class TrainerConfig(Protocol):
    """What ``run_trainer`` needs of a trainer's config: where its run folder is."""

    @property
    def run_path(self) -> Path: ...


ConfigT = TypeVar("ConfigT", bound=TrainerConfig)
ResultT = TypeVar("ResultT")


def run_trainer(
    make_config: Callable[[], ConfigT],
    train: Callable[[ConfigT, EventWriter, Callable[[], bool]], ResultT],
    events: EventWriter,
) -> tuple[int, ResultT | None]:
    """A trainer's ``main`` after parsing: build the config, run ``train(cfg, events, should_stop)`` with
    SIGTERM/SIGINT wired to ``should_stop`` (``StopFlag``), and return (exit code, result).

    A ``UserError`` (bad input, missing file, no space) is reported by ``report_failure``: exit code 2, no
    result. Anything else is reported by ``report_internal_error`` and raised, traceback and all."""
    cfg: ConfigT | None = None
    with StopFlag() as stop:
        try:
            cfg = make_config()
            return EXIT_OK, train(cfg, events, stop)
        except UserError as e:
            return report_failure(e, events, _existing_run(cfg)), None
        except Exception as e:
            report_internal_error(e, events, _existing_run(cfg))
            raise


def _existing_run(cfg: TrainerConfig | None) -> RunDir | None:
    """The run folder to log a failure in, when the run got far enough to have one (rank 0 writes)."""
    if cfg is None or not Path(cfg.run_path).is_dir():
        return None
    return RunDir(cfg.run_path, writer=is_main_process())
