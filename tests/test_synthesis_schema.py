"""The one synthesis schema: a knob added to SYNTHESIS_PARAMS reaches the CLI, `/synthesize` and the tab.

Also: the request's fields and defaults are the schema's, the synthesiser's range checks and the web
app's limits come from it, every tab label is translated, and the front door stays cheap to import.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from dataclasses import fields

import pytest

from gpt_sovits.infer import request as schema
from gpt_sovits.infer.request import SYNTHESIS_PARAMS, Param, SynthesisRequest, TTSInputError, Widget
from i18n import I18n

# A sampling knob nobody has yet: only the schema learns of it.
EXTRA = Param(
    "eos_boost", float, 0.25, "how much to favour ending a sentence", range=(0, 1),
    tab=Widget("EOS boost", slider=(0.0, 1.0, 0.05), row="decode"),
)  # fmt: skip


@pytest.fixture
def extra_knob(monkeypatch):
    monkeypatch.setattr(schema, "SYNTHESIS_PARAMS", (*SYNTHESIS_PARAMS, EXTRA))
    return EXTRA


def _built_app(tmp_path, build):
    import gradio as gr

    from ui.context import AppContext

    ctx = AppContext.create(tmp_path / "ws", "en_US", tmp_path / "models")
    with gr.Blocks() as app:
        build(ctx)
    return app


def _event(app, name: str):
    return next(
        fn for fn in app.fns.values() if getattr(fn.fn, "__name__", "") == name or fn.api_name == name
    )


def test_an_added_knob_reaches_the_cli_the_api_and_the_tab(extra_knob, tmp_path):
    from gpt_sovits.infer.__main__ import make_parser
    from ui import inference_api, inference_tab

    # 1. CLI: a flag with the schema's default, parsed under the knob's name.
    parser = make_parser()
    assert "--eos-boost" in parser.format_help()
    base = ["--gpt", "g", "--sovits", "s", "--ref-audio", "r.wav", "--text", "x", "--out", "o.wav"]
    assert parser.parse_args(base).eos_boost == 0.25
    assert parser.parse_args([*base, "--eos-boost", "0.5"]).eos_boost == 0.5

    # 2. API: a named, typed /synthesize parameter with the default, described in the endpoint's docs.
    app = _built_app(tmp_path, lambda ctx: inference_api.register_api(ctx, None))
    synthesize = _event(app, "synthesize")
    parameter = inspect.signature(synthesize.fn).parameters["eos_boost"]
    assert (parameter.default, parameter.annotation) == (0.25, float)
    api = app.get_api_info()["named_endpoints"]["/synthesize"]["parameters"]
    last_knob = api[-1 - len(inference_api._TAIL)]  # the knobs come before the files, CLVP and voice
    assert {"parameter_name": "eos_boost", "parameter_default": 0.25}.items() <= last_knob.items()
    assert "eos_boost: how much to favour ending a sentence" in synthesize.fn.__doc__

    # 3. Tab: a slider in the Sampling accordion that is an input of the synthesis event.
    app = _built_app(tmp_path, inference_tab.build)
    go = _event(app, "synthesize_form")
    slider = next(c for c in go.inputs if c.elem_id == "inf-eos-boost")
    assert (slider.minimum, slider.maximum, slider.value, slider.label) == (0.0, 1.0, 0.25, "EOS boost")

    # And the request: a field with the default, range-checked by the synthesiser.
    request_type = schema.request_class()
    assert request_type(text="x").eos_boost == 0.25
    with pytest.raises(TTSInputError, match="eos_boost must be between 0 and 1, got 2.0"):
        schema.check_ranges(request_type(text="x", eos_boost=2.0))


def test_the_request_is_the_schema():
    names = [f.name for f in fields(SynthesisRequest)]
    assert names == ["text", "ref_audio", "aux_refs", "clvp_path", *(p.name for p in SYNTHESIS_PARAMS)]
    request = SynthesisRequest(text="x")
    assert (request.top_k, request.repetition_penalty, request.max_new_tokens, request.cut) == (
        15,
        1.35,
        1500,
        "cut1",
    )
    assert all(getattr(request, p.name) == p.default for p in SYNTHESIS_PARAMS)


def test_one_default_everywhere(tmp_path):
    """The CLI, the API and the tab show each knob with the schema's default (top_k=15 exists once)."""
    from gpt_sovits.infer.__main__ import make_parser
    from ui import inference_api, inference_tab

    base = ["--gpt", "g", "--sovits", "s", "--ref-audio", "r.wav", "--text", "x", "--out", "o.wav"]
    args = make_parser().parse_args(base)
    api = inspect.signature(
        _event(_built_app(tmp_path, lambda c: inference_api.register_api(c, None)), "synthesize").fn
    )
    tab = {c.elem_id: c for c in _event(_built_app(tmp_path, inference_tab.build), "synthesize_form").inputs}
    for p in SYNTHESIS_PARAMS:
        if p.flag is not None:
            assert getattr(args, p.name) == p.default, p.name
        if p.api:
            assert api.parameters[p.name].default == p.default, p.name
        if p.tab:
            assert tab[p.elem_id].value == p.default, p.name
    assert list(api.parameters)[:3] == ["text", "text_lang", "ref_audio"]  # clients pass these by position


@pytest.mark.parametrize(
    ("name", "value", "library", "web"),
    [
        ("candidates", 0, "candidates must be between 1 and 32, got 0", "The number of candidates must be between 1 and 16."),
        ("candidates", 20, None, "The number of candidates must be between 1 and 16."),
        ("pause", 11.0, "pause must be between 0 and 10 s, got 11.0", None),
        ("asr_weight", -1.0, "asr_weight must be 0 (off) or more, got -1.0", "The ASR agreement weight must be between 0 and 10."),
        ("max_new_tokens", 2000, None, "The token limit per sentence must be between 1 and 1500."),
        ("top_k", 50, None, None),
        ("seed", -1, None, None),
        ("seed", 2**32 - 1, None, None),
        ("seed", 2**70, f"seed must be between -1 and 4294967295 (-1: a random seed), got {2**70}", None),
        ("seed", -5, "seed must be between -1 and 4294967295 (-1: a random seed), got -5", None),
    ],
)  # fmt: skip
def test_ranges_and_web_limits_come_from_the_schema(name, value, library, web):
    p = schema.param(name)
    assert p.out_of_range(value) == library
    assert p.outside_web_range(value) == web


def test_coercion_of_widget_and_json_values():
    assert schema.param("seed").coerce(7.0) == 7 and schema.param("seed").coerce(None) == -1
    assert schema.param("asr_weight").coerce(None) == 0.0 and schema.param("asr_model").coerce(None) is None
    with pytest.raises(TTSInputError, match="top_k must be a whole number, got 'many'"):
        schema.param("top_k").coerce("many")


def test_every_tab_label_is_translated():
    zh = I18n("zh_CN")
    keys = [k for p in SYNTHESIS_PARAMS if p.tab for k in (p.tab.label, p.tab.info) if k and k != p.name]
    assert keys and [k for k in keys if zh(k) == k] == []


def test_a_reranker_is_handed_in_never_imported(tmp_path):
    from gpt_sovits.infer.synthesizer import Synthesizer

    ckpt = tmp_path / "r.pt"
    ckpt.write_bytes(b"x")
    bare = Synthesizer(tmp_path / "g.ckpt", tmp_path / "s.pth", tmp_path, device="cpu")
    with pytest.raises(TTSInputError, match="CLVP checkpoint not found"):
        bare._scorers(SynthesisRequest(text="x", clvp_path=str(tmp_path / "none.pt")))
    with pytest.raises(TTSInputError, match="CLVP reranking is not available"):
        bare._scorers(SynthesisRequest(text="x", clvp_path=str(ckpt)))
    loads = []

    def loader(path, device):
        loads.append((path, str(device)))
        return lambda phones, cands: [float(len(c)) for c in cands]

    synth = Synthesizer(
        tmp_path / "g.ckpt", tmp_path / "s.pth", tmp_path, device="cpu", reranker_loader=loader
    )
    for _ in range(2):
        scorer, weight = synth._scorers(SynthesisRequest(text="x", clvp_path=str(ckpt), clvp_weight=0.5))[
            "clvp"
        ]
    assert weight == 0.5 and scorer([1], [[1, 2], [3]]) == [2.0, 1.0]
    assert loads == [(ckpt, "cpu")]  # loaded once, then cached


def test_front_door_is_lazy():
    code = (
        "import sys, json, gpt_sovits\n"
        "before = 'torch' in sys.modules\n"
        "from gpt_sovits import Synthesizer, SynthesisRequest, load_gpt, load_sovits\n"
        "print(json.dumps([before, Synthesizer.__module__, SynthesisRequest.__module__, load_gpt.__module__]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, synth, request, loader = json.loads(out.stdout.strip().splitlines()[-1])
    assert before is False
    assert (synth, request, loader) == (
        "gpt_sovits.infer.synthesizer",
        "gpt_sovits.infer.request",
        "gpt_sovits.models.weights",
    )


def test_cli_entry_points_answer_help():
    for module in ("gpt_sovits.infer", "gpt_sovits.infer.samples"):
        out = subprocess.run(
            [sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=True
        )
        assert f"python -m {module}" in out.stdout


def test_a_huge_seed_is_a_clear_error_not_an_overflow():
    with pytest.raises(TTSInputError, match=r"seed must be between -1 and 4294967295"):
        schema.check_ranges(SynthesisRequest(text="x", seed=2**70))
    with pytest.raises(TTSInputError, match=r"seed must be between -1 and 4294967295"):
        schema.check_ranges(SynthesisRequest(text="x", seed=10**400))  # beyond float's range too


# ------------------------------------------------------------------------------------ the text limit


def test_the_text_limit_names_the_length_and_the_limit():
    assert schema.MAX_TEXT_CHARS == 2000
    schema.check_text_length("字" * 2000)
    with pytest.raises(schema.TextTooLongError) as caught:
        schema.check_text_length("字" * 100_000)
    message = str(caught.value)
    assert "100,000 characters" in message and "at most 2,000 characters" in message
    assert "about 5 minutes of speech" in message
    assert (caught.value.length, caught.value.limit) == (100_000, 2000)
    assert isinstance(caught.value, TTSInputError)  # a message for the person, never an internal error
    with pytest.raises(schema.TextTooLongError, match="has 11 characters; .* at most 10 characters"):
        schema.check_text_length("x" * 11, 10)
    schema.check_text_length("x" * 100_000, None)  # None: no limit


def test_the_synthesiser_refuses_a_long_text_before_loading_anything(tmp_path):
    from gpt_sovits.infer.synthesizer import Synthesizer

    # No weights exist here: the limit is checked before any model (or the reference) is touched.
    synth = Synthesizer(tmp_path / "g.ckpt", tmp_path / "s.pth", tmp_path, device="cpu", max_text=50)
    with pytest.raises(schema.TextTooLongError, match="has 51 characters"):
        synth.synthesize(SynthesisRequest(text="a" * 51, ref_audio="ref.wav"))
    with pytest.raises(schema.TextTooLongError, match="at most 2,000"):
        Synthesizer(tmp_path / "g.ckpt", tmp_path / "s.pth", tmp_path).synthesize(
            SynthesisRequest(text="a" * 2001)
        )
    unbounded = Synthesizer(tmp_path / "g.ckpt", tmp_path / "s.pth", tmp_path, device="cpu", max_text=None)
    with pytest.raises(TTSInputError, match="weights not found"):  # past the limit, to the models
        unbounded.synthesize(SynthesisRequest(text="你好。" * 5000, text_lang="zh", ref_audio="ref.wav"))


def test_the_cli_takes_max_text_and_refuses_longer_texts(tmp_path, capsys):
    from core.jobs import EXIT_USER_ERROR
    from gpt_sovits.infer.__main__ import main, make_parser

    base = ["--gpt", "g", "--sovits", "s", "--ref-audio", "r.wav", "--text", "x", "--out", "o.wav"]
    assert make_parser().parse_args(base).max_text == 2000
    assert make_parser().parse_args([*base, "--max-text", "5000"]).max_text == 5000
    for bad in ("0", "many"):
        with pytest.raises(SystemExit):
            make_parser().parse_args([*base, "--max-text", bad])
        assert "--max-text must be" in capsys.readouterr().err
    text = tmp_path / "long.txt"
    text.write_text("你好世界。" * 30, encoding="utf-8")
    argv = ["--gpt", str(tmp_path / "g.ckpt"), "--sovits", str(tmp_path / "s.pth"), "--ref-audio", "r.wav"]
    argv += ["--text-file", str(text), "--out", str(tmp_path / "o.wav"), "--max-text", "100"]
    assert main(argv) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "error: The text has 150 characters" in err and "at most 100 characters" in err
    assert not (tmp_path / "o.wav").exists()


def test_a_reference_text_far_longer_than_a_clip_says_is_refused(tmp_path):
    from gpt_sovits.infer.synthesizer import Synthesizer

    schema.check_lengths(SynthesisRequest(text="x", ref_text="字" * 500))
    with pytest.raises(
        schema.TextTooLongError, match=r"The reference text has 100,000 characters.*at most 500"
    ):
        schema.check_lengths(SynthesisRequest(text="x", ref_text="字" * 100_000))
    synth = Synthesizer(tmp_path / "g.ckpt", tmp_path / "s.pth", tmp_path, device="cpu")
    with pytest.raises(schema.TextTooLongError, match="reference text has 501 characters"):
        synth.synthesize(SynthesisRequest(text="x", ref_text="a" * 501, ref_audio="ref.wav"))
