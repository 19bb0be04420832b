"""S1 (Text2Semantic): parity with the reference fixtures, full-size key layout, batched decoding."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from gpt_sovits.models.s1 import (
    GenerationResult,
    KVCache,
    S1Config,
    S1ConfigError,
    S1InputError,
    SharedPrefixCache,
    Text2Semantic,
    dpo_loss,
    make_reject_y,
    s1_loss,
    sequence_logps,
    strip_lightning_prefix,
    top_k_accuracy,
)
from gpt_sovits.models.sampling import SamplingParams
from tests.support.reference_data import REFERENCE_DIR

REF = REFERENCE_DIR


@pytest.fixture(scope="module")
def tiny() -> Text2Semantic:
    ckpt = torch.load(REF / "s1_tiny.ckpt", weights_only=True)
    model = Text2Semantic(S1Config.from_official(ckpt["config"]))
    weights = {k: v.float() for k, v in strip_lightning_prefix(ckpt["weight"]).items()}
    model.load_state_dict(weights, strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def io() -> dict:
    return torch.load(REF / "s1_tiny_io.pt", weights_only=True)


def greedy(rep: float, max_new: int) -> SamplingParams:
    return SamplingParams(top_k=1, top_p=1.0, temperature=1.0, repetition_penalty=rep, max_new_tokens=max_new)


def test_tiny_teacher_forced_parity(tiny: Text2Semantic, io: dict) -> None:
    with torch.no_grad():
        x_emb = tiny.embed_text(io["x"], io["bert_feature"])
        y_emb = tiny.embed_audio(io["y"])
        logits, targets, xy_dec = tiny._teacher_forced(
            io["x"], io["x_lens"], io["y"], io["y_lens"], io["bert_feature"]
        )
        out = tiny(io["x"], io["x_lens"], io["y"], io["y_lens"], io["bert_feature"])
    torch.testing.assert_close(x_emb, io["tf_x_emb"], atol=1e-5, rtol=0)
    torch.testing.assert_close(y_emb, io["tf_y_emb"], atol=1e-5, rtol=0)
    torch.testing.assert_close(xy_dec, io["tf_xy_dec"], atol=1e-4, rtol=0)
    assert logits.shape == (1, 13, 1025)
    torch.testing.assert_close(logits, io["tf_logits"], atol=1e-4, rtol=0)
    torch.testing.assert_close(out.logits, logits)
    assert targets.tolist() == [io["y"][0].tolist() + [1024]]
    assert s1_loss(logits, targets).item() == pytest.approx(io["tf_loss"].item(), rel=1e-5)
    assert top_k_accuracy(logits, targets, k=3, ignore_index=1024).item() == pytest.approx(
        io["tf_acc"].item()
    )


@pytest.mark.parametrize("case", ["a", "b", "c"])
def test_tiny_greedy_decode_parity(tiny: Text2Semantic, io: dict, case: str) -> None:
    rep = float(io[f"dec_{case}_rep_penalty"])
    early = io[f"dec_{case}_early_stop_num"]
    prompt = io["prompt"][0]
    res = tiny.generate(
        [io["x"][0]], [io["bert_feature"][0]], prompt, greedy(rep, early + 1), return_step_logits=True
    ).candidates[0][0]
    ref_tokens = io[f"dec_{case}_tokens"][0]
    assert torch.equal(torch.cat([prompt, res.tokens]), ref_tokens)
    assert res.eos == bool(io[f"dec_{case}_eos_hit"])
    assert res.steps == io[f"dec_{case}_steps"]
    # The reference's idx: number of new tokens after EOS, one less after an early stop.
    idx = res.tokens.numel() if res.eos else res.tokens.numel() - 1
    assert idx == io[f"dec_{case}_idx"]
    torch.testing.assert_close(res.step_logits, io[f"dec_{case}_logits"], atol=1e-4, rtol=0)
    expected_lp = torch.log_softmax(res.step_logits[: res.tokens.numel()], -1).gather(1, res.tokens[:, None])[
        :, 0
    ]
    torch.testing.assert_close(res.logprobs, expected_lp)


def test_eos_ban_is_what_keeps_the_tiny_model_going(tiny: Text2Semantic, io: dict) -> None:
    # The fixture's raw argmax is EOS at step 0: without the ban, decoding ends at once with no tokens.
    params = SamplingParams(top_k=1, repetition_penalty=1.35, eos_ban_steps=0, max_new_tokens=41)
    res = tiny.generate([io["x"][0]], [io["bert_feature"][0]], io["prompt"][0], params).candidates[0][0]
    assert res.eos and res.steps == 1 and res.tokens.numel() == 0


def test_kv_cache_decode_matches_full_sequence_forward(tiny: Text2Semantic, io: dict) -> None:
    prompt = io["prompt"][0]
    res = tiny.generate(
        [io["x"][0]], [io["bert_feature"][0]], prompt, greedy(1.35, 41), return_step_logits=True
    )
    cand = res.candidates[0][0]
    y = torch.cat([prompt, cand.tokens]).unsqueeze(0)
    with torch.no_grad():
        full = tiny(io["x"], io["x_lens"], y, torch.tensor([y.shape[1]]), io["bert_feature"]).logits[0]
    tp = prompt.numel()
    torch.testing.assert_close(full[tp : tp + cand.steps], cand.step_logits, atol=1e-4, rtol=0)


def test_batched_greedy_equals_unbatched(tiny: Text2Semantic, io: dict) -> None:
    g = torch.Generator().manual_seed(0)
    x0, b0 = io["x"][0], io["bert_feature"][0]
    x1 = torch.randint(0, 732, (9,), generator=g)
    b1 = torch.randn(1024, 9, generator=g)
    p0 = io["prompt"][0]
    p1 = torch.randint(0, 1024, (6,), generator=g)
    params = greedy(1.35, 30)
    singles = [
        tiny.generate([x0], [b0], p0, params).candidates[0][0],
        tiny.generate([x1], [b1], p1, params).candidates[0][0],
        tiny.generate([x1], [b1], None, params).candidates[0][0],
    ]
    batched = tiny.generate([x0, x1, x1], [b0, b1, b1], [p0, p1, None], params, num_candidates=3)
    assert len(batched.candidates) == 3
    for single, cands in zip(singles, batched.candidates, strict=True):
        assert len(cands) == 3
        for c in cands:
            assert torch.equal(c.tokens, single.tokens)
            assert c.eos == single.eos and c.steps == single.steps
            torch.testing.assert_close(c.logprobs, single.logprobs, atol=1e-4, rtol=0)
    # The rows finish at different steps, so rows really left the batch mid-way.
    assert len({cands[0].steps for cands in batched.candidates}) > 1


def random_tiny(seed: int = 0) -> Text2Semantic:
    torch.manual_seed(seed)
    cfg = S1Config(
        embedding_dim=32, hidden_dim=32, head=2, n_layer=2, phoneme_vocab_size=50, vocab_size=65, EOS=64
    )
    return Text2Semantic(cfg).eval()


def test_sampling_is_seedable_and_varies_with_seed() -> None:
    model = random_tiny()
    x, bert, prompt = torch.randint(0, 50, (7,)), torch.randn(1024, 7), torch.randint(0, 64, (5,))
    params = SamplingParams(top_k=20, top_p=0.9, temperature=1.0, max_new_tokens=20)

    def run(seed: int) -> list[list[int]]:
        res = model.generate(
            [x], [bert], prompt, params, num_candidates=4, generator=torch.Generator().manual_seed(seed)
        )
        return [c.tokens.tolist() for c in res.candidates[0]]

    first = run(1)
    assert first == run(1)
    assert first != run(2)
    assert len({tuple(t) for t in first}) > 1  # candidates in one batch differ
    for toks in first:
        assert all(0 <= t < 64 for t in toks) and len(toks) <= 20


def test_right_padded_targets_do_not_change_valid_logits() -> None:
    model = random_tiny(1)
    x, bert = torch.randint(0, 50, (1, 6)), torch.randn(1, 1024, 6)
    y = torch.randint(0, 64, (1, 8))
    with torch.no_grad():
        alone = model(x, torch.tensor([6]), y[:, :5], torch.tensor([5]), bert)
        padded = model(
            x.repeat(2, 1), torch.tensor([6, 6]), y.repeat(2, 1), torch.tensor([5, 8]), bert.repeat(2, 1, 1)
        )
    torch.testing.assert_close(padded.logits[0, :6], alone.logits[0], atol=1e-5, rtol=0)
    assert padded.targets[0].tolist() == y[0, :5].tolist() + [64] * 4  # padding positions target EOS
    assert padded.targets[1].tolist() == y[0].tolist() + [64]


def test_full_size_v2_keys_and_shapes() -> None:
    with open(REF / "s1_v2_keys.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    expected = [(r["name"].removeprefix("model."), json.loads(r["shape"])) for r in rows]
    cfg = S1Config.from_official(json.loads((REF / "s1_v2_config.json").read_text()))
    with torch.device("meta"):
        model = Text2Semantic(cfg)
    got = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert got == expected
    assert sum(v.numel() for v in model.state_dict().values()) == 77_606_402


def test_config_round_trips_and_rejects_bad_input() -> None:
    official = json.loads((REF / "s1_v2_config.json").read_text())
    cfg = S1Config.from_official(official)
    assert (cfg.n_layer, cfg.head, cfg.hidden_dim, cfg.EOS) == (24, 16, 512, 1024)
    assert S1Config.from_dict(cfg.to_dict()) == cfg
    assert S1Config.from_official({"model": cfg.to_official()}) == cfg
    assert (
        S1Config.from_official(
            {**official, "model": {**official["model"], "phoneme_vocab_size": 512}}
        ).phoneme_vocab_size
        == 512
    )
    with pytest.raises(S1ConfigError, match="n_layer"):
        S1Config.from_official({"model": {k: v for k, v in official["model"].items() if k != "n_layer"}})
    with pytest.raises(S1ConfigError, match="EOS"):
        S1Config(vocab_size=1025, EOS=3)
    with pytest.raises(S1ConfigError, match="unknown"):
        S1Config.from_dict({"bogus": 1})


def test_generate_rejects_inconsistent_inputs() -> None:
    model = random_tiny()
    x, bert, prompt = torch.randint(0, 50, (7,)), torch.randn(1024, 7), torch.randint(0, 64, (5,))
    with pytest.raises(S1InputError, match="BERT features must be"):
        model.generate([x], [torch.randn(1024, 6)], prompt)
    with pytest.raises(S1InputError, match="non-empty"):
        model.generate([x[:0]], [bert[:, :0]], prompt)
    with pytest.raises(S1InputError, match="prompt semantic ids"):
        model.generate([x], [bert], torch.tensor([64]))
    with pytest.raises(S1InputError, match="phone ids"):
        model.generate([x + 50], [bert], prompt)
    with pytest.raises(S1InputError, match="prompts"):
        model.generate([x, x], [bert, bert], [prompt])
    with pytest.raises(S1InputError, match="BERT features must be"):
        model(x[None], torch.tensor([7]), prompt[None], torch.tensor([5]), torch.randn(1, 1024, 6))


def test_dpo_pieces() -> None:
    g = torch.Generator().manual_seed(3)
    y = torch.arange(1, 11).unsqueeze(0).repeat(4, 1)
    rej, lens = make_reject_y(y, torch.full((4,), 10), generator=g)
    assert rej.shape == (4, int(lens.max()))
    for row, n in zip(rej, lens.tolist(), strict=True):
        assert (row[n:] == 0).all()
        assert set(row[:n].tolist()) <= set(range(1, 11))
    logits = torch.randn(2, 5, 7)
    targets = torch.randint(0, 7, (2, 5))
    lp = sequence_logps(logits, targets)
    manual = sum(torch.log_softmax(logits[0, t], -1)[targets[0, t]] for t in range(5))
    assert lp[0].item() == pytest.approx(manual.item(), rel=1e-5)
    assert dpo_loss(torch.tensor([0.0]), torch.tensor([0.0])).item() == pytest.approx(0.6931, abs=1e-4)
    assert dpo_loss(torch.tensor([10.0]), torch.tensor([-10.0])).item() < 0.02


# ------------------------------------------------------------------- the device-side decoder vs the old one

RECORDED = Path(__file__).parent / "data" / "s1_decode" / "recorded_decodes.pt"


def recorded_cases(io: dict) -> dict[str, dict]:
    """The calls whose outputs the previous (host-bookkeeping) decoder wrote to ``RECORDED``."""
    x, bert, prompt = io["x"][0], io["bert_feature"][0], io["prompt"][0]
    return {
        "single": dict(
            args=([x], [bert], prompt, SamplingParams(top_k=15, max_new_tokens=40)), n=1, seed=7, logits=True
        ),
        "batched": dict(
            args=(
                [x, x[:12]],
                [bert, bert[:, :12]],
                [prompt, None],
                SamplingParams(top_k=15, top_p=0.9, temperature=0.8, max_new_tokens=50),
            ),
            n=3,
            seed=11,
            logits=False,
        ),
        "candidates": dict(
            args=(
                [x[3:]],
                [bert[:, 3:]],
                [prompt[:5]],
                SamplingParams(top_k=5, repetition_penalty=1.0, eos_ban_steps=2, max_new_tokens=30),
            ),
            n=4,
            seed=3,
            logits=True,
        ),
    }


@pytest.mark.parametrize("case", ["single", "batched", "candidates"])
def test_sampled_decodes_equal_the_previous_decoder_for_the_same_seed(
    tiny: Text2Semantic, io: dict, case: str
) -> None:
    recorded = torch.load(RECORDED, weights_only=True)[case]
    c = recorded_cases(io)[case]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as when recorded: other thread counts reorder float sums
    try:
        res = tiny.generate(
            *c["args"],
            num_candidates=c["n"],
            generator=torch.Generator().manual_seed(c["seed"]),
            return_step_logits=c["logits"],
        )
    finally:
        torch.set_num_threads(threads)
    rows = [cand for sent in res.candidates for cand in sent]
    assert [r.tokens.tolist() for r in rows] == [t.tolist() for t in recorded["tokens"]]
    assert [r.eos for r in rows] == recorded["eos"]
    assert [r.steps for r in rows] == recorded["steps"]
    # Tokens, stops and steps exactly; floats to rounding (this CPU's kernels sum in another order than
    # the recording machine's: up to 1e-5 apart in the logprobs, with the old decoder too).
    for r, lp in zip(rows, recorded["logprobs"], strict=True):
        torch.testing.assert_close(r.logprobs, lp, atol=1e-4, rtol=0)
    if c["logits"]:
        for r, lg in zip(rows, recorded["step_logits"], strict=True):
            torch.testing.assert_close(r.step_logits, lg, atol=1e-4, rtol=0)
    if len(rows) > 1:  # rows end at different steps (one at max_new_tokens), so rows left the batch
        assert len(set(recorded["steps"])) > 1


def generate_with(model: Text2Semantic, options: dict, *args, **kwargs) -> GenerationResult:
    """model.generate with decoding attributes set for this call only."""
    old = {k: getattr(model, k) for k in options}
    try:
        for k, v in options.items():
            setattr(model, k, v)
        return model.generate(*args, **kwargs)
    finally:
        for k, v in old.items():
            setattr(model, k, v)


@pytest.mark.parametrize(
    "options", [{"sync_every": 5}, {"static_step": True}, {"static_step": True, "sync_every": 3}]
)
def test_greedy_decodes_do_not_depend_on_the_step_mode(tiny: Text2Semantic, io: dict, options: dict) -> None:
    # Fixed-shape steps (the CUDA graph's: whole-capacity attention under a mask, finished rows kept in
    # the batch) and host looks every few steps give the same greedy tokens as the CPU default.
    g = torch.Generator().manual_seed(0)
    x0, b0, p0 = io["x"][0], io["bert_feature"][0], io["prompt"][0]
    x1, b1 = torch.randint(0, 732, (9,), generator=g), torch.randn(1024, 9, generator=g)
    args = ([x0, x1], [b0, b1], [p0, None], greedy(1.35, 30))
    base = tiny.generate(*args, num_candidates=2, return_step_logits=True)
    other = generate_with(tiny, options, *args, num_candidates=2, return_step_logits=True)
    assert len({c.steps for cands in base.candidates for c in cands}) > 1  # rows stop at different steps
    for cb, co in zip(base.candidates, other.candidates, strict=True):
        for a, b in zip(cb, co, strict=True):
            assert a.tokens.tolist() == b.tokens.tolist()
            assert (a.eos, a.steps) == (b.eos, b.steps)
            torch.testing.assert_close(b.logprobs, a.logprobs, atol=1e-4, rtol=0)
            torch.testing.assert_close(b.step_logits, a.step_logits, atol=1e-4, rtol=0)


def test_static_sampled_decode_keeps_rows_apart(tiny: Text2Semantic, io: dict) -> None:
    # Sampling with finished rows left in the batch: each candidate still ends where its own stop rule says.
    params = SamplingParams(top_k=15, max_new_tokens=25)
    res = generate_with(
        tiny,
        {"static_step": True, "sync_every": 4},
        [io["x"][0]],
        [io["bert_feature"][0]],
        io["prompt"][0],
        params,
        num_candidates=4,
        generator=torch.Generator().manual_seed(5),
        return_step_logits=True,
    ).candidates[0]
    assert len({c.steps for c in res}) > 1
    for c in res:
        n = c.tokens.numel()
        assert c.steps == (n + 1 if c.eos else n) and n <= 25
        assert c.step_logits.shape == (c.steps, 1025)
        assert (c.tokens < 1024).all()
        expected = torch.log_softmax(c.step_logits[:n], -1).gather(1, c.tokens[:, None])[:, 0]
        torch.testing.assert_close(c.logprobs, expected)


# ------------------------------------------------------------------- shared-prefix attention of candidates


def test_shared_prefix_attention_equals_attention_over_all_keys() -> None:
    # One prefix copy (1, H, Tp, D) for all rows plus each row's suffix, merged by log-sum-exp, equals
    # one softmax over [prefix ; suffix] keys; rows that leave (keep_rows, repeats allowed) keep theirs.
    torch.manual_seed(0)
    b, h, d, tp, ts = 5, 4, 16, 23, 6
    attn = (
        Text2Semantic(S1Config(embedding_dim=64, hidden_dim=64, head=h, n_layer=1, vocab_size=65, EOS=64))
        .h.layers[0]
        .self_attn.eval()
    )
    prefix = KVCache(1, 1, h, d, tp, torch.float32, torch.device("cpu"))
    pk, pv = torch.randn(1, h, tp, d) * 3, torch.randn(1, h, tp, d)
    prefix.append(0, pk, pv)
    prefix.advance(tp)
    cache = SharedPrefixCache(prefix, KVCache(1, b, h, d, ts + 1, torch.float32, torch.device("cpu")))
    sk, sv = torch.randn(b, h, ts, d) * 3, torch.randn(b, h, ts, d)
    cache.suffix.append(0, sk, sv)
    cache.advance(ts)
    rows = torch.tensor([4, 1, 1])
    cache.keep_rows(rows)
    sk, sv = sk[rows], sv[rows]
    q = torch.randn(3, h, 1, d) * 3
    k1, v1 = torch.randn(3, h, 1, d), torch.randn(3, h, 1, d)
    suffix = cache.suffix.append(0, k1, v1)
    with torch.no_grad():
        got = attn.attend_shared(q, cache.prefix_kv(0), suffix)
        keys = torch.cat([pk.expand(3, -1, -1, -1), sk, k1], 2)
        values = torch.cat([pv.expand(3, -1, -1, -1), sv, v1], 2)
        want = attn.attend(q, keys, values, None)
    assert got.shape == (3, 1, 64)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    with pytest.raises(S1InputError, match="one row"):
        SharedPrefixCache(cache.suffix, cache.suffix)


@pytest.mark.parametrize("penalty", [1.0, 1.35])
def test_candidates_decode_the_same_with_a_shared_prefix(
    tiny: Text2Semantic, io: dict, penalty: float
) -> None:
    # Sampled candidates of one sentence: the same tokens, stops and steps for the same seed whether
    # they read one prefix copy or each its own, with rows leaving the batch at different steps.
    params = SamplingParams(top_k=15, repetition_penalty=penalty, max_new_tokens=40)
    args = ([io["x"][0]], [io["bert_feature"][0]], io["prompt"][0], params)

    def run(shared: bool) -> list:
        return generate_with(
            tiny,
            {"shared_prefix": shared},
            *args,
            num_candidates=6,
            generator=torch.Generator().manual_seed(9),
            return_step_logits=True,
        ).candidates[0]

    shared, copied = run(True), run(False)
    assert len({c.steps for c in copied}) > 1  # rows left the batch mid-way
    for a, b in zip(shared, copied, strict=True):
        assert a.tokens.tolist() == b.tokens.tolist()
        assert (a.eos, a.steps) == (b.eos, b.steps)
        torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-4, rtol=0)
        torch.testing.assert_close(a.step_logits, b.step_logits, atol=1e-4, rtol=0)
