"""Dataset check tab: summary, a histogram of clip durations and tables of problems for a `.list`.

`layout()` builds the components, `wire()` connects them to the named handlers below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from tools.dataset_check import DatasetReport, check_dataset
from ui.context import AppContext, InputError
from ui.errors import shown_in_toast
from ui.labels_tab import find_lists
from ui.wiring import connect


def duration_figure(report: DatasetReport, title: str, xlabel: str, ylabel: str):
    """A matplotlib bar chart of the report's duration histogram (None when there are no clips)."""
    if not report.histogram_counts:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt

    edges = report.histogram_edges
    fig, ax = plt.subplots(figsize=(7, 3))
    widths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]
    ax.bar(edges[:-1], report.histogram_counts, width=widths, align="edge", edgecolor="black")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    plt.close(fig)  # gr.Plot renders the figure object; pyplot must not keep it
    return fig


def problem_rows(report: DatasetReport, kind_labels: dict[str, str]) -> list[list[Any]]:
    return [
        [kind_labels.get(kind, kind), p.line or "", p.path, p.detail]
        for kind, problems in report.problem_tables().items()
        for p in problems
    ]


def kind_labels(ctx: AppContext) -> dict[str, str]:
    """Display names of the report's problem kinds."""
    _ = ctx.i18n
    return {
        "malformed": _("Malformed line"),
        "empty_text": _("Empty text"),
        "unsupported_language": _("Unsupported language"),
        "outside_root": _("Outside the workspace"),
        "missing_files": _("Missing file"),
        "unreadable": _("Unreadable audio"),
        "too_short": _("Too short (< 0.6 s)"),
        "too_long": _("Too long (> 54 s)"),
        "duplicate_basenames": _("Duplicate basename"),
    }


def summary_markdown(ctx: AppContext, report: DatasetReport) -> str:
    _ = ctx.i18n
    lines = [
        _("Clips: {n}", n=report.clip_count),
        _(
            "Total duration: {s:.1f} s ({m:.1f} min)",
            s=report.total_duration,
            m=report.total_duration / 60,
        ),
        _("Problems that block training: {n}", n=report.error_count),
        _(
            "Too short or too long (skipped by training): {n}",
            n=len(report.too_short) + len(report.too_long),
        ),
    ]
    return "\n\n".join(lines)


# ---------- layout ----------


@dataclass
class DatasetLayout:
    list_choice: gr.Dropdown
    refresh: gr.Button
    path: gr.Textbox
    run: gr.Button
    summary: gr.Markdown
    plot: gr.Plot
    problems: gr.Dataframe
    next: gr.Button  # "Next step: Training" (ui.experiment_bar wires it)
    events: dict[str, Any] = field(default_factory=dict)  # "check": the Check event


def layout(ctx: AppContext) -> DatasetLayout:
    _ = ctx.i18n
    with gr.Row():
        list_choice = gr.Dropdown(
            choices=find_lists(ctx.workspace),
            label=_("Label file (.list) in the workspace"),
            allow_custom_value=True,
            elem_id="dataset_list_choice",
            scale=3,
        )
        refresh_btn = gr.Button(_("Refresh"), elem_id="dataset_refresh", scale=0)
    path_box = gr.Textbox(label=_("Or a path (relative to the workspace)"), elem_id="dataset_path")
    run_btn = gr.Button(_("Check dataset"), variant="primary", elem_id="dataset_run")
    summary = gr.Markdown(elem_id="dataset_summary")
    plot = gr.Plot(label=_("Clip durations"), elem_id="dataset_plot")
    problems = gr.Dataframe(
        headers=[_("Problem"), _("Line"), _("Audio path"), _("Detail")],
        interactive=False,
        label=_("Problems"),
        elem_id="dataset_problems",
    )
    next_btn = gr.Button(_("Next step: {tab}", tab=_("Training")) + " →", elem_id="dataset_next")
    return DatasetLayout(list_choice, refresh_btn, path_box, run_btn, summary, plot, problems, next_btn)


# ---------- handlers ----------


def refresh_lists(ctx: AppContext) -> Any:
    return gr.update(choices=find_lists(ctx.workspace))


def check_list(ctx: AppContext, choice: str | None, typed: str | None) -> tuple[str, Any, list[list[Any]]]:
    """Check the typed path, else the chosen list: (summary, duration histogram, problem rows)."""
    _ = ctx.i18n
    target = (typed or "").strip() or (choice or "").strip()
    with shown_in_toast(_, "dataset check"):
        if not target:
            raise InputError(_("Choose a .list file first"))
        report = check_dataset(ctx.inside(target), boundary=ctx.workspace)
    fig = duration_figure(report, _("Clip durations"), _("seconds"), _("clips"))
    return summary_markdown(ctx, report), fig, problem_rows(report, kind_labels(ctx))


# ---------- wiring ----------


def wire(ctx: AppContext, ui: DatasetLayout) -> None:
    connect(ui.refresh.click, ctx, refresh_lists, None, ui.list_choice)
    ui.events["check"] = connect(
        ui.run.click,
        ctx,
        check_list,
        {"choice": ui.list_choice, "typed": ui.path},
        [ui.summary, ui.plot, ui.problems],
        status=ui.summary,
    )


def build(ctx: AppContext) -> DatasetLayout:
    ui = layout(ctx)
    wire(ctx, ui)
    return ui
