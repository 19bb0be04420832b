"""A training run that reports itself: the steps, the listening samples and the status are made by
the job, not by the page that started it.

`start_run` launches `python -m ui.training_runner --plan <experiment>/run_plan.json`, a supervising
process (`RunSupervisor`) that

- runs the plan's steps one after another as `core.jobs.Job` subprocesses (`StepRunner`): the next
  starts when one ends with EXIT_OK; any other end (stopped, failed, crashed) ends the sequence;
- after each `saved` event (each export, including the last one) synthesises the sample sentence
  with the new weights in another subprocess (`SampleQueue`) into `<experiment>/samples/`, listed in
  `samples/index.json`;
- writes `<experiment>/run_status.json` (steps done and how they ended, the running step's
  progress, the stop being waited for, the weights exported) whenever something changes;
- stops when `<experiment>/run_stop_requested` appears (a page's Stop) or on SIGTERM: the trainer
  finishes its current step, saves its state and exits; the status then names that step.

So a run finished while no page was open has all its samples and its status, and a page opened later
only reads these files (`read_status`, `run_alive`). Nothing here imports gradio. The job record that
says which process runs a step is in `ui/training_jobs.py`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.fsutil import atomic_write_text
from core.jobs import (
    EXIT_OK,
    EXIT_STOPPED,
    EXIT_USER_ERROR,
    EventWriter,
    Job,
    describe_end,
    process_runs,
    stage_failure,
)
from ui.training_common import Layout, StepSpec, read_json
from ui.training_jobs import exp_dir_of, live_job, record_job, tail_text
from ui.training_progress import ProgressView
from ui.training_samples import (
    SampleReference,
    SampleSpec,
    list_exports,
    plan_sample,
    sample_config,
    saved_label,
)

SUPERVISOR_MODULE = "ui.training_runner"
SAMPLE_MODULE = "gpt_sovits.infer.samples"
STOP_MARKER = "stop_requested"  # written into a job's folder by the page that stops it
STOP_GRACE_SECONDS = 60.0
# A trainer that has not reported its first step is still loading: it has nothing to save, and would
# otherwise make the stop wait for loading plus one step (a minute on a busy CPU). Its checkpoint
# files are written atomically, so ending it after this short grace loses nothing.
NOT_BEGUN_GRACE_SECONDS = 5.0
TICK_SECONDS = 0.5  # how often the supervisor reads its jobs' events
HEARTBEAT_SECONDS = 10.0
START_GRACE_SECONDS = 30.0  # a supervisor not started after this long is taken as failed to start  # the status is rewritten at least this often, so its age tells it is alive
STATUS_FORMAT = 1
# The run's states, in the status file: running (a step runs), finishing (the last samples are being
# made), stopping (a stop is being waited for), then done, stopped or failed.
LIVE_STATES = ("running", "finishing", "stopping")
TRAINERS = ("s2", "s1", "clvp")  # steps that count steps and save their state on a stop


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
    last_step: int | None = None  # a trainer's last finished step (its result event, else its progress)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepResult:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})


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
    _last_step: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.pending = list(self.specs)

    def begin(self) -> None:
        """Start the first step."""
        self._start_next()

    def _start_next(self) -> None:
        spec = self.pending.pop(0)
        spec.write_config()
        self.current, self.progress, self._error = spec, ProgressView(), ""
        self._result = self._interrupted = False
        self._last_step = None
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
        # a crash: its log says why (ui.job_ui says the same, but imports gradio: not in this process)
        tail = tail_text(self.job.log_path, 2000) if describe_end(code).unexpected else ""
        # asked here, reported by the step, or asked from another page (the marker)
        stopped = self.stopped or self._interrupted or (self.job.job_dir / STOP_MARKER).exists()
        last_step = self._last_step if self._last_step is not None else self.progress.done or None
        self.results.append(StepResult(self.current.step, code, self._error, tail, stopped, last_step))
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
                if isinstance(event.get("step"), int):
                    self._last_step = int(event["step"])
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
    spec: SampleSpec | None = None


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

    def poll(self) -> list[SampleOutcome]:
        """Collect the finished sample, start the next one; returns the samples that just ended."""
        ended = []
        if self.job is not None and self.current is not None and not self.job.running():
            label, spec = self.current
            code = int(self.job.process.returncode)
            ok = code == EXIT_OK and Path(spec.out_path).is_file()
            errors = [e.get("message", "") for e in self.job.poll() if e.get("type") == "error"]
            message = "" if ok else (errors[-1] if errors else tail_text(self.job.log_path, 500))
            self.outcomes.append(SampleOutcome(label, spec.out_path, ok, message, spec))
            ended.append(self.outcomes[-1])
            self.job, self.current = None, None
        if self.job is None and self.pending:
            self.current = self.pending.pop(0)
            self.job = self._start(self.current[1])
        return ended

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
            self.job, self.current = None, None


# ---------------------------------------------------------------- the plan a supervisor runs


def _reference_from(d: Any) -> SampleReference | None:
    if not isinstance(d, dict):
        return None
    return SampleReference(
        str(d["audio"]), str(d["text"]), str(d["language"]), str(d["target_text"]),
        str(d["target_language"]), tuple(str(p) for p in d.get("parts") or ()),
    )  # fmt: skip


@dataclass(frozen=True)
class RunPlan:
    """What one click runs: the steps of an experiment, where samples come from, and where jobs live.

    `follow`: instead of starting `specs`, follow the step already running on the experiment (its
    job record), e.g. one started by a server that has since been restarted."""

    exp: str
    version: str
    workspace: Path
    model_dir: Path
    job_root: Path
    specs: tuple[StepSpec, ...]
    reference: SampleReference | None = None
    device: str = "auto"
    follow: bool = False
    # the pretrained pair a new checkpoint is heard with until the other model has an export
    pretrained_s1: str = ""
    pretrained_s2g: str = ""

    @property
    def layout(self) -> Layout:
        return Layout(self.workspace, self.model_dir)

    def to_dict(self) -> dict[str, Any]:
        return {
            "exp": self.exp, "version": self.version, "workspace": str(self.workspace),
            "model_dir": str(self.model_dir), "job_root": str(self.job_root),
            "specs": [s.to_dict() for s in self.specs],
            "reference": dataclasses.asdict(self.reference) if self.reference else None,
            "device": self.device, "follow": self.follow, "pretrained_s1": self.pretrained_s1,
            "pretrained_s2g": self.pretrained_s2g,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunPlan:
        return cls(
            str(d["exp"]), str(d["version"]), Path(d["workspace"]), Path(d["model_dir"]),
            Path(d["job_root"]), tuple(StepSpec.from_dict(s) for s in d["specs"]),
            _reference_from(d.get("reference")), str(d.get("device") or "auto"), bool(d.get("follow")),
            str(d.get("pretrained_s1") or ""), str(d.get("pretrained_s2g") or ""),
        )  # fmt: skip


# ---------------------------------------------------------------- the samples' index


def read_sample_index(path: Path) -> list[dict[str, Any]]:
    """The entries of `samples/index.json` ({model, epoch, step, file, ok, message, gpt, sovits,
    text, time}), in the order they were made."""
    data = read_json(path)
    entries = data.get("samples") if isinstance(data, dict) else None
    return [e for e in entries if isinstance(e, dict) and "file" in e] if isinstance(entries, list) else []


def record_sample(path: Path, outcome: SampleOutcome, step: int | None) -> None:
    """Add (or replace: a run started over makes the same file again) the entry of one sample."""
    spec = outcome.spec
    if spec is None:
        return
    entry = {
        "model": spec.model, "epoch": spec.epoch, "step": step, "file": Path(spec.out_path).name,
        "ok": outcome.ok, "message": outcome.message.strip()[-500:], "gpt": spec.gpt_path,
        "sovits": spec.sovits_path, "text": spec.reference.target_text, "time": time.time(),
    }  # fmt: skip
    entries = [e for e in read_sample_index(path) if e["file"] != entry["file"]] + [entry]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"samples": entries}, ensure_ascii=False, indent=1) + "\n")


# ---------------------------------------------------------------- the supervisor


def _stop_target(runner: StepRunner) -> int | None:
    """The step a trainer is computing now (the one a stop waits for): the last reported one + 1."""
    spec = runner.current
    if spec is None or spec.step not in TRAINERS or not runner.progress.total:
        return None
    return min(runner.progress.done + 1, runner.progress.total)


class RunSupervisor:
    """Runs a `RunPlan` to its end: steps, samples after each save, the status file (see the module
    docstring). `tick` is one round; `run` loops until the steps and the samples are done."""

    def __init__(self, plan: RunPlan, start: Callable[[str, list[str], Path], Job] = Job.start) -> None:
        self.plan, self.layout = plan, plan.layout
        self.runner = StepRunner(list(plan.specs), plan.job_root, start)
        self.samples = SampleQueue(plan.job_root, plan.model_dir, plan.device, start)
        self.started = time.time()
        self.stop_asked: dict[str, Any] | None = None
        self.weights: dict[str, str] = {}  # model (s1, s2, clvp) -> newest export of this run
        self._sample_steps: dict[str, int | None] = {}  # sample file -> the training step it hears
        self._written: dict[str, Any] | None = None
        self._written_at = 0.0
        self._hooked = False

    # -- starting and stopping

    def begin(self) -> None:
        self.layout.stop_path(self.plan.exp).unlink(missing_ok=True)
        if self.plan.follow:  # never start the plan's step: it runs already (or has just ended)
            live = live_job(self.layout.exp_dir(self.plan.exp))
            self.runner = StepRunner([], self.plan.job_root)
            if live is not None:
                self.runner = StepRunner.attach(live[0], live[1], self.plan.job_root)
        elif self.runner.pending:
            self.runner.begin()
        self.write_status(force=True)

    def stop_requested(self) -> bool:
        return self.layout.stop_path(self.plan.exp).exists()

    def stop(self) -> None:
        """Stop the running step (it saves first: this blocks until it is gone) and the samples."""
        if self.stop_asked is None:
            spec = self.runner.current
            self.stop_asked = {"time": time.time(), "step": spec.step if spec else None}
            self.stop_asked["at"] = _stop_target(self.runner)
            self.write_status(force=True)  # "waiting for step N" is shown while the trainer finishes it
        self.samples.stop()
        spec = self.runner.current
        not_begun = spec is not None and spec.step in TRAINERS and not self.runner.progress.total
        self.runner.stop(grace=NOT_BEGUN_GRACE_SECONDS if not_begun else STOP_GRACE_SECONDS)

    # -- one round

    def tick(self, stop: bool = False) -> bool:
        """Read the jobs' events, queue samples, write the status; True while there is work left."""
        for event in self.runner.poll():
            self._saved(event)
        if stop and self.stop_asked is None:
            self.stop()  # after the poll: the step it waits for is counted from the newest progress
            for event in self.runner.poll():  # how the stopped step ended
                self._saved(event)
        if self.stop_asked is None:
            for outcome in self.samples.poll():
                step = self._sample_steps.get(Path(outcome.path).name)
                record_sample(self.layout.sample_index(self.plan.exp), outcome, step)
        busy = self.runner.running or (self.stop_asked is None and self.samples.busy)
        if not busy:
            self._write_weights_hook()
        self.write_status()
        return busy

    def run(self, should_stop: Callable[[], bool] = lambda: False, interval: float = TICK_SECONDS) -> str:
        """Run to the end; returns the final state (done, stopped or failed)."""
        self.begin()
        while self.tick(should_stop() or self.stop_requested()):
            time.sleep(interval)
        self.write_status(force=True)
        return self.state

    def _saved(self, event: dict[str, Any]) -> None:
        model, path = event.get("model"), event.get("path")
        if not isinstance(model, str) or not path:
            return
        self.weights[model] = str(path)
        plan = self.plan
        if not (plan.pretrained_s1 and plan.pretrained_s2g):  # no pretrained pair to hear it with
            return
        exports = list_exports(self.layout, plan.exp, plan.version)
        spec = plan_sample(
            event, self.layout, plan.exp, exports, plan.pretrained_s1, plan.pretrained_s2g, plan.reference
        )
        if spec is None or _made_from(Path(spec.out_path), Path(str(path))):
            return  # a followed run replays its earlier `saved` events: those samples exist
        step = event.get("step")
        self._sample_steps[Path(spec.out_path).name] = int(step) if isinstance(step, int) else None
        self.samples.add(saved_label(spec.model, spec.epoch), spec)

    def _write_weights_hook(self) -> None:
        """The weights of a run that ended (done or stopped) for the Voice cloning tab to pre-select."""
        if self._hooked or not self.weights or self.state == "failed":
            return
        self._hooked = True
        record = {
            "exp": self.plan.exp, "version": self.plan.version, "gpt": self.weights.get("s1"),
            "sovits": self.weights.get("s2"), "clvp": self.weights.get("clvp"), "time": time.time(),
        }  # fmt: skip
        path = self.layout.last_weights_path
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(record, ensure_ascii=False, indent=1) + "\n")

    # -- the status

    @property
    def state(self) -> str:
        runner = self.runner
        if self.stop_asked is not None and (runner.running or self.samples.job is not None):
            return "stopping"
        if runner.running:
            return "running"
        if self.stop_asked is None and self.samples.busy:
            return "finishing"
        last = runner.results[-1] if runner.results else None
        if last is None:  # nothing ran (a followed step had ended already)
            return "stopped" if self.stop_asked is not None else "done"
        if self.stop_asked is not None or last.stopped:
            return "stopped"
        if last.code == EXIT_OK and not runner.pending:
            return "done"
        return "failed"

    def status(self) -> dict[str, Any]:
        runner, p = self.runner, self.runner.progress
        current = None
        if runner.current is not None:
            current = {
                "step": runner.current.step, "done": p.done, "total": p.total, "epoch": p.epoch,
                "eta_seconds": p.eta_seconds, "message": p.message,
            }  # fmt: skip
        job = runner.job
        log = str(job.log_path) if job is not None else self._last_log()
        sample = None
        if self.samples.current is not None:
            spec = self.samples.current[1]
            sample = {"model": spec.model, "epoch": spec.epoch}
        return {
            "format": STATUS_FORMAT, "pid": os.getpid(), "module": SUPERVISOR_MODULE,
            "exp": self.plan.exp, "version": self.plan.version, "started": self.started,
            "state": self.state, "steps": [s.step for s in self.plan.specs],
            "results": [r.to_dict() for r in runner.results], "current": current,
            "pending": [s.step for s in runner.pending], "stop": self.stop_asked, "sample": sample,
            "weights": dict(self.weights), "log": log,
        }  # fmt: skip

    def _last_log(self) -> str | None:
        previous = self._written.get("log") if self._written else None
        return str(previous) if previous else None

    def write_status(self, force: bool = False) -> None:
        """Rewrite the status file when it changed (or every HEARTBEAT_SECONDS, or when forced)."""
        status = self.status()
        now = time.time()
        if not force and status == self._written and now - self._written_at < HEARTBEAT_SECONDS:
            return
        self._written, self._written_at = status, now
        path = self.layout.status_path(self.plan.exp)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({**status, "updated": now}, ensure_ascii=False) + "\n")


def _made_from(sample: Path, weights: Path) -> bool:
    """Whether `sample` exists and is newer than `weights` (so it was made from them)."""
    try:
        return sample.stat().st_mtime >= weights.stat().st_mtime
    except OSError:
        return False


# ---------------------------------------------------------------- what a page does with a run


def read_status(layout: Layout, exp: str | None) -> dict[str, Any] | None:
    """The status file of the experiment's last run (None when it never ran from the tab)."""
    if not exp:
        return None
    status = read_json(layout.status_path(exp))
    return status if isinstance(status, dict) and "state" in status else None


def run_alive(status: dict[str, Any] | None) -> bool:
    """Whether the status belongs to a run whose supervisor still runs (a live state alone is not
    enough: a supervisor that was killed leaves its last "running")."""
    if not status or status.get("state") not in LIVE_STATES:
        return False
    try:
        if status.get("pid") is None:  # written by `start_run` just before the supervisor starts
            return time.time() - float(status["updated"]) < START_GRACE_SECONDS
        return process_runs(int(status["pid"]), str(status.get("module") or SUPERVISOR_MODULE))
    except (KeyError, TypeError, ValueError):
        return False


def _reap(job: Job) -> None:
    # The supervisor is this server's child: wait for it in the background so it leaves no zombie
    # (a run outlives the page, and may outlive the request that started it by hours).
    threading.Thread(target=job.process.wait, name=f"reap-{job.process.pid}", daemon=True).start()


def start_run(plan: RunPlan, start: Callable[[str, list[str], Path], Job] = Job.start) -> Job:
    """Write the plan into the experiment folder and start its supervisor (see the module docstring).

    A first status ("running" the first step, no pid yet) is written before the supervisor starts,
    so a page reading it right after the click sees the run, and the supervisor's own writes (with
    its pid) always come after it."""
    layout = plan.layout
    plan_path = layout.plan_path(plan.exp)
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(plan_path, json.dumps(plan.to_dict(), ensure_ascii=False, indent=1) + "\n")
    layout.stop_path(plan.exp).unlink(missing_ok=True)
    job_dir = _job_dir(plan.job_root, f"run-{plan.exp}")
    first = plan.specs[0].step if plan.specs else None
    now = time.time()
    status = {
        "format": STATUS_FORMAT, "pid": None, "module": SUPERVISOR_MODULE, "exp": plan.exp,
        "version": plan.version, "started": now, "updated": now, "state": "running",
        "steps": [s.step for s in plan.specs], "results": [],
        "current": {"step": first, "done": 0, "total": 0} if first else None,
        "pending": [s.step for s in plan.specs[1:]], "stop": None, "sample": None, "weights": {},
        "log": str(job_dir / "log.txt"),
    }  # fmt: skip
    atomic_write_text(layout.status_path(plan.exp), json.dumps(status, ensure_ascii=False) + "\n")
    job = start(SUPERVISOR_MODULE, ["--plan", str(plan_path)], job_dir)
    _reap(job)
    return job


def request_stop(layout: Layout, exp: str) -> None:
    """Ask the experiment's run to stop (its supervisor reads the marker within a tick)."""
    path = layout.stop_path(exp)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


# ---------------------------------------------------------------- the supervisor's command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ui.training_runner",
        description="Run a Training-tab plan: its steps, a listening sample after each save, its status.",
    )
    parser.add_argument("--plan", required=True, help="the run_plan.json the Training tab wrote")
    parser.add_argument("--events", default=None, help="append JSON-lines events to this file")
    args = parser.parse_args(argv)
    events = EventWriter(args.events)
    try:
        plan = RunPlan.from_dict(json.loads(Path(args.plan).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as e:  # an event, a line on stderr, exit 2
        return stage_failure(UserError(f"cannot read the run plan {args.plan}: {e}"), events, "training run")
    asked: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        asked.append(signum)  # the loop stops the steps (their trainers save first)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    state = RunSupervisor(plan).run(lambda: bool(asked))
    events.emit("result", state=state, stopped=state == "stopped")
    print(f"run {plan.exp}: {state}")
    return EXIT_OK


@dataclass
class TrainingSession:
    """One page's training state (kept in its `gr.State`): the experiment shown and what the views
    last sent (`shown`, so a tick resends only changes). The run itself lives in its own process and
    folder: closing the page does not stop it, and any page showing the experiment follows it."""

    exp: str | None = None
    version: str = "v2"
    shown: dict[str, Any] = field(default_factory=dict)
    active: bool = False  # the timer runs: a run is live on `exp`


if __name__ == "__main__":
    sys.exit(main())
