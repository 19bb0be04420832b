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
from ui.training_common import Layout, TrainingInputError, Translator, validate_exp_name
from ui.training_jobs import tail_text
from ui.training_plan import Problem, pretrained_files
from ui.training_progress import format_duration, is_accuracy, is_loss, metric_series, plot_rows, read_metrics
from ui.training_runner import SampleQueue, StepResult, StepRunner
from ui.training_samples import list_exports

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

    return pd.DataFrame(rows, columns=["step", "value", "metric"])


def plots_for(layout: Layout, exp: str | None) -> list[Any]:
    """Data of the four curves: S2 losses, S1 loss, S1 accuracy, CLVP losses (empty frames if none)."""
    if not exp:
        return [plot_frame([]) for _ in range(4)]
    s2, s1, clvp = (metric_series(read_metrics(f)) for f in metric_files(layout, exp))
    return [
        plot_frame(plot_rows(s2, is_loss)),
        plot_frame(plot_rows(s1, is_loss)),
        plot_frame(plot_rows(s1, is_accuracy)),
        plot_frame(plot_rows(clvp, is_loss)),
    ]


def sample_files(layout: Layout, exp: str | None) -> list[tuple[str, int, str]]:
    """(model, epoch, path) of the experiment's samples, newest first."""
    if not exp:
        return []
    folder = layout.samples_dir(exp)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _SAMPLE_FILE.fullmatch(p.name)
        if m:
            found.append((p.stat().st_mtime, m.group(1), int(m.group(2)), str(p)))
    return [(model, epoch, path) for _t, model, epoch, path in sorted(found, reverse=True)]


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


def sample_lines(sample_queue: SampleQueue | None, _: Translator) -> list[str]:
    """The recent sample failures and the sample being synthesised."""
    if sample_queue is None:
        return []
    lines = [
        f"- ⚠️ {o.label}: {_('sample failed')}: {o.message.strip()[-300:]}"
        for o in sample_queue.outcomes[-3:]
        if not o.ok
    ]
    if sample_queue.job is not None and sample_queue.current is not None:
        lines.append(f"- {sample_queue.current[0]}: {_('synthesising…')}")
    return lines


def closing_paragraph(runner: StepRunner, _: Translator) -> list[str]:
    """After the last step: how to resume a stopped run, or that everything finished."""
    if not runner.results or runner.current is not None:
        return []
    last = runner.results[-1]
    if last.stopped or last.code == EXIT_STOPPED:
        return ["", _("Stopped. Click the same step again to resume where it stopped, or tick Start over.")]
    if last.code == EXIT_OK and not runner.pending:
        return ["", "✅ " + _("All steps finished.")]
    return []


def status_markdown(runner: StepRunner | None, sample_queue: SampleQueue | None, _: Translator) -> str:
    """Finished steps with their exit status, then the running one; sample failures last."""
    if runner is None:
        return ""
    labels = step_labels(_)
    lines = [result_line(r, _) for r in runner.results]
    if runner.current is not None:
        doing = _("Stopping…") if runner.stopped else _("running…")
        lines.append(f"- {labels[runner.current.step]}: {doing}")
    if runner.pending:
        lines.append(f"- {_('Next')}: " + ", ".join(labels[s.step] for s in runner.pending))
    lines += sample_lines(sample_queue, _)
    lines += closing_paragraph(runner, _)
    return "\n".join(lines)


def progress_markdown(runner: StepRunner | None, _: Translator) -> str:
    """The running step's step/total, epoch, ETA and percentage, then its last message."""
    if runner is None or runner.current is None:
        return ""
    p = runner.progress
    label = step_labels(_)[runner.current.step]
    if not p.total:
        return f"**{label}**: {_('starting…')}"
    parts = [f"**{label}**", _("step {done}/{total}", done=p.done, total=p.total)]
    if p.epoch is not None:
        parts.append(_("epoch {epoch}", epoch=p.epoch))
    parts.append(_("ETA {eta}", eta=format_duration(p.eta_seconds)))
    pct = 100.0 * p.done / p.total
    return " · ".join(parts) + f" ({pct:.0f}%)  \n{p.message}"


def log_text(runner: StepRunner | None) -> str:
    """The end of the running step's log, else the log tail kept for a crashed step."""
    if runner is not None and runner.job is not None:
        return tail_text(runner.job.log_path, 3000)
    if runner is not None and runner.results and runner.results[-1].log_tail:
        return runner.results[-1].log_tail
    return ""
