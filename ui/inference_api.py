"""The named API endpoints: `/synthesize` (the Voice cloning tab's synthesis) and `/weights`, for `gradio_client`.

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:9874/")
    wav, details = client.predict("你好，世界。", "zh", handle_file("ref.wav"), api_name="/synthesize")

Returns the path of a 32 kHz wav (written once, to `<workspace>/outputs/`, and served from there; the
client downloads it) and a JSON string: sample_rate, seed, duration, and per sentence its text, chosen
candidate and every candidate's scores. `client.predict(api_name="/weights")` lists the weight files it
accepts.

`voice="NAME"` (last parameter) uses a voice saved in the tab: its clip(s), their text and language,
weights and settings fill every parameter left empty or at its default, so
`client.predict("你好。", voice="NAME", api_name="/synthesize")` is enough.

A text over the server's `--max-text` characters is refused with a message naming both numbers.
Concurrent calls (and the tab's) take turns on the models sentence by sentence, so a short call is not
held up by a long one. `job = client.submit(..., api_name="/synthesize")` then `job.cancel()` stops a
call between two sentences and frees the models at once.

The parameters of `/synthesize` are made from the one schema (`gpt_sovits.infer.request.SYNTHESIS_PARAMS`,
every entry with ``api=True``) plus the files and weights (``endpoint_parameters``): `gr.api` reads the
generated signature and type hints, and the docstring's Args from each parameter's help.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
from gradio import FileData

from gpt_sovits.infer import request as schema
from ui import inference_helpers as H
from ui.context import AppContext
from ui.errors import shown_in_toast

_P = inspect.Parameter

# The endpoint's first parameters, in the order clients pass them positionally (text, language, clip).
# Each entry is a schema parameter's name, or (name, type, default, help) for what is not a knob.
_HEAD: tuple[str | tuple[str, Any, Any, str], ...] = (
    ("text", str, _P.empty, "what to say."),
    "text_lang",
    ("ref_audio", FileData | None, None, "the reference clip, 3–10 s (use gradio_client.handle_file)."),
    "ref_text",
    "ref_lang",
    ("gpt", str, "", "GPT weights: a listed file name or a path inside the workspace / model folder."),
    ("sovits", str, "", "SoVITS weights, as `gpt`; empty (both): the newest fine-tuned, else pretrained."),
)
_TAIL: tuple[tuple[str, Any, Any, str], ...] = (
    ("clvp", str, "", "CLVP checkpoint path inside the workspace for reranking; empty: none."),
    ("aux_refs", list[FileData] | None, None, "more reference clips whose timbre is averaged in."),
    (
        "voice",
        str,
        "",
        "a saved voice's name (the tab's 'Save as voice'): it gives the reference clip(s), their text and "
        "language, the weights and the settings wherever a parameter is left empty or at its default.",
    ),
)


def endpoint_parameters(params: Sequence[schema.Param] | None = None) -> list[tuple[str, Any, Any, str]]:
    """(name, type, default, help) of every `/synthesize` parameter, in order."""
    knobs = {p.name: p for p in (params or schema.SYNTHESIS_PARAMS) if p.api}
    spec = [
        (knobs[h].name, knobs[h].type, knobs[h].default, knobs[h].help) if isinstance(h, str) else h
        for h in _HEAD
    ]
    named = {s[0] for s in spec}
    spec += [(p.name, p.type, p.default, p.help) for p in knobs.values() if p.name not in named]
    return spec + list(_TAIL)


def endpoint(
    run: Callable[[dict[str, Any]], Awaitable[Any]], params: Sequence[schema.Param] | None = None
) -> Callable:
    """An async function with the generated signature of `/synthesize` that awaits ``run`` with the values
    by name (async, so that Gradio's cancel reaches the running synthesis)."""
    spec = endpoint_parameters(params)
    signature = inspect.Signature(
        [
            _P(name, _P.POSITIONAL_OR_KEYWORD, default=default, annotation=kind)
            for name, kind, default, _h in spec
        ],
        return_annotation=tuple[FileData, str],
    )

    async def synthesize(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return await run(dict(bound.arguments))

    synthesize.__signature__ = signature  # type: ignore[attr-defined]
    synthesize.__annotations__ = {name: kind for name, kind, _d, _h in spec} | {
        "return": tuple[FileData, str]
    }
    args = "\n".join(f"    {name}: {help_}" for name, _k, _d, help_ in spec)
    synthesize.__doc__ = (
        "Synthesise `text` in the voice of `ref_audio` (3–10 s); returns (32 kHz wav, JSON details).\n\n"
        f"Args:\n{args}\n"
    )
    return synthesize


async def run_synthesis(
    ctx: AppContext, service: H.SynthesisService, values: Mapping[str, Any]
) -> tuple[FileData, str]:
    """One `/synthesize` call: named values -> the wav (a path in outputs/) and its JSON details."""
    with shown_in_toast(str, "/synthesize"):
        form = H.form_from_values({**H.with_voice(values, ctx.workspace), "random_seed": False})
        outcome = await service.run(
            lambda job: H.synthesize(
                form,
                ctx.workspace,
                ctx.model_dir,
                service.cache,
                job=job,
                max_text=service.max_text,
                precision=service.precision,
            ),
            "/synthesize",
        )
    details = H.result_summary(outcome.result)
    details["path"] = str(outcome.path)
    details["gpt"], details["sovits"] = str(outcome.gpt), str(outcome.sovits)
    return FileData(path=str(outcome.path)), json.dumps(details, ensure_ascii=False)


def list_weights(ctx: AppContext) -> str:
    """The weight files `/synthesize` accepts as `gpt`, `sovits` and `clvp`, as JSON lists.

    Each gpt/sovits entry is {"name", "path", "pretrained", "present"}; the first present one is the
    default used when the parameter is empty.
    """

    def rows(choices: list[H.WeightChoice]) -> list[dict]:
        return [
            {
                "name": Path(c.path).name,
                "path": c.path,
                "pretrained": c.pretrained,
                "present": Path(c.path).is_file(),
            }
            for c in choices
        ]

    return json.dumps(
        {
            "gpt": rows(H.gpt_choices(ctx.workspace, ctx.model_dir)),
            "sovits": rows(H.sovits_choices(ctx.workspace, ctx.model_dir)),
            "clvp": H.clvp_choices(ctx.workspace),
        },
        ensure_ascii=False,
    )


def register_api(ctx: AppContext, service: H.SynthesisService) -> None:
    """The named endpoints `/synthesize` and `/weights` (parameters documented in their docstrings)."""

    def weights() -> str:
        return list_weights(ctx)

    weights.__doc__ = list_weights.__doc__
    gr.api(
        endpoint(lambda values: run_synthesis(ctx, service, values)), api_name="synthesize", **H.SYNTH_QUEUE
    )
    gr.api(weights, api_name="weights", concurrency_limit=None)
