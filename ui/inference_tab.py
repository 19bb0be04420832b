"""Voice cloning tab: a 3–10 s reference clip + text -> speech, with every candidate and its scores.

The tab is thin over `gpt_sovits.infer.synthesizer` (one `Synthesizer` per request over the app's one model cache,
created on first use) and `ui.inference_helpers`. Per-user state lives in `gr.State`: the last
result (for playing and swapping candidates) and the session's history of generations. Results are
written to `<workspace>/outputs/`.

The same synthesis is a named API endpoint, `/synthesize`, for `gradio_client`:

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:9874/")
    wav_path, details = client.predict("你好，世界。", "zh", handle_file("ref.wav"), api_name="/synthesize")
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ui import inference_helpers as H
from ui.context import AppContext

logger = logging.getLogger(__name__)

# Synthesis from the tab and from the API share one queue: at most this many run at once, the rest
# wait their turn while every other event of the app keeps being served.
SYNTH_QUEUE = {"concurrency_id": "synthesis", "concurrency_limit": 1}


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions whose message a person can act on (shown as is, no stack trace)."""
    from gpt_sovits.device import DeviceError
    from gpt_sovits.models.weights import CheckpointError

    return (ValueError, OSError, CheckpointError, DeviceError, RuntimeError)


def _progress_adapter(progress: Any):
    """core.jobs.ProgressFn (done, total, message) -> gr.Progress."""

    def report(done: int, total: int, message: str = "") -> None:
        progress(done / total if total else None, desc=message or None)

    return report


def _weight_dropdown_choices(choices: list[H.WeightChoice], _) -> list[tuple[str, str]]:
    out = []
    for c in choices:
        label = c.label
        if c.pretrained and not Path(c.path).is_file():
            label += f" ({_('missing')})"
        out.append((label, c.path))
    return out


def _clvp_dropdown_choices(paths: list[str], _) -> list[tuple[str, str]]:
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
    return "\n".join(lines)


def reference_message(ctx: AppContext, path: str | None) -> tuple[str, bool]:
    """(status line for the reference, whether to offer "Trim to 10 s")."""
    _ = ctx.i18n
    if not path:
        return _("Upload or record 3–10 s of clean speech."), False
    from core.audio import AudioDecodeError

    try:
        check = H.check_reference(path)
    except AudioDecodeError as e:
        return "⚠️ " + _("Not a readable audio file: {error}", error=str(e)), False
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


def build(ctx: AppContext) -> None:
    import gradio as gr

    _ = ctx.i18n
    cache = H.LazyCache()  # the app's one model cache; nothing loads until the first synthesis
    gpt_list = H.gpt_choices(ctx.workspace, ctx.model_dir)
    sovits_list = H.sovits_choices(ctx.workspace, ctx.model_dir)
    whisper = H.whisper_models(ctx.model_dir)
    lang_choices = [(_(label), code) for code, label in H.LANGUAGES]
    cut_choices = [(_(label), key) for key, label in H.CUT_METHODS]

    gr.Markdown(
        _(
            "Clone a voice: give a 3–10 s reference clip and the text to say. Each sentence can be "
            "sampled several times; the candidates and their scores are listed below the result."
        )
    )
    with gr.Accordion(_("Models"), open=True):
        with gr.Row():
            gpt = gr.Dropdown(
                _weight_dropdown_choices(gpt_list, _),
                value=H.default_weight(gpt_list),
                label=_("GPT weights"),
                elem_id="inf-gpt",
                scale=3,
            )
            sovits = gr.Dropdown(
                _weight_dropdown_choices(sovits_list, _),
                value=H.default_weight(sovits_list),
                label=_("SoVITS weights"),
                elem_id="inf-sovits",
                scale=3,
            )
            clvps = H.clvp_choices(ctx.workspace)
            clvp = gr.Dropdown(  # shown once a CLVP model has been trained (weights/clvp/*.pt)
                _clvp_dropdown_choices(clvps, _),
                value="none",
                label=_("CLVP reranker"),
                elem_id="inf-clvp",
                visible=bool(clvps),
                scale=2,
            )
            refresh = gr.Button(_("Refresh"), elem_id="inf-refresh", scale=1)
        models_md = gr.Markdown(models_markdown(ctx), elem_id="inf-model-status")

    with gr.Row():
        with gr.Column():
            ref_audio = gr.Audio(
                sources=["upload", "microphone"],
                type="filepath",
                label=_("Reference clip (3–10 s)"),
                elem_id="inf-ref",
            )
            ref_status = gr.Markdown(reference_message(ctx, None)[0], elem_id="inf-ref-status")
            trim = gr.Button(_("Trim to 10 s"), visible=False, elem_id="inf-trim")
            aux_refs = gr.File(
                file_count="multiple",
                file_types=["audio"],
                label=_("More references for the timbre (optional)"),
                elem_id="inf-aux",
                height=110,
            )
        with gr.Column():
            ref_text = gr.Textbox(
                label=_("Text of the reference (empty: reference-free mode)"), lines=2, elem_id="inf-ref-text"
            )
            ref_lang = gr.Dropdown(
                lang_choices, value="zh", label=_("Language of the reference"), elem_id="inf-ref-lang"
            )
            with gr.Row():
                asr_model = gr.Dropdown(
                    whisper,
                    value=whisper[0] if whisper else None,
                    label=_("Whisper model"),
                    elem_id="inf-asr-model",
                    visible=bool(whisper),
                    scale=2,
                )
                transcribe = gr.Button(
                    _("Transcribe reference"), elem_id="inf-transcribe", visible=bool(whisper), scale=1
                )

    text = gr.Textbox(label=_("Text to synthesise"), lines=4, elem_id="inf-text")
    with gr.Row():
        text_lang = gr.Dropdown(
            lang_choices, value="zh", label=_("Language of the text"), elem_id="inf-text-lang"
        )
        cut = gr.Dropdown(
            cut_choices, value=H.DEFAULT_CUT, label=_("How to split the text"), elem_id="inf-cut"
        )
        n_cand = gr.Slider(
            1, 8, value=1, step=1, label=_("Candidates per sentence"), elem_id="inf-candidates"
        )
    with gr.Accordion(_("Sampling"), open=False):
        with gr.Row():
            top_k = gr.Slider(1, 100, value=15, step=1, label="top_k", elem_id="inf-top-k")
            top_p = gr.Slider(0.05, 1, value=1.0, step=0.05, label="top_p", elem_id="inf-top-p")
            temperature = gr.Slider(
                0.05, 1.5, value=1.0, step=0.05, label=_("Temperature"), elem_id="inf-temp"
            )
            rep = gr.Slider(1.0, 2.0, value=1.35, step=0.05, label=_("Repetition penalty"), elem_id="inf-rep")
        with gr.Row():
            speed = gr.Slider(0.6, 1.65, value=1.0, step=0.05, label=_("Speed"), elem_id="inf-speed")
            noise = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label=_("Noise scale"), elem_id="inf-noise")
            pause = gr.Slider(
                0.0, 1.0, value=0.3, step=0.05, label=_("Pause between sentences (s)"), elem_id="inf-pause"
            )
        with gr.Row():
            seed = gr.Number(value=-1, precision=0, label=_("Seed (-1: random)"), elem_id="inf-seed")
            random_seed = gr.Checkbox(True, label=_("New random seed each time"), elem_id="inf-random-seed")
            max_tokens = gr.Slider(
                10,
                H.MAX_NEW_TOKENS,
                value=H.MAX_NEW_TOKENS,
                step=1,
                label=_("Longest sentence in tokens (25 per second)"),
                elem_id="inf-max-tokens",
            )
        with gr.Row():
            # Blends for choosing among candidates (2 or more): each candidate is decoded and rated.
            asr_weight = gr.Slider(
                0.0,
                H.MAX_BLEND_WEIGHT,
                value=0.0,
                step=0.1,
                label=_("ASR agreement weight"),
                info=_(
                    "Transcribe each candidate with the Whisper model above and favour the one that says the text (0: off)."
                ),
                elem_id="inf-asr-weight",
            )
            speaker_weight = gr.Slider(
                0.0,
                H.MAX_BLEND_WEIGHT,
                value=0.0,
                step=0.1,
                label=_("Speaker similarity weight"),
                info=_("Favour the candidate whose timbre is closest to the reference (0: off)."),
                elem_id="inf-speaker-weight",
            )

    go = gr.Button(_("Synthesise"), variant="primary", elem_id="inf-go")
    with gr.Row():
        out_audio = gr.Audio(
            label=_("Result (32 kHz)"), type="filepath", interactive=False, elem_id="inf-out"
        )
        with gr.Column():
            used_seed = gr.Textbox(label=_("Seed used"), interactive=False, elem_id="inf-used-seed")
            summary = gr.Markdown(elem_id="inf-summary")
            out_file = gr.File(label=_("Download"), interactive=False, elem_id="inf-download")

    gr.Markdown("### " + _("Candidates"))
    table = gr.Dataframe(
        headers=[
            _("Sentence"),
            _("Text"),
            _("Candidate"),
            _("Mean log-prob"),
            _("CLVP score"),
            _("ASR"),
            _("Speaker"),
            _("Total"),
            _("Chosen"),
        ],
        interactive=False,
        elem_id="inf-candidates-table",
    )
    with gr.Row():
        pick = gr.Dropdown([], label=_("Sentence.candidate"), elem_id="inf-pick", scale=3)
        play = gr.Button(_("Play candidate"), elem_id="inf-play", scale=1)
        swap = gr.Button(_("Use this candidate"), elem_id="inf-swap", scale=1)
    cand_audio = gr.Audio(label=_("Candidate"), type="numpy", interactive=False, elem_id="inf-cand-audio")

    gr.Markdown("### " + _("History (this session)"))
    history = gr.State([])
    session = gr.State(None)  # {"outcome": SynthesisOutcome} of the last synthesis

    @gr.render(inputs=history)
    def show_history(entries: list[H.HistoryEntry]):
        if not entries:
            gr.Markdown(_("Nothing generated yet."), elem_id="inf-history-empty")
            return
        for n, entry in enumerate(entries):
            gr.Audio(
                value=entry.path,
                label=entry.label,
                type="filepath",
                interactive=False,
                elem_id=f"inf-history-{n}",
                elem_classes=["inf-history"],
            )

    # ----------------------------------------------------------------------------------- handlers

    def on_refresh(gpt_value: str | None, sovits_value: str | None, clvp_value: str | None, asr: str | None):
        g = H.gpt_choices(ctx.workspace, ctx.model_dir)
        s = H.sovits_choices(ctx.workspace, ctx.model_dir)
        clvps = H.clvp_choices(ctx.workspace)
        whispers = H.whisper_models(ctx.model_dir)
        g_paths, s_paths = {c.path for c in g}, {c.path for c in s}
        return (
            gr.update(
                choices=_weight_dropdown_choices(g, _),
                value=gpt_value if gpt_value in g_paths else H.default_weight(g),
            ),
            gr.update(
                choices=_weight_dropdown_choices(s, _),
                value=sovits_value if sovits_value in s_paths else H.default_weight(s),
            ),
            gr.update(
                choices=_clvp_dropdown_choices(clvps, _),
                value=clvp_value if clvp_value in clvps else "none",
                visible=bool(clvps),
            ),
            models_markdown(ctx),
            gr.update(
                choices=whispers,
                value=asr if asr in whispers else (whispers[0] if whispers else None),
                visible=bool(whispers),
            ),
            gr.update(visible=bool(whispers)),
        )

    def on_reference(path: str | None):
        message, offer_trim = reference_message(ctx, path)
        return message, gr.update(visible=offer_trim)

    def on_trim(path: str | None):
        if not path:
            raise gr.Error(_("Upload or record a reference clip first."))
        try:
            trimmed = H.write_trimmed_reference(path, ctx.folder("uploads"))
        except ValueError as e:
            raise gr.Error(str(e)) from e
        message, offer_trim = reference_message(ctx, str(trimmed))
        return str(trimmed), message, gr.update(visible=offer_trim)

    def on_transcribe(path: str | None, model_name: str | None):
        if not path:
            raise gr.Error(_("Upload or record a reference clip first."))
        if not model_name:
            raise gr.Error(_("No Whisper model found in the model folder."))
        try:
            text, language = H.transcribe_reference(cache, path, model_name, ctx.model_dir)
        except user_errors() as e:
            raise gr.Error(str(e)) from e
        if not text:
            gr.Warning(_("No speech was recognised in the reference."))
        return text, language

    def on_synthesize(
        gpt_v, sovits_v, clvp_v, ref, ref_txt, ref_lg, aux, txt, txt_lg, cut_v, k, p, t, r, spd, ns, ps,
        seed_v, rand, n, max_tok, asr_w, spk_w, asr_name, hist, progress=gr.Progress(),  # noqa: B008
    ):  # fmt: skip
        form = H.SynthesisForm(
            text=txt or "",
            text_lang=txt_lg,
            ref_audio=ref,
            ref_text=ref_txt or "",
            ref_lang=ref_lg,
            aux_refs=[file_path(f) for f in (aux or [])],
            gpt=gpt_v,
            sovits=sovits_v,
            clvp=clvp_v,
            cut=cut_v,
            top_k=k,
            top_p=p,
            temperature=t,
            repetition_penalty=r,
            speed=spd,
            noise_scale=ns,
            pause=ps,
            seed=int(seed_v if seed_v is not None else -1),
            random_seed=bool(rand),
            candidates=int(n),
            max_new_tokens=int(max_tok),
            asr_weight=float(asr_w or 0.0),
            speaker_weight=float(spk_w or 0.0),
            asr_model=asr_name or None,
        )
        outcome = _run(form, progress)
        result = outcome.result
        entry = H.HistoryEntry(
            str(outcome.path), form.text, int(result.seed), time.time(), str(outcome.gpt), str(outcome.sovits)
        )
        options = H.candidate_options(result)
        return (
            str(outcome.path),
            str(result.seed),
            summary_line(ctx, result),
            str(outcome.path),
            H.candidate_rows(result),
            gr.update(choices=options, value=options[0][1] if options else None),
            None,
            {"outcome": outcome},
            H.push_history(hist, entry),
        )

    def _run(form: H.SynthesisForm, progress: Any) -> H.SynthesisOutcome:
        try:
            return H.synthesize(form, ctx.workspace, ctx.model_dir, cache, _progress_adapter(progress))
        except user_errors() as e:
            logger.info("synthesis refused: %s", e)
            raise gr.Error(str(e)) from e

    def on_play(value: str | None, state: dict | None):
        if not state:
            raise gr.Error(_("Synthesise something first."))
        outcome = state["outcome"]
        try:
            i, j = H.parse_candidate(value, outcome.result)
            audio = H.candidate_audio(_synth(outcome), outcome.result, i, j)
        except user_errors() as e:
            raise gr.Error(str(e)) from e
        from core.audio import to_int16

        # Gradio caches it as a wav (outputs/ stays tidy); int16 is what it would convert to anyway.
        return int(outcome.result.sample_rate), to_int16(audio)

    def on_swap(value: str | None, state: dict | None, hist: list):
        if not state:
            raise gr.Error(_("Synthesise something first."))
        outcome = state["outcome"]
        try:
            i, j = H.parse_candidate(value, outcome.result)
            choices = [s.chosen for s in outcome.result.sentences]
            choices[i] = j
            # Re-decodes piece i only and updates the result in place (its chosen marks included).
            audio = _synth(outcome).reassemble(outcome.result, choices)
            text = outcome.request.text
            path = H.save_output(ctx.workspace / "outputs", audio, text, int(outcome.result.seed))
        except user_errors() as e:
            raise gr.Error(str(e)) from e
        entry = H.HistoryEntry(
            str(path), text, int(outcome.result.seed), time.time(), str(outcome.gpt), str(outcome.sovits)
        )
        return (
            str(path),
            str(path),
            H.candidate_rows(outcome.result),
            {"outcome": outcome},
            H.push_history(hist, entry),
        )

    def _synth(outcome: H.SynthesisOutcome):
        from gpt_sovits.infer.synthesizer import Synthesizer

        return Synthesizer(str(outcome.gpt), str(outcome.sovits), str(ctx.model_dir), cache=cache.tts())

    refreshed = [gpt, sovits, clvp, models_md, asr_model, transcribe]
    refresh.click(on_refresh, inputs=[gpt, sovits, clvp, asr_model], outputs=refreshed)
    # Each page load lists the files as they are now (weights trained since the app started included).
    gr.on(
        triggers=None,
        fn=lambda: on_refresh(None, None, None, None),
        inputs=[],
        outputs=refreshed,
        api_visibility="private",
        concurrency_limit=None,
    )
    ref_audio.change(on_reference, inputs=ref_audio, outputs=[ref_status, trim], concurrency_limit=None)
    trim.click(on_trim, inputs=ref_audio, outputs=[ref_audio, ref_status, trim])
    transcribe.click(
        on_transcribe, inputs=[ref_audio, asr_model], outputs=[ref_text, ref_lang], concurrency_id="asr-ref"
    )
    go.click(
        on_synthesize,
        inputs=[
            gpt,
            sovits,
            clvp,
            ref_audio,
            ref_text,
            ref_lang,
            aux_refs,
            text,
            text_lang,
            cut,
            top_k,
            top_p,
            temperature,
            rep,
            speed,
            noise,
            pause,
            seed,
            random_seed,
            n_cand,
            max_tokens,
            asr_weight,
            speaker_weight,
            asr_model,
            history,
        ],
        outputs=[out_audio, used_seed, summary, out_file, table, pick, cand_audio, session, history],
        api_visibility="private",  # the API is /synthesize below, with named parameters
        **SYNTH_QUEUE,
    )
    play.click(on_play, inputs=[pick, session], outputs=cand_audio, **SYNTH_QUEUE)
    swap.click(
        on_swap,
        inputs=[pick, session, history],
        outputs=[out_audio, out_file, table, session, history],
        **SYNTH_QUEUE,
    )
    from ui.inference_api import register_api

    register_api(ctx, cache)


def file_path(f: Any) -> str:
    """A gr.File / FileData value (str, dict or object with .path/.name) as a path string."""
    if isinstance(f, str):
        return f
    if isinstance(f, dict):
        return str(f.get("path") or f.get("name"))
    return str(getattr(f, "path", None) or getattr(f, "name", f))
