"""S2 v2Pro / v2ProPlus: parity with the reference's exports, sv_emb handling, version detection, headers.

The fixtures in tests/data/s2_v2pro/ (see its README) are the reference SynthesizerTrn's own exports
(`process_ckpt.savee`, with the b"05"/b"06" header) and its decoded waveforms at noise_scale 0.
"""

from __future__ import annotations

import hashlib
import lzma
from pathlib import Path

import pytest
import torch

from core.errors import UserError
from gpt_sovits.models import weights
from gpt_sovits.models.s2 import (
    SV_DIM,
    MultiPeriodDiscriminator,
    S2Config,
    SVEmbeddingError,
    SynthesizerTrn,
)
from gpt_sovits.models.weights import (
    CheckpointError,
    UnsupportedVersionError,
    detect_sovits_version,
    load_sovits,
    load_sovits_discriminator,
    save_sovits_weights,
)

DATA = Path(__file__).parent / "data" / "s2_v2pro"
REL_TOL = 1e-3  # max abs error relative to the waveform's peak
VERSIONS = ("v2Pro", "v2ProPlus")


def _unpack(name: str, tmp: Path) -> Path:
    out = tmp / name.removesuffix(".xz")
    out.write_bytes(lzma.decompress((DATA / name).read_bytes()))
    return out


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    tmp = tmp_path_factory.mktemp("v2pro")
    return {
        v: (
            _unpack(f"{v}_tiny.pth.xz", tmp),
            torch.load(_unpack(f"{v}_tiny_io.pt.xz", tmp), weights_only=True),
        )
        for v in VERSIONS
    }


@pytest.fixture(scope="module")
def loaded(official) -> dict[str, tuple[SynthesizerTrn, S2Config]]:
    torch.set_num_threads(1)
    return {v: load_sovits(path, precision="fp32") for v, (path, _) in official.items()}


def _rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    assert got.shape == want.shape
    return float((got - want).abs().max() / want.abs().max())


# --- parity with the reference ----------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_official_export_header_and_config(official, loaded, version):
    path, _ = official[version]
    assert path.read_bytes()[:2] == {"v2Pro": b"05", "v2ProPlus": b"06"}[version]
    model, cfg = loaded[version]
    assert cfg.version == version and cfg.uses_sv and model.uses_sv
    assert not model.has_posterior  # savee drops enc_q
    assert model.sv_emb.weight.shape == (cfg.gin_channels, SV_DIM)
    assert cfg.upsample_kernel_sizes[0] == (20 if version == "v2ProPlus" else 16)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", ["one", "two", "speed1_25"])
def test_decode_matches_reference(official, loaded, version, case):
    _, io = official[version]
    model, _ = loaded[version]
    refer, sv, speed = {
        "one": (io["spec1"], io["sv1"], 1.0),
        "two": ([io["spec1"], io["spec2"]], [io["sv1"], io["sv2"]], 1.0),
        "speed1_25": ([io["spec1"]], [io["sv1"]], 1.25),
    }[case]
    wav = model.decode(io["codes"], io["text"], refer, noise_scale=0.0, speed=speed, sv_emb=sv)
    assert _rel_err(wav, io[f"wav_{case}"]) <= REL_TOL


@pytest.mark.parametrize("version", VERSIONS)
def test_sv_embedding_changes_the_voice(official, loaded, version):
    # The fixture is built so the style path matters: swapping the embedding must break parity.
    _, io = official[version]
    model, _ = loaded[version]
    wav = model.decode(io["codes"], io["text"], io["spec1"], noise_scale=0.0, sv_emb=io["sv2"])
    assert _rel_err(wav, io["wav_one"]) > 20 * REL_TOL
    # Stacked (n_refs, 20480) is the same as a list of (1, 20480).
    stacked = torch.cat([io["sv1"], io["sv2"]], 0)
    a = model.decode(io["codes"], io["text"], [io["spec1"], io["spec2"]], noise_scale=0.0, sv_emb=stacked)
    assert _rel_err(a, io["wav_two"]) <= REL_TOL


def test_sv_embedding_errors(official, loaded):
    _, io = official["v2Pro"]
    model, _ = loaded["v2Pro"]
    with pytest.raises(SVEmbeddingError, match=r"v2Pro model needs a speaker-verification embedding") as e:
        model.decode(io["codes"], io["text"], io["spec1"])
    assert isinstance(e.value, UserError)
    with pytest.raises(SVEmbeddingError, match="1 speaker-verification embeddings for 2 reference"):
        model.decode(io["codes"], io["text"], [io["spec1"], io["spec2"]], sv_emb=[io["sv1"]])
    with pytest.raises(SVEmbeddingError, match=r"must be \(1, 20480\); got \(1, 512\)"):
        model.decode(io["codes"], io["text"], io["spec1"], sv_emb=torch.zeros(1, 512))


def _tiny_cfg(version: str) -> S2Config:
    extra = {} if version in ("v1", "v2") else {"gin_channels": 16}
    return S2Config.for_version(
        version,
        inter_channels=16,
        filter_channels=32,
        n_layers=2,
        upsample_initial_channel=32 if version != "v2ProPlus" else 48,
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3, 5]],
        **extra,
    )


def test_v2_model_refuses_an_sv_embedding():
    torch.manual_seed(0)
    model = SynthesizerTrn(_tiny_cfg("v2"), with_posterior=False).eval()
    assert not model.cfg.uses_sv
    with pytest.raises(SVEmbeddingError, match="SoVITS v2 model, which takes no speaker-verification"):
        model.decode(
            torch.zeros(1, 1, 4, dtype=torch.long),
            torch.zeros(1, 3, dtype=torch.long),
            torch.rand(1, 1025, 10),
            sv_emb=torch.zeros(1, SV_DIM),
        )


def test_config_sizes_of_the_official_files():
    pro, plus = S2Config.for_version("v2Pro"), S2Config.for_version("v2ProPlus")
    assert (pro.gin_channels, pro.p_dropout, pro.upsample_initial_channel) == (1024, 0.0, 512)
    assert (plus.upsample_initial_channel, plus.upsample_kernel_sizes) == (768, [20, 16, 8, 2, 2])
    assert S2Config.for_version("v2").gin_channels == 512
    # A v2Pro config that leaves out the sizes gets the version's (not s2.json's) values.
    assert S2Config.from_hparams({"model": {"version": "v2ProPlus"}}).gin_channels == 1024
    with pytest.raises(ValueError, match="gin_channels=512"):
        SynthesizerTrn(S2Config(version="v2", gin_channels=1024))


# --- our exports, detection --------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_save_writes_the_header_and_round_trips(tmp_path, version):
    torch.manual_seed(1)
    cfg = _tiny_cfg(version)
    model = SynthesizerTrn(cfg).eval()
    path = save_sovits_weights(model, cfg, tmp_path / "ours.pth", info="1epoch_2iteration")
    assert path.read_bytes()[:2] == {"v2Pro": b"05", "v2ProPlus": b"06"}[version]
    assert not list(tmp_path.glob("*.tmp*"))  # atomic: no temp file left
    assert detect_sovits_version(path) == version
    back, back_cfg = load_sovits(path, precision="fp32")
    assert back_cfg.version == version and back_cfg.gin_channels == 16
    codes = torch.randint(0, 1024, (1, 1, 5))
    text = torch.randint(0, 732, (1, 4))
    spec, sv = torch.rand(1, 1025, 12), torch.randn(1, SV_DIM)
    half = SynthesizerTrn(cfg, with_posterior=False)
    half.load_state_dict({k: v.half().float() for k, v in model.state_dict().items() if "enc_q" not in k})
    want = half.eval().decode(codes, text, spec, noise_scale=0.0, sv_emb=sv)
    assert torch.allclose(back.decode(codes, text, spec, noise_scale=0.0, sv_emb=sv), want, atol=1e-6)

    # The same file without its header (a plain zip, as a converted copy would be): told from the shapes.
    plain = tmp_path / "plain.pth"
    plain.write_bytes(b"PK" + path.read_bytes()[2:])
    assert detect_sovits_version(plain) == version
    assert load_sovits(plain, precision="fp32")[1].version == version


def test_v1_v2_detection_and_plain_zip(tmp_path):
    torch.manual_seed(2)
    for version in ("v1", "v2"):
        cfg = _tiny_cfg(version)
        path = save_sovits_weights(
            SynthesizerTrn(cfg, with_posterior=False), cfg, tmp_path / f"{version}.pth"
        )
        assert path.read_bytes()[:2] == b"PK"
        assert detect_sovits_version(path) == version
    # Header codes the reference writes for other versions.
    body = (tmp_path / "v2.pth").read_bytes()[2:]
    for code, version in ((b"00", "v1"), (b"02", "v3"), (b"03", "v3"), (b"04", "v4")):
        (tmp_path / "h.pth").write_bytes(code + body)
        assert detect_sovits_version(tmp_path / "h.pth") == version
    with pytest.raises(UnsupportedVersionError, match="SoVITS v4-lora file.*v3/v4 are separate"):
        load_sovits(tmp_path / "h.pth")
    # A zip whose pickle cannot be read: the reference's size rule (small -> v1).
    (tmp_path / "junk.pth").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    assert detect_sovits_version(tmp_path / "junk.pth") == "v1"
    with pytest.raises(CheckpointError, match="not found"):
        detect_sovits_version(tmp_path / "missing.pth")


def test_pretrained_files_are_known_by_md5(tmp_path, monkeypatch):
    torch.manual_seed(3)
    cfg = _tiny_cfg("v2Pro")
    path = tmp_path / "s2Gv2Pro.pth"
    # A pretrained generator: full state dict (with enc_q), no header, no config.
    torch.save({"weight": SynthesizerTrn(cfg).state_dict()}, path)
    md5 = hashlib.md5(path.read_bytes()[:8192]).hexdigest()
    monkeypatch.setitem(weights.PRETRAINED_SOVITS_MD5, md5, "v2ProPlus")
    assert detect_sovits_version(path) == "v2ProPlus"  # the MD5 wins, as in the reference
    monkeypatch.delitem(weights.PRETRAINED_SOVITS_MD5, md5)
    assert detect_sovits_version(path) == "v2Pro"
    # Without a config the sizes are the version's official ones: this tiny file does not fit them.
    with pytest.raises(CheckpointError, match="does not match the SoVITS v2Pro model"):
        load_sovits(path)


def test_header_saying_v2pro_without_sv_layers_is_refused(tmp_path):
    cfg = _tiny_cfg("v2")
    path = save_sovits_weights(SynthesizerTrn(cfg, with_posterior=False), cfg, tmp_path / "v2.pth")
    (tmp_path / "fake.pth").write_bytes(b"05" + path.read_bytes()[2:])
    with pytest.raises(CheckpointError, match="says it is SoVITS v2Pro but has no speaker-verification"):
        load_sovits(tmp_path / "fake.pth")


def _light_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as stride-0 views of one value each: a few-kB file instead of 200 MB."""
    return {k: torch.full((), 0.5).expand(v.shape) for k, v in model.state_dict().items()}


def test_v2pro_discriminator_has_eight_sub_discriminators(tmp_path):
    with torch.device("meta"):
        d = MultiPeriodDiscriminator.for_version("v2Pro")
        d2 = MultiPeriodDiscriminator()
    assert d.periods == (2, 3, 5, 7, 11, 17, 23) and len(d.discriminators) == 8
    torch.save({"weight": _light_state(d)}, tmp_path / "s2Dv2Pro.pth")
    back = load_sovits_discriminator(tmp_path / "s2Dv2Pro.pth")
    assert back.periods == d.periods
    assert (
        float(back.discriminators[7].conv_post.bias.detach()) == 0.5
    )  # the file's values, the 8th (period 23)
    with pytest.raises(UnsupportedVersionError, match="8 sub-discriminators.*a v2 one has 6"):
        load_sovits_discriminator(tmp_path / "s2Dv2Pro.pth", version="v2")
    torch.save({"weight": _light_state(d2)}, tmp_path / "s2D.pth")
    assert load_sovits_discriminator(tmp_path / "s2D.pth", version="v2").periods == (2, 3, 5, 7, 11)


def test_weight_lists_accept_v2pro_files(official, tmp_path):
    path, _ = official["v2ProPlus"]
    assert weights.quick_check(path, "sovits") is None
    assert weights.quick_check(path, "gpt") == "a SoVITS (S2) generator, not a GPT (S1) checkpoint"
    (tmp_path / "v4.pth").write_bytes(b"04" + path.read_bytes()[2:])
    assert "SoVITS v4-lora, not supported" in weights.quick_check(tmp_path / "v4.pth", "sovits")
