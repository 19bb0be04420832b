"""Which process runs a step on an experiment: the job record a later page follows, and job logs.

Starting a step writes `<experiment>/ui_job.json` (pid, step, module, argv, job folder); `live_job`
reads it back as a followable `Job` while that process still runs, so a page opened later (after a
reload, or in another browser) can follow and stop it, and the check refuses a second start.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.jobs import Job, PidProcess, process_runs
from ui.training_common import StepSpec

JOB_RECORD = "ui_job.json"  # in the experiment folder: the step running on it now


def exp_dir_of(spec: StepSpec) -> Path:
    return spec.run_dir if spec.step == "prepare" else spec.run_dir.parent


def record_job(spec: StepSpec, job: Job) -> None:
    """Note in the experiment folder which process runs which step, so a later page can follow it
    and a second start on the same experiment is refused."""
    from core.fsutil import atomic_write_text

    record = {"pid": job.process.pid, "step": spec.step, "module": spec.module, "job_dir": str(job.job_dir)}
    record["argv"] = list(spec.args)
    record["run_dir"], record["config_path"] = str(spec.run_dir), str(spec.config_path)
    atomic_write_text(exp_dir_of(spec) / JOB_RECORD, json.dumps(record, ensure_ascii=False) + "\n")


def live_job(exp_dir: Path) -> tuple[StepSpec, Job] | None:
    """The step still running on this experiment according to its job record, as a followable Job."""
    try:
        record = json.loads((exp_dir / JOB_RECORD).read_text(encoding="utf-8"))
        pid, module = int(record["pid"]), str(record["module"])
        spec = StepSpec(
            str(record["step"]), module, list(record["argv"]), {}, Path(record["run_dir"]),
            Path(record["config_path"]),
        )  # fmt: skip
        job_dir = Path(record["job_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not process_runs(pid, module):
        return None
    return spec, Job(argv=[module, *spec.args], job_dir=job_dir, process=PidProcess(pid, module))


def tail_text(path: Path, max_chars: int = 3000) -> str:
    """The end of a log file, reading only its last bytes (training logs grow for hours)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 4 * max_chars))  # UTF-8: at most 4 bytes per character
            data = f.read()
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")[-max_chars:]
