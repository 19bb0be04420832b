"""Placeholder until this tab is implemented."""

from __future__ import annotations

from ui.context import AppContext


def build(ctx: AppContext) -> None:
    import gradio as gr

    gr.Markdown(ctx.i18n("Not available yet."))
