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


def test_reader_scores_do_not_change_with_padding_or_batch() -> None:
    model = _model(seed=1)
    phones = [10, 20, 30, 20, 10]
    cands = [[5, 6, 7, 8, 9, 9, 9], [1, 2, 3] * 9, [4] * 3, list(range(40))]
    from clvp.score import score_parts

    together = score_parts(model, phones, cands, batch_size=4)
    alone = [score_parts(model, phones, [c])["reader"][0] for c in cands]
    assert set(together) == {"clvp", "reader"}
    assert together["reader"] == pytest.approx(alone, abs=1e-4)
    # a candidate shorter than the phones cannot carry them: a very low but finite score
    short = score_parts(model, list(range(1, 30)), [[1, 2]])["reader"][0]
    assert short < min(alone) and short == pytest.approx(-1e4 / 29)
    # what lies beyond a sequence's length does not reach its reading
    ids, lens = pad_sequences(cands[:2], model.cfg.speech_pad)
    garbage = ids.clone()
    garbage[0, len(cands[0]) :] = 3
    text, tl = pad_sequences([phones, phones], model.cfg.text_pad)
    with torch.no_grad():
        a = model.reader_score(text, tl, ids, lens)
        b = model.reader_score(text, tl, garbage, lens)
    torch.testing.assert_close(a, b)


def test_ctc_loss_is_part_of_the_training_loss() -> None:
    model = _model().train()
    text, tl = pad_sequences([[1, 2], [3, 4, 5]], model.cfg.text_pad)
    sp, sl = pad_sequences([[7, 8, 9, 9], [10, 11, 12, 13, 14, 15]], model.cfg.speech_pad)
    out = model(text, tl, sp, sl)
    assert out.ctc is not None and float(out.ctc.detach()) > 0
    out.loss.backward()
    assert model.reader.out.weight.grad is not None and model.reader.out.weight.grad.abs().sum() > 0
    assert _model(reader_dim=0).train()(text, tl, sp, sl).ctc is None


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


def test_clvp_only_files_of_version_1_still_load_and_score(tmp_path: Path) -> None:
    model = _model(seed=4, reader_dim=0)
    path = save_clvp(tmp_path / "v2.pt", model)
    raw = torch.load(path, weights_only=True)
    assert raw["format_version"] == 2
    # a file written before the reader existed: version 1, no reader fields in its config
    old = {**raw, "format_version": 1}
    old["config"] = {k: v for k, v in raw["config"].items() if not k.startswith("reader_")}
    torch.save(old, tmp_path / "v1.pt")
    loaded = clvp.load_clvp(str(tmp_path / "v1.pt"))
    assert loaded.reader is None
    phones, cands = [3, 4, 5], [[1, 2, 3], [9, 9]]
    assert clvp.load_scorer(tmp_path / "v1.pt")(phones, cands) == pytest.approx(
        clvp.rerank(model, phones, cands)
    )
    # and a reranker file scores by reader + mix * contrastive
    with_reader = _model(seed=5)
    with_reader.score_mix.fill_(0.1)
    from clvp.score import score_parts

    parts = score_parts(with_reader, phones, cands)
    want = [r + 0.1 * c for r, c in zip(parts["reader"], parts["clvp"], strict=True)]
    path = save_clvp(tmp_path / "r.pt", with_reader)
    assert clvp.load_scorer(path)(phones, cands) == pytest.approx(want, abs=1e-5)


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


# ------------------------------------------------------------------------------------- training / evaluation

EASY = dict(min_words=2, max_words=5, noise=0.0, max_repeat=1)  # durations fixed: the "easy" task


def _read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from clvp.train import main
    from tests.support.clvp_corpus import CorpusSpec, build_corpus

    root = tmp_path_factory.mktemp("clvp_train")
    exp = root / "exp"
    build_corpus(exp, CorpusSpec(items=600, seed=0, **EASY))
    events = root / "events.jsonl"
    argv = [
        "--exp-dir", str(exp), "--weights-dir", str(root / "weights"), "--exp-name", "easy",
        "--epochs", "4", "--save-every", "4", "--batch-size", "16", "--model", "tiny", "--lr", "3e-3",
        "--device", "cpu", "--threads", "1", "--events", str(events),
    ]  # fmt: skip
    threads = torch.get_num_threads()
    try:
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    return {"root": root, "exp": exp, "events": events, "weights": root / "weights" / "easy-e4.pt"}


def test_training_lowers_the_loss_and_exports(trained: dict) -> None:
    run = trained["exp"] / "clvp_train"
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss/train"] for m in metrics if "loss/train" in m]
    assert len(losses) >= 6
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3
    steps = [m["step"] for m in metrics if "loss/train" in m]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert any("val/top1" in m for m in metrics)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model_config"]["dim"] == ClvpConfig.preset("tiny").dim
    saved = [e for e in _read_events(trained["events"]) if e["type"] == "saved"]
    assert [(e["model"], e["epoch"], Path(e["path"])) for e in saved] == [("clvp", 4, trained["weights"])]
    assert torch.load(trained["weights"], weights_only=True)["info"]["epoch"] == 4
    assert [e["type"] for e in _read_events(trained["events"])][-1] == "result"


def test_reranker_picks_the_true_tokens_on_held_out_items(trained: dict) -> None:
    from clvp.evaluate import format_table, run_evaluation

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster, and much faster on a busy machine
    try:
        results, n = run_evaluation(trained["weights"], [trained["exp"]], k=6)
    finally:
        torch.set_num_threads(threads)
    by = {r.name: r for r in results}
    assert n >= 40
    assert by["clvp"].top1 >= 0.9, format_table(results, 6)
    assert by["clvp"].mean_rank < 1.3 < by["random"].mean_rank
    assert by["random"].top1 == pytest.approx(1 / 6)
    assert set(by["clvp"].beats) == set(KINDS)
    # the reader alone sees alignment: a repeated or a dropped span costs the true reading
    assert by["reader"].beats["repeat"] >= 0.9 and by["reader"].beats["drop"] >= 0.9, format_table(results, 6)
    assert {"clvp", "reader", "clvp contrastive", "random"} <= set(by)
    from clvp.train import MIX_GRID

    mix = float(torch.load(trained["weights"], weights_only=True)["state_dict"]["score_mix"])
    assert any(mix == pytest.approx(m) for m in MIX_GRID)  # stored as a float32 buffer


def test_resume_fresh_and_init(tmp_path: Path, trained: dict) -> None:
    from clvp.train import main
    from tests.support.clvp_corpus import CorpusSpec, build_corpus

    exp = tmp_path / "small"
    build_corpus(exp, CorpusSpec(items=24, seed=5, **EASY))
    common = [
        "--exp-dir",
        str(exp),
        "--weights-dir",
        str(tmp_path / "w"),
        "--batch-size",
        "8",
        "--device",
        "cpu",
    ]
    # fine-tune the trained model: its (tiny) architecture wins over --model base
    assert main([*common, "--epochs", "1", "--init", str(trained["weights"]), "--model", "base"]) == 0
    run = exp / "clvp_train"
    assert json.loads((run / "config.json").read_text())["model_config"]["dim"] == 64
    first = torch.load(tmp_path / "w" / "small-e1.pt", weights_only=True)
    assert first["config"] == torch.load(trained["weights"], weights_only=True)["config"]
    # run again with more epochs: it resumes at epoch 1 instead of starting over
    assert main([*common, "--epochs", "2"]) == 0
    assert "resumed at epoch 1" in (run / "log.txt").read_text()
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ck["progress"]["epoch"] == 2 and ck["progress"]["step"] == 2 * first["info"]["step"]
    # --fresh moves the old state to .trash (recoverable) and starts at step 0 with a new tiny model
    assert main([*common, "--epochs", "1", "--fresh", "--model", "tiny"]) == 0
    trash = list((run / ".trash").glob("fresh-*/checkpoint.pt"))
    assert len(trash) == 1
    assert torch.load(run / "checkpoint.pt", weights_only=True)["progress"]["epoch"] == 1


def test_train_cli_reports_missing_data(tmp_path: Path) -> None:
    from clvp.train import main

    (tmp_path / "exp").mkdir()
    events = tmp_path / "ev.jsonl"
    code = main(
        ["--exp-dir", str(tmp_path / "exp"), "--weights-dir", str(tmp_path / "w"), "--events", str(events)]
    )
    assert code == 2
    err = [e for e in _read_events(events) if e["type"] == "error"]
    assert err and "2-name2text.txt" in err[0]["message"] and "format" in err[0]["message"]


def test_s1_baseline_scores_candidates_by_mean_logprob() -> None:
    from clvp.evaluate import s1_mean_logprobs
    from gpt_sovits.models.s1 import Text2Semantic
    from tests.support.tiny_models import tiny_s1_config

    torch.manual_seed(0)
    gpt = Text2Semantic(tiny_s1_config()).eval()
    phones, cands = [5, 6, 7], [[1, 2, 3, 4], [9], [1, 2, 3, 4, 5, 6]]
    got = s1_mean_logprobs(gpt, phones, cands)
    for c, g in zip(cands, got, strict=True):  # each alone, no padding: sum over tokens + EOS / (n + 1)
        x = torch.tensor([phones])
        with torch.no_grad():
            out = gpt(
                x, torch.tensor([3]), torch.tensor([c]), torch.tensor([len(c)]), torch.zeros(1, 1024, 3)
            )
        lp = out.logits.log_softmax(-1).gather(2, out.targets.unsqueeze(2)).sum() / (len(c) + 1)
        assert g == pytest.approx(lp.item(), abs=1e-4)


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("true",))


def test_unreadable_files_name_the_reason_without_torch_advice(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ClvpCheckpointError, match=r"empty\.pt is not a readable CLVP checkpoint: empty file"):
        clvp.load_clvp(str(empty))
    (tmp_path / "x.pt").mkdir()
    with pytest.raises(ClvpCheckpointError, match="a folder, not a CLVP weights file"):
        clvp.load_clvp(str(tmp_path / "x.pt"))
    evil = tmp_path / "evil.pt"
    torch.save({"format": "clvp", "config": _RunsCode()}, evil)
    with pytest.raises(ClvpCheckpointError) as caught:
        clvp.load_clvp(str(evil))
    message = str(caught.value)
    assert "evil.pt" in message and "nothing from it ran" in message
    assert "weights_only" not in message and "trusted source" not in message


def test_voice_cloning_samples_several_candidates_when_a_reranker_exists() -> None:
    import gradio as gr

    from ui.inference_layout import RERANKED_CANDIDATES, _knobs

    with gr.Blocks():
        plain = _knobs("text", str)["candidates"]
        reranked = _knobs("text", str, reranked=True)["candidates"]
    assert plain.value == 1 and RERANKED_CANDIDATES > 1
    assert reranked.value == RERANKED_CANDIDATES and "reranker" in reranked.info


def test_automatic_batch_size_leaves_the_reader_enough_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    import clvp.train as T
    from clvp.data import ClvpItem

    monkeypatch.setattr(T, "default_batch_size", lambda *a, **k: 32)  # memory allows 32
    cfg = T.ClvpTrainConfig(exp_dir=[Path("exp")], weights_dir=Path("w"))
    model = _model()

    def size(n: int) -> int:
        return T.pick_batch_size(cfg, model, [ClvpItem(f"i{i}", [1, 2], [3, 4, 5]) for i in range(n)], "cpu")

    assert (size(1359), size(442), size(60)) == (32, 16, 8)
    monkeypatch.setattr(T, "default_batch_size", lambda *a, **k: 4)  # memory decides when it is tighter
    assert size(1359) == 4
