"""The named API endpoints: `/synthesize` (the Inference tab's synthesis) and `/weights`, for `gradio_client`.

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:9874/")
    wav, details = client.predict("你好，世界。", "zh", handle_file("ref.wav"), api_name="/synthesize")

Returns the path of a 32 kHz wav (written to `<workspace>/outputs/`, downloaded by the client) and a
JSON string: sample_rate, seed, duration, and per sentence its text, chosen candidate and every
candidate's scores. `client.predict(api_name="/weights")` lists the weight files it accepts.

No `from __future__ import annotations` here: `gr.api` reads the real type hints of `synthesize` to
describe the endpoint. Imported by the tab's `build`, never at app import.
"""

import json
from pathlib import Path

import gradio as gr
from gradio import FileData

from ui import inference_helpers as H
from ui.context import AppContext
from ui.inference_tab import SYNTH_QUEUE, file_path, user_errors


def register_api(ctx: AppContext, cache: H.LazyCache) -> None:
    """The named endpoints `/synthesize` and `/weights` (parameters documented in their docstrings)."""

    def synthesize(
        text: str,
        text_lang: str = "zh",
        ref_audio: FileData | None = None,
        ref_text: str = "",
        ref_lang: str = "zh",
        gpt: str = "",
        sovits: str = "",
        top_k: int = 15,
        top_p: float = 1.0,
        temperature: float = 1.0,
        repetition_penalty: float = 1.35,
        speed: float = 1.0,
        noise_scale: float = 0.5,
        pause: float = 0.3,
        cut: str = H.DEFAULT_CUT,
        candidates: int = 1,
        seed: int = -1,
        clvp: str = "",
        aux_refs: list[FileData] | None = None,
        max_new_tokens: int = H.MAX_NEW_TOKENS,
        asr_weight: float = 0.0,
        speaker_weight: float = 0.0,
    ) -> tuple[FileData, str]:
        """Synthesise `text` in the voice of `ref_audio` (3–10 s); returns (32 kHz wav, JSON details).

        Args:
            text: what to say.
            text_lang: language of `text`: zh, all_zh, en, ja, all_ja, ko, all_ko, yue, all_yue, auto, auto_yue.
            ref_audio: the reference clip (use gradio_client.handle_file).
            ref_text: transcript of the reference; empty for reference-free mode.
            ref_lang: language of `ref_text` (same codes as text_lang).
            gpt: GPT weights: a listed file name or a path inside the workspace / model folder; empty: default.
            sovits: SoVITS weights, as `gpt`.
            top_k: sampling top-k.
            top_p: sampling nucleus.
            temperature: sampling temperature.
            repetition_penalty: penalty for tokens already generated.
            speed: speaking rate (1 = as sampled).
            noise_scale: S2 noise scale.
            pause: silence between sentences in seconds.
            cut: text splitting method, cut0 … cut5.
            candidates: candidates sampled per sentence (the best is chosen).
            seed: random seed; -1 for a random one (the JSON gives the one used).
            clvp: CLVP checkpoint path inside the workspace for reranking; empty: none.
            aux_refs: more reference clips whose timbre is averaged in.
            max_new_tokens: S1 tokens per sentence at most (25 per second).
            asr_weight: weight of ASR agreement (1 - character/word error rate of faster-whisper on each
                decoded candidate; needs a faster-whisper folder in the model folder); 0: off.
            speaker_weight: weight of speaker similarity (cosine of S2 style vectors, candidate vs
                reference); 0: off. Both blends need candidates >= 2.
        """
        form = H.SynthesisForm(
            text=text or "",
            text_lang=text_lang,
            ref_audio=file_path(ref_audio) if ref_audio else None,
            ref_text=ref_text or "",
            ref_lang=ref_lang,
            aux_refs=[file_path(f) for f in (aux_refs or [])],
            gpt=gpt,
            sovits=sovits,
            clvp=clvp,
            cut=cut,
            top_k=top_k,
            top_p=top_p,
            temperature=temperature,
            repetition_penalty=repetition_penalty,
            speed=speed,
            noise_scale=noise_scale,
            pause=pause,
            seed=int(seed),
            random_seed=False,
            candidates=int(candidates),
            max_new_tokens=int(max_new_tokens),
            asr_weight=float(asr_weight),
            speaker_weight=float(speaker_weight),
        )
        try:
            outcome = H.synthesize(form, ctx.workspace, ctx.model_dir, cache)
        except user_errors() as e:
            raise gr.Error(str(e)) from e
        details = H.result_summary(outcome.result)
        details["path"] = str(outcome.path)
        details["gpt"], details["sovits"] = str(outcome.gpt), str(outcome.sovits)
        return FileData(path=str(outcome.path)), json.dumps(details, ensure_ascii=False)

    def weights() -> str:
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

    gr.api(synthesize, api_name="synthesize", **SYNTH_QUEUE)
    gr.api(weights, api_name="weights", concurrency_limit=None)
