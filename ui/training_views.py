"""What the Training tab shows, as text and data frames (no gradio): the pretrained files, the check's
verdict, the steps' status and progress, the curves, the samples and the exported weights.

Messages go through the translator `_` (an `i18n.I18n` in the UI).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from core.jobs import EXIT_OK, EXIT_SOME_FAILED, EXIT_STOPPED
from ui.context import AppContext
from ui.job_ui import exit_message
from ui.training_common import Layout, TrainingInputError, Translator, plain, validate_exp_name
from ui.training_jobs import tail_text
from ui.training_plan import Problem, pretrained_files
from ui.training_progress import (
    S2_FAMILIES,
    format_duration,
    in_family,
    is_accuracy,
    is_loss,
    metric_series,
    plot_rows,
    read_metrics,
)
from ui.training_runner import TRAINERS, StepResult, read_sample_index
from ui.training_samples import list_exports, saved_label

MAX_SAMPLES = 8  # audio players shown (newest first)
_SAMPLE_FILE = re.compile(r"(s1|s2)_e(\d+)\.wav")


def layout_of(ctx: AppContext) -> Layout:
    return Layout(ctx.workspace, ctx.model_dir)


def step_labels(_: Translator) -> dict[str, str]:
    return {
        "prepare": _("Formatting"),
        "s2": _("SoVITS (S2) training"),
        "s1": _("GPT (S1) training"),
        "clvp": _("CLVP training"),
    }


def model_labels(_: Translator) -> dict[str, str]:
    return {
        "s1": _("GPT (S1) pretrained"),
        "s2g": _("SoVITS (S2) generator"),
        "s2d": _("SoVITS (S2) discriminator"),
        "hubert": _("HuBERT (chinese-hubert-base)"),
        "bert": _("BERT (chinese-roberta-wwm-ext-large)"),
        "sv": _("Speaker verification (ERes2NetV2, v2Pro/v2ProPlus)"),
    }


def models_markdown(ctx: AppContext, version: str) -> str:
    """One line per pretrained file: found / missing, where, and how to get a missing one."""
    _ = ctx.i18n
    try:
        files = pretrained_files(ctx.model_dir, version)
    except ValueError as e:  # an unknown version: said in place of the list
        return f"❌ {e}"
    labels = model_labels(_)
    lines = [_("Pretrained models folder: `{path}`", path=str(ctx.model_dir)), ""]
    for m in files:
        if m.present:
            lines.append(f"- ✅ {labels[m.role]}: {_('found')} `{m.path}`")
        else:
            lines.append(f"- ❌ {labels[m.role]}: {_('missing')} `{m.path}`  \n  {m.how_to_get}")
    return "\n".join(lines)


def problems_markdown(problems: list[Problem], _: Translator, summary: str = "") -> str:
    """The check's verdict, its problems as a list, and the dataset summary line."""
    tail = ["", summary] if summary else []
    if any(p.blocking for p in problems):
        head = _("Cannot start: fix the problems marked ❌.")
    elif any(p.severity == "warning" for p in problems):
        head = _("Checks passed with warnings:")
    else:
        head = "✅ " + _("All checks passed.")
    marks = {"error": "❌", "warning": "⚠️", "info": "ℹ️"}
    items = [f"- {marks.get(p.severity, '⚠️')} {p.message}" for p in problems]
    return "\n".join([f"**{head}**", *items, *tail])


def suggested_name(list_value: str | None) -> str:
    """A safe experiment name from a `.list` path: its stem with unsafe characters replaced."""
    stem = Path(list_value or "").stem
    name = re.sub(r"[^\w.\-]+", "_", stem).strip("._-")
    return name[:64]


def safe_exp(name: str | None) -> str | None:
    """The experiment name if it is a safe one, else None (nothing to show)."""
    try:
        return validate_exp_name(name or "")
    except TrainingInputError:
        return None


def clip_choices(ctx: AppContext, list_value: str | None) -> list[tuple[str, str]]:
    """(label, audio path) of the clips of the chosen list, for the sample-reference dropdown."""
    from tools.labels import LabelError, load_list

    _ = ctx.i18n
    choices = [(_("Automatic (first clip of 3-10 s)"), "")]
    if not list_value:
        return choices
    try:
        doc = load_list(ctx.inside(list_value), boundary=ctx.workspace)
    except (LabelError, ValueError):  # an unreadable or outside list: only the automatic choice
        return choices
    for entry in doc.entries[:500]:
        try:
            path = str(doc.resolve_audio(entry))
        except ValueError:  # a clip outside the workspace is not offered
            continue
        choices.append((f"{Path(entry.path).name}: {entry.text[:40]}", path))
    return choices


def file_signature(path: Path) -> tuple[int, int] | None:
    """(mtime_ns, size) of a file, None when it does not exist: cheap change detection."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def metric_files(layout: Layout, exp: str | None) -> list[Path]:
    """The metrics.jsonl of the S2, S1 and CLVP runs (what the curves are drawn from)."""
    return [layout.run_dir(exp, step) / "metrics.jsonl" for step in ("s2", "s1", "clvp")] if exp else []


def plot_frame(rows: list[dict]) -> Any:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["step", "value", "metric"])
    return frame.astype({"step": "int64"})  # whole steps on the x axis


def metric_labels(_: Translator) -> dict[str, str]:
    """Readable names of the trainers' metrics (the legend of the plots)."""
    return {
        "loss/g/mel": _("mel reconstruction"),
        "loss/g/total": _("generator total"),
        "loss/g/kl": _("KL (posterior vs prior)"),
        "loss/g/kl_ssl": _("SSL quantiser commitment"),
        "loss/g/gen": _("generator adversarial"),
        "loss/g/fm": _("feature matching"),
        "loss/d/total": _("discriminator"),
        "loss/ce": _("cross-entropy"),
        "loss/dpo": _("DPO"),
        "acc/top3": _("top-3 accuracy"),
        "loss/train": _("training loss"),
        "val/loss": _("held-out loss"),
    }


PLOTS = (*(f"s2_{family}" for family in S2_FAMILIES), "s1_loss", "s1_acc", "clvp")  # the page's order


def plots_for(layout: Layout, exp: str | None, _: Translator = plain) -> list[Any]:
    """Data of the curves, one per loss family (PLOTS order): S2 mel, S2 KL, S2 adversarial, S1 loss,
    S1 accuracy, CLVP loss; metrics under readable names, steps as integers; empty frames if none."""
    if not exp:
        return [plot_frame([]) for _p in PLOTS]
    s2, s1, clvp = (metric_series(read_metrics(f)) for f in metric_files(layout, exp))
    names = metric_labels(_)

    def label(key: str) -> str:
        return names.get(key, key)

    return [
        *(plot_frame(plot_rows(s2, in_family(family), label)) for family in S2_FAMILIES),
        plot_frame(plot_rows(s1, is_loss, label)),
        plot_frame(plot_rows(s1, is_accuracy, label)),
        plot_frame(plot_rows(clvp, is_loss, label)),
    ]


def sample_entries(layout: Layout, exp: str | None) -> list[dict[str, Any]]:
    """The samples' index of the experiment (see `training_runner.record_sample`), in making order."""
    return read_sample_index(layout.sample_index(exp)) if exp else []


def sample_files(layout: Layout, exp: str | None) -> list[tuple[str, int, int | None, str]]:
    """(model, epoch, step, path) of the experiment's samples that were made, newest first; from the
    samples' index, else (samples made before the index existed) from the file names."""
    if not exp:
        return []
    folder = layout.samples_dir(exp)
    entries = sample_entries(layout, exp)
    if entries:
        made = [e for e in entries if e.get("ok") and (folder / str(e["file"])).is_file()]
        made.sort(key=lambda e: float(e.get("time") or 0), reverse=True)
        return [(str(e["model"]), int(e["epoch"]), e.get("step"), str(folder / str(e["file"]))) for e in made]
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _SAMPLE_FILE.fullmatch(p.name)
        if m:
            found.append((p.stat().st_mtime, m.group(1), int(m.group(2)), str(p)))
    return [(model, epoch, None, path) for _t, model, epoch, path in sorted(found, reverse=True)]


def sample_label(model: str, epoch: int, step: int | None, _: Translator) -> str:
    label = saved_label(model, epoch, _)
    return f"{label} ({_('step {step}', step=step)})" if step is not None else label


def export_rows(layout: Layout, exp: str | None, version: str, _: Translator) -> list[list[Any]]:
    """Rows of the exported-weights table: model, epoch, step, path."""
    if not exp:
        return []
    names = {"s2": "SoVITS (S2)", "s1": "GPT (S1)", "clvp": "CLVP"}
    return [
        [names[e.model], e.epoch, e.step if e.step is not None else "", e.path]
        for e in list_exports(layout, exp, version)
    ]


def result_line(result: StepResult, _: Translator) -> str:
    """`- <step>: <how it ended>` for a finished step."""
    stopped_quietly = result.stopped and result.code in (EXIT_OK, EXIT_SOME_FAILED)
    code = EXIT_STOPPED if stopped_quietly else result.code
    if code < 0 and not result.stopped:  # killed by a signal nobody here sent: the OOM killer, mostly
        verdict = _(
            "Failed: the process was killed (signal {sig}), often for lack of memory; "
            "try a smaller batch size.",
            sig=-code,
        )
    else:
        verdict = exit_message(_, code, result.stopped or None)
    line = f"- {step_labels(_)[result.step]}: {verdict}"
    return f"{line} {result.error}" if result.error else line


def _results(status: dict[str, Any]) -> list[StepResult]:
    return [StepResult.from_dict(r) for r in status.get("results") or [] if isinstance(r, dict)]


def stop_waiting_line(status: dict[str, Any] | None, _: Translator) -> str:
    """What a stop waits for: the trainer's current step (state is saved, then the run ends)."""
    stop = (status or {}).get("stop") or {}
    current = (status or {}).get("current") or {}
    step = stop.get("step") or current.get("step")
    at = stop.get("at")
    if at is None and step in TRAINERS and current.get("total"):
        at = min(int(current.get("done") or 0) + 1, int(current["total"]))
    if at is not None:
        return _("Stopping: waiting for step {step} to finish (state is saved, then the run ends)", step=at)
    if step in TRAINERS and not current.get("total"):
        return _("Stopping: the training had not begun its first step; it ends now (nothing to save)")
    if step in TRAINERS:
        return _("Stopping: waiting for the current step to finish (state is saved, then the run ends)")
    return _("Stopping: waiting for the current file to finish, then the run ends")


def sample_lines(layout: Layout, status: dict[str, Any], _: Translator) -> list[str]:
    """The sample being made, and this run's samples that failed (the last three)."""
    started = float(status.get("started") or 0)
    failed = [e for e in sample_entries(layout, status.get("exp")) if not e.get("ok")]
    lines = [
        f"- ⚠️ {sample_label(str(e['model']), int(e['epoch']), e.get('step'), _)}: {_('sample failed')}: "
        + str(e.get("message") or "").strip()[-300:]
        for e in failed
        if float(e.get("time") or 0) >= started
    ][-3:]
    sample = status.get("sample")
    if isinstance(sample, dict) and status.get("state") in ("running", "finishing"):
        label = saved_label(str(sample.get("model")), int(sample.get("epoch") or 0), _)
        lines.append(f"- {label}: {_('synthesising…')}")
    return lines


def weights_line(layout: Layout, status: dict[str, Any], _: Translator) -> list[str]:
    """The next step after a run that exported weights: Voice cloning, with what it pre-selects."""
    weights = status.get("weights") or {}
    files = [str(weights[m]) for m in ("s1", "s2") if weights.get(m) and Path(str(weights[m])).is_file()]
    if not files:
        return []
    shown = []
    for f in files:
        try:
            shown.append(f"`{Path(f).relative_to(layout.weights_dir)}`")
        except ValueError:  # exported elsewhere (a CLI run with its own folder): the full path
            shown.append(f"`{f}`")
    return [
        "",
        "✅ "
        + _(
            "Weights ready: open Voice cloning (it selects the new weights: {files}).", files=", ".join(shown)
        ),
    ]


def closing_paragraph(layout: Layout, status: dict[str, Any], _: Translator) -> list[str]:
    """After the run: how to resume a stopped one, or that everything finished; then the next step."""
    state, results = status.get("state"), _results(status)
    if state == "stopped":
        last = results[-1] if results else None
        if last is not None and last.step in TRAINERS and last.last_step:
            lines = ["", _("Stopped after step {step}; resume continues from there.", step=last.last_step)]
            lines.append(_("Click the same step again to resume, or tick Start over."))
        else:
            lines = [
                "",
                _("Stopped. Click the same step again to resume where it stopped, or tick Start over."),
            ]
        return lines + weights_line(layout, status, _)
    if state == "done":
        return ["", "✅ " + _("All steps finished."), *weights_line(layout, status, _)[1:]]
    return []


def status_markdown(layout: Layout, status: dict[str, Any] | None, alive: bool, _: Translator) -> str:
    """Finished steps with how they ended, then the running one (or the stop it waits for), the
    steps after it, the samples, and what to do next; from the run's status file."""
    if not status:
        return ""
    labels = step_labels(_)
    lines = [result_line(r, _) for r in _results(status)]
    state, current = status.get("state"), status.get("current") or {}
    step = current.get("step")
    if step in labels:
        if state == "stopping" and alive:
            lines.append(f"- {labels[step]}: {stop_waiting_line(status, _)}")
        elif alive:
            lines.append(f"- {labels[step]}: {_('running…')}")
        else:
            lines.append(
                f"- {labels[step]}: "
                + _(
                    "interrupted: the process that ran it is gone (ended from outside, or the machine "
                    "restarted). Click the same step again to resume."
                )
            )
    if alive and status.get("pending"):
        lines.append(f"- {_('Next')}: " + ", ".join(labels.get(s, s) for s in status["pending"]))
    if alive and state == "finishing":
        lines.append(f"- {_('All steps finished; making the last samples…')}")
    lines += sample_lines(layout, status, _)
    if not alive:
        lines += closing_paragraph(layout, status, _)
    return "\n".join(lines)


def progress_markdown(status: dict[str, Any] | None, alive: bool, _: Translator) -> str:
    """The running step's step/total, epoch, ETA and percentage, then its last message."""
    current = (status or {}).get("current") or {}
    if not alive or current.get("step") not in step_labels(_):
        return ""
    label = step_labels(_)[current["step"]]
    done, total = int(current.get("done") or 0), int(current.get("total") or 0)
    if not total:
        return f"**{label}**: {_('starting…')}"
    parts = [f"**{label}**", _("step {done}/{total}", done=done, total=total)]
    if current.get("epoch") is not None:
        parts.append(_("epoch {epoch}", epoch=current["epoch"]))
    parts.append(_("ETA {eta}", eta=format_duration(current.get("eta_seconds"))))
    pct = 100.0 * done / total
    return " · ".join(parts) + f" ({pct:.0f}%)  \n{current.get('message') or ''}"


def log_text(status: dict[str, Any] | None) -> str:
    """The end of the running (or last) step's log; a crashed step's kept tail when the log is gone."""
    if not status:
        return ""
    log = status.get("log")
    text = tail_text(Path(str(log)), 3000) if log else ""
    if text:
        return text
    results = _results(status)
    return results[-1].log_tail if results and results[-1].log_tail else ""
