"""The CPU fast path (fastpath.apply_precision): what "auto" and "fp32" do, and the fidelity bounds that
let "auto" be the default (greedy decodes token for token on the reference fixture)."""

from __future__ import annotations

import copy

import pytest
import torch

from gpt_sovits.models import weights
from gpt_sovits.models.fastpath import (
    Bf16Linear,
    PrecisionError,
    apply_precision,
    bf16_supported,
    check_precision,
    fast_path_active,
    fast_s1,
)
from gpt_sovits.models.s1 import S1Config, Text2Semantic, strip_lightning_prefix
from gpt_sovits.models.sampling import SamplingParams
from tests.support.reference_data import REFERENCE_DIR

REF = REFERENCE_DIR


@pytest.fixture(scope="module")
def exact() -> Text2Semantic:
    ckpt = torch.load(REF / "s1_tiny.ckpt", weights_only=True)
    model = Text2Semantic(S1Config.from_official(ckpt["config"]))
    model.load_state_dict({k: v.float() for k, v in strip_lightning_prefix(ckpt["weight"]).items()})
    return model.eval()


@pytest.fixture(scope="module")
def fast(exact: Text2Semantic) -> Text2Semantic:
    # The fast path itself, on any CPU (bf16 matmuls are emulated where the CPU has no native bf16), so its
    # fidelity is checked everywhere; whether "auto" picks it is the CPU's (test_load_gpt_applies_...).
    return fast_s1(copy.deepcopy(exact).eval())


@pytest.fixture(scope="module")
def io() -> dict:
    return torch.load(REF / "s1_tiny_io.pt", weights_only=True)


def test_precision_names() -> None:
    assert check_precision("fp32") == "fp32"
    with pytest.raises(PrecisionError, match="auto, fp32"):
        check_precision("int4")
    model = Text2Semantic(S1Config(n_layer=1, hidden_dim=32, embedding_dim=32, head=2))
    with pytest.raises(PrecisionError):
        apply_precision(model, "half", "cpu")


def test_fp32_and_accelerators_keep_the_exact_model(exact: Text2Semantic) -> None:
    model = copy.deepcopy(exact)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert apply_precision(model, "fp32", "cpu") is model
    assert apply_precision(model, "auto", "cuda:0") is model  # not measured there: exact
    assert not fast_path_active(model)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_auto_on_cpu_swaps_the_transformer_linears_only(exact: Text2Semantic, fast: Text2Semantic) -> None:
    assert fast_path_active(fast) and not fast_path_active(exact)
    n_layer = exact.cfg.n_layer
    assert sum(isinstance(m, Bf16Linear) for m in fast.modules()) == 4 * n_layer
    layer = fast.h.layers[0]
    assert layer.self_attn.in_proj_weight is None and layer.linear1.weight.dtype == torch.bfloat16
    # The output layer and the BERT projection stay exact fp32.
    assert torch.equal(fast.ar_predict_layer.weight, exact.ar_predict_layer.weight)
    assert torch.equal(fast.bert_proj.weight, exact.bert_proj.weight)
    assert apply_precision(fast, "auto", "cpu") is fast  # idempotent (and a no-op without native bf16)
    assert sum(isinstance(m, Bf16Linear) for m in fast.modules()) == 4 * n_layer


@pytest.mark.parametrize("case", ["a", "b", "c"])
def test_fast_greedy_decodes_equal_fp32_and_the_reference(
    exact: Text2Semantic, fast: Text2Semantic, io: dict, case: str
) -> None:
    rep = float(io[f"dec_{case}_rep_penalty"])
    params = SamplingParams(
        top_k=1, repetition_penalty=rep, max_new_tokens=io[f"dec_{case}_early_stop_num"] + 1
    )
    args = ([io["x"][0]], [io["bert_feature"][0]], io["prompt"][0], params)
    a = exact.generate(*args, return_step_logits=True).candidates[0][0]
    b = fast.generate(*args, return_step_logits=True).candidates[0][0]
    assert b.tokens.tolist() == a.tokens.tolist()
    assert (b.eos, b.steps) == (a.eos, a.steps)
    assert torch.equal(torch.cat([io["prompt"][0], b.tokens]), io[f"dec_{case}_tokens"][0])
    # Logits reach about 46 here; bf16 weights moved them by at most 0.24 when measured (0.5%).
    assert (b.step_logits - a.step_logits).abs().max() < 0.4


def test_fast_greedy_agrees_for_100_tokens_and_its_teacher_forced_argmax_always(
    exact: Text2Semantic, fast: Text2Semantic, io: dict
) -> None:
    # EOS banned: 100 tokens. Without the repetition penalty the fixture's decode has margins large enough
    # for all 100; teacher-forced on fp32's tokens, every one of the 100 argmaxes (with rep 1.35 too) agrees.
    x, bert, prompt = io["x"][0], io["bert_feature"][0], io["prompt"][0]
    params = SamplingParams(top_k=1, repetition_penalty=1.0, max_new_tokens=100, eos_ban_steps=100)
    a = exact.generate([x], [bert], prompt, params).candidates[0][0]
    b = fast.generate([x], [bert], prompt, params).candidates[0][0]
    assert a.tokens.numel() == 100 and b.tokens.tolist() == a.tokens.tolist()
    for rep in (1.0, 1.35):
        p = SamplingParams(top_k=1, repetition_penalty=rep, max_new_tokens=100, eos_ban_steps=100)
        y = torch.cat([prompt, exact.generate([x], [bert], prompt, p).candidates[0][0].tokens])[None]
        lens = torch.tensor([y.shape[1]])
        with torch.no_grad():
            la = exact(io["x"], io["x_lens"], y, lens, io["bert_feature"]).logits[0, prompt.numel() :]
            lb = fast(io["x"], io["x_lens"], y, lens, io["bert_feature"]).logits[0, prompt.numel() :]
        assert la.shape[0] == 101
        assert torch.equal(la.argmax(-1), lb.argmax(-1))


def test_load_gpt_applies_the_fast_path_by_default_and_fp32_on_request(io: dict) -> None:
    model, _ = weights.load_gpt(REF / "s1_tiny.ckpt")
    exact_model, _ = weights.load_gpt(REF / "s1_tiny.ckpt", precision="fp32")
    # "auto" takes the fast path where the CPU multiplies bf16 natively, and stays exact elsewhere.
    assert fast_path_active(model) == bf16_supported() and not fast_path_active(exact_model)
    params = SamplingParams(top_k=1, repetition_penalty=1.35, max_new_tokens=41)
    args = ([io["x"][0]], [io["bert_feature"][0]], io["prompt"][0], params)
    assert torch.equal(
        model.generate(*args).candidates[0][0].tokens, exact_model.generate(*args).candidates[0][0].tokens
    )


def test_a_fast_model_cast_back_to_float_still_runs(exact: Text2Semantic, io: dict) -> None:
    model = fast_s1(copy.deepcopy(exact)).float()
    assert model.h.layers[0].linear1.weight.dtype == torch.float32
    params = SamplingParams(top_k=1, repetition_penalty=1.35, max_new_tokens=41)
    args = ([io["x"][0]], [io["bert_feature"][0]], io["prompt"][0], params)
    assert torch.equal(
        model.generate(*args).candidates[0][0].tokens, exact.generate(*args).candidates[0][0].tokens
    )


def test_a_fast_path_gpt_is_not_saved_as_official_weights(tmp_path):
    from gpt_sovits.models.fastpath import bf16_supported
    from gpt_sovits.models.weights import load_gpt, save_gpt_weights

    ckpt = REF / "s1_tiny.ckpt"
    exact, cfg = load_gpt(ckpt, precision="fp32")
    assert save_gpt_weights(exact, cfg, tmp_path / "exact.ckpt").is_file()
    fast, _ = load_gpt(ckpt)  # the default: the CPU fast path where the CPU has native bf16
    if not bf16_supported():
        assert not fast_path_active(fast)
        return
    with pytest.raises(ValueError, match="precision='fp32'"):
        save_gpt_weights(fast, cfg, tmp_path / "fast.ckpt")
    assert not (tmp_path / "fast.ckpt").exists()
