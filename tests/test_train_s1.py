"""S1 fine-tuning (gpt_sovits.train.s1) on a tiny random GPT and a hand-written experiment."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core.errors import UserError
from core.jobs import EventWriter
from gpt_sovits.data.experiment import ExperimentPaths, PhoneEntry, write_name2semantic, write_name2text
from gpt_sovits.data.s1_dataset import S1Item, collate, load_s1_items
from gpt_sovits.models.s1 import Text2Semantic
from gpt_sovits.models.weights import load_gpt, read_checkpoint
from gpt_sovits.text.symbols import get_symbols
from gpt_sovits.train import batching
from gpt_sovits.train import state as train_state
from gpt_sovits.train.errors import DiskSpaceError
from gpt_sovits.train.optim import ReferenceLR, ScaledAdam
from gpt_sovits.train.s1 import S1TrainConfig, batch_loss, main, train

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def one_thread():
    """The machine is shared; one thread avoids oversubscription stalls that make tiny models slow."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_experiment(
    root: Path, n: int = 4, seed: int = 0, bert: tuple[int, ...] = (0,), rate_ok=True
) -> Path:
    """n clips of random v2 phones (12 + 3i) and semantic tokens (30 + 5i, ~10 phones/s); BERT for some."""
    g = torch.Generator().manual_seed(seed)
    symbols = [s for s in get_symbols("v2") if s not in ("UNK", "_")][10:600]
    paths = ExperimentPaths.of(root)
    root.mkdir(parents=True, exist_ok=True)
    entries, semantic = [], {}
    for i in range(n):
        name = f"clip_{i:03d}.wav"
        phones = [symbols[int(j)] for j in torch.randint(0, len(symbols), (12 + 3 * i,), generator=g)]
        n_tok = 30 + 5 * i if rate_ok else 400  # 400 tokens = 16 s for ~15 phones: < 3 phones/s
        semantic[name] = torch.randint(0, 1024, (n_tok,), generator=g).tolist()
        entries.append(PhoneEntry(name, phones, None, "text"))
        if i in bert:
            paths.bert_dir.mkdir(exist_ok=True)
            torch.save(torch.randn(1024, len(phones), generator=g), paths.bert(name))
    write_name2text(paths.name2text, entries)
    write_name2semantic(paths.name2semantic, semantic)
    return root


def config(tmp: Path, pretrained, exp: Path, **kw) -> S1TrainConfig:
    base = dict(
        exp_dir=exp,
        weights_dir=tmp / "weights",
        exp_name="voice",
        pretrained_dir=pretrained.root,
        epochs=2,
        batch_size=16,
        save_every=1,
        device="cpu",
        checkpoint_minutes=0,
    )
    base.update(kw)
    return S1TrainConfig(**base)


def final_model_fp16_rounded(exp: Path, cfg) -> Text2Semantic:
    """The trained weights from the run's checkpoint, rounded to fp16 as the export stores them
    (the state dict only: the non-persistent sine table stays fp32 as in any loaded model)."""
    state = train_state.load_checkpoint(exp / "s1_train" / "checkpoint.pt")
    model = Text2Semantic(cfg)
    model.load_state_dict({k: v.half().float() for k, v in state["model"].items()})
    return model.eval()


# ----------------------------------------------------------------------------------------------- data


def test_filters_repetition_and_padding(tmp_path):
    exp = make_experiment(tmp_path / "exp", n=4)
    # one more clip whose text does not match its audio (too few phones per second) and one without text
    paths = ExperimentPaths.of(exp)
    rows = paths.name2semantic.read_text().splitlines()
    rows += ["clip_004.wav\t" + " ".join(["5"] * 800), "orphan.wav\t1 2 3"]
    paths.name2semantic.write_text("\n".join(rows) + "\n")
    with open(paths.name2text, "a") as f:
        f.write("clip_004.wav\tAA a1 b\tNone\tx\n")
    items, report = load_s1_items(exp)
    assert (report.kept, report.bad_rate, report.no_text, report.repeats) == (4, 1, 1, 25)
    assert len(items) == 100 and items[0].bert_path is not None and items[1].bert_path is None

    batch = collate(items[:2])
    n0, n1 = len(items[0].phone_ids), len(items[1].phone_ids)
    assert batch.x.shape == (2, n1) and (batch.x[0, : n1 - n0] == 0).all()  # phones left-padded
    assert torch.equal(batch.x[0, n1 - n0 :], torch.tensor(items[0].phone_ids))
    assert batch.bert[1].abs().sum() == 0 and batch.bert[0, :, : n1 - n0].abs().sum() == 0
    assert (batch.y[0, len(items[0].semantic) :] == 1024).all()  # semantic right-padded with EOS


# ----------------------------------------------------------------------------------------------- learning


def test_overfits_single_batch(tiny_pretrained):
    model, cfg = load_gpt(tiny_pretrained.s1, precision="fp32")  # trainable, exact weights
    model.float().train()
    g = torch.Generator().manual_seed(0)
    items = [
        S1Item(f"a{i}", tuple(torch.randint(1, 700, (12 + 3 * i,), generator=g).tolist()),
               tuple(torch.randint(0, 1024, (30 + 5 * i,), generator=g).tolist()), None)
        for i in range(4)
    ]  # fmt: skip
    batch = collate(items)
    # ScaledAdam as in training; a larger lr than the reference's 0.002 so a random tiny model learns fast
    opt = ScaledAdam(model.parameters(), lr=0.03, betas=(0.9, 0.95), clipping_scale=2.0)
    losses = []
    for _ in range(25):
        loss, metrics = batch_loss(model, batch, dpo=False, eos=cfg.EOS)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(metrics["loss/ce"])
    assert losses[0] > 6.0  # ~ln(1025) for a random model
    assert losses[-1] < 0.5 * losses[0], losses


def test_reference_lr_schedule():
    opt = ScaledAdam([torch.nn.Parameter(torch.ones(3))], lr=0.01)
    sched = ReferenceLR(opt)
    seen = []
    for _ in range(3):
        seen.append(opt.param_groups[0]["lr"])
        sched.step()
    assert seen == [0.01, 0.002, 0.002]
    cos = ReferenceLR(opt, mode="cosine", warmup_steps=10, decay_steps=20)
    assert cos.lr_at(0) == 1e-5 and cos.lr_at(10) == pytest.approx(0.01) and cos.lr_at(25) == 1e-4


def test_dpo_stacked_pass_equals_plain_ce_and_is_finite(tiny_pretrained):
    model, cfg = load_gpt(tiny_pretrained.s1, precision="fp32")
    model.float().eval()  # no dropout: the chosen half must equal a plain pass
    g = torch.Generator().manual_seed(1)
    items = [
        S1Item(f"a{i}", tuple(torch.randint(1, 700, (10 + i,), generator=g).tolist()),
               tuple(torch.randint(0, 1024, (20 + 7 * i,), generator=g).tolist()), None)
        for i in range(3)
    ]  # fmt: skip
    batch = collate(items)
    plain, m_plain = batch_loss(model, batch, dpo=False, eos=cfg.EOS)
    torch.manual_seed(0)
    total, m_dpo = batch_loss(model, batch, dpo=True, eos=cfg.EOS)
    assert m_dpo["loss/ce"] == pytest.approx(m_plain["loss/ce"], rel=1e-5)
    assert math.isfinite(m_dpo["loss/dpo"]) and m_dpo["loss/dpo"] > 0
    assert total.item() == pytest.approx(plain.item() + m_dpo["loss/dpo"], rel=1e-5)


# ----------------------------------------------------------------------------------------------- the trainer


def test_train_exports_official_weights_with_identical_logits(tmp_path, tiny_pretrained):
    exp = make_experiment(tmp_path / "exp")
    events = tmp_path / "events.jsonl"
    result = train(config(tmp_path, tiny_pretrained, exp), EventWriter(events))
    w = tmp_path / "weights"
    assert result.exports == [w / "voice-e1.ckpt", w / "voice-e2.ckpt"]
    assert result.batch_size == 16 and result.items == 100 and result.step == 14  # ceil(100/16) = 7 per epoch

    raw = read_checkpoint(w / "voice-e2.ckpt").content
    assert raw["info"] == "GPT-e2" and raw["config"]["data"]["max_sec"] == 54
    assert all(k.startswith("model.") and v.dtype == torch.float16 for k, v in raw["weight"].items())

    loaded, cfg = load_gpt(w / "voice-e2.ckpt", precision="fp32")
    trained = final_model_fp16_rounded(exp, cfg)
    batch = collate(load_s1_items(exp)[0][:3])
    with torch.no_grad():
        a = loaded(batch.x, batch.x_lens, batch.y, batch.y_lens, batch.bert).logits
        b = trained(batch.x, batch.x_lens, batch.y, batch.y_lens, batch.bert).logits
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    pre, _ = load_gpt(tiny_pretrained.s1)
    assert not torch.equal(pre.ar_predict_layer.weight, loaded.ar_predict_layer.weight)  # it did train

    ev = [json.loads(x) for x in events.read_text().splitlines()]
    saved = [e for e in ev if e["type"] == "saved"]
    assert [(e["model"], e["epoch"], e["step"], Path(e["path"]).name) for e in saved] == [
        ("s1", 1, 7, "voice-e1.ckpt"),
        ("s1", 2, 14, "voice-e2.ckpt"),
    ]
    assert ev[-1]["type"] == "result" and ev[-1]["stopped"] is False
    run = exp / "s1_train"
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(1, 15)) and all("loss/ce" in m for m in metrics)
    cfg_json = json.loads((run / "config.json").read_text())
    assert cfg_json["effective_batch_size"] == 16 and cfg_json["version"] == "v2"
    torch.load(run / "checkpoint.pt", weights_only=True)


def test_stop_and_resume_matches_uninterrupted_run(tmp_path, tiny_pretrained):
    full_exp = make_experiment(tmp_path / "a" / "exp")
    train(config(tmp_path / "a", tiny_pretrained, full_exp, save_every=2))

    exp = make_experiment(tmp_path / "b" / "exp")
    steps = iter(range(1000))
    stop_at = 9  # mid-epoch 2, with gradients accumulated since the optimiser step after batch 4
    stopped = train(
        config(tmp_path / "b", tiny_pretrained, exp, save_every=2),
        should_stop=lambda: next(steps) >= stop_at - 1,
    )
    assert stopped.stopped and stopped.step == stop_at and stopped.exports == []
    state = train_state.load_checkpoint(exp / "s1_train" / "checkpoint.pt")
    assert state["progress"] == {"epoch": 1, "step": stop_at, "batch_in_epoch": 2}
    assert any(g is not None for g in state["extra"]["grads"])

    resumed = train(config(tmp_path / "b", tiny_pretrained, exp, save_every=2))
    assert resumed.step == 14 and [p.name for p in resumed.exports] == ["voice-e2.ckpt"]
    a = train_state.load_checkpoint(full_exp / "s1_train" / "checkpoint.pt")
    b = train_state.load_checkpoint(exp / "s1_train" / "checkpoint.pt")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        for name in ("delta", "exp_avg_sq"):
            assert torch.equal(sa[i][name], sb[i][name]), (i, name)
        assert sa[i]["step"] == sb[i]["step"]
    assert a["scheduler"] == b["scheduler"]
    metrics = [json.loads(x)["step"] for x in (exp / "s1_train" / "metrics.jsonl").read_text().splitlines()]
    assert metrics == list(range(1, 15))  # no duplicated steps after the resume


def test_kill9_mid_training_resumes_to_same_weights(tmp_path, tiny_pretrained):
    kw = dict(epochs=6, save_every=6)
    ref_exp = make_experiment(tmp_path / "a" / "exp")
    train(config(tmp_path / "a", tiny_pretrained, ref_exp, **kw))

    exp = make_experiment(tmp_path / "b" / "exp")
    cfg_file = tmp_path / "b" / "train.json"
    cfg_file.write_text(json.dumps({"exp-dir": str(exp), "weights-dir": str(tmp_path / "b" / "weights")}))
    argv = [sys.executable, "-m", "gpt_sovits.train.s1", "--config", str(cfg_file), "--exp-name", "voice",
            "--pretrained-dir", str(tiny_pretrained.root), "--epochs", "6", "--save-every", "6",
            "--batch-size", "16", "--device", "cpu", "--checkpoint-minutes", "0"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = exp / "s1_train" / "checkpoint.pt"
    deadline = time.monotonic() + 60
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    killed_at = train_state.load_checkpoint(ckpt)["progress"]["step"]
    assert 0 < killed_at < 42

    resumed = train(config(tmp_path / "b", tiny_pretrained, exp, **kw))
    assert resumed.step == 42
    a = train_state.load_checkpoint(ref_exp / "s1_train" / "checkpoint.pt")["model"]
    b = train_state.load_checkpoint(ckpt)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    wa = read_checkpoint(tmp_path / "a" / "weights" / "voice-e6.ckpt").content["weight"]
    wb = read_checkpoint(tmp_path / "b" / "weights" / "voice-e6.ckpt").content["weight"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_sigterm_saves_state_and_exits_cleanly(tmp_path, tiny_pretrained):
    """core.jobs.Job.stop sends SIGTERM: the trainer saves where it is and exits 0, ready to resume."""
    exp = make_experiment(tmp_path / "exp")
    events = tmp_path / "events.jsonl"
    argv = [sys.executable, "-m", "gpt_sovits.train.s1", "--exp-dir", str(exp), "--weights-dir",
            str(tmp_path / "w"), "--pretrained-dir", str(tiny_pretrained.root), "--epochs", "50",
            "--save-every", "50", "--batch-size", "16", "--device", "cpu", "--checkpoint-minutes", "60",
            "--events", str(events)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    metrics = exp / "s1_train" / "metrics.jsonl"
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    step = train_state.load_checkpoint(exp / "s1_train" / "checkpoint.pt")["progress"]["step"]
    assert 3 <= step < 350
    assert json.loads(metrics.read_text().splitlines()[-1])["step"] == step
    last = json.loads(events.read_text().splitlines()[-1])
    assert last["type"] == "result" and last["stopped"] is True and last["step"] == step


def test_dpo_training_run(tmp_path, tiny_pretrained):
    exp = make_experiment(tmp_path / "exp")
    result = train(config(tmp_path, tiny_pretrained, exp, epochs=1, dpo=True, batch_size=8))
    assert result.batch_size == 4  # halved for DPO, as the reference
    metrics = [json.loads(x) for x in (exp / "s1_train" / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 25 and all(
        math.isfinite(m["loss/dpo"]) and math.isfinite(m["loss/ce"]) for m in metrics
    )


# ----------------------------------------------------------------------------------------------- bad input


def test_empty_experiment_is_a_clear_error(tmp_path, tiny_pretrained, capsys):
    exp = tmp_path / "exp"
    exp.mkdir()
    write_name2text(ExperimentPaths.of(exp).name2text, [])
    write_name2semantic(ExperimentPaths.of(exp).name2semantic, {})
    events = tmp_path / "ev.jsonl"
    argv = ["--exp-dir", str(exp), "--weights-dir", str(tmp_path / "w"), "--pretrained-dir",
            str(tiny_pretrained.root), "--device", "cpu", "--events", str(events)]  # fmt: skip
    assert main(argv) == 2
    assert "is empty" in capsys.readouterr().err
    assert json.loads(events.read_text().splitlines()[-1])["type"] == "error"
    assert not (tmp_path / "w").exists() and not (exp / "s1_train" / "checkpoint.pt").exists()


def test_missing_and_filtered_data_errors(tmp_path, tiny_pretrained):
    with pytest.raises(UserError, match="experiment folder .* does not exist"):
        train(config(tmp_path, tiny_pretrained, tmp_path / "nope"))
    assert not (tmp_path / "nope").exists()
    with pytest.raises(UserError, match="2-name2text.txt is missing"):
        train(config(tmp_path, tiny_pretrained, tmp_path))
    exp = make_experiment(tmp_path / "bad", n=3, rate_ok=False)
    with pytest.raises(UserError, match=r"all 3 were removed.*3 phones per second outside 3\.\.25"):
        train(config(tmp_path, tiny_pretrained, exp))
    with pytest.raises(UserError, match="pretrained GPT is missing.*download gpt-v2"):
        train(config(tmp_path, tiny_pretrained, exp, pretrained_dir=tmp_path / "nothing"))


def test_wrong_version_pretrained(tmp_path, tiny_pretrained):
    from gpt_sovits.models.s1 import S1Config
    from gpt_sovits.models.weights import save_gpt_weights

    v1 = S1Config(embedding_dim=32, hidden_dim=32, head=2, n_layer=1, phoneme_vocab_size=512)
    path = save_gpt_weights(Text2Semantic(v1), v1, tmp_path / "v1.ckpt")
    exp = make_experiment(tmp_path / "exp")  # random v2 phones, most unknown to v1's table
    with pytest.raises(UserError, match="v1 symbol table lacks"):
        train(config(tmp_path, tiny_pretrained, exp, pretrained_s1=path))
    with pytest.raises(UserError, match="is a v1 model .* version v2 was asked"):
        train(config(tmp_path, tiny_pretrained, exp, pretrained_s1=path, version="v2"))


def test_no_disk_space_fails_before_writing(tmp_path, tiny_pretrained, monkeypatch):
    exp = make_experiment(tmp_path / "exp")
    monkeypatch.setattr(train_state, "free_bytes", lambda path: 5000)
    with pytest.raises(DiskSpaceError, match=r"no disk space for checkpoints: need .* MB, have 4\.9 KB"):
        train(config(tmp_path, tiny_pretrained, exp))
    assert not (exp / "s1_train" / "checkpoint.pt").exists() and not (tmp_path / "weights").exists()

    # space runs out after the first epoch: the run stops with the error, the last checkpoint stays valid
    free = iter([10**12] * 4 + [1000] * 100)
    monkeypatch.setattr(train_state, "free_bytes", lambda path: next(free))
    with pytest.raises(DiskSpaceError):
        train(config(tmp_path, tiny_pretrained, exp, epochs=3))
    assert train_state.load_checkpoint(exp / "s1_train" / "checkpoint.pt")["progress"]["epoch"] == 1
    assert sorted(p.name for p in (tmp_path / "weights").iterdir()) == ["voice-e1.ckpt"]


def test_batch_size_zero_is_chosen_from_free_memory(tmp_path, tiny_pretrained, monkeypatch):
    from gpt_sovits.models.s1 import S1Config
    from gpt_sovits.train.s1 import choose_batch_size

    exp = make_experiment(tmp_path / "exp")
    items, _ = load_s1_items(exp)
    full = S1Config()  # the estimate for the full-size model; the weights are never built
    model = Text2Semantic(S1Config(embedding_dim=32, hidden_dim=32, head=2, n_layer=1))
    cfg = config(tmp_path, tiny_pretrained, exp, batch_size=0)
    cpu = torch.device("cpu")
    monkeypatch.setattr(batching, "available_memory", lambda device: 64 * 1024**3)
    assert choose_batch_size(cfg, full, model, items, cpu) == 8  # CPU cap
    monkeypatch.setattr(batching, "available_memory", lambda device: 100 * 1024**2)
    assert choose_batch_size(cfg, full, model, items, cpu) == 1
    assert (
        choose_batch_size(config(tmp_path, tiny_pretrained, exp, batch_size=5), full, model, items, cpu) == 5
    )


def test_torchrun_two_processes_share_the_batches(tmp_path, tiny_pretrained):
    """torchrun (CPU, gloo): each rank trains half the batches; only rank 0 writes files and events."""
    exp = make_experiment(tmp_path / "exp")
    events = tmp_path / "events.jsonl"
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "gpt_sovits.train.s1", "--exp-dir", str(exp), "--weights-dir", str(tmp_path / "w"),
            "--exp-name", "voice", "--pretrained-dir", str(tiny_pretrained.root), "--epochs", "1",
            "--save-every", "1", "--batch-size", "8", "--device", "cpu", "--events", str(events)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    # 100 items / 8 = 13 batches -> 12 shared evenly -> 6 steps on each rank
    metrics = [json.loads(x) for x in (exp / "s1_train" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(1, 7))
    assert json.loads((exp / "s1_train" / "config.json").read_text())["world_size"] == 2
    saved = [json.loads(x) for x in events.read_text().splitlines() if '"saved"' in x]
    assert len(saved) == 1 and saved[0]["step"] == 6
    load_gpt(tmp_path / "w" / "voice-e1.ckpt")
