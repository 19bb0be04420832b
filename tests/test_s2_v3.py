"""v3/v4 S2 models and their loading: parity with the reference classes on tiny random models.

Fixtures in tests/data/s2_v3/ (see its README) were produced by the reference's own classes
(`module/models.py` CFM / SynthesizerTrnV3 / Generator, `f5_tts` DiT, `BigVGAN`) with random
weights: tiny CFM, BigVGAN and v4 vocoder files in the official formats, and, for the whole decode
and the LoRA merge, the reference outputs of a SynthesizerTrnV3 whose weights come from
`seeded_weights` below (the official-size wns1 alone is 21 M parameters, too big to commit).
"""

from __future__ import annotations

import math
from io import BytesIO
from pathlib import Path

import pytest
import torch

from gpt_sovits.models.cfm import CFM, denorm_spec, norm_spec
from gpt_sovits.models.dit import DiT, rotary_inv_freq
from gpt_sovits.models.s2v3 import PROFILES, S2V3Config, SynthesizerTrnV3, frame_counts
from gpt_sovits.models.weights import (
    CheckpointError,
    UnsupportedVersionError,
    WrongModelTypeError,
    read_checkpoint,
)
from gpt_sovits.models.weights_v3 import (
    load_bigvgan,
    load_sovits_v3,
    load_vocoder,
    load_vocoder_v4,
    save_sovits_v3_lora,
    sovits_v3_version,
)

DATA = Path(__file__).parent / "data" / "s2_v3"
REL_TOL = 1e-3  # max abs error relative to the reference signal's peak (the bar)

# The tiny SynthesizerTrnV3 of the decode/LoRA fixtures: official encoder layout with a narrow text
# encoder, and a DiT of dim 32, depth 2, 2 heads of 16, one ConvNeXt block.
TINY_HPARAMS = {
    "train": {"segment_size": 20480, "lora_rank": 4},
    "data": {
        "filter_length": 2048,
        "hop_length": 640,
        "win_length": 2048,
        "sampling_rate": 32000,
        "n_speakers": 300,
    },
    "model": {
        "inter_channels": 192,
        "hidden_channels": 192,
        "filter_channels": 96,
        "n_heads": 2,
        "n_layers": 2,
        "kernel_size": 3,
        "p_dropout": 0.1,
        "resblock": "1",
        "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        "upsample_rates": [10, 8, 2, 2, 2],
        "upsample_initial_channel": 512,
        "upsample_kernel_sizes": [16, 16, 8, 2, 2],
        "gin_channels": 512,
        "semantic_frame_rate": "25hz",
        "freeze_quantizer": True,
    },
}
TINY_DIT = {
    "dit_dim": 32,
    "dit_depth": 2,
    "dit_heads": 2,
    "dit_dim_head": 16,
    "dit_ff_mult": 2,
    "dit_conv_layers": 1,
}
WEIGHT_SEED = 1234


def seeded_weights(shapes: dict[str, tuple[int, ...]], seed: int = WEIGHT_SEED) -> dict[str, torch.Tensor]:
    """Deterministic random weights by name (sorted), fp16-representable; rotary inv_freq exact.

    Matrices ~ N(0, 1/fan_in); 1-D gains (names ending in weight/gamma) ~ 1 + N(0, 0.01); other
    vectors ~ N(0, 0.01). The fixture generator used this very function on the reference model."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name in sorted(shapes):
        shape = shapes[name]
        if name.endswith("rotary_embed.inv_freq"):
            out[name] = rotary_inv_freq(2 * shape[0])
            continue
        t = torch.randn(shape, generator=g)
        if len(shape) >= 2:
            t = t / math.sqrt(max(1, math.prod(shape[1:])))
        elif name.endswith(("weight", "gamma")):
            t = 1 + 0.1 * t
        else:
            t = 0.1 * t
        out[name] = t.half().float()
    return out


def tiny_shapes(version: str) -> dict[str, tuple[int, ...]]:
    cfg = S2V3Config.from_hparams(TINY_HPARAMS, version=version, **TINY_DIT)
    with torch.device("meta"):
        model = SynthesizerTrnV3(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    assert got.shape == want.shape, (got.shape, want.shape)
    return float((got - want).abs().max() / want.abs().max().clamp_min(1e-12))


def tiny_base_file(path: Path, version: str) -> Path:
    """A pretrained-style v3/v4 generator file (fp16 weights + config) with the seeded weights."""
    sd = seeded_weights(tiny_shapes(version))
    hps = {**TINY_HPARAMS, "model": {**TINY_HPARAMS["model"], "version": version}}
    torch.save({"weight": {k: v.half() for k, v in sd.items()}, "config": hps, "info": "tiny"}, path)
    return path


@pytest.fixture(scope="module")
def io_decode() -> dict:
    return torch.load(DATA / "decode_tiny_io.pt", weights_only=True)


@pytest.fixture(scope="module")
def base_file(tmp_path_factory) -> Path:
    """v3 and v4 have the same parameters: one seeded file (its config says v4) serves both."""
    return tiny_base_file(tmp_path_factory.mktemp("s2v3") / "s2Gv4_tiny.pth", "v4")


# --- CFM / DiT ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_cfm() -> CFM:
    raw = read_checkpoint(DATA / "cfm_tiny.pth")
    sd = {k.removeprefix("cfm."): v.float() for k, v in raw.content["weight"].items()}
    cfm = CFM(
        100, DiT(dim=32, depth=2, heads=2, dim_head=16, ff_mult=2, mel_dim=100, text_dim=32, conv_layers=2)
    )
    cfm.load_state_dict(sd, strict=True)
    return cfm.eval()


def test_dit_velocity_matches_reference(tiny_cfm):
    io = torch.load(DATA / "cfm_tiny_io.pt", weights_only=True)
    torch.manual_seed(123)
    x = torch.randn([1, 100, 40])
    with torch.no_grad():
        v, text_emb, dt = tiny_cfm.estimator(
            x,
            torch.zeros(1, 100, 40),
            torch.tensor([40]),
            torch.tensor([0.3]),
            torch.tensor([0.25]),
            io["mu"][:1].transpose(1, 2),
        )
    assert v.shape == (1, 100, 40) and text_emb.shape == (1, 40, 32) and dt.shape == (1, 32)
    assert rel_err(v, io["velocity"]) <= REL_TOL


@pytest.mark.parametrize("case", ["a", "b"])
def test_cfm_inference_matches_reference(tiny_cfm, case):
    """a: one item, 4 steps; b: a batch of 2 with a padded item, 3 steps, guidance rate 0.7."""
    io = torch.load(DATA / "cfm_tiny_io.pt", weights_only=True)
    b = 1 if case == "a" else 2
    torch.manual_seed(123)  # the reference drew its noise right after this seed
    noise = torch.randn([b, 100, 40])
    out = tiny_cfm.inference(
        io["mu"][:b],
        io[f"{case}_lens"],
        io["prompt"][:b],
        io[f"{case}_steps"],
        inference_cfg_rate=io[f"{case}_cfg"],
        noise=noise,
    )
    want = io[f"{case}_out"]
    assert rel_err(out, want) <= REL_TOL
    assert torch.count_nonzero(out[:, :, :12]) == 0  # the prompt frames stay 0
    # Drawing the noise from the global RNG after the same seed is the reference's behaviour.
    torch.manual_seed(123)
    again = tiny_cfm.inference(
        io["mu"][:b],
        io[f"{case}_lens"],
        io["prompt"][:b],
        io[f"{case}_steps"],
        inference_cfg_rate=io[f"{case}_cfg"],
    )
    assert rel_err(again, want) <= REL_TOL


def test_cfm_bfloat16_matches_reference(tiny_cfm):
    """In bf16 (model.to(bfloat16), as half-precision inference converts it) the noise is drawn in
    mu's dtype after the seed, as the reference draws it: same numbers."""
    import copy

    io = torch.load(DATA / "cfm_tiny_io.pt", weights_only=True)
    cfm = copy.deepcopy(tiny_cfm).to(torch.bfloat16)
    torch.manual_seed(123)
    out = cfm.inference(io["mu"][:1].bfloat16(), torch.tensor([40]), io["prompt"][:1].bfloat16(), 4)
    assert out.dtype == torch.bfloat16
    assert rel_err(out.float(), io["bf16_out"].float()) <= 1e-2  # bf16 has 8 bits of mantissa


def test_cfm_seeded_generator_repeats_and_checks_noise(tiny_cfm):
    io = torch.load(DATA / "cfm_tiny_io.pt", weights_only=True)
    args = (io["mu"][:1], torch.tensor([40]), io["prompt"][:1], 2)
    a = tiny_cfm.inference(*args, generator=torch.Generator().manual_seed(7))
    b = tiny_cfm.inference(*args, generator=torch.Generator().manual_seed(7))
    c = tiny_cfm.inference(*args, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="noise must have shape"):
        tiny_cfm.inference(*args, noise=torch.zeros(1, 100, 39))
    with pytest.raises(ValueError, match="n_timesteps"):
        tiny_cfm.inference(*args[:3], 0)


def test_cfm_training_loss_is_finite_and_backpropagates(tiny_cfm):
    cfm = CFM(
        100,
        DiT(
            dim=32,
            depth=1,
            heads=2,
            dim_head=16,
            dropout=0.0,
            ff_mult=2,
            mel_dim=100,
            text_dim=32,
            conv_layers=1,
        ),
    )
    g = torch.Generator().manual_seed(0)
    x1, mu = torch.randn(2, 100, 20, generator=g), torch.randn(2, 32, 20, generator=g)
    loss = cfm(
        x1, torch.tensor([20, 15]), torch.tensor([5, 3]), mu, generator=torch.Generator().manual_seed(1)
    )
    again = cfm(
        x1, torch.tensor([20, 15]), torch.tensor([5, 3]), mu, generator=torch.Generator().manual_seed(1)
    )
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0 and torch.equal(loss, again)
    loss.backward()
    assert cfm.estimator.proj_out.weight.grad is not None


def test_spec_normalisation_round_trip():
    x = torch.linspace(-12, 2, 15)
    assert torch.allclose(norm_spec(x)[[0, -1]], torch.tensor([-1.0, 1.0]))
    assert torch.allclose(denorm_spec(norm_spec(x)), x, atol=1e-6)


# --- vocoders ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["bigvgan_tiny", "bigvgan_tiny_snake"])
def test_bigvgan_matches_reference(tag):
    """snakebeta + AMPBlock1 + weight norm + clamp; snake + AMPBlock2 + plain weights + bias + tanh."""
    model = load_vocoder("v3", DATA / tag, precision="fp32")
    io = torch.load(DATA / f"{tag}_io.pt", weights_only=True)
    with torch.no_grad():
        wav = model(io["mel"])
    assert wav.shape == (1, 1, 20 * model.hop) and model.sampling_rate == 24000
    assert rel_err(wav, io["wav"]) <= REL_TOL


def test_vocoder_v4_matches_reference():
    model = load_vocoder_v4(DATA / "vocoder_v4_tiny.pth", precision="fp32")
    io = torch.load(DATA / "vocoder_v4_tiny_io.pt", weights_only=True)
    with torch.no_grad():
        wav = model(io["mel"])
    assert model.hop == 480 and model.sampling_rate == 48000
    assert wav.shape == (1, 1, 6 * 480)
    assert rel_err(wav, io["wav"]) <= REL_TOL


def test_vocoder_loaders_refuse_wrong_files(tmp_path, base_file):
    with pytest.raises(WrongModelTypeError, match="expected the v4 vocoder"):
        load_vocoder_v4(base_file)
    with pytest.raises(CheckpointError, match="BigVGAN folder not found"):
        load_bigvgan(tmp_path / "nope")
    (tmp_path / "bv").mkdir()
    (tmp_path / "bv" / "config.json").write_text((DATA / "bigvgan_tiny" / "config.json").read_text())
    with pytest.raises(CheckpointError, match="bigvgan_generator.pt"):
        load_bigvgan(tmp_path / "bv")
    sd = torch.load(DATA / "bigvgan_tiny" / "bigvgan_generator.pt", weights_only=True)["generator"]
    del sd["conv_pre.bias"]
    torch.save({"generator": sd}, tmp_path / "bv" / "bigvgan_generator.pt")
    with pytest.raises(CheckpointError, match="missing: conv_pre.bias"):
        load_bigvgan(tmp_path / "bv")
    with pytest.raises(UnsupportedVersionError):
        load_vocoder("v2", tmp_path)


def test_bigvgan_filters_are_filled_when_absent(tmp_path):
    """Files without the fixed resampling buffers still load, with the computed filters."""
    d = tmp_path / "bv"
    d.mkdir()
    (d / "config.json").write_text((DATA / "bigvgan_tiny" / "config.json").read_text())
    sd = torch.load(DATA / "bigvgan_tiny" / "bigvgan_generator.pt", weights_only=True)["generator"]
    torch.save(
        {"generator": {k: v for k, v in sd.items() if not k.endswith(".filter")}}, d / "bigvgan_generator.pt"
    )
    io = torch.load(DATA / "bigvgan_tiny_io.pt", weights_only=True)
    with torch.no_grad():
        wav = load_bigvgan(d, precision="fp32")(io["mel"])
    assert rel_err(wav, io["wav"]) <= REL_TOL


# --- SynthesizerTrnV3: whole decode ---------------------------------------------------------------------


def _vocoder(version: str):
    if version == "v3":
        return load_bigvgan(DATA / "bigvgan_tiny", precision="fp32")
    return load_vocoder_v4(DATA / "vocoder_v4_tiny.pth", precision="fp32")


def _decode(model: SynthesizerTrnV3, io: dict, tag: str, vocoder=None) -> dict[str, torch.Tensor]:
    """The reference's using_vocoder_synthesis for one chunk: prompt + target conditioning, CFM, vocoder."""
    fea_ref, ge = model.decode_encp(io["prompt_codes"], io["prompt_text"], io["refer"])
    fea_todo, _ = model.decode_encp(io["codes"], io["text"], None, ge, 1.0)
    mel2 = norm_spec(io["ref_mel"])
    t_min = min(mel2.shape[2], fea_ref.shape[2])
    mu = torch.cat([fea_ref[:, :, :t_min], fea_todo], 2).transpose(2, 1)
    torch.manual_seed(11)
    noise = torch.randn([1, 100, mu.size(1)])
    cfm = model.cfm.inference(mu, torch.tensor([mu.size(1)]), mel2[:, :, :t_min], 4, noise=noise)
    out = {"ge": ge, "fea_ref": fea_ref, "fea_todo": fea_todo, "cfm": cfm}
    if vocoder is not None:
        with torch.no_grad():
            out["wav"] = vocoder(denorm_spec(cfm[:, :, t_min:]))
    return out


@pytest.mark.parametrize("version", ["v3", "v4"])
def test_whole_decode_matches_reference(version, base_file, io_decode):
    # v4 from the file's config; v3 by the caller's override (files with neither header nor hash)
    model, cfg = load_sovits_v3(base_file, precision="fp32", version=None if version == "v4" else "v3")
    assert cfg.version == version and model.profile.frame_factor == (1.875 if version == "v3" else 2.0)
    assert (cfg.dit_dim, cfg.dit_depth, cfg.dit_heads, cfg.dit_conv_layers) == (32, 2, 2, 1)
    got = _decode(model, io_decode, version, _vocoder(version))
    for key in ("ge", "fea_ref", "fea_todo", "cfm", "wav"):
        assert rel_err(got[key], io_decode[f"{version}_{key}"]) <= REL_TOL, key
    fea_speed, _ = model.decode_encp(io_decode["codes"], io_decode["text"], None, got["ge"], 1.25)
    assert rel_err(fea_speed, io_decode[f"{version}_fea_speed"]) <= REL_TOL
    # frame_counts plans chunks with the same lengths decode_encp produces
    for speed, fea in ((1.0, got["fea_todo"]), (1.25, fea_speed)):
        frames, valid = frame_counts(io_decode["codes"].size(-1), version, speed)
        assert frames == fea.shape[-1] and 0 < valid <= frames


def test_lora_export_merges_like_the_reference(base_file, io_decode):
    """A header-04 LoRA file (rank 4, adapters + two biases) over the v4 base, merged with peft."""
    path = DATA / "lora_v4_tiny.pth"
    assert path.read_bytes()[:2] == b"04"
    assert sovits_v3_version(path) == ("v4", True)
    model, cfg = load_sovits_v3(path, base=base_file, precision="fp32")
    assert cfg.version == "v4"
    got = _decode(model, io_decode, "lora")
    assert (
        rel_err(got["fea_todo"], io_decode["lora_fea_todo"]) <= REL_TOL
    )  # bridge/wns1 biases came from the LoRA file
    assert rel_err(got["cfm"], io_decode["lora_cfm"]) <= REL_TOL
    assert rel_err(got["cfm"], io_decode["v4_cfm"]) > 0.01  # and the adapters did change the DiT


def test_lora_export_round_trip(tmp_path, base_file, io_decode):
    """save_sovits_v3_lora writes what the reference writes: header, fp16, lora_rank, plain config."""
    ref = read_checkpoint(DATA / "lora_v4_tiny.pth", allow_versions=("v4-lora",)).content
    cfg = S2V3Config.from_hparams(TINY_HPARAMS, version="v4", **TINY_DIT)
    out = save_sovits_v3_lora(ref["weight"], cfg, 4, tmp_path / "mine.pth", info="1epoch_2iteration")
    data = out.read_bytes()
    assert data[:2] == b"04"
    content = torch.load(BytesIO(b"PK" + data[2:]), weights_only=True)  # plain containers only
    assert content["lora_rank"] == 4 and content["info"] == "1epoch_2iteration"
    assert content["config"]["model"]["version"] == "v4" and set(content["weight"]) == set(ref["weight"])
    assert all(v.dtype == torch.float16 for v in content["weight"].values())
    model, _ = load_sovits_v3(out, base=base_file, precision="fp32")
    assert rel_err(_decode(model, io_decode, "lora")["cfm"], io_decode["lora_cfm"]) <= REL_TOL
    with pytest.raises(ValueError, match="lacks data.filter_length"):
        save_sovits_v3_lora(ref["weight"], S2V3Config(version="v4"), 4, tmp_path / "x.pth")
    with pytest.raises(ValueError, match="adapter"):
        save_sovits_v3_lora({"bridge.0.bias": torch.zeros(512)}, cfg, 4, tmp_path / "x.pth")
    assert not (tmp_path / "x.pth").exists()


def test_lora_needs_its_base(tmp_path, base_file):
    lora = DATA / "lora_v4_tiny.pth"
    with pytest.raises(CheckpointError, match="needs the pretrained v4 generator"):
        load_sovits_v3(lora)
    with pytest.raises(CheckpointError, match="is not found|not found"):
        load_sovits_v3(lora, base=tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="itself a LoRA"):
        load_sovits_v3(lora, base=lora)
    with pytest.raises(CheckpointError, match="v4 LoRA export, not v3"):
        load_sovits_v3(lora, base=base_file, version="v3")
    # a rank that does not fit the adapters, or an adapter without its pair: refused by name
    raw = read_checkpoint(lora, allow_versions=("v4-lora",)).content
    one_a = next(k for k in raw["weight"] if ".lora_A." in k)
    for name, content, match in (
        ("rank", {**raw, "lora_rank": 8}, "for rank 8"),
        ("pair", {**raw, "weight": {k: v for k, v in raw["weight"].items() if k != one_a}}, "lacks lora_A"),
    ):
        buf = BytesIO()
        torch.save(content, buf)
        (tmp_path / f"{name}.pth").write_bytes(b"04" + buf.getvalue()[2:])
        with pytest.raises(CheckpointError, match=match):
            load_sovits_v3(tmp_path / f"{name}.pth", base=base_file)
    # v1/v2 readers still refuse the header
    with pytest.raises(UnsupportedVersionError, match="v4-lora"):
        read_checkpoint(lora)


def test_sovits_v3_loader_is_strict(tmp_path, base_file):
    raw = torch.load(base_file, weights_only=True)
    # the rotary buffer is the only record of the head size: without it the official 64 is assumed,
    # which a 32-wide attention cannot have
    sd = {k: v for k, v in raw["weight"].items() if not k.endswith("inv_freq")}
    torch.save({**raw, "weight": sd}, tmp_path / "no_inv_freq.pth")
    with pytest.raises(CheckpointError, match="not a multiple of its head size 64"):
        load_sovits_v3(tmp_path / "no_inv_freq.pth")
    # a bare state dict (no "weight"/"config" wrapper) loads too; without a config it is v3
    torch.save(raw["weight"], tmp_path / "bare.pth")
    model, cfg = load_sovits_v3(tmp_path / "bare.pth", precision="fp32")
    assert cfg.version == "v3" and cfg.filter_channels == 96
    assert torch.equal(model.state_dict()["bridge.0.weight"], raw["weight"]["bridge.0.weight"].float())
    # an unknown tensor and a missing parameter, then a wrong shape: refused, each named
    missing_and_extra = {k: v for k, v in raw["weight"].items() if k != "bridge.0.bias"}
    missing_and_extra["cfm.estimator.bogus"] = torch.zeros(1)
    for name, weight, match in (
        ("extra", missing_and_extra, r"missing: bridge\.0\.bias; unexpected: cfm\.estimator\.bogus"),
        (
            "shape",
            {**raw["weight"], "linear_mel.bias": torch.zeros(3)},
            r"wrong shape: linear_mel\.bias: file \(3,\)",
        ),
    ):
        torch.save({**raw, "weight": weight}, tmp_path / f"{name}.pth")
        with pytest.raises(CheckpointError, match=match):
            load_sovits_v3(tmp_path / f"{name}.pth")
    with pytest.raises(WrongModelTypeError, match="is not a SoVITS v3/v4 model"):
        load_sovits_v3(DATA / "vocoder_v4_tiny.pth")


def test_profiles_are_the_references():
    v3, v4 = PROFILES["v3"], PROFILES["v4"]
    assert (v3.output_rate, v3.upsample_rate, v3.t_ref, v3.t_chunk, v3.default_steps) == (
        24000,
        256,
        468,
        934,
        32,
    )
    assert (v4.output_rate, v4.upsample_rate, v4.t_ref, v4.t_chunk, v4.default_steps) == (
        48000,
        480,
        500,
        1000,
        8,
    )
    assert (v3.mel_rate, v3.mel_n_fft, v3.mel_hop, v4.mel_rate, v4.mel_n_fft, v4.mel_hop) == (
        24000,
        1024,
        256,
        32000,
        1280,
        320,
    )
    with pytest.raises(ValueError, match="v3 or v4"):
        S2V3Config(version="v2").validate()
