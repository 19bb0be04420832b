"""The Voice cloning tab's layout: every component, built in place and returned as one dataclass.

The synthesis knobs come from the one schema (``gpt_sovits.infer.request.SYNTHESIS_PARAMS``): each entry
with a ``Widget`` becomes a slider, number box, text box or dropdown at its place (the reference column,
the row under the text, or a row of the Sampling accordion), with its default and translated label. A
knob added to the schema therefore shows up here, and in the synthesis handler's inputs, by itself.
The wiring (``ui/inference_tab.py``) refers to components by name: a field of ``InferenceLayout`` or a
key of its ``knobs``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from gpt_sovits.infer import request as schema
from gpt_sovits.infer.sovits import V3V4_VERSIONS
from ui import inference_helpers as H
from ui.context import AppContext


@dataclass
class InferenceLayout:
    """The tab's components. ``knobs`` maps each schema parameter shown to its widget."""

    gpt: gr.Dropdown
    sovits: gr.Dropdown
    clvp: gr.Dropdown
    refresh: gr.Button
    models_md: gr.Markdown
    ref_audio: gr.Audio
    ref_status: gr.Markdown
    trim: gr.Button
    aux_refs: gr.File
    asr_model: gr.Dropdown
    transcribe: gr.Button
    text: gr.Textbox
    random_seed: gr.Checkbox
    exact_fp32: gr.Checkbox  # exact fp32 models instead of the server's CPU fast path
    go: gr.Button
    cancel: gr.Button  # stops the running synthesis between two sentences
    out_audio: gr.Audio
    used_seed: gr.Textbox
    summary: gr.Markdown
    out_file: gr.File
    table: gr.Dataframe
    pick: gr.Dropdown
    play: gr.Button
    swap: gr.Button
    cand_audio: gr.Audio
    history: gr.State
    session: gr.State  # {"outcome": SynthesisOutcome} of the last synthesis
    voice: gr.Dropdown  # a saved voice (gpt_sovits.infer.voices): choosing one fills every field
    voice_name: gr.Textbox
    voice_overwrite: gr.Checkbox
    save_voice: gr.Button
    voice_status: gr.Markdown
    text_file: gr.File  # a .txt whose text fills the text box
    export_format: gr.Dropdown  # wav, flac, mp3 or ogg for the saved result
    stream_audio: gr.Audio  # plays the sentences as they are generated
    regen: gr.Button  # draws the picked sentence's candidates again with a new seed
    knobs: dict[str, gr.components.Component] = field(default_factory=dict)

    def components(self, names: Iterable[str]) -> dict[str, Any]:
        """Components by name: a field of the layout, or a knob."""
        return {n: self.knobs[n] if n in self.knobs else getattr(self, n) for n in names}


# ------------------------------------------------------------------------------------ choices


def weight_dropdown_choices(choices: list[H.WeightChoice], _: Callable[[str], str]) -> list[tuple[str, str]]:
    out = []
    for c in choices:
        label = c.label
        if c.pretrained and not Path(c.path).is_file():
            label += f" ({_('missing')})"
        elif c.path.endswith(".pth") and (version := H.sovits_version(c.path)):
            label += f" · {version}"  # the detected SoVITS version, next to the choice
        out.append((label, c.path))
    return out


def clvp_dropdown_choices(paths: list[str], _: Callable[[str], str]) -> list[tuple[str, str]]:
    return [(_("none"), "none"), *((Path(p).name, p) for p in paths)]


def models_markdown(ctx: AppContext) -> str:
    """One line per model synthesis needs: found, or missing with how to get it."""
    _ = ctx.i18n
    lines = []
    for name, present, how in H.model_status_lines(ctx.model_dir):
        if present:
            lines.append(f"- ✅ `{name}`: {_('found')}")
        else:
            lines.append(f"- ⚠️ `{name}`: {_('missing')}. {how}")
    # The SV model: needed by v2Pro/v2ProPlus weights only, so its absence is a note, not a warning.
    for name, present, how in H.model_status_lines(ctx.model_dir, ("sv-eres2netv2",)):
        state = _("found") if present else f"{_('missing')}. {how}"
        lines.append(f"- {'✅' if present else 'ℹ️'} `{name}` ({_('v2Pro/v2ProPlus only')}): {state}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ knobs


def knob_widget(
    p: schema.Param, _: Callable[[str], str], default: Any = None, info: str = "", visible: bool = True
) -> Any:
    """The widget of one schema parameter, with its default (or ``default``) and translated label."""
    w = p.tab
    assert w is not None
    common: dict[str, Any] = {"label": _(w.label), "elem_id": p.elem_id, "visible": visible}
    if info or w.info:
        common["info"] = info or _(w.info)
    if w.kind == "slider" and w.slider:
        lo, hi, step = w.slider
        return gr.Slider(lo, hi, value=p.default if default is None else default, step=step, **common)
    if w.kind == "number":
        return gr.Number(value=p.default, precision=0 if p.type is int else None, **common)
    if w.kind == "text":
        return gr.Textbox(value=p.default, lines=2, **common)
    if w.kind in ("language", "cut"):
        options = H.LANGUAGES if w.kind == "language" else H.CUT_METHODS
        return gr.Dropdown([(_(label), key) for key, label in options], value=p.default, **common)
    raise ValueError(f"unknown widget kind {w.kind!r} for {p.name}")


def shown_params(place: str, params: Sequence[schema.Param] | None = None) -> list[schema.Param]:
    """The schema parameters the tab shows at ``place``, in schema order."""
    return [p for p in (params or schema.SYNTHESIS_PARAMS) if p.tab and p.tab.place == place]


V3V4_ROW = "v3v4"  # the schema's Sampling row of the knobs only v3/v4 SoVITS weights use (sample_steps)


def v3v4_knob_names() -> list[str]:
    """The knobs shown only while the chosen SoVITS weights are v3/v4 (the others ignore them)."""
    return [p.name for p in shown_params("sampling") if p.tab and p.tab.row == V3V4_ROW]


def is_v3v4(sovits: str | None) -> bool:
    """Whether the SoVITS file `sovits` is v3/v4, as detected from the file (False when it cannot be told)."""
    return bool(sovits) and H.sovits_version(str(sovits)) in V3V4_VERSIONS


RERANKED_CANDIDATES = 4  # the default number of candidates once a reranker is there to choose among them


def _knobs(place: str, _: Callable[[str], str], reranked: bool = False) -> dict[str, Any]:
    out = {}
    for p in shown_params(place):
        if p.name == "candidates" and reranked:
            why = _("A CLVP reranker is available: it keeps the candidate that says the text best.")
            out[p.name] = knob_widget(p, _, RERANKED_CANDIDATES, why)
        else:
            out[p.name] = knob_widget(p, _)
    return out


def _sampling(_: Callable[[str], str], v3v4: bool) -> tuple[dict[str, Any], gr.Checkbox, gr.Checkbox]:
    """The Sampling accordion: one row per schema row name, in order of first use; the seed box is
    followed by its "new random seed" checkbox; last, the "exact fp32" choice. The v3/v4 row shows
    when `v3v4` (the SoVITS weights chosen at start are v3/v4)."""
    params = shown_params("sampling")
    knobs: dict[str, Any] = {}
    random_seed = None
    with gr.Accordion(_("Sampling"), open=False):
        for row in dict.fromkeys(p.tab.row for p in params if p.tab):
            with gr.Row():
                for p in (p for p in params if p.tab and p.tab.row == row):
                    knobs[p.name] = knob_widget(p, _, visible=v3v4 or row != V3V4_ROW)
                    if p.name == "seed":
                        random_seed = gr.Checkbox(
                            True, label=_("New random seed each time"), elem_id="inf-random-seed"
                        )
        exact_fp32 = gr.Checkbox(
            False,
            label=_("Exact fp32"),
            info=_(
                "Slower on CPU: full-precision weights instead of the fast path (same voice, tiny numeric differences)."
            ),
            elem_id="inf-exact-fp32",
        )
    if random_seed is None:  # a schema without a seed still gets the checkbox (it draws the seed)
        random_seed = gr.Checkbox(True, visible=False, elem_id="inf-random-seed")
    return knobs, random_seed, exact_fp32


# ------------------------------------------------------------------------------------ sections


def _models(ctx: AppContext) -> dict[str, Any]:
    _ = ctx.i18n
    gpt_list = H.gpt_choices(ctx.workspace, ctx.model_dir)
    sovits_list = H.sovits_choices(ctx.workspace, ctx.model_dir)
    clvps = H.clvp_choices(ctx.workspace)
    with gr.Accordion(_("Models"), open=True):
        with gr.Row():
            out = {
                "gpt": gr.Dropdown(
                    weight_dropdown_choices(gpt_list, _), value=H.default_weight(gpt_list),
                    label=_("GPT weights"), elem_id="inf-gpt", scale=3,
                ),
                "sovits": gr.Dropdown(
                    weight_dropdown_choices(sovits_list, _), value=H.default_weight(sovits_list),
                    label=_("SoVITS weights"), elem_id="inf-sovits", scale=3,
                ),
                # Shown once a CLVP model has been trained (weights/clvp/*.pt).
                "clvp": gr.Dropdown(
                    clvp_dropdown_choices(clvps, _), value=clvps[0] if clvps else "none", label=_("CLVP reranker"),
                    elem_id="inf-clvp", visible=bool(clvps), scale=2,
                ),
                "refresh": gr.Button(_("Refresh"), elem_id="inf-refresh", scale=1),
            }  # fmt: skip
        out["models_md"] = gr.Markdown(models_markdown(ctx), elem_id="inf-model-status")
    return out


def _voices(ctx: AppContext) -> dict[str, Any]:
    """The saved voices: pick one to fill the form, or save the form as one."""
    _ = ctx.i18n
    with gr.Row(equal_height=True):
        out = {
            "voice": gr.Dropdown(
                H.voice_choices(ctx.workspace), value=None, label=_("Voice"), elem_id="inf-voice", scale=2,
                info=_("A saved voice fills the reference, its text, the models and the settings."),
            ),
            "voice_name": gr.Textbox(label=_("Save as voice"), placeholder=_("name"), elem_id="inf-voice-name", scale=2),
            "voice_overwrite": gr.Checkbox(
                False, label=_("Replace a voice of that name (the old one goes to the trash)"),
                elem_id="inf-voice-overwrite", scale=1,
            ),
            "save_voice": gr.Button(_("Save as voice"), elem_id="inf-save-voice", scale=1),
        }  # fmt: skip
    out["voice_status"] = gr.Markdown(elem_id="inf-voice-status")
    return out


def _reference(ctx: AppContext, knobs: dict[str, Any]) -> dict[str, Any]:
    _ = ctx.i18n
    whisper = H.whisper_models(ctx.model_dir)
    with gr.Row():
        with gr.Column():
            out = {
                "ref_audio": gr.Audio(
                    sources=["upload", "microphone"], type="filepath", label=_("Reference clip (3–10 s)"),
                    elem_id="inf-ref",
                ),
                "ref_status": gr.Markdown(_("Upload or record 3–10 s of clean speech."), elem_id="inf-ref-status"),
                "trim": gr.Button(_("Trim to 10 s"), visible=False, elem_id="inf-trim"),
                "aux_refs": gr.File(
                    file_count="multiple", file_types=["audio"],
                    label=_("More references for the timbre (optional)"), elem_id="inf-aux", height=110,
                ),
            }  # fmt: skip
        with gr.Column():
            knobs.update(_knobs("reference", _))
            with gr.Row():
                out["asr_model"] = gr.Dropdown(
                    whisper, value=whisper[0] if whisper else None, label=_("Whisper model"),
                    elem_id="inf-asr-model", visible=bool(whisper), scale=2,
                )  # fmt: skip
                out["transcribe"] = gr.Button(
                    _("Transcribe reference"), elem_id="inf-transcribe", visible=bool(whisper), scale=1
                )
    return out


def _results(_: Callable[[str], str]) -> dict[str, Any]:
    with gr.Row():
        out: dict[str, Any] = {
            "go": gr.Button(_("Synthesise"), variant="primary", elem_id="inf-go", scale=4),
            "cancel": gr.Button(_("Cancel"), variant="stop", elem_id="inf-cancel", scale=1),
        }
    # Each sentence plays here as soon as it is decoded, while the later ones are generated.
    out["stream_audio"] = gr.Audio(
        label=_("Live playback"), streaming=True, autoplay=True, interactive=False, elem_id="inf-stream"
    )
    with gr.Row():
        out["out_audio"] = gr.Audio(
            label=_("Result (32 kHz)"), type="filepath", interactive=False, elem_id="inf-out"
        )
        with gr.Column():
            out["used_seed"] = gr.Textbox(label=_("Seed used"), interactive=False, elem_id="inf-used-seed")
            out["summary"] = gr.Markdown(elem_id="inf-summary")
            out["export_format"] = gr.Dropdown(
                [(f.upper(), f) for f in H.EXPORT_FORMATS], value="wav", label=_("Save as"),
                elem_id="inf-export-format",
            )  # fmt: skip
            out["out_file"] = gr.File(label=_("Download"), interactive=False, elem_id="inf-download")
    gr.Markdown("### " + _("Candidates"))
    headers = [
        _("Sentence"), _("Text"), _("Candidate"), _("Mean log-prob"), _("CLVP score"), _("ASR match"), _("Speaker"),
        _("Total"), _("Chosen"),
    ]  # fmt: skip
    out["table"] = gr.Dataframe(headers=headers, interactive=False, elem_id="inf-candidates-table")
    with gr.Row():
        out["pick"] = gr.Dropdown([], label=_("Sentence.candidate"), elem_id="inf-pick", scale=3)
        out["play"] = gr.Button(_("Play candidate"), elem_id="inf-play", scale=1)
        out["swap"] = gr.Button(_("Use this candidate"), elem_id="inf-swap", scale=1)
        out["regen"] = gr.Button(_("Regenerate this sentence"), elem_id="inf-regen", scale=1)
    out["cand_audio"] = gr.Audio(
        label=_("Candidate"), type="numpy", interactive=False, elem_id="inf-cand-audio"
    )
    return out


def _history(_: Callable[[str], str]) -> dict[str, Any]:
    gr.Markdown("### " + _("History (this session)"))
    history = gr.State([])

    @gr.render(inputs=history)
    def show_history(entries: list[H.HistoryEntry]) -> None:
        if not entries:
            gr.Markdown(_("Nothing generated yet."), elem_id="inf-history-empty")
            return
        for n, entry in enumerate(entries):
            gr.Audio(
                value=entry.path, label=entry.label, type="filepath", interactive=False,
                elem_id=f"inf-history-{n}", elem_classes=["inf-history"],
            )  # fmt: skip

    return {"history": history, "session": gr.State(None)}


def layout(ctx: AppContext, max_text: int = schema.MAX_TEXT_CHARS) -> InferenceLayout:
    """Build the tab's components in place (inside the app's Blocks) and return them; the text box
    names ``max_text``, the longest text a synthesis takes."""
    _ = ctx.i18n
    gr.Markdown(
        _(
            "Clone a voice: give a 3–10 s reference clip and the text to say. Each sentence can be "
            "sampled several times; the candidates and their scores are listed below the result."
        )
    )
    parts = _models(ctx) | _voices(ctx)
    knobs: dict[str, Any] = {}
    parts |= _reference(ctx, knobs)
    with gr.Row():
        parts["text"] = gr.Textbox(
            label=_("Text to synthesise"),
            info=_("At most {n} characters per synthesis.", n=f"{max_text:,}"),
            lines=4,
            elem_id="inf-text",
            scale=4,
        )
        parts["text_file"] = gr.File(
            file_types=[".txt"],
            label=_("Text from a .txt file"),
            elem_id="inf-text-file",
            height=110,
            scale=1,
        )
    with gr.Row():  # with a reranker (the newest is preselected), several candidates by default
        knobs.update(_knobs("text", _, reranked=bool(H.clvp_choices(ctx.workspace))))
    sampling, parts["random_seed"], parts["exact_fp32"] = _sampling(_, is_v3v4(parts["sovits"].value))
    knobs.update(sampling)
    parts |= _results(_) | _history(_)
    return InferenceLayout(**parts, knobs=knobs)
