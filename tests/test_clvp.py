"""CLVP: model invariants, checkpoints, rerank errors, hard negatives, training and reranking on a synthetic task."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

import clvp
from clvp.checkpoint import ClvpCheckpointError, save_clvp
from clvp.model import ClvpConfig, ClvpConfigError, ClvpInputError, ClvpModel, pad_sequences
from clvp.negatives import KINDS, SpanSpec, corrupt, drop_span, make_negatives, repeat_span, run_on, truncate

# ------------------------------------------------------------------------------------------------ model


def _model(seed: int = 0, **overrides: object) -> ClvpModel:
    torch.manual_seed(seed)
    cfg = ClvpConfig(**{**ClvpConfig.preset("tiny").to_dict(), **overrides})
    return ClvpModel(cfg).eval()


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_pooled_embeddings_do_not_change_with_padding(stride: int) -> None:
    model = _model(speech_stride=stride)
    seqs = [[5, 6, 7, 8, 9], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]]
    ids, lens = pad_sequences(seqs, model.cfg.speech_pad)
    wide = torch.cat([ids, torch.full((2, 17), model.cfg.speech_pad)], dim=1)
    garbage = wide.clone()
    garbage[0, 5:] = 3  # whatever sits beyond the length must not matter either
    with torch.no_grad():
        a = model.encode_speech(ids, lens)
        b = model.encode_speech(wide, lens)
        c = model.encode_speech(garbage, lens)
        alone = model.encode_speech(*pad_sequences(seqs[:1], model.cfg.speech_pad))
        t1 = model.encode_text(*pad_sequences([[1, 2, 3]], model.cfg.text_pad))
        t2 = model.encode_text(*pad_sequences([[1, 2, 3], [4] * 20], model.cfg.text_pad))
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(a, c, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(a[:1], alone, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(t1, t2[:1], atol=1e-6, rtol=1e-5)
    assert torch.allclose(a.norm(dim=-1), torch.ones(2))


def test_scale_is_clamped_and_loss_prefers_true_pairs() -> None:
    model = _model()
    with torch.no_grad():
        model.logit_scale.fill_(50.0)
    assert float(model.scale().detach()) == pytest.approx(100.0)
    text, tl = pad_sequences([[1, 2], [3, 4, 5]], model.cfg.text_pad)
    sp, sl = pad_sequences([[7, 8, 9], [10]], model.cfg.speech_pad)
    neg, nl = pad_sequences([[7, 8], [10, 10], [11, 12, 13, 14]], model.cfg.speech_pad)
    out = model.train()(text, tl, sp, sl, neg, nl)
    assert out.logits.shape == (2, 5)  # 2 texts x (2 true + 3 negatives)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)


def test_config_round_trip_and_errors() -> None:
    cfg = ClvpConfig.preset("base")
    assert ClvpConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ClvpConfigError, match="unknown"):
        ClvpConfig.from_dict({"dim": 64, "colour": 1})
    with pytest.raises(ClvpConfigError, match="divisible"):
        ClvpConfig(dim=30, heads=4)
    with pytest.raises(ClvpConfigError, match="tiny or base"):
        ClvpConfig.preset("huge")


# ------------------------------------------------------------------------------------ checkpoint / rerank


def test_checkpoint_loads_weights_only_and_scores_identically(tmp_path: Path) -> None:
    model = _model(seed=3, speech_stride=2)
    path = save_clvp(tmp_path / "w" / "m.pt", model, {"epoch": 4})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "clvp" and raw["info"]["epoch"] == 4 and raw["config"]["speech_stride"] == 2
    loaded = clvp.load_clvp(str(path))
    phones, cands = [10, 20, 30, 40], [[1, 2, 3], [4, 5, 6, 7, 8, 9], [1], [1023, 0, 5]]
    assert clvp.rerank(loaded, phones, cands) == clvp.rerank(model, phones, cands)
    # batching does not change a candidate's score
    singles = [clvp.rerank(model, phones, [c])[0] for c in cands]
    assert clvp.rerank(model, phones, cands, batch_size=3) == pytest.approx(singles, abs=1e-5)
    # a trailing S1 EOS is ignored
    assert clvp.rerank(model, phones, [[1, 2, 3, 1024]]) == pytest.approx([singles[0]], abs=1e-6)


def test_bad_checkpoints_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ClvpCheckpointError, match="not found"):
        clvp.load_clvp(str(tmp_path / "missing.pt"))
    other = tmp_path / "gpt.ckpt"
    torch.save({"weight": {}, "config": {}}, other)
    with pytest.raises(ClvpCheckpointError, match="not a CLVP checkpoint"):
        clvp.load_clvp(str(other))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ClvpCheckpointError, match="not a readable"):
        clvp.load_clvp(str(junk))


def test_rerank_rejects_empty_and_out_of_range_inputs() -> None:
    model = _model()
    with pytest.raises(ClvpInputError, match="at least one candidate"):
        clvp.rerank(model, [1, 2], [])
    with pytest.raises(ClvpInputError, match="empty"):
        clvp.rerank(model, [], [[1, 2]])
    with pytest.raises(ClvpInputError, match="candidate 1 has no semantic tokens"):
        clvp.rerank(model, [1, 2], [[1], []])
    with pytest.raises(ClvpInputError, match="0..1023"):
        clvp.rerank(model, [1, 2], [[1, 2000]])
    with pytest.raises(ClvpInputError, match="0..731"):
        clvp.rerank(model, [1, 732], [[1]])
    assert issubclass(ClvpInputError, ValueError)


# ---------------------------------------------------------------------------------------------- negatives


def test_each_corruption_differs_as_specified() -> None:
    rng = random.Random(0)
    spec = SpanSpec(0.1, 0.3, 3)
    for trial in range(200):
        n = rng.randint(4, 80)
        t = [rng.randrange(1024) for _ in range(n)]
        other = [rng.randrange(1024) for _ in range(rng.randint(1, 60))]
        r = repeat_span(t, rng, spec)
        extra = len(r) - n
        assert extra >= 1
        # the result is t with one span [lo, hi) inserted again right after itself
        assert any(
            r[:hi] + r[hi + extra :] == t and r[hi : hi + extra] == t[hi - extra : hi]
            for hi in range(extra, n + 1)
        ), (t, r)
        d = drop_span(t, rng, spec)
        gone = n - len(d)
        assert 1 <= gone < n and any(t[:lo] + t[lo + gone :] == d for lo in range(n - gone + 1))
        c = truncate(t, rng, spec)
        assert 1 <= len(c) < n and t[: len(c)] == c
        o = run_on(t, rng, spec, other)
        assert len(o) > n and o[:n] == t
        tail = o[n:]
        assert tail == other[: len(tail)] or all(x in t for x in tail)
        assert corrupt(t, "other", rng, other) == other
        for kind in KINDS:
            assert corrupt(t, kind, rng, other, spec) != t, (kind, trial)


def test_corruptions_of_short_sequences_still_differ() -> None:
    rng = random.Random(1)
    for kind in KINDS:
        assert corrupt([5], kind, rng, [5]) != [5]
        assert corrupt([5, 6], kind, rng, None) != [5, 6]
    with pytest.raises(ValueError):
        corrupt([], "drop", rng)
    with pytest.raises(ValueError, match="unknown"):
        corrupt([1, 2], "shuffle", rng)


def test_make_negatives_covers_every_kind() -> None:
    negs = make_negatives(list(range(40)), 5, random.Random(2), others=[[900, 901, 902]])
    assert sorted(k for k, _ in negs) == sorted(KINDS)
    assert all(t != list(range(40)) for _, t in negs)
