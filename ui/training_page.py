"""The Training tab's components, laid out in page order: `build_page` creates them inside the tab's
Blocks context and returns them as one `TrainingPage`; `training_tab` wires their events.

Element ids (`train-*`) are what the browser tests and users' scripts find the widgets by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ui.context import AppContext
from ui.labels_tab import find_lists
from ui.training_common import Translator, existing_experiments
from ui.training_plan import (
    DEFAULT_CLVP_EPOCHS,
    DEFAULT_LORA_RANK,
    DEFAULT_S1_EPOCHS,
    DEFAULT_S1_SAVE_EVERY,
    DEFAULT_S2_EPOCHS,
    DEFAULT_S2_SAVE_EVERY,
    LORA_RANKS,
    VERSIONS,
)
from ui.training_runner import TrainingSession
from ui.training_views import MAX_SAMPLES, clip_choices, layout_of, models_markdown

TICK_SECONDS = 1.0


@dataclass(frozen=True)
class TrainingPage:
    """Every component of the tab that an event reads or writes."""

    # which experiment, on which data
    exp_name: gr.Textbox
    exp_pick: gr.Dropdown
    version: gr.Radio
    list_choice: gr.Dropdown
    refresh: gr.Button
    models_md: gr.Markdown
    # settings
    s2_epochs: gr.Slider
    s2_batch: gr.Slider
    s2_save: gr.Slider
    lora_rank: gr.Radio  # v3/v4 only (shown for them)
    s1_epochs: gr.Slider
    s1_batch: gr.Slider
    s1_save: gr.Slider
    dpo: gr.Checkbox
    clvp_epochs: gr.Slider
    device: gr.Dropdown
    fresh: gr.Checkbox
    clvp_init: gr.Textbox
    ref_choice: gr.Dropdown
    sample_text: gr.Textbox
    # actions
    one_click: gr.Button
    check_btn: gr.Button
    stop_btn: gr.Button
    format_btn: gr.Button
    s2_btn: gr.Button
    s1_btn: gr.Button
    clvp_btn: gr.Button
    # what a run shows
    check_md: gr.Markdown
    status_md: gr.Markdown
    progress_md: gr.Markdown
    s2_mel_plot: gr.LinePlot
    s2_kl_plot: gr.LinePlot
    s2_adv_plot: gr.LinePlot
    s1_plot: gr.LinePlot
    s1_acc_plot: gr.LinePlot
    clvp_plot: gr.LinePlot
    sample_players: tuple[gr.Audio, ...]
    exports: gr.Dataframe
    log_box: gr.Textbox
    timer: gr.Timer
    state: gr.State  # a TrainingSession per page

    @property
    def settings_inputs(self) -> set[Any]:
        """What `TrainSettings` is read from (with the session)."""
        return {
            self.exp_name, self.version, self.list_choice, self.s2_epochs, self.s2_batch, self.s2_save,
            self.lora_rank,
            self.s1_epochs, self.s1_batch, self.s1_save, self.dpo, self.clvp_epochs, self.clvp_init,
            self.device, self.fresh, self.state,
        }  # fmt: skip

    @property
    def plots(self) -> tuple[gr.LinePlot, ...]:
        """In `training_views.PLOTS` order: one per loss family."""
        return (
            self.s2_mel_plot, self.s2_kl_plot, self.s2_adv_plot, self.s1_plot, self.s1_acc_plot,
            self.clvp_plot,
        )  # fmt: skip

    @property
    def view_outputs(self) -> list[Any]:
        """Everything the timer refreshes: status, progress, the plots, the players, exports, log."""
        return [
            self.status_md,
            self.progress_md,
            *self.plots,
            *self.sample_players,
            self.exports,
            self.log_box,
        ]


def _experiment_rows(ctx: AppContext) -> dict[str, Any]:
    _ = ctx.i18n
    with gr.Row():
        exp_name = gr.Textbox(label=_("Experiment name"), elem_id="train-exp", scale=2)
        exp_pick = gr.Dropdown(
            existing_experiments(layout_of(ctx)),
            value=None,
            label=_("Or an existing experiment"),
            elem_id="train-exp-pick",
            scale=1,
        )
        # v1, v2, v3, v4, v2Pro, v2ProPlus as the reference's training UI; each brings its pretrained files.
        version = gr.Radio(list(VERSIONS), value="v2", label=_("Version"), elem_id="train-version", scale=1)
    with gr.Row():
        list_choice = gr.Dropdown(
            find_lists(ctx.workspace),
            value=None,
            label=_("Label file (.list) to train on"),
            allow_custom_value=True,
            elem_id="train-list",
            scale=3,
        )
        refresh = gr.Button(_("Refresh"), elem_id="train-refresh", scale=0)
    with gr.Accordion(_("Pretrained models"), open=True):
        models_md = gr.Markdown(models_markdown(ctx, "v2"), elem_id="train-models")
    return dict(
        exp_name=exp_name, exp_pick=exp_pick, version=version, list_choice=list_choice, refresh=refresh,
        models_md=models_md,
    )  # fmt: skip


def _epoch_slider(top: int, value: int, label: str, elem_id: str) -> gr.Slider:
    return gr.Slider(1, top, value=value, step=1, label=label, elem_id=elem_id)


def _batch_slider(label: str, elem_id: str) -> gr.Slider:
    return gr.Slider(0, 64, value=0, step=1, label=label, elem_id=elem_id)


def _trainer_rows(_: Translator) -> dict[str, Any]:
    """Epochs, batch size and save frequency of S2 and S1, and DPO."""
    with gr.Row():
        s2_epochs = _epoch_slider(25, DEFAULT_S2_EPOCHS, _("S2 epochs"), "train-s2-epochs")
        s2_batch = _batch_slider(_("S2 batch size (0: automatic)"), "train-s2-batch")
        s2_save = _epoch_slider(25, DEFAULT_S2_SAVE_EVERY, _("S2 save every N epochs"), "train-s2-save")
        lora_rank = gr.Radio(
            list(LORA_RANKS), value=DEFAULT_LORA_RANK, label=_("LoRA rank (v3/v4)"), visible=False,
            elem_id="train-lora-rank",
        )  # fmt: skip
    with gr.Row():
        s1_epochs = _epoch_slider(50, DEFAULT_S1_EPOCHS, _("S1 epochs"), "train-s1-epochs")
        s1_batch = _batch_slider(_("S1 batch size (0: automatic)"), "train-s1-batch")
        s1_save = _epoch_slider(50, DEFAULT_S1_SAVE_EVERY, _("S1 save every N epochs"), "train-s1-save")
        dpo = gr.Checkbox(False, label=_("S1 DPO training (experimental)"), elem_id="train-dpo")
    return dict(
        s2_epochs=s2_epochs, s2_batch=s2_batch, s2_save=s2_save, lora_rank=lora_rank,
        s1_epochs=s1_epochs, s1_batch=s1_batch, s1_save=s1_save, dpo=dpo,
    )  # fmt: skip


def _run_rows(ctx: AppContext) -> dict[str, Any]:
    """CLVP, device, Start over, and the samples' reference clip and text."""
    _ = ctx.i18n
    with gr.Row():
        clvp_epochs = _epoch_slider(200, DEFAULT_CLVP_EPOCHS, _("CLVP epochs"), "train-clvp-epochs")
        device = gr.Dropdown(
            [(_("Automatic"), "auto"), ("CUDA", "cuda"), ("CPU", "cpu")],
            value="auto",
            label=_("Device"),
            elem_id="train-device",
        )
        fresh = gr.Checkbox(
            False, label=_("Start over (do not resume the previous run)"), elem_id="train-fresh"
        )
    clvp_init = gr.Textbox(
        label=_("CLVP weights to fine-tune from (optional; empty: train a new model)"),
        elem_id="train-clvp-init",
    )
    with gr.Row():
        ref_choice = gr.Dropdown(
            clip_choices(ctx, None), value="", label=_("Reference clip for the samples"),
            elem_id="train-ref", scale=2,
        )  # fmt: skip
        sample_text = gr.Textbox(
            label=_("Sample text (empty: a fixed sentence in the reference's language)"),
            elem_id="train-sample-text",
            scale=2,
        )
    return dict(
        clvp_epochs=clvp_epochs, device=device, fresh=fresh, clvp_init=clvp_init, ref_choice=ref_choice,
        sample_text=sample_text,
    )  # fmt: skip


def _buttons(_: Translator) -> dict[str, Any]:
    with gr.Row():
        one_click = gr.Button(_("Format + train S2 + train S1"), variant="primary", elem_id="train-all")
        check_btn = gr.Button(_("Check"), elem_id="train-check-btn")
        stop_btn = gr.Button(_("Stop"), variant="stop", elem_id="train-stop")
    with gr.Row():
        format_btn = gr.Button(_("Format"), elem_id="train-format")
        s2_btn = gr.Button(_("Train S2"), elem_id="train-s2")
        s1_btn = gr.Button(_("Train S1"), elem_id="train-s1")
        clvp_btn = gr.Button(_("Train CLVP"), elem_id="train-clvp")
    return dict(
        one_click=one_click, check_btn=check_btn, stop_btn=stop_btn, format_btn=format_btn, s2_btn=s2_btn,
        s1_btn=s1_btn, clvp_btn=clvp_btn,
    )  # fmt: skip


def _line_plot(label: str, elem_id: str, _: Translator, y_title: str = "") -> gr.LinePlot:
    # "d": whole steps on the x axis (a short run would otherwise be labelled 0.5, 1.5, ...)
    return gr.LinePlot(
        x="step", y="value", color="metric", label=label, elem_id=elem_id, x_title=_("step"),
        y_title=y_title or _("loss"), color_title=_("metric"), x_axis_format="d",
    )  # fmt: skip


def _run_views(_: Translator) -> dict[str, Any]:
    """The check, status and progress lines, the curves (one per loss family), the samples, exports
    and the log."""
    check_md = gr.Markdown(elem_id="train-check")
    status_md = gr.Markdown(elem_id="train-status")
    progress_md = gr.Markdown(elem_id="train-progress")
    with gr.Row():
        s2_mel_plot = _line_plot(_("SoVITS (S2): mel reconstruction"), "train-plot-s2-mel", _)
        s2_kl_plot = _line_plot(_("SoVITS (S2): KL"), "train-plot-s2-kl", _)
        s2_adv_plot = _line_plot(_("SoVITS (S2): adversarial and feature matching"), "train-plot-s2-adv", _)
    with gr.Row():
        s1_plot = _line_plot(_("GPT (S1) loss"), "train-plot-s1", _)
        s1_acc_plot = _line_plot(_("GPT (S1) accuracy"), "train-plot-s1-acc", _, _("accuracy"))
        clvp_plot = _line_plot(_("CLVP loss"), "train-plot-clvp", _)
    gr.Markdown("### " + _("Samples after each save"))
    with gr.Row(elem_id="train-samples"):
        sample_players = tuple(
            gr.Audio(visible=False, interactive=False, type="filepath", elem_id=f"train-sample-{i}")
            for i in range(MAX_SAMPLES)
        )
    gr.Markdown("### " + _("Exported weights"))
    exports = gr.Dataframe(
        headers=[_("Model"), _("Epoch"), _("Step"), _("Path")], interactive=False, elem_id="train-exports"
    )
    with gr.Accordion(_("Log"), open=False, elem_id="train-log-accordion"):
        log_box = gr.Textbox(lines=10, interactive=False, show_label=False, elem_id="train-log")
    return dict(
        check_md=check_md, status_md=status_md, progress_md=progress_md, s2_mel_plot=s2_mel_plot,
        s2_kl_plot=s2_kl_plot, s2_adv_plot=s2_adv_plot, s1_plot=s1_plot,
        s1_acc_plot=s1_acc_plot, clvp_plot=clvp_plot, sample_players=sample_players, exports=exports,
        log_box=log_box,
    )  # fmt: skip


def build_page(ctx: AppContext) -> TrainingPage:
    """Create the tab's components (inside the caller's Blocks context), top to bottom."""
    _ = ctx.i18n
    gr.Markdown(
        _(
            "Fine-tune a voice from a checked `.list`: formatting, then SoVITS (S2) and GPT (S1). "
            "Experiments go to `experiments/<name>/`, exported weights to `weights/` (the Inference tab "
            "lists them)."
        )
    )
    experiment = _experiment_rows(ctx)
    with gr.Accordion(_("Training settings"), open=True):
        settings = {**_trainer_rows(_), **_run_rows(ctx)}
    buttons = _buttons(_)
    views = _run_views(_)
    timer = gr.Timer(TICK_SECONDS, active=False)
    state = gr.State(TrainingSession())
    return TrainingPage(**experiment, **settings, **buttons, **views, timer=timer, state=state)
