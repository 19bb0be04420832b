"""S2 fine-tuning of v2Pro: SV embeddings from 7-sv_cn, the 8-sub-discriminator D, exact resume, 05 export.

A tiny v2Pro generator (gin 16, official structure) and the full-size v2Pro discriminator, written under
the official pretrained names; a handful of steps on 4-frame slices.
"""

from __future__ import annotations

import json
import shutil
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from gpt_sovits.data.experiment import ExperimentPaths
from gpt_sovits.data.s2_dataset import S2DataError, S2Dataset, collate_s2, scan_experiment
from gpt_sovits.models.s2 import SV_DIM, MultiPeriodDiscriminator, S2Config, SVEmbeddingError, SynthesizerTrn
from gpt_sovits.models.weights import load_sovits
from gpt_sovits.text import cleaned_text_to_sequence
from gpt_sovits.train.cli import config_from_args, parse_args
from gpt_sovits.train.s2 import PretrainedModelError, S2TrainConfig, build_parser, load_pretrained, train
from tests.test_train_s2 import PHONES, write_experiment

HOP = 640


@pytest.fixture(autouse=True)
def one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _tiny_pro_config() -> S2Config:
    return S2Config.for_version(
        "v2Pro",
        inter_channels=32,
        filter_channels=64,
        n_layers=2,
        gin_channels=16,
        upsample_initial_channel=32,
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3, 5]],
    )


def _half(model: torch.nn.Module) -> OrderedDict[str, torch.Tensor]:
    return OrderedDict((k, v.half()) for k, v in model.state_dict().items())


@pytest.fixture(scope="module")
def pro_pretrained(tmp_path_factory) -> Path:
    """A pretrained-models folder with v2Pro/s2Gv2Pro.pth (tiny, with enc_q) and s2Dv2Pro.pth (8 subs)."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("pretrained_models")
    (root / "v2Pro").mkdir()
    cfg = _tiny_pro_config()
    g = SynthesizerTrn(cfg, with_posterior=True)
    torch.save(
        OrderedDict(weight=_half(g), config=cfg.to_hparams(), info="tiny"), root / "v2Pro/s2Gv2Pro.pth"
    )
    torch.save({"weight": _half(MultiPeriodDiscriminator.for_version("v2Pro"))}, root / "v2Pro/s2Dv2Pro.pth")
    return root


@pytest.fixture(scope="module")
def pro_exp(tmp_path_factory) -> Path:
    exp = write_experiment(tmp_path_factory.mktemp("s2proexp") / "exp", [1.0, 1.3, 1.6])
    exp.sv_dir.mkdir()
    gen = torch.Generator().manual_seed(5)
    for name in sorted(p.name for p in exp.wav_dir.iterdir()):
        torch.save(torch.randn(1, SV_DIM, generator=gen), exp.sv(name))  # what formatting writes
    return exp.root


def _config(exp: Path, pretrained: Path, weights: Path, *extra: str) -> S2TrainConfig:
    argv = [
        "--exp-dir", str(exp), "--exp-name", "tiny", "--pretrained-dir", str(pretrained),
        "--weights-dir", str(weights), "--version", "v2Pro", "--epochs", "1", "--batch-size", "2",
        "--save-every", "1", "--device", "cpu", "--segment-size", str(4 * HOP), *extra,
    ]  # fmt: skip
    return config_from_args(S2TrainConfig, parse_args(build_parser(), argv))


def test_dataset_reads_the_sv_embeddings(pro_exp):
    items, _ = scan_experiment(pro_exp, "v2Pro")
    ds = S2Dataset(pro_exp, items, with_sv=True)
    batch = collate_s2([ds[0], ds[1]])
    assert batch.sv_emb is not None and batch.sv_emb.shape == (2, SV_DIM)
    paths = ExperimentPaths.of(pro_exp)
    # Longest first: each row is the embedding of the clip in that row.
    by_len = sorted((ds[0], ds[1]), key=lambda e: -e.spec.shape[-1])
    names = {it.frames: it.name for it in ds.items[:2]}
    for row, ex in zip(batch.sv_emb, by_len, strict=True):
        name = names[ex.spec.shape[-1]]
        assert torch.equal(row, torch.load(paths.sv(name), weights_only=True)[0])
    assert collate_s2([S2Dataset(pro_exp, items)[0]]).sv_emb is None  # v1/v2 batches carry none


def test_missing_sv_embeddings_are_clear_errors(pro_exp, tmp_path):
    exp = Path(shutil.copytree(pro_exp, tmp_path / "exp"))
    (exp / "7-sv_cn" / "clip_1.wav.pt").unlink()
    with pytest.raises(S2DataError, match=r"1 clip\(s\) have no speaker-verification embedding in .*7-sv_cn "
                       r"\(clip_1.wav\); run formatting for a v2Pro experiment"):  # fmt: skip
        scan_experiment(exp, "v2Pro")
    shutil.rmtree(exp / "7-sv_cn")
    with pytest.raises(S2DataError, match="7-sv_cn is missing.*run formatting for a v2Pro experiment"):
        scan_experiment(exp, "v2Pro")
    assert scan_experiment(exp, "v2")[1].used == 3  # a v2 model needs none


def test_v2pro_generator_needs_the_v2pro_discriminator(pro_pretrained, tmp_path):
    torch.save({"weight": _half(MultiPeriodDiscriminator())}, tmp_path / "s2D2333k.pth")
    with pytest.raises(PretrainedModelError, match="6 sub-discriminators.*a v2Pro one has 8"):
        load_pretrained(pro_pretrained / "v2Pro/s2Gv2Pro.pth", tmp_path / "s2D2333k.pth")
    with pytest.raises(PretrainedModelError, match="is a SoVITS v2Pro generator but version v2 was asked"):
        load_pretrained(pro_pretrained / "v2Pro/s2Gv2Pro.pth", pro_pretrained / "v2Pro/s2Dv2Pro.pth", "v2")


def _load_ckpt(exp: Path) -> dict:
    return torch.load(exp / "s2_train" / "checkpoint.pt", map_location="cpu", weights_only=True)


def test_v2pro_training_resumes_exactly_and_exports_with_the_header(pro_pretrained, pro_exp, tmp_path):
    exp_a, w_a = Path(shutil.copytree(pro_exp, tmp_path / "a")), tmp_path / "wa"
    exp_b, w_b = Path(shutil.copytree(pro_exp, tmp_path / "b")), tmp_path / "wb"
    calls = []

    def snapshot_before_second_step() -> bool:
        # What a kill -9 just before step 2 leaves behind: the run folder as it is on disk now.
        calls.append(1)
        if len(calls) == 2:
            shutil.copytree(exp_a / "s2_train", exp_b / "s2_train")
        return False

    res_a = train(
        _config(exp_a, pro_pretrained, w_a, "--max-steps", "2", "--checkpoint-minutes", "1e-9"),
        should_stop=snapshot_before_second_step,
    )
    assert res_a.step == 2 and res_a.exports == [str(w_a / "tiny_e1_s2.pth")]
    res_b = train(_config(exp_b, pro_pretrained, w_b, "--max-steps", "2"))
    assert res_b.step == 2
    assert "resumed at epoch 1, step 1" in (exp_b / "s2_train" / "log.txt").read_text()
    assert "S2 v2Pro training" in (exp_a / "s2_train" / "log.txt").read_text()
    metrics = [json.loads(line) for line in (exp_a / "s2_train" / "metrics.jsonl").read_text().splitlines()]
    assert all(m["loss/g/mel"] > 0 and m["loss/g/kl"] == m["loss/g/kl"] for m in metrics)

    a, b = _load_ckpt(exp_a), _load_ckpt(exp_b)
    assert a["progress"] == b["progress"] == {"epoch": 0, "step": 2, "batch_in_epoch": 2}
    assert any(k.startswith("discriminators.7.") for k in a["model"]["D"])  # period 23
    for part in ("G", "D"):
        for k, v in a["model"][part].items():
            assert torch.equal(v, b["model"][part][k]), (part, k)
    # The speaker-embedding path trains (it is not frozen).
    pre = load_sovits(pro_pretrained / "v2Pro/s2Gv2Pro.pth", precision="fp32")[0].state_dict()
    assert not torch.equal(a["model"]["G"]["sv_emb.weight"], pre["sv_emb.weight"])

    export = w_a / "tiny_e1_s2.pth"
    assert export.read_bytes()[:2] == b"05"
    exported, cfg = load_sovits(export, precision="fp32")
    assert cfg.version == "v2Pro" and cfg.uses_sv and cfg.gin_channels == 16
    trained = SynthesizerTrn(cfg, with_posterior=True)
    trained.load_state_dict({k: v.half().float() for k, v in a["model"]["G"].items()})
    codes = torch.randint(0, 1024, (1, 1, 8), generator=torch.Generator().manual_seed(0))
    text = torch.tensor([cleaned_text_to_sequence(PHONES, "v2Pro")])
    refer = torch.rand(1, 1025, 30, generator=torch.Generator().manual_seed(1))
    sv = torch.randn(1, SV_DIM, generator=torch.Generator().manual_seed(2))
    out_e = exported.decode(codes, text, refer, noise_scale=0.0, sv_emb=sv)
    assert torch.equal(out_e, trained.eval().decode(codes, text, refer, noise_scale=0.0, sv_emb=sv))
    with pytest.raises(SVEmbeddingError):
        exported.decode(codes, text, refer)
