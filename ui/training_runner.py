"""The Training tab's moving parts: a queue of steps run one after another as `core.jobs.Job`
subprocesses, and a queue of listening samples synthesised after each save.

Nothing here imports gradio: the tab keeps one `TrainingSession` (a `StepRunner` and a
`SampleQueue`) in its per-session state and calls `poll()` from a timer. Each call reads the new
events of the running job, starts the next step when one ends with EXIT_OK, and stops the sequence
on any other code (a stopped, failed or crashed step). The job record that lets another page follow
a step is in `ui/training_jobs.py`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.fsutil import atomic_write_text
from core.jobs import EXIT_OK, EXIT_STOPPED, EXIT_USER_ERROR, Job
from ui.job_ui import crashed
from ui.training_common import StepSpec
from ui.training_jobs import exp_dir_of, live_job, record_job, tail_text
from ui.training_plan import write_step_config
from ui.training_progress import ProgressView
from ui.training_samples import SampleReference, SampleSpec, sample_config

SAMPLE_MODULE = "gpt_sovits.infer.samples"
STOP_MARKER = "stop_requested"  # written into a job's folder by the page that stops it
STOP_GRACE_SECONDS = 60.0


def _job_dir(job_root: Path, prefix: str) -> Path:
    job_root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=job_root))


@dataclass
class StepResult:
    step: str
    code: int
    error: str = ""  # the last `error` event of the step, if any
    log_tail: str = ""  # for crashes (codes other than 0/1/2/stopped)
    stopped: bool = False  # ended by Stop (trainers then exit 0, formatting 1): say "Stopped."


@dataclass
class StepRunner:
    """Run `specs` in order; `poll()` advances. One runner per started click."""

    specs: list[StepSpec]
    job_root: Path
    start: Callable[[str, list[str], Path], Job] = Job.start
    pending: list[StepSpec] = field(init=False)
    current: StepSpec | None = field(default=None, init=False)
    job: Job | None = field(default=None, init=False)
    last: StepSpec | None = field(default=None, init=False)  # the step that ended most recently
    progress: ProgressView = field(default_factory=ProgressView, init=False)
    results: list[StepResult] = field(default_factory=list, init=False)
    saved: list[dict[str, Any]] = field(default_factory=list, init=False)
    stopped: bool = field(default=False, init=False)
    _error: str = field(default="", init=False)
    _result: bool = field(default=False, init=False)
    _interrupted: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.pending = list(self.specs)

    def begin(self) -> None:
        """Start the first step."""
        self._start_next()

    def _start_next(self) -> None:
        spec = self.pending.pop(0)
        write_step_config(spec)
        self.current, self.progress, self._error = spec, ProgressView(), ""
        self._result = self._interrupted = False
        self.job = self.start(spec.module, spec.args, _job_dir(self.job_root, f"train-{spec.step}"))
        record_job(spec, self.job)

    @classmethod
    def attach(cls, spec: StepSpec, job: Job, job_root: Path) -> StepRunner:
        """A runner following a step started earlier (by another session or before a page reload)."""
        runner = cls([], job_root)
        runner.current, runner.job = spec, job
        return runner

    @property
    def running(self) -> bool:
        return self.job is not None and self.current is not None

    def poll(self) -> list[dict[str, Any]]:
        """Fold in the new events; returns the new `saved` events (for samples)."""
        if self.job is None or self.current is None:
            return []
        alive = self.job.running()
        new_saved = self._consume(self.job.poll())
        if alive:
            return new_saved
        new_saved += self._consume(self.job.poll())  # lines written just before the exit
        code = self.job.process.returncode
        if code is None:  # an attached job is not our child: its events tell how it ended
            code = EXIT_USER_ERROR if self._error else EXIT_OK if self._result else EXIT_STOPPED
        code = int(code)
        tail = tail_text(self.job.log_path, 2000) if crashed(code) else ""  # a crash: its log says why
        # asked here, reported by the step, or asked from another page (the marker)
        stopped = self.stopped or self._interrupted or (self.job.job_dir / STOP_MARKER).exists()
        self.results.append(StepResult(self.current.step, code, self._error, tail, stopped))
        self.last, self.job, self.current = self.current, None, None
        if code == EXIT_OK and self.pending and not stopped:
            self._start_next()
        else:
            self.pending.clear()
        return new_saved

    def _consume(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        saved = []
        for event in events:
            kind = event.get("type")
            if kind == "progress":
                self.progress.update(event)
            elif kind == "error":
                self._error = str(event.get("message", ""))
            elif kind == "saved":
                saved.append(event)
            elif kind == "result":
                self._result = True
                # trainers report a stop in their result (exit 0), formatting as "cancelled" (exit 1)
                self._interrupted = bool(event.get("stopped") or event.get("cancelled"))
        self.saved += saved
        return saved

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop the running step and drop the steps after it.

        SIGTERM first: a trainer finishes its current step, saves its state and exits, which can take
        a while for a big model on CPU; only after `grace` seconds is it killed (it then resumes from
        its last saved checkpoint). Blocks until the process is gone."""
        self.stopped = True
        self.pending.clear()
        job, spec = self.job, self.current or self.last
        if job is not None:
            _stop_with_marker(job, grace)
        # A stop asked while following another page's run can reach the step it follows just as that
        # step ends and the other page starts the next one: stop that one too (it is the same run).
        live = live_job(exp_dir_of(spec)) if spec is not None else None
        if live is not None and (job is None or live[1].job_dir != job.job_dir):
            _stop_with_marker(live[1], grace)


def _stop_with_marker(job: Job, grace: float) -> None:
    # Other pages following this job read the marker: a stop asked here is "Stopped." there too,
    # even when the step dies of the signal before it can report that it stopped.
    (job.job_dir / STOP_MARKER).touch()
    job.stop(grace=grace)


@dataclass
class SampleOutcome:
    label: str
    path: str
    ok: bool
    message: str = ""


@dataclass
class SampleQueue:
    """Listening samples, synthesised one at a time in a subprocess (never in the request thread)."""

    job_root: Path
    model_dir: Path
    device: str = "auto"
    start: Callable[[str, list[str], Path], Job] = Job.start
    pending: list[tuple[str, SampleSpec]] = field(default_factory=list)
    current: tuple[str, SampleSpec] | None = None
    job: Job | None = None
    outcomes: list[SampleOutcome] = field(default_factory=list)

    def add(self, label: str, spec: SampleSpec) -> None:
        self.pending.append((label, spec))

    @property
    def busy(self) -> bool:
        return self.job is not None or bool(self.pending)

    def poll(self) -> None:
        if self.job is not None and self.current is not None and not self.job.running():
            label, spec = self.current
            code = int(self.job.process.returncode)
            ok = code == EXIT_OK and Path(spec.out_path).is_file()
            errors = [e.get("message", "") for e in self.job.poll() if e.get("type") == "error"]
            message = "" if ok else (errors[-1] if errors else tail_text(self.job.log_path, 500))
            self.outcomes.append(SampleOutcome(label, spec.out_path, ok, message))
            self.job, self.current = None, None
        if self.job is None and self.pending:
            self.current = self.pending.pop(0)
            self.job = self._start(self.current[1])

    def _start(self, spec: SampleSpec) -> Job:
        request = Path(spec.out_path).with_suffix(".json")
        request.parent.mkdir(parents=True, exist_ok=True)
        config = sample_config(spec, self.model_dir, self.device)
        atomic_write_text(request, json.dumps(config, ensure_ascii=False, indent=1) + "\n")
        return self.start(SAMPLE_MODULE, ["--config", str(request)], _job_dir(self.job_root, "sample"))

    def stop(self) -> None:
        self.pending.clear()
        if self.job is not None:
            self.job.stop()


@dataclass
class TrainingSession:
    """One page's training state (kept in its `gr.State`): the steps it runs or follows, its sample
    queue, the experiment shown, and what the views last sent (`shown`, so a tick resends only changes).

    Closing the page does not stop a run (it may last hours): choosing the experiment again follows it.
    """

    runner: StepRunner | None = None
    samples: SampleQueue | None = None
    exp: str | None = None
    version: str = "v2"
    reference: SampleReference | None = None
    shown: dict[str, Any] = field(default_factory=dict)

    @property
    def busy(self) -> bool:
        """A step runs or a sample is pending: the timer keeps ticking."""
        runner_busy = self.runner is not None and self.runner.running
        return runner_busy or (self.samples is not None and self.samples.busy)

    def stop(self) -> None:
        """Stop whatever this session runs (blocking: see `StepRunner.stop`)."""
        for job in (self.runner, self.samples):
            if job is not None:
                job.stop()
