"""Voice cloning tab: a 3–10 s reference clip + text -> speech, with every candidate and its scores.

This module is the wiring: `build` lays the tab out (`ui.inference_layout.layout`), connects its events
to the handlers below and registers the `/synthesize` API (`ui.inference_api`). Each handler is a
function of (context, values), where values maps the event's input components to their values, and
returns {component: update}. The synthesis knobs come from the one schema
(`gpt_sovits.infer.request.SYNTHESIS_PARAMS`), so the synthesis event's inputs are the layout's knobs.

The tab is thin over `gpt_sovits` (one `Synthesizer` per request over the app's one model cache, created
on first use) and `ui.inference_helpers`. Model work runs through the app's `SynthesisService`: the
synthesis, play and swap handlers are async and await it, so concurrent requests (the tab's and the
API's) take turns sentence by sentence, and Cancel (Gradio's `cancels=`) stops the running one between
two sentences. Per-user state lives in `gr.State`: the last result (for playing and swapping candidates)
and the session's history of generations. Results are written once, to `<workspace>/outputs/` (wav, flac, mp3 or ogg as chosen), which
Gradio serves as it is (a static path) instead of copying each result into its cache.

Synthesis streams: each sentence plays in the live player as soon as it is decoded, while later ones
are generated (`SynthesisService.run_streaming`); the whole result follows. A sentence of the result can
be drawn again with a new seed (`Synthesizer.regenerate`). A `.txt` upload fills the text box. Saved
voices (`gpt_sovits.infer.voices`): "Save as voice" stores the reference clip(s), their text and
language, the models and the settings; choosing a voice fills every field. `build` returns the tab's
context, whose `routes` (the OpenAI-compatible `/v1/audio/speech`, ui/openai_api.py) webui.py serves.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from gpt_sovits.infer.request import MAX_TEXT_CHARS
from gpt_sovits.infer.scheduler import Job
from ui import inference_helpers as H
from ui.context import AppContext
from ui.errors import UserMessage, in_status, shown_in_toast
from ui.inference_api import register_api
from ui.inference_layout import (
    InferenceLayout,
    clvp_dropdown_choices,
    is_v3v4,
    layout,
    models_markdown,
    v3v4_knob_names,
    weight_dropdown_choices,
)
from ui.openai_api import speech_routes

Values = dict[Any, Any]  # {input component: its value}
Updates = dict[Any, Any]  # {output component: its new value or gr.update(...)}


@dataclass(frozen=True)
class InferenceContext:
    """What every handler of the tab needs: the app, its synthesis service and the tab's components."""

    app: AppContext
    service: H.SynthesisService
    ui: InferenceLayout
    routes: list[Any] = field(
        default_factory=list
    )  # /v1/audio/speech and /v1/audio/voices (webui serves them)

    @property
    def cache(self) -> H.LazyCache:
        return self.service.cache

    @property
    def _(self) -> Callable[..., str]:
        return self.app.i18n


# ------------------------------------------------------------------------------ shown text


def reference_message(ctx: AppContext, path: str | None) -> tuple[str, bool]:
    """(status line for the reference, whether to offer "Trim to 10 s")."""
    _ = ctx.i18n
    if not path:
        return _("Upload or record 3–10 s of clean speech."), False
    from core.audio import AudioDecodeError

    try:
        check = H.check_reference(path)
    except AudioDecodeError as e:
        return "⚠️ " + str(e), False  # the message names the file and why
    seconds = f"{check.duration:.1f}"
    if check.ok:
        return "✅ " + _("Reference: {s} s", s=seconds), False
    if check.too_long:
        return "⚠️ " + _("The reference is {s} s: it must be 3–10 s. Trim it to 10 s?", s=seconds), True
    return "⚠️ " + _(
        "The reference is {s} s: it must be 3–10 s. Record or upload a longer clip.", s=seconds
    ), False


def summary_line(ctx: AppContext, result: Any) -> str:
    """ "2 sentences, 3.4 s of audio in 1.2 s (real-time factor 0.35)" for the result panel."""
    _ = ctx.i18n
    seconds = result.audio.shape[-1] / result.sample_rate
    took = float(result.timings.get("total", 0.0))
    rtf = took / seconds if seconds > 0 else 0.0
    return _(
        "{n} sentence(s), {audio:.1f} s of audio in {took:.1f} s (real-time factor {rtf:.2f})",
        n=len(result.sentences),
        audio=seconds,
        took=took,
        rtf=rtf,
    )


def _progress_adapter(progress: Any) -> Callable[[int, int, str], None]:
    """core.jobs.ProgressFn (done, total, message) -> gr.Progress."""

    def report(done: int, total: int, message: str = "") -> None:
        progress(done / total if total else None, desc=message or None)

    return report


def _history_entry(path: Any, text: str, outcome: H.SynthesisOutcome) -> H.HistoryEntry:
    seed = int(outcome.result.seed)
    return H.HistoryEntry(str(path), text, seed, time.time(), str(outcome.gpt), str(outcome.sovits))


# ------------------------------------------------------------------------------------ handlers


def _kept(current: str | None, paths: list[str], fallback: str | None) -> str | None:
    return current if current in paths else fallback


def _skipped_note(skipped: str, _: Any) -> str | None:
    return f"{_('Skipped newer files that would not load')}: {skipped}" if skipped else None


def v3v4_knobs(c: InferenceContext, sovits: str | None) -> Updates:
    """The knobs only v3/v4 use (sampling steps): shown when the SoVITS weights `sovits` are v3/v4."""
    shown = is_v3v4(sovits)
    return {c.ui.knobs[name]: gr.update(visible=shown) for name in v3v4_knob_names() if name in c.ui.knobs}


def show_v3v4_knobs(c: InferenceContext, values: Values) -> Updates:
    """Other SoVITS weights chosen (by hand, a saved voice or a refresh): the v3/v4 knobs follow them."""
    return v3v4_knobs(c, values.get(c.ui.sovits))


def refresh(c: InferenceContext, values: Values) -> Updates:
    """List the weight files and Whisper models as they are now, keeping the person's choices."""
    app, ui, _ = c.app, c.ui, c._
    g = H.gpt_choices(app.workspace, app.model_dir)
    s = H.sovits_choices(app.workspace, app.model_dir)
    clvps = H.clvp_choices(app.workspace)
    whispers = H.whisper_models(app.model_dir)
    sovits = _kept(values.get(ui.sovits), [x.path for x in s], H.default_weight(s))
    return v3v4_knobs(c, sovits) | {
        ui.gpt: gr.update(
            choices=weight_dropdown_choices(g, _),
            value=_kept(values.get(ui.gpt), [x.path for x in g], H.default_weight(g)),
            info=_skipped_note(H.default_weight_note(g), _),
        ),
        ui.sovits: gr.update(
            choices=weight_dropdown_choices(s, _),
            value=sovits,
            info=_skipped_note(H.default_weight_note(s), _),
        ),
        ui.clvp: gr.update(
            choices=clvp_dropdown_choices(clvps, _),
            value=_kept(values.get(ui.clvp), clvps, "none"),
            visible=bool(clvps),
        ),
        ui.models_md: models_markdown(app),
        ui.asr_model: gr.update(
            choices=whispers,
            value=_kept(values.get(ui.asr_model), whispers, whispers[0] if whispers else None),
            visible=bool(whispers),
        ),
        ui.transcribe: gr.update(visible=bool(whispers)),
        ui.voice: gr.update(
            choices=(voices := H.voice_choices(app.workspace)),
            value=_kept(values.get(ui.voice), voices, None),
        ),
    }


def check_uploaded_reference(c: InferenceContext, values: Values) -> Updates:
    message, offer_trim = reference_message(c.app, values[c.ui.ref_audio])
    return {c.ui.ref_status: message, c.ui.trim: gr.update(visible=offer_trim)}


def trim(c: InferenceContext, values: Values) -> Updates:
    path = values[c.ui.ref_audio]
    if not path:
        raise UserMessage(c._("Upload or record a reference clip first."))
    with shown_in_toast(c._, "trim"):
        trimmed = H.write_trimmed_reference(path, c.app.folder("uploads"))
    message, offer_trim = reference_message(c.app, str(trimmed))
    return {c.ui.ref_audio: str(trimmed), c.ui.ref_status: message, c.ui.trim: gr.update(visible=offer_trim)}


def transcribe(c: InferenceContext, values: Values) -> Updates:
    path, model_name = values[c.ui.ref_audio], values[c.ui.asr_model]
    if not path:
        raise UserMessage(c._("Upload or record a reference clip first."))
    if not model_name:
        raise UserMessage(c._("No Whisper model found in the model folder."))
    with shown_in_toast(c._, "transcribe reference"):
        text, language = H.transcribe_reference(c.cache, path, model_name, c.app.model_dir)
    if not text:
        gr.Warning(c._("No speech was recognised in the reference."))
    return {c.ui.knobs["ref_text"]: text, c.ui.knobs["ref_lang"]: language}


# Tab inputs that are not schema knobs, by the names `H.form_from_values` reads.
SYNTHESIS_FIELDS = (
    "text",
    "ref_audio",
    "aux_refs",
    "clvp",
    "gpt",
    "sovits",
    "random_seed",
    "exact_fp32",
    "asr_model",
)


def synthesis_inputs(ui: InferenceLayout) -> set[Any]:
    """The synthesis event's inputs: every knob of the schema the tab shows, the files, the choices."""
    return {*ui.components(SYNTHESIS_FIELDS).values(), *ui.knobs.values(), ui.history}


async def synthesize_form(
    c: InferenceContext,
    values: Values,
    progress: Any = gr.Progress(),  # noqa: B008
    session: str | None = None,
) -> AsyncIterator[Updates]:
    """Synthesise from the form, playing each sentence in the live player as soon as it is decoded; then
    show the whole audio (saved in the chosen format), the seed, the candidates table and the history."""
    from core.audio import to_int16

    ui, app, service = c.ui, c.app, c.service
    named = {n: values[comp] for n, comp in ui.components(SYNTHESIS_FIELDS).items()}
    named |= {n: values[comp] for n, comp in ui.knobs.items()}
    report = _progress_adapter(progress)
    fmt = values.get(ui.export_format) or "wav"
    outcome = None
    with shown_in_toast(c._, "synthesis"):
        form = H.form_from_values(named)

        def work(job: Job, emit: Callable[[Any], None]) -> H.SynthesisOutcome:
            return H.synthesize(
                form,
                app.workspace,
                app.model_dir,
                service.cache,
                report,
                job=job,
                max_text=service.max_text,
                precision=service.precision,
                on_chunk=emit,
                fmt=fmt,
            )

        async for kind, value in service.run_streaming(work, "tab", session):
            if kind == "chunk":
                yield {ui.stream_audio: (int(value.sample_rate), to_int16(value.audio))}
            else:
                outcome = value
    assert outcome is not None
    result, path = outcome.result, str(outcome.path)
    options = H.candidate_options(result)
    yield {
        ui.out_audio: path,
        ui.used_seed: str(result.seed),
        ui.summary: summary_line(c.app, result),
        ui.out_file: path,
        ui.table: H.candidate_rows(result),
        ui.pick: gr.update(choices=options, value=options[0][1] if options else None),
        ui.cand_audio: None,
        ui.session: {"outcome": outcome},
        ui.history: H.push_history(values[ui.history], _history_entry(path, form.request.text, outcome)),
    }


def _last_outcome(c: InferenceContext, values: Values) -> H.SynthesisOutcome:
    state = values[c.ui.session]
    if not state:
        raise UserMessage(c._("Synthesise something first."))
    return state["outcome"]


async def play_candidate(c: InferenceContext, values: Values) -> Updates:
    """Decode the picked candidate (the result is unchanged) and play it."""
    from core.audio import to_int16

    outcome = _last_outcome(c, values)
    with shown_in_toast(c._, "play candidate"):
        i, j = H.parse_candidate(values[c.ui.pick], outcome.result)

        def decode(job: Job) -> Any:
            synth = H.make_synthesizer(outcome.gpt, outcome.sovits, c.app.model_dir, c.cache, job)
            return H.candidate_audio(synth, outcome.result, i, j)

        audio = await c.service.run(decode, "play")
    # Gradio caches it as a wav (outputs/ stays tidy); int16 is what it would convert to anyway.
    return {c.ui.cand_audio: (int(outcome.result.sample_rate), to_int16(audio))}


async def swap_candidate(c: InferenceContext, values: Values) -> Updates:
    """Use the picked candidate: re-decode its piece only, save the new audio, add it to the history."""
    ui = c.ui
    outcome = _last_outcome(c, values)
    text = outcome.request.text
    with shown_in_toast(c._, "use candidate"):
        i, j = H.parse_candidate(values[ui.pick], outcome.result)
        choices = [s.chosen for s in outcome.result.sentences]
        choices[i] = j

        def swap(job: Job) -> Any:
            synth = H.make_synthesizer(outcome.gpt, outcome.sovits, c.app.model_dir, c.cache, job)
            # Updates the result in place (its chosen marks included), once every piece is decoded.
            audio = synth.reassemble(outcome.result, choices)
            seed, rate = int(outcome.result.seed), int(outcome.result.sample_rate)
            return H.save_output(c.app.workspace / "outputs", audio, text, seed, rate, _export(c, values))

        path = await c.service.run(swap, "swap")
    gr.Info(
        c._("Sentence {i} now uses candidate {j}; the result and the download are updated.", i=i + 1, j=j + 1)
    )
    return {
        ui.out_audio: str(path),
        ui.out_file: str(path),
        ui.table: H.candidate_rows(outcome.result),
        ui.session: {"outcome": outcome},
        ui.history: H.push_history(values[ui.history], _history_entry(path, text, outcome)),
    }


def _export(c: InferenceContext, values: Values) -> str:
    return values.get(c.ui.export_format) or "wav"


async def regenerate_sentence(c: InferenceContext, values: Values) -> Updates:
    """Draw the picked sentence's candidates again with a new seed; re-assemble, save, add to the history."""
    ui = c.ui
    outcome = _last_outcome(c, values)
    text = outcome.request.text
    with shown_in_toast(c._, "regenerate sentence"):
        i, _j = H.parse_candidate(values[ui.pick], outcome.result)
        seed = H.resolve_seed(None, True)

        def redraw(job: Job) -> Any:
            synth = H.make_synthesizer(outcome.gpt, outcome.sovits, c.app.model_dir, c.cache, job)
            audio = synth.regenerate(outcome.result, i, seed)  # updates the result in place
            keep, rate = int(outcome.result.seed), int(outcome.result.sample_rate)
            return H.save_output(c.app.workspace / "outputs", audio, text, keep, rate, _export(c, values))

        path = await c.service.run(redraw, "regenerate")
    gr.Info(
        c._(
            "Sentence {i} was drawn again (seed {seed}); the result and the download are updated.",
            i=i + 1,
            seed=seed,
        )
    )
    options = H.candidate_options(outcome.result)
    chosen = outcome.result.sentences[i].chosen
    return {
        ui.out_audio: str(path),
        ui.out_file: str(path),
        ui.table: H.candidate_rows(outcome.result),
        ui.pick: gr.update(choices=options, value=f"{i}:{chosen}"),
        ui.cand_audio: None,
        ui.session: {"outcome": outcome},
        ui.history: H.push_history(values[ui.history], _history_entry(path, text, outcome)),
    }


def pick_from_table(c: InferenceContext, values: Values, evt: gr.SelectData) -> Updates:
    """A click on a row of the candidates table picks that sentence and candidate."""
    state = values.get(c.ui.session)
    if not state or evt.index is None:
        return {}
    row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    rows = H.candidate_rows(state["outcome"].result)
    if not 0 <= int(row) < len(rows):
        return {}
    sentence, candidate = rows[int(row)][0], rows[int(row)][2]
    return {c.ui.pick: f"{sentence - 1}:{candidate - 1}"}


def text_from_file(c: InferenceContext, values: Values) -> Updates:
    """An uploaded .txt fills the text box (UTF-8 or UTF-16 with BOM; over the limit or binary: refused)."""
    f = values[c.ui.text_file]
    if not f:
        return {}
    with shown_in_toast(c._, "text file"):
        text = H.read_text_file(H.file_path(f), c.service.max_text)
    gr.Info(c._("{n} characters read from the file.", n=f"{len(text):,}"))
    return {c.ui.text: text}


# The form fields a saved voice fills (besides the knobs it keeps): by the names `H.form_from_values` reads.
VOICE_FIELDS = ("ref_audio", "aux_refs", "gpt", "sovits")


def _weight_update(current: str, listed: list[H.WeightChoice], _: Callable[..., str]) -> Any:
    choices = weight_dropdown_choices(listed, _)
    if current and current not in {v for _l, v in choices}:  # a file not in the lists (saved elsewhere)
        choices.append((current, current))
    return gr.update(choices=choices, value=current or H.default_weight(listed))


def use_voice(c: InferenceContext, values: Values) -> Updates:
    """Fill every field from the chosen saved voice: reference clip(s), its text and language, models, settings."""
    from gpt_sovits.infer.voices import load_voice

    name, ui, app = values[c.ui.voice], c.ui, c.app
    if not name:
        return {}
    with shown_in_toast(c._, "use voice"):
        voice = load_voice(app.workspace, name)
    updates: Updates = {
        ui.ref_audio: str(voice.ref_audio),
        ui.aux_refs: [str(p) for p in voice.aux_refs] or None,
        ui.gpt: _weight_update(voice.gpt, H.gpt_choices(app.workspace, app.model_dir), c._),
        ui.sovits: _weight_update(voice.sovits, H.sovits_choices(app.workspace, app.model_dir), c._),
        ui.voice_name: name,
        ui.voice_status: "✅ " + c._("Voice {name} loaded.", name=name),
    }
    knob_values = voice.values()
    for key, comp in ui.knobs.items():
        if key in knob_values:
            updates[comp] = knob_values[key]
    return updates


def save_voice_form(c: InferenceContext, values: Values) -> Updates:
    """Save the reference clip(s), its text and language, the models and the settings as a named voice."""
    from gpt_sovits.infer.voices import save_voice

    ui, app = c.ui, c.app
    named = {n: values[comp] for n, comp in ui.knobs.items()}
    ref = values[ui.ref_audio]
    with shown_in_toast(c._, "save voice"):
        voice = save_voice(
            app.workspace,
            values[ui.voice_name],
            H.file_path(ref) if ref else None,
            ref_text=named.get("ref_text") or "",
            ref_lang=named.get("ref_lang") or "zh",
            aux_refs=[H.file_path(f) for f in values[ui.aux_refs] or []],
            gpt=values[ui.gpt] or "",
            sovits=values[ui.sovits] or "",
            settings=named,
            overwrite=bool(values[ui.voice_overwrite]),
        )
    message = c._(
        "Voice {name} saved: choose it here, or use it from the CLI (--voice) and the API.", name=voice.name
    )
    gr.Info(message)
    return {
        ui.voice: gr.update(choices=H.voice_choices(app.workspace), value=voice.name),
        ui.voice_status: "✅ " + message,
        ui.voice_overwrite: False,
    }


def cancelled(c: InferenceContext, values: Values, session: str | None = None) -> Updates:
    """Cancel's own message; its `cancels=` has stopped the running event, and the session's streamed
    synthesis is cancelled here (it stops between sentences and writes nothing). When the synthesis had
    already ended, its summary stays: the file it wrote is there, so "Cancelled." would be untrue."""
    if c.service.cancel_streaming(session):
        return {c.ui.summary: c._("Cancelled.")}
    gr.Info(c._("Nothing to cancel: the synthesis had already finished."))
    return {}


# ------------------------------------------------------------------------------------ wiring


def bound(handler: Callable[..., Any], c: InferenceContext) -> Callable[..., Any]:
    """`handler` with its context given, under its own name (Gradio names the endpoint by it)."""
    fn = functools.partial(handler, c)
    fn.__name__ = handler.__name__  # type: ignore[attr-defined]
    return fn


def wire_models(c: InferenceContext) -> None:
    ui = c.ui
    v3v4 = [ui.knobs[name] for name in v3v4_knob_names() if name in ui.knobs]
    refreshed = [ui.gpt, ui.sovits, ui.clvp, ui.models_md, ui.asr_model, ui.transcribe, ui.voice, *v3v4]
    ui.refresh.click(
        bound(refresh, c), inputs={ui.gpt, ui.sovits, ui.clvp, ui.asr_model, ui.voice}, outputs=refreshed
    )
    # Each page load lists the files as they are now (weights trained since the app started included).
    gr.on(
        triggers=None,
        fn=bound(refresh, c),
        inputs=set(),
        outputs=refreshed,
        api_visibility="private",
        concurrency_limit=None,
    )
    # The sampling steps act on v3/v4 weights only: shown while such weights are chosen.
    ui.sovits.change(
        bound(show_v3v4_knobs, c),
        inputs={ui.sovits},
        outputs=v3v4,
        api_visibility="private",
        concurrency_limit=None,
    )


def wire_reference(c: InferenceContext) -> None:
    ui = c.ui
    ui.ref_audio.change(
        bound(check_uploaded_reference, c),
        inputs={ui.ref_audio},
        outputs=[ui.ref_status, ui.trim],
        concurrency_limit=None,
    )
    ui.trim.click(
        in_status(bound(trim, c), ui.ref_status),
        inputs={ui.ref_audio},
        outputs=[ui.ref_audio, ui.ref_status, ui.trim],
    )
    ui.transcribe.click(
        in_status(bound(transcribe, c)),
        inputs={ui.ref_audio, ui.asr_model},
        outputs=[ui.knobs["ref_text"], ui.knobs["ref_lang"]],
        concurrency_id="asr-ref",
    )


def wire_synthesis(c: InferenceContext) -> None:
    ui = c.ui

    # The browser session keys the streamed synthesis, so that Cancel reaches it (named functions: Gradio
    # reads `request`'s type and names the endpoints by them).
    async def synthesize_in_session(
        values: Values,
        request: gr.Request,
        progress: Any = gr.Progress(),  # noqa: B008
    ) -> AsyncIterator[Updates]:
        async for update in synthesize_form(c, values, progress, request.session_hash):
            yield update

    def cancel_in_session(values: Values, request: gr.Request) -> Updates:
        return cancelled(c, values, request.session_hash)

    synthesize_in_session.__name__, cancel_in_session.__name__ = "synthesize_form", "cancelled"
    go = ui.go.click(
        in_status(synthesize_in_session, ui.summary),
        inputs=synthesis_inputs(ui) | {ui.export_format},
        outputs=[ui.out_audio, ui.used_seed, ui.summary, ui.out_file, ui.table, ui.pick, ui.cand_audio]
        + [ui.session, ui.history, ui.stream_audio],
        api_visibility="private",  # the API is /synthesize (ui.inference_api), with named parameters
        **H.SYNTH_QUEUE,
    )
    play = ui.play.click(
        in_status(bound(play_candidate, c)),
        inputs={ui.pick, ui.session},
        outputs=[ui.cand_audio],
        **H.SYNTH_QUEUE,
    )
    swap = ui.swap.click(
        in_status(bound(swap_candidate, c)),
        inputs={ui.pick, ui.session, ui.history, ui.export_format},
        outputs=[ui.out_audio, ui.out_file, ui.table, ui.session, ui.history],
        **H.SYNTH_QUEUE,
    )
    regen = ui.regen.click(
        in_status(bound(regenerate_sentence, c)),
        inputs={ui.pick, ui.session, ui.history, ui.export_format},
        outputs=[ui.out_audio, ui.out_file, ui.table, ui.pick, ui.cand_audio, ui.session, ui.history],
        **H.SYNTH_QUEUE,
    )

    def picked(values: Values, evt: gr.SelectData) -> Updates:  # a named function: Gradio reads `evt`'s type
        return pick_from_table(c, values, evt)

    ui.table.select(
        picked, inputs={ui.session}, outputs=[ui.pick], api_visibility="private", concurrency_limit=None
    )
    # Gradio cancels the running event: its awaiting handler's job stops at the next sentence and the
    # models go to the next request at once (H.SynthesisService.run).
    ui.cancel.click(
        cancel_in_session,
        inputs=set(),
        outputs=[ui.summary],
        cancels=[go, play, swap, regen],
        api_visibility="private",
        concurrency_limit=None,
    )


def wire_voices(c: InferenceContext) -> None:
    ui = c.ui
    filled = [
        ui.ref_audio,
        ui.aux_refs,
        ui.gpt,
        ui.sovits,
        ui.voice_name,
        ui.voice_status,
        *ui.knobs.values(),
    ]
    ui.voice.input(
        in_status(bound(use_voice, c), ui.voice_status),
        inputs={ui.voice},
        outputs=filled,
        api_visibility="private",
        concurrency_limit=None,
    )
    ui.save_voice.click(
        in_status(bound(save_voice_form, c), ui.voice_status),
        inputs={
            ui.voice_name,
            ui.voice_overwrite,
            ui.ref_audio,
            ui.aux_refs,
            ui.gpt,
            ui.sovits,
            *ui.knobs.values(),
        },
        outputs=[ui.voice, ui.voice_status, ui.voice_overwrite],
        api_visibility="private",
    )
    ui.text_file.upload(
        bound(text_from_file, c), inputs={ui.text_file}, outputs=[ui.text], api_visibility="private"
    )


def build(ctx: AppContext) -> InferenceContext:
    """Lay the tab out and wire it; the returned context's ``routes`` are the OpenAI-compatible speech
    routes (ui/openai_api.py), which webui.py serves on the app's own server, over this tab's service."""
    # The app's one model cache and turn scheduler; nothing loads until the first synthesis.
    service = H.SynthesisService(MAX_TEXT_CHARS if ctx.max_text is None else ctx.max_text, ctx.precision)
    # Results are served from outputs/ as they are: Gradio copies no static file into its cache.
    # (Gradio keeps static paths per process; this app serves one workspace.)
    gr.set_static_paths([ctx.workspace / "outputs"])
    c = InferenceContext(ctx, service, layout(ctx, service.max_text), speech_routes(ctx, service))
    wire_models(c)
    wire_reference(c)
    wire_synthesis(c)
    wire_voices(c)
    register_api(ctx, service)
    return c
