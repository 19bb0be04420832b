"""S2 fine-tuning: data filters and buckets, one-batch overfit, resume after a crash, export, clear errors.

Uses the session's tiny pretrained models (official layout; the discriminator is the full-size one, so
the training tests keep to a handful of steps on short slices) and a tiny experiment folder written here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf
import torch

from gpt_sovits.data.experiment import ExperimentPaths, PhoneEntry, write_name2semantic, write_name2text
from gpt_sovits.data.s2_dataset import (
    BUCKET_BOUNDARIES,
    BucketBatchSampler,
    S2DataError,
    S2Dataset,
    S2Example,
    _bucket_of,
    align_ssl,
    collate_s2,
    scan_experiment,
)
from gpt_sovits.models.s2 import MultiPeriodDiscriminator, S2Config, SynthesizerTrn
from gpt_sovits.models.weights import load_sovits
from gpt_sovits.text import cleaned_text_to_sequence
from gpt_sovits.train import state as train_state
from gpt_sovits.train.cli import config_from_args, parse_args
from gpt_sovits.train.s2 import (
    PretrainedModelError,
    S2Recipe,
    S2TrainConfig,
    build_parser,
    content_path_in_fp32,
    freeze_content_path,
    load_pretrained,
    main,
    make_optimizers,
    make_schedulers,
    train,
    train_step,
)
from tests.support.synth import voiced_tone

SR, HOP = 32000, 640
PHONES = ["n", "i2", "h", "ao3", "SP"]


def _hubert_frames(n_samples: int) -> int:
    """Frames chinese-hubert-base gives for a 32 kHz clip resampled to 16 kHz."""
    return (n_samples // 2 - 400) // 320 + 1


def write_experiment(
    root: Path, seconds: list[float], s2g: Path | None = None, seed: int = 0
) -> ExperimentPaths:
    """A formatted experiment: 32 kHz wavs, random (1, 768, T) fp16 HuBERT features, phones, semantic tokens."""
    exp = ExperimentPaths.of(root)
    exp.hubert_dir.mkdir(parents=True, exist_ok=True)
    exp.wav_dir.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    g = load_sovits(s2g)[0] if s2g is not None else None
    entries, semantic = [], {}
    for i, sec in enumerate(seconds):
        name = f"clip_{i}.wav"
        audio = voiced_tone(sec, SR, f0=110 + 25 * i, seed=seed + i)
        sf.write(exp.wav(name), audio, SR, subtype="PCM_16")
        ssl = torch.randn(1, 768, _hubert_frames(len(audio)), generator=gen)
        torch.save(ssl.half(), exp.hubert(name))  # the reference saves fp16 features
        entries.append(PhoneEntry(name, PHONES[: 3 + i % 3], None, "ni hao"))
        if g is not None:
            semantic[name] = g.extract_latent(ssl)[0, 0].tolist()
    write_name2text(exp.name2text, entries)
    if semantic:
        write_name2semantic(exp.name2semantic, semantic)
    return exp


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: these steps are small, and on a busy 2-core machine a second OpenMP thread
    spins waiting for the first (a step took ~5x the CPU time with two)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_exp(tiny_pretrained, tmp_path_factory) -> Path:
    return write_experiment(
        tmp_path_factory.mktemp("s2exp") / "exp", [1.0, 1.3, 1.6], tiny_pretrained.s2g
    ).root


def _copy_exp(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _args(exp: Path, pretrained, weights: Path, *extra: str) -> list[str]:
    return [
        "--exp-dir",
        str(exp),
        "--exp-name",
        "tiny",
        "--pretrained-dir",
        str(pretrained.root),
        "--weights-dir",
        str(weights),
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--save-every",
        "1",
        "--device",
        "cpu",
        "--segment-size",
        str(4 * HOP),  # 4 frames: the full-size discriminator stays affordable on CPU
        *extra,
    ]


def _config(parser, argv: list[str]) -> S2TrainConfig:
    """What main does with argv: flags (and --config) -> the typed config."""
    return config_from_args(S2TrainConfig, parse_args(parser, argv))


# ----------------------------------------------------------------------------------------- data


def test_scan_filters_like_the_reference_and_reports_each_reason(tmp_path, tiny_exp):
    exp = write_experiment(tmp_path / "exp", [1.0, 0.5, 1.2, 40.0, 1.1])
    exp.hubert("clip_4.wav").unlink()
    items, report = scan_experiment(exp.root)
    assert [it.name for it in items] == ["clip_0.wav", "clip_2.wav"]
    assert report.too_short == ["clip_1.wav"]  # 0.5 s <= 0.6 s
    assert report.outside_buckets == ["clip_3.wav"]  # 40 s: < 54 s but beyond the last bucket (1900 frames)
    assert report.missing_hubert == ["clip_4.wav"]
    assert report.repeats == max(2, 100 // 4)  # counted before the duration filter, as the reference
    assert items[0].frames == SR * 1 // HOP
    assert items[0].phone_ids == tuple(cleaned_text_to_sequence(PHONES[:3], "v2"))
    assert "1 shorter than 0.6 s: clip_1.wav" in report.summary()
    assert report.unknown_phones == []
    write_name2text(exp.name2text, [PhoneEntry(f"clip_{i}.wav", ["n", "zz9"], None, "x") for i in range(5)])
    assert scan_experiment(exp.root)[1].unknown_phones == ["clip_0.wav", "clip_2.wav"]
    exp.manifest.write_text(json.dumps({"format": 1, "version": "v1", "items": {}}))
    with pytest.raises(S2DataError, match="formatted for v1 but the S2 model is v2"):
        scan_experiment(exp.root)


def test_dataset_items_align_features_to_the_spectrogram(tiny_exp):
    items, report = scan_experiment(tiny_exp)
    ds = S2Dataset(tiny_exp, items, report.repeats)
    assert len(ds) == 3 * 33 and sorted(set(ds.lengths)) == sorted(it.frames for it in items)
    ex = ds[0]
    n = ex.wav.shape[0]
    assert ex.spec.shape == (1025, n // HOP) and ex.ssl.shape == (768, n // HOP)
    assert ex.ssl.dtype == torch.float32 and ex.text.dtype == torch.long
    ssl = torch.arange(10.0).repeat(768, 1)
    assert torch.equal(align_ssl(ssl, 11)[:, -2:], torch.tensor([9.0, 9.0]).repeat(768, 1))
    assert align_ssl(ssl, 9).shape == (768, 9)
    with pytest.raises(S2DataError, match="run formatting again"):
        align_ssl(ssl, 20, "x.wav")


def test_collate_pads_to_an_even_length_longest_first():
    exs = [
        S2Example(torch.ones(768, t), torch.ones(1025, t), torch.ones(t * HOP), torch.arange(1, k + 1))
        for t, k in ((5, 2), (9, 4), (7, 3))
    ]
    b = collate_s2(exs)
    assert b.spec.shape == (3, 1025, 10) and b.ssl.shape == (3, 768, 10)  # 2 * (9 // 2 + 1)
    assert b.spec_lengths.tolist() == [9, 7, 5] and b.text_lengths.tolist() == [4, 3, 2]
    assert b.wav.shape == (3, 1, 9 * HOP) and b.wav_lengths.tolist() == [9 * HOP, 7 * HOP, 5 * HOP]
    assert b.spec[2, :, 5:].abs().sum() == 0 and b.text[2].tolist() == [1, 2, 0, 0]


def test_bucket_sampler_semantics_and_resume_position():
    lengths = [40, 50, 310, 320, 330, 20, 2500, 60]  # 20 and 2500 lie outside the buckets
    s = BucketBatchSampler(lengths, batch_size=2, seed=1)
    s.set_epoch(3)
    batches = s.epoch_batches()
    assert len(batches) == len(s) == 4  # buckets of 3 items each padded to 4
    flat = [i for b in batches for i in b]
    assert 5 not in flat and 6 not in flat
    for b in batches:  # one bucket per batch
        assert len({_bucket_of(lengths[i], BUCKET_BOUNDARIES) for i in b}) == 1
    assert set(flat) == {0, 1, 7, 2, 3, 4}
    assert s.epoch_batches() == batches  # a pure function of (seed, epoch)
    s.set_epoch(3, start=1)
    assert list(s) == batches[1:]
    s.set_epoch(4)
    assert s.epoch_batches() != batches
    shards = [BucketBatchSampler(lengths, 1, num_replicas=2, rank=r, seed=1) for r in (0, 1)]
    for sh in shards:
        sh.set_epoch(3)
    got = [i for sh in shards for b in sh.epoch_batches() for i in b]
    assert len(shards[0]) == len(shards[1]) == 4 and sorted(got) == sorted(flat)


# ----------------------------------------------------------------------------------------- recipe


def test_one_batch_overfits_and_the_recipe_is_the_references(tiny_pretrained, tiny_exp):
    torch.manual_seed(0)
    net_g, _, cfg = load_pretrained(tiny_pretrained.s2g, tiny_pretrained.s2d)
    net_d = MultiPeriodDiscriminator(periods=(2,))  # the recipe's losses, a lighter discriminator
    frozen = freeze_content_path(net_g)
    assert "ssl_proj.weight" in frozen and all(not net_g.get_parameter(n).requires_grad for n in frozen)
    recipe = S2Recipe(learning_rate=2e-3, segment_size=6 * HOP)
    cfg.segment_size = recipe.segment_size
    opt_g, opt_d = make_optimizers(net_g, net_d, recipe)
    sched_g, _ = make_schedulers(opt_g, opt_d, recipe)
    base, low = opt_g.param_groups
    assert low["lr"] == pytest.approx(base["lr"] * 0.4) and base["lr"] == pytest.approx(2e-3 * 0.999875)
    low_ids = {id(p) for p in low["params"]}
    for name in (
        "enc_p.text_embedding.weight",
        "enc_p.encoder_text.attn_layers.0.conv_q.weight",
        "enc_p.mrte.c_pre.weight",
    ):
        assert id(net_g.get_parameter(name)) in low_ids
    assert id(net_g.get_parameter("enc_p.encoder_ssl.attn_layers.0.conv_q.weight")) in {
        id(p) for p in base["params"]
    }
    assert not (
        {id(net_g.get_parameter(n)) for n in frozen}
        & {id(p) for g in opt_g.param_groups for p in g["params"]}
    )
    assert (base["betas"], base["eps"], base["weight_decay"]) == ((0.8, 0.99), 1e-9, 0.01)

    ex = S2Dataset(tiny_exp, scan_experiment(tiny_exp)[0])[0]
    t = 6  # a clip exactly one slice long: every step sees the same target, so the loss must fall
    batch = collate_s2([S2Example(ex.ssl[:, :t], ex.spec[:, :t], ex.wav[: t * HOP], ex.text)])
    before = {k: v.clone() for k, v in net_g.state_dict().items()}
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    mels = [
        train_step(net_g, net_d, opt_g, opt_d, scaler, batch, cfg, recipe)["loss/g/mel"] for _ in range(6)
    ]
    assert mels[-1] < 0.75 * mels[0], mels
    after = net_g.state_dict()
    for k in before:
        if k.startswith(("ssl_proj.", "quantizer.")):
            assert torch.equal(before[k], after[k]), k
    assert not torch.equal(before["enc_p.text_embedding.weight"], after["enc_p.text_embedding.weight"])
    sched_g.step()
    assert opt_g.param_groups[1]["lr"] == pytest.approx(2e-3 * 0.4 * 0.999875**2)


def test_content_path_stays_fp32_under_autocast(tiny_pretrained):
    net_g, _, _ = load_pretrained(tiny_pretrained.s2g, tiny_pretrained.s2d)
    gen = torch.Generator().manual_seed(0)
    ssl = torch.randn(1, 768, 20, generator=gen)
    with torch.no_grad():  # codebook rows in near-tied pairs around the projected frames
        x = net_g.ssl_proj(ssl)[0].T  # (10, 768)
        embed = net_g.quantizer.vq.layers[0]._codebook.embed
        embed[:10] = x + 0.01 * torch.randn(x.shape, generator=gen)
        embed[10:20] = x + 0.01 * torch.randn(x.shape, generator=gen)
    _, codes_fp32, _ = net_g.quantizer(net_g.ssl_proj(ssl))
    content_path_in_fp32(net_g, "cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert net_g.enc_p.proj(torch.randn(1, 192, 3)).dtype == torch.bfloat16  # autocast is on
        assert net_g.ssl_proj(ssl).dtype == torch.float32
        _, codes, _ = net_g.quantizer(net_g.ssl_proj(ssl))
    assert torch.equal(codes, codes_fp32)  # in bf16, about half of these near ties flip


# ----------------------------------------------------------------------------------------- the loop


def _load_ckpt(exp: Path) -> dict:
    return torch.load(exp / "s2_train" / "checkpoint.pt", map_location="cpu", weights_only=True)


def test_resume_after_a_kill_is_exact_and_exports_load_back(tiny_pretrained, tiny_exp, tmp_path):
    parser = build_parser()
    exp_a, w_a = _copy_exp(tiny_exp, tmp_path / "a"), tmp_path / "wa"
    exp_b, w_b = _copy_exp(tiny_exp, tmp_path / "b"), tmp_path / "wb"
    calls = []

    def snapshot_before_second_step() -> bool:
        # What a kill -9 just before step 2 leaves behind: the run folder as it is on disk now.
        calls.append(1)
        if len(calls) == 2:
            shutil.rmtree(exp_b / "s2_train", ignore_errors=True)
            shutil.copytree(exp_a / "s2_train", exp_b / "s2_train")
        return False

    # A: two uninterrupted steps, the full state checkpointed after every step.
    args_a = _args(exp_a, tiny_pretrained, w_a, "--max-steps", "2", "--checkpoint-minutes", "1e-9")
    res_a = train(_config(parser, args_a), should_stop=snapshot_before_second_step)
    assert res_a.step == 2 and not res_a.stopped and res_a.exports == [str(w_a / "tiny_e1_s2.pth")]
    mid = _load_ckpt(exp_b)
    assert mid["progress"] == {"epoch": 0, "step": 1, "batch_in_epoch": 1}

    # B: the killed run started again; it resumes after step 1 and must end exactly where A did.
    events = tmp_path / "events.jsonl"
    args_b = _args(exp_b, tiny_pretrained, w_b, "--max-steps", "2")
    assert main([*args_b, "--events", str(events)]) == 0
    log = (exp_b / "s2_train" / "log.txt").read_text()
    assert "resumed at epoch 1, step 1 (batch 1 of the epoch)" in log
    metrics = (exp_b / "s2_train" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in metrics] == [1, 2]
    saved = [e for e in map(json.loads, events.read_text().splitlines()) if e["type"] == "saved"]
    assert [(e["model"], e["path"], e["epoch"], e["step"]) for e in saved] == [
        ("s2", str(w_b / "tiny_e1_s2.pth"), 1, 2)
    ]

    a, b = _load_ckpt(exp_a), _load_ckpt(exp_b)
    assert a["progress"] == b["progress"] == {"epoch": 0, "step": 2, "batch_in_epoch": 2}
    for part in ("G", "D"):
        for k, v in a["model"][part].items():
            assert torch.equal(v, b["model"][part][k]), (part, k)
        sa, sb = a["optimizer"][part]["state"], b["optimizer"][part]["state"]
        assert sa.keys() == sb.keys() and len(sa) > 0
        for i in sa:
            for k in ("step", "exp_avg", "exp_avg_sq"):
                assert torch.equal(sa[i][k], sb[i][k]), (part, i, k)
        assert a["scheduler"][part] == b["scheduler"][part]
    # The frozen content path is the pretrained one.
    pre = load_sovits(tiny_pretrained.s2g)[0].state_dict()
    for k in ("ssl_proj.weight", "ssl_proj.bias", "quantizer.vq.layers.0._codebook.embed"):
        assert torch.equal(a["model"]["G"][k], pre[k])

    # The export is the official small layout, and decodes exactly as the trained generator in fp16.
    raw = torch.load(w_a / "tiny_e1_s2.pth", map_location="cpu", weights_only=True)
    assert set(raw) == {"weight", "config", "info"} and raw["info"] == "1epoch_2iteration"
    assert not any(k.startswith("enc_q.") for k in raw["weight"])
    assert all(v.dtype == torch.float16 for v in raw["weight"].values())
    assert raw["config"]["model"]["version"] == "v2" and raw["config"]["train"]["segment_size"] == 4 * HOP
    exported, cfg = load_sovits(w_a / "tiny_e1_s2.pth")
    trained = SynthesizerTrn(cfg, with_posterior=True)
    trained.load_state_dict({k: v.half().float() for k, v in a["model"]["G"].items()})
    trained.eval()
    codes = torch.randint(0, 1024, (1, 1, 12), generator=torch.Generator().manual_seed(0))
    text = torch.tensor([cleaned_text_to_sequence(PHONES, "v2")])
    refer = torch.rand(1, 1025, 30, generator=torch.Generator().manual_seed(1))
    out_e = exported.decode(codes, text, refer, generator=torch.Generator().manual_seed(2))
    out_t = trained.decode(codes, text, refer, generator=torch.Generator().manual_seed(2))
    assert out_e.shape == (1, 1, 24 * HOP) and torch.equal(out_e, out_t)


def test_a_trainer_killed_with_sigkill_resumes_where_its_checkpoint_stood(
    tiny_pretrained, tiny_exp, tmp_path
):
    exp, weights = _copy_exp(tiny_exp, tmp_path / "exp"), tmp_path / "w"
    argv = _args(exp, tiny_pretrained, weights, "--checkpoint-minutes", "1e-9")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "gpt_sovits.train.s2", *argv],
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metrics = exp / "s2_train" / "metrics.jsonl"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the trainer ended before it could be killed"
    finally:
        proc.kill()  # SIGKILL: no handler runs, whatever was being written stays half-written
        proc.wait()
    on_disk = _load_ckpt(exp)  # the atomic writes leave a complete checkpoint
    k = on_disk["progress"]["step"]
    assert k >= 1 and on_disk["progress"]["batch_in_epoch"] == k

    res = train(_config(build_parser(), [*argv, "--max-steps", str(k + 1)]))
    assert res.step == k + 1
    assert (
        f"resumed at epoch 1, step {k} (batch {k} of the epoch)" in (exp / "s2_train" / "log.txt").read_text()
    )
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == list(range(1, k + 2))  # no step logged twice
    after = _load_ckpt(exp)
    for part in ("G", "D"):  # the optimizers went on from their saved state (one more step each)
        saved, now = on_disk["optimizer"][part]["state"], after["optimizer"][part]["state"]
        assert all(int(now[i]["step"]) == int(saved[i]["step"]) + 1 == k + 1 for i in saved)


# ----------------------------------------------------------------------------------------- errors


def test_data_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(S2DataError, match="does not exist"):
        scan_experiment(tmp_path / "nope")
    exp = ExperimentPaths.of(tmp_path / "empty")
    exp.hubert_dir.mkdir(parents=True)
    exp.wav_dir.mkdir()
    with pytest.raises(S2DataError, match="2-name2text.txt is missing"):
        scan_experiment(exp.root)
    exp.name2text.write_text("")
    with pytest.raises(S2DataError, match="lists no clips"):
        scan_experiment(exp.root)
    short = write_experiment(tmp_path / "short", [0.3, 0.5])
    with pytest.raises(S2DataError, match=r"2 listed: 2 shorter than 0\.6 s"):
        scan_experiment(short.root)
    nofeat = write_experiment(tmp_path / "nofeat", [1.0, 1.0])
    for p in nofeat.hubert_dir.iterdir():
        p.unlink()
    with pytest.raises(S2DataError, match="2 no 4-cnhubert features"):
        scan_experiment(nofeat.root)
    bad = write_experiment(tmp_path / "bad", [1.0, 1.0])
    bad.wav("clip_1.wav").write_bytes(b"not audio at all")
    assert scan_experiment(bad.root)[1].unreadable_wav == ["clip_1.wav"]
    shutil.rmtree(nofeat.hubert_dir)
    with pytest.raises(S2DataError, match="4-cnhubert .*missing; run formatting"):
        scan_experiment(nofeat.root)


def test_pretrained_of_the_wrong_kind_or_version_is_refused(tiny_pretrained, tmp_path):
    with pytest.raises(PretrainedModelError, match="is a SoVITS v2 generator but version v1"):
        load_pretrained(tiny_pretrained.s2g, tiny_pretrained.s2d, version="v1")
    with pytest.raises(PretrainedModelError, match="discriminator"):
        load_pretrained(tiny_pretrained.s2d, tiny_pretrained.s2d)
    with pytest.raises(PretrainedModelError, match="pretrained S2 generator not found.*sovits-v1"):
        load_pretrained(tmp_path / "s2G488k.pth", tiny_pretrained.s2d, version="v1", model_dir=tmp_path)
    sd = dict(torch.load(tiny_pretrained.s2g, weights_only=True)["weight"])
    sd["sv_emb.weight"] = torch.zeros(512, 20480, dtype=torch.float16)  # what a v2Pro generator carries
    torch.save({"weight": sd}, tmp_path / "s2Gv2Pro.pth")
    with pytest.raises(PretrainedModelError, match="v2Pro"):
        load_pretrained(tmp_path / "s2Gv2Pro.pth", tiny_pretrained.s2d)
    v1 = SynthesizerTrn(S2Config.from_dict({**tiny_pretrained.s2_config.to_dict(), "version": "v1"}))
    torch.save({"weight": v1.state_dict(), "config": v1.cfg.to_hparams()}, tmp_path / "v1G.pth")
    _, _, cfg = load_pretrained(tmp_path / "v1G.pth", tiny_pretrained.s2d, version="v1")
    assert cfg.version == "v1" and cfg.freeze_quantizer


def test_cli_reports_errors_before_training(tiny_pretrained, tiny_exp, tmp_path, monkeypatch, capsys):
    events = tmp_path / "ev.jsonl"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*_args(empty, tiny_pretrained, tmp_path / "w"), "--events", str(events)]) == 2
    err = json.loads(events.read_text().splitlines()[-1])
    assert err["type"] == "error" and "2-name2text.txt is missing" in err["message"]
    assert "error: " in capsys.readouterr().err

    assert main([*_args(tiny_exp, tiny_pretrained, tmp_path / "w"), "--version", "v1"]) == 2
    assert "sovits-v1" in capsys.readouterr().err  # the v1 files are not in the folder: how to get them

    exp = _copy_exp(tiny_exp, tmp_path / "full")
    monkeypatch.setattr(train_state, "free_bytes", lambda path: 10 * 1024**2)
    assert main(_args(exp, tiny_pretrained, tmp_path / "w")) == 2
    assert "no disk space for checkpoints" in capsys.readouterr().err
    assert not (exp / "s2_train" / "checkpoint.pt").exists() and not (tmp_path / "w").exists()
