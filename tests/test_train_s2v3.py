"""S2 v3/v4 LoRA fine-tuning: data, the reference's recipe, exact resume, exports the reference loads, the tab.

A tiny SynthesizerTrnV3 (official encoder layout with a narrow text encoder, DiT of dim 32: the
`tests/test_s2_v3.py` sizes; wns1 keeps its fixed 512 channels, ~30 M parameters) written as a
pretrained generator file, and a tiny experiment of two short clips (`tests/test_train_s2.py`'s writer).
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from io import BytesIO
from pathlib import Path

import pytest
import torch

from gpt_sovits.data.s2v3_dataset import (
    V3_BUCKET_BOUNDARIES,
    S2V3Dataset,
    collate_s2v3,
    scan_experiment_v3,
)
from gpt_sovits.models.s2v3 import S2V3Config, SynthesizerTrnV3
from gpt_sovits.models.weights_v3 import load_sovits_v3
from gpt_sovits.train.cli import config_from_args, parse_args
from gpt_sovits.train.errors import TrainingError
from gpt_sovits.train.s2v3 import (
    PretrainedModelError,
    S2V3Recipe,
    S2V3TrainConfig,
    add_lora,
    build_parser,
    load_pretrained,
    main,
    make_optimizer,
    make_scheduler,
    ref_path_in_fp32,
    train,
    train_step,
)
from tests.test_s2_v3 import TINY_DIT, TINY_HPARAMS
from tests.test_train_s2 import write_experiment

SR, HOP = 32000, 640
TARGET = "cfm.estimator.transformer_blocks.0.attn.to_q"  # an adapted layer
LORA_TARGET_NAMES = ("to_q", "to_k", "to_v", "to_out.0")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: on a busy 2-core machine a second OpenMP thread mostly spins."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _base_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tiny SynthesizerTrnV3 weights in fp16 (v3 and v4 have the same tensors)."""
    torch.manual_seed(seed)
    model = SynthesizerTrnV3(S2V3Config.from_hparams(TINY_HPARAMS, version="v4", **TINY_DIT))
    with torch.no_grad():  # the DiT's zero-initialised output layers must matter for the loss
        for p in model.cfm.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    return {k: v.half() for k, v in model.state_dict().items()}


def _base_file(path: Path, version: str, weight: dict[str, torch.Tensor]) -> Path:
    """A pretrained-style v3/v4 generator: {"weight": fp16 state dict, "config": hparams, "info"}."""
    hps = {**TINY_HPARAMS, "model": {**TINY_HPARAMS["model"], "version": version}}
    torch.save({"weight": weight, "config": hps, "info": "tiny"}, path)
    return path


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    """A pretrained-models folder with s2Gv3.pth and gsv-v4-pretrained/s2Gv4.pth (tiny, official names)."""
    root = tmp_path_factory.mktemp("s2v3_pretrained")
    (root / "gsv-v4-pretrained").mkdir()
    weight = _base_weights()
    return {
        "v3": _base_file(root / "s2Gv3.pth", "v3", weight),
        "v4": _base_file(root / "gsv-v4-pretrained" / "s2Gv4.pth", "v4", weight),
        "root": root,
    }


@pytest.fixture(scope="module")
def tiny_exp(tmp_path_factory) -> Path:
    return write_experiment(tmp_path_factory.mktemp("s2v3exp") / "exp", [0.7, 0.8]).root


def _args(exp: Path, bases: dict, weights: Path, version: str, *extra: str) -> list[str]:
    return [
        "--exp-dir", str(exp), "--exp-name", "tiny", "--pretrained-dir", str(bases["root"]),
        "--weights-dir", str(weights), "--version", version, "--batch-size", "1", "--lora-rank", "16",
        "--device", "cpu", *extra,
    ]  # fmt: skip


def _config(argv: list[str]) -> S2V3TrainConfig:
    return config_from_args(S2V3TrainConfig, parse_args(build_parser(), argv))


def _load_ckpt(exp: Path) -> dict:
    return torch.load(exp / "s2_train" / "checkpoint.pt", map_location="cpu", weights_only=True)


# ----------------------------------------------------------------------------------------- data


@pytest.mark.parametrize("version", ["v3", "v4"])
def test_items_carry_the_versions_mel_and_collate_pads_as_the_reference(tmp_path, tiny_exp, version):
    items, report = scan_experiment_v3(tiny_exp, version)
    ds = S2V3Dataset(tiny_exp, items, report.repeats, version)
    assert len(ds) == 2 * 50 and report.repeats == 50  # max(2, 100 // 2)
    ex = ds[ds.lengths.index(min(ds.lengths))]  # the 0.7 s clip: 22400 samples, 35 frames
    assert ex.spec.shape == (1025, 35) and ex.ssl.shape == (768, 35)
    # v3: 24 kHz, hop 256 -> 16800 // 256 = 65 frames; v4: 32 kHz, hop 320 -> 70 frames
    assert ex.mel.shape == ((100, 65) if version == "v3" else (100, 70))
    assert -1.5 < float(ex.mel.min()) and float(ex.mel.max()) < 1.5  # normalised by (-12, 2)
    other = ds[ds.lengths.index(max(ds.lengths))]  # 0.8 s: 40 frames
    batch = collate_s2v3([ex, other], version)
    assert batch.spec_lengths.tolist() == [40, 35] and batch.ssl.shape == (2, 768, 42)  # 2 * (40 // 2 + 1)
    # the reference's mel pad: int(8 * (40 // 8 + 1) * 1.875) = 90 (v3), 2 * 42 (v4)
    assert batch.mel.shape == ((2, 100, 90) if version == "v3" else (2, 100, 84))
    assert batch.mel_lengths.tolist() == [other.mel.shape[-1], ex.mel.shape[-1]]
    assert batch.mel[1, :, ex.mel.shape[-1] :].abs().sum() == 0

    long = write_experiment(tmp_path / "long", [0.8, 21.0])  # 1050 frames: past the v3 buckets' 1000
    items, report = scan_experiment_v3(long.root, version)
    assert [it.name for it in items] == ["clip_0.wav"] and report.outside_buckets == ["clip_1.wav"]
    assert "outside the length buckets (0.64-20 s): clip_1.wav" in report.summary()
    assert V3_BUCKET_BOUNDARIES == (32, 300, 400, 500, 600, 700, 800, 900, 1000)


# ----------------------------------------------------------------------------------------- recipe


def test_lora_recipe_freezes_what_the_reference_freezes_and_the_loss_falls(bases, tiny_exp):
    net_g, _ = load_pretrained(bases["v4"], "v4")
    before = {k: v.clone() for k, v in net_g.state_dict().items()}
    frozen = add_lora(net_g, 16)
    trainable = {n for n, p in net_g.named_parameters() if p.requires_grad}
    assert trainable and all(
        ".lora_" in n or n.startswith(("ref_enc.", "bridge.", "wns1.", "linear_mel.")) for n in trainable
    )
    # (the quantizer holds buffers only: its codebook gets no update, as it is not a parameter)
    assert {n.split(".")[0] for n in frozen} == {"ssl_proj", "enc_p", "cfm"}
    adapters = {n for n in trainable if ".lora_" in n}
    depth = TINY_DIT["dit_depth"]
    assert len(adapters) == depth * len(LORA_TARGET_NAMES) * 2  # A and B on every target of every block
    lora_b = net_g.get_parameter(f"cfm.base_model.model.{TARGET[4:]}.lora_B.default.weight")
    assert lora_b.shape == (32, 16) and torch.count_nonzero(lora_b) == 0  # peft's init: B = 0

    recipe = S2V3Recipe(learning_rate=1e-3, lora_rank=16)
    opt = make_optimizer(net_g, recipe)
    sched = make_scheduler(opt, recipe)
    group = opt.param_groups[0]
    assert (group["betas"], group["eps"], group["weight_decay"]) == ((0.8, 0.99), 1e-9, 0.01)
    assert group["lr"] == pytest.approx(1e-3 * 0.999875)  # the reference steps the schedule once first
    assert {id(p) for p in group["params"]} == {id(net_g.get_parameter(n)) for n in trainable}

    items, report = scan_experiment_v3(tiny_exp, "v4")
    ds = S2V3Dataset(tiny_exp, items, 1, "v4")
    batch = collate_s2v3([ds[0]], "v4")
    net_g.train()
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    losses = []
    for _ in range(4):  # the same draws of t, noise, prompt and dropout each step: one fixed objective
        torch.manual_seed(0)
        random.seed(0)
        out = train_step(net_g, opt, scaler, batch)
        losses.append(out["loss/g/total"])
        assert out["grad_norm_g"] > 0
    assert all(map(torch.isfinite, map(torch.tensor, losses))) and losses[-1] < 0.85 * losses[0], losses

    after = net_g.state_dict()
    for k, v in before.items():  # frozen parts unchanged; the base CFM lives under peft's names now
        peft_k = "cfm.base_model.model." + k[4:] if k.startswith("cfm.") else k
        if any(f".{t}." in peft_k for t in LORA_TARGET_NAMES) and peft_k.startswith("cfm."):
            peft_k = peft_k.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        if k.startswith(("cfm.", "enc_p.", "ssl_proj.", "quantizer.")):
            assert torch.equal(v, after[peft_k]), k
    assert torch.count_nonzero(lora_b) > 0
    assert not torch.equal(before["wns1.pre.weight"], after["wns1.pre.weight"])  # trained in full
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.999875**2)

    # The CUDA path's mixed precision, emulated with bf16 autocast on the CPU: the reference encoder and
    # the content path stay fp32 (the reference's autocast(enabled=False)), the step stays finite.
    ref_path_in_fp32(net_g, "cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert net_g.bridge(torch.randn(1, 192, 4)).dtype == torch.bfloat16  # autocast is on
        assert net_g.ssl_proj(torch.randn(1, 768, 4)).dtype == torch.float32
        assert net_g.ref_enc(torch.randn(1, 704, 8), torch.ones(1, 1, 8)).dtype == torch.float32
    out = train_step(net_g, opt, scaler, batch, amp_dtype=torch.bfloat16)
    assert torch.isfinite(torch.tensor(out["loss/g/total"])) and out["grad_norm_g"] > 0


# ----------------------------------------------------------------------------------------- the loop


def _merged_weight_check(export: Path, base: Path) -> None:
    """The export loads merged: the target layer is base + B @ A * (alpha / r = 1), and differs."""
    raw = torch.load(BytesIO(b"PK" + export.read_bytes()[2:]), weights_only=True)
    merged, _ = load_sovits_v3(export, base=base, precision="fp32")
    pretrained, _ = load_sovits_v3(base, precision="fp32")
    a = raw["weight"][f"cfm.base_model.model.{TARGET[4:]}.lora_A.default.weight"].float()
    b = raw["weight"][f"cfm.base_model.model.{TARGET[4:]}.lora_B.default.weight"].float()
    w0 = pretrained.get_parameter(TARGET + ".weight")
    w = merged.get_parameter(TARGET + ".weight")
    assert torch.allclose(w, w0 + b @ a, atol=1e-6, rtol=0) and not torch.allclose(w, w0)
    # the tensors trained in full come from the file
    assert torch.equal(merged.state_dict()["wns1.pre.weight"], raw["weight"]["wns1.pre.weight"].float())


def test_resume_after_a_kill_is_exact_and_the_export_loads_merged(bases, tiny_exp, tmp_path):
    exp_a, w_a = shutil.copytree(tiny_exp, tmp_path / "a"), tmp_path / "wa"
    exp_b, w_b = shutil.copytree(tiny_exp, tmp_path / "b"), tmp_path / "wb"
    calls = []

    def snapshot_before_second_step() -> bool:
        # What a kill -9 just before step 2 leaves behind: the run folder as it is on disk now.
        calls.append(1)
        if len(calls) == 2:
            shutil.rmtree(exp_b / "s2_train", ignore_errors=True)
            shutil.copytree(exp_a / "s2_train", exp_b / "s2_train")
        return False

    args_a = _args(exp_a, bases, w_a, "v3", "--max-steps", "2", "--checkpoint-minutes", "1e-9")
    res_a = train(_config(args_a), should_stop=snapshot_before_second_step)
    assert res_a.step == 2 and res_a.exports == [str(w_a / "tiny_e1_s2_l16.pth")]
    assert _load_ckpt(exp_b)["progress"] == {"epoch": 0, "step": 1, "batch_in_epoch": 1}

    events = tmp_path / "events.jsonl"
    assert main([*_args(exp_b, bases, w_b, "v3", "--max-steps", "2"), "--events", str(events)]) == 0
    log = (exp_b / "s2_train" / "log.txt").read_text()
    assert "resumed at epoch 1, step 1 (batch 1 of the epoch)" in log
    metrics = [json.loads(line) for line in (exp_b / "s2_train" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2] and all(m["loss/g/total"] > 0 for m in metrics)
    saved = [e for e in map(json.loads, events.read_text().splitlines()) if e["type"] == "saved"]
    assert [(e["model"], e["path"], e["step"]) for e in saved] == [("s2", str(w_b / "tiny_e1_s2_l16.pth"), 2)]

    a, b = _load_ckpt(exp_a), _load_ckpt(exp_b)
    assert a["progress"] == b["progress"] == {"epoch": 0, "step": 2, "batch_in_epoch": 2}
    assert a["model"]["G"].keys() == b["model"]["G"].keys()
    for k, v in a["model"]["G"].items():
        assert torch.equal(v, b["model"]["G"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys() and all(int(sa[i]["step"]) == 2 for i in sa)
    for i in sa:
        for k in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(sa[i][k], sb[i][k]), (i, k)
    # the checkpoint holds what trains (and buffers), not the frozen 1 M-parameter DiT or enc_p
    keys = a["model"]["G"]
    assert not any(k.startswith(("enc_p.", "ssl_proj.")) for k in keys)
    assert not any(k.startswith("cfm.") and ".lora_" not in k and "inv_freq" not in k for k in keys)

    export = w_a / "tiny_e1_s2_l16.pth"
    assert export.read_bytes()[:2] == b"03"
    assert (w_b / "tiny_e1_s2_l16.pth").read_bytes() == export.read_bytes()  # the resumed run's is identical
    _merged_weight_check(export, bases["v3"])


def test_a_lora_export_loads_in_the_reference_loader(bases, tiny_exp, tmp_path):
    """The reference's LoRA load path, step by step, on a v4 export of this trainer:
    process_ckpt.get_sovits_version_from_path_fast (hash of the head, then the 2-byte header:
    head2version[b"04"] = ["v2", "v4", True]); process_ckpt.load_sovits_new (b"PK" + the rest, torch.load);
    inference_webui.change_sovits_weights (lines 314-375 of the reference at 48b1a01) / TTS.init_vits_weights
    (lines 503-584): hps = dict_s2["config"]; "enc_p.text_embedding.weight" not in the weights -> symbols
    v2; SynthesizerTrnV3(hps.data.filter_length // 2 + 1, hps.train.segment_size // hps.data.hop_length,
    n_speakers=hps.data.n_speakers, **hps.model); the pretrained G loaded non-strict; LoraConfig(
    target_modules=["to_k", "to_q", "to_v", "to_out.0"], r=lora_rank, lora_alpha=lora_rank,
    init_lora_weights=True); vq_model.cfm = get_peft_model(vq_model.cfm, ...); load_state_dict(
    dict_s2["weight"], strict=False); merge_and_unload().

    Checked once with the reference's own code (outside the suite: its process_ckpt, module/models.py
    SynthesizerTrnV3 with f5_tts's DiT at this tiny size, peft): v3 and v4 exports of this trainer read as
    ["v2", "v3"/"v4", True], load with no unexpected key and no missing adapter, and the merged state
    dict equals load_sovits_v3's (231 tensors, max abs difference 0.0)."""
    import hashlib

    from peft import LoraConfig, get_peft_model

    res = train(_config(_args(shutil.copytree(tiny_exp, tmp_path / "e"), bases, tmp_path / "w", "v4",
                              "--max-steps", "1")))  # fmt: skip
    path = Path(res.exports[0])
    assert path.name == "tiny_e1_s1_l16.pth"
    data = path.read_bytes()
    head2version = {b"03": ["v2", "v3", True], b"04": ["v2", "v4", True]}  # process_ckpt.head2version
    assert hashlib.md5(data[:8192]).hexdigest() not in {  # hash_pretrained_dict: not taken for a base
        "43797be674a37c1c83ee81081941ed0f", "4f26b9476d0c5033e04162c486074374"
    }  # fmt: skip
    assert head2version[data[:2]] == ["v2", "v4", True]
    dict_s2 = torch.load(BytesIO(b"PK" + data[2:]), map_location="cpu", weights_only=True)
    assert set(dict_s2) == {"weight", "config", "info", "lora_rank"} and dict_s2["lora_rank"] == 16
    assert dict_s2["info"] == "1epoch_1iteration"
    hps = dict_s2["config"]
    assert "enc_p.text_embedding.weight" not in dict_s2["weight"]
    spec_channels = hps["data"]["filter_length"] // 2 + 1
    segment = hps["train"]["segment_size"] // hps["data"]["hop_length"]
    assert (spec_channels, segment, hps["data"]["n_speakers"]) == (1025, 32, 300)
    # every positional parameter of the reference's SynthesizerTrnV3.__init__ after the first two
    needed = (
        "inter_channels hidden_channels filter_channels n_heads n_layers kernel_size p_dropout resblock "
        "resblock_kernel_sizes resblock_dilation_sizes upsample_rates upsample_initial_channel "
        "upsample_kernel_sizes"
    ).split()
    assert all(k in hps["model"] for k in needed), sorted(set(needed) - set(hps["model"]))
    assert hps["model"]["semantic_frame_rate"] == "25hz" and hps["model"]["freeze_quantizer"] is True
    assert hps["model"]["filter_channels"] == 96 and hps["model"]["version"] == "v4"  # the base's sizes
    assert hps["train"]["lora_rank"] == 16 and hps["name"] == "tiny"
    assert all(v.dtype == torch.float16 for v in dict_s2["weight"].values())

    # The model the reference builds has our parameter names (strict loads of the official files).
    vq_model, _ = load_sovits_v3(bases["v4"], precision="fp32")  # the pretrained G, loaded
    lora_rank = dict_s2["lora_rank"]
    config = LoraConfig(
        target_modules=["to_k", "to_q", "to_v", "to_out.0"], r=lora_rank, lora_alpha=lora_rank,
        init_lora_weights=True,
    )  # fmt: skip
    vq_model.cfm = get_peft_model(vq_model.cfm, config)
    missing, unexpected = vq_model.load_state_dict(dict_s2["weight"], strict=False)
    assert unexpected == []  # every tensor of the file has its place
    assert not any(".lora_" in k for k in missing)  # every adapter came from the file
    vq_model.cfm = vq_model.cfm.merge_and_unload()
    ours, _ = load_sovits_v3(path, base=bases["v4"], precision="fp32")
    theirs = vq_model.state_dict()
    for k, v in ours.state_dict().items():
        assert torch.allclose(v.float(), theirs[k].float(), atol=1e-6, rtol=0), k


# ----------------------------------------------------------------------------------------- errors


def test_wrong_pretrained_rank_or_run_is_refused_with_the_way_out(bases, tiny_exp, tmp_path, capsys):
    with pytest.raises(PretrainedModelError, match="is the SoVITS v3 generator but version v4"):
        load_pretrained(bases["v3"], "v4")
    with pytest.raises(PretrainedModelError, match=r"not found: .*s2Gv3\.pth"):
        load_pretrained(tmp_path / "s2Gv3.pth", "v3")
    with pytest.raises(TrainingError, match="LoRA rank 8 is not offered"):
        S2V3TrainConfig(exp_dir=tmp_path, weights_dir=tmp_path, lora_rank=8)
    with pytest.raises(TrainingError, match="python -m gpt_sovits.train.s2"):
        S2V3TrainConfig(exp_dir=tmp_path, weights_dir=tmp_path, version="v2")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--lora-rank", "8"])
    # a run folder of another kind of run: refused before training, with --fresh as the way out
    exp = shutil.copytree(tiny_exp, tmp_path / "e")
    (exp / "s2_train").mkdir()
    from gpt_sovits.train.state import TrainProgress, save_checkpoint, training_state

    state = training_state(model={}, optimizer=None, progress=TrainProgress(), config={"batch_size": 1})
    save_checkpoint(exp / "s2_train" / "checkpoint.pt", state)
    assert main(_args(exp, bases, tmp_path / "w", "v4")) == 2
    assert "started with trainer v1/v2/v2Pro S2, not s2v3; run with --fresh" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------- the tab


@pytest.mark.parametrize("version", ["v3", "v4"])
def test_the_training_tab_runs_the_lora_trainer_for_v3_v4(tmp_path, version):
    from ui.training_common import Layout
    from ui.training_plan import (
        LORA_RANKS,
        VERSIONS,
        FormatState,
        PreflightInputs,
        TrainSettings,
        build_step,
        check_plan,
        pretrained_files,
        step_models,
        version_defaults,
    )

    assert version in VERSIONS and LORA_RANKS == (16, 32, 64, 128)
    assert version_defaults(version) == {"s2_epochs": 2, "s2_save_every": 1, "lora_rank": 32}
    assert version_defaults("v2")["s2_epochs"] == 8
    layout = Layout(tmp_path / "ws", tmp_path / "models")
    s = TrainSettings(exp_name="voice", version=version, s2_epochs=2, s2_save_every=1, lora_rank=64)
    spec = build_step("s2", s, layout)
    assert spec.module == "gpt_sovits.train.s2v3"
    assert spec.config["lora_rank"] == 64 and spec.config["version"] == version
    assert spec.config["weights_dir"].endswith(f"SoVITS_weights_{version}")
    assert "--lora-rank" in spec.args and spec.args[spec.args.index("--lora-rank") + 1] == "64"
    # the written config is what the trainer's parser takes
    cfg = config_from_args(S2V3TrainConfig, parse_args(build_parser(), spec.args[2:]))
    assert (cfg.version, cfg.lora_rank, cfg.epochs, cfg.save_every) == (version, 64, 2, 1)
    s1 = build_step("s1", s, layout)
    assert s1.module == "gpt_sovits.train.s1" and s1.config["version"] == "v2"
    assert s1.config["pretrained_s1"] == str(layout.model_dir / "s1v3.ckpt")
    assert "lora_rank" not in s1.config
    assert step_models("s2", version) == ("s2g",)  # no discriminator for v3/v4
    from ui.training_samples import list_exports

    layout.sovits_dir(version).mkdir(parents=True)
    for name in ("voice_e1_s7_l64.pth", "voice_e2_s14_l64.pth", "voice-other_e1_s7_l64.pth"):
        (layout.sovits_dir(version) / name).write_bytes(b"x")
    exports = sorted((e.model, e.epoch, e.step) for e in list_exports(layout, "voice", version))
    assert exports == [("s2", 1, 7), ("s2", 2, 14)]  # the LoRA names, of this experiment only
    v2 = build_step("s2", TrainSettings(exp_name="voice", version="v2"), layout)
    assert v2.module == "gpt_sovits.train.s2" and "lora_rank" not in v2.config

    # the check: the version's own pretrained files, a rank outside the choices, formatting offered
    files = {m.role: m for m in pretrained_files(layout.model_dir, version)}
    g = "s2Gv3.pth" if version == "v3" else "gsv-v4-pretrained/s2Gv4.pth"
    assert files["s2g"].path == str(layout.model_dir / g) and not files["s2g"].present
    assert files["s1"].path == str(layout.model_dir / "s1v3.ckpt") and "s2d" not in files
    bad = dataclasses.replace(s, lora_rank=8)
    formatted = FormatState(name2text_lines=2, semantic_lines=2, hubert_files=2, wav_files=2)
    inputs = PreflightInputs(("s2",), "voice", bad, format_state=formatted)
    errors = [p.message for p in check_plan(inputs) if p.blocking]
    assert errors == ["LoRA rank 8 is not offered: choose one of 16, 32, 64, 128."]
    assert not [p for p in check_plan(dataclasses.replace(inputs, settings=s)) if p.blocking]
    errors = [
        p.message for p in check_plan(PreflightInputs(("prepare",), "voice", s, models=())) if p.blocking
    ]
    assert not [e for e in errors if "Format" in e and version in e]  # v3/v4 format like the others


def test_choosing_v3_v4_in_the_tab_sets_their_defaults_and_shows_the_rank(tmp_path):
    import gradio as gr

    from i18n import I18n
    from ui.context import AppContext
    from ui.training_page import build_page
    from ui.training_tab import TrainingContext, apply_version_defaults, read_settings

    app = AppContext(tmp_path / "ws", I18n("en_US"), tmp_path / "models")
    with gr.Blocks():
        page = build_page(app)
    tc = TrainingContext(app, page)
    assert "v4" in page.version.choices[3] and page.lora_rank.visible is False
    assert [c[1] for c in page.lora_rank.choices] == [16, 32, 64, 128] and page.lora_rank.value == 32
    v4 = apply_version_defaults(tc, {page.version: "v4"})
    assert v4[page.s2_epochs] == 2 and v4[page.s2_save] == 1
    assert v4[page.lora_rank]["visible"] is True and v4[page.lora_rank]["value"] == 32
    v2 = apply_version_defaults(tc, {page.version: "v2"})
    assert (v2[page.s2_epochs], v2[page.s2_save], v2[page.lora_rank]["visible"]) == (8, 4, False)
    values = {c: c.value for c in page.settings_inputs}
    values.update({page.exp_name: "voice", page.version: "v3", page.lora_rank: 128})
    s = read_settings(tc, values)
    assert (s.version, s.lora_rank) == ("v3", 128)
