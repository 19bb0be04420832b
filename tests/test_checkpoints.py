"""Checkpoint reading/writing: official SoVITS/GPT formats, version headers, bad and unsafe files."""

from __future__ import annotations

import json
import os
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from gpt_sovits.models.s2 import MultiPeriodDiscriminator, S2Config
from gpt_sovits.models.weights import (
    CheckpointError,
    UnsafeCheckpointError,
    UnsupportedVersionError,
    WrongModelTypeError,
    load_gpt,
    load_sovits,
    load_sovits_discriminator,
    read_checkpoint,
    save_gpt_weights,
    save_sovits_weights,
)
from tests.support.reference_data import REFERENCE_DIR

REF = REFERENCE_DIR
S2_WEIGHTS = REF / "s2_tiny_weights.pth"
S2_G = REF / "s2_tiny_G.pth"
S1_CKPT = REF / "s1_tiny.ckpt"


@pytest.fixture(scope="module")
def io() -> dict:
    return torch.load(REF / "s2_tiny_io.pt", weights_only=True)


@pytest.fixture(scope="module")
def tiny_keys() -> list[list[str]]:
    return [line.split("\t") for line in (REF / "s2_tiny_keys.tsv").read_text().splitlines()[1:]]


def _decode(model, io) -> torch.Tensor:
    return model.decode(io["codes"], io["text"], io["refer_spec"], noise_scale=0.0)


def _with_header(src: Path, dst: Path, code: bytes) -> Path:
    data = src.read_bytes()
    assert data[:2] == b"PK"
    dst.write_bytes(code + data[2:])
    return dst


# --- official SoVITS export (pickled utils.HParams) --------------------------------------------


def test_official_export_reads_without_unpickling_hparams_class(tiny_keys):
    raw = read_checkpoint(S2_WEIGHTS)
    content = raw.content
    assert list(content) == ["weight", "config", "info"]
    assert content["info"] == "8epoch_64iteration"
    # HParams became plain dicts, with the JSON's sections and the two fields get_hparams adds.
    config = content["config"]
    assert type(config) is dict and type(config["model"]) is dict
    expected = json.loads((REF / "s2_tiny_config.json").read_text())
    for section in ("train", "data", "model"):
        assert config[section] == expected[section]
    assert config["pretrain"] is None and config["resume_step"] is None
    weight = content["weight"]
    expected_keys = {row[0]: json.loads(row[1]) for row in tiny_keys if row[2] == "1"}
    assert {k: list(v.shape) for k, v in weight.items()} == expected_keys
    assert len(weight) == 529
    assert all(v.dtype == torch.float16 for v in weight.values())
    assert not any(k.startswith("enc_q.") for k in weight)


def test_load_sovits_export_decodes_like_reference(io):
    model, cfg = load_sovits(S2_WEIGHTS)
    assert not model.training
    assert not model.has_posterior  # exports drop enc_q
    assert cfg.version == "v2" and cfg.inter_channels == 32 and cfg.upsample_initial_channel == 32
    assert torch.equal(model.extract_latent(io["ssl"]), io["codes"])
    assert (_decode(model, io) - io["decode_wav"]).abs().max() < 1e-4


def test_load_pretrained_generator_with_enc_q(io, tiny_keys):
    model, cfg = load_sovits(S2_G)
    assert model.has_posterior
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == {
        row[0]: json.loads(row[1]) for row in tiny_keys
    }
    assert (_decode(model, io) - io["decode_wav"]).abs().max() < 1e-4


def test_hparams_round_trip():
    hps = json.loads((REF / "s2_tiny_config.json").read_text())
    assert S2Config.from_hparams(hps).to_hparams() == hps
    cfg = S2Config.from_hparams(hps)
    assert S2Config.from_dict(cfg.to_dict()) == cfg


# --- version headers ----------------------------------------------------------------------------


def test_v2_version_header_loads(tmp_path, io):
    path = _with_header(S2_WEIGHTS, tmp_path / "v2_header.pth", b"01")
    raw = read_checkpoint(path)
    assert raw.header_version == "v2"
    model, _ = load_sovits(path)
    assert (_decode(model, io) - io["decode_wav"]).abs().max() < 1e-4


@pytest.mark.parametrize(
    ("code", "name"),
    [(b"02", "v3"), (b"03", "v3-lora"), (b"04", "v4-lora")],
)
def test_newer_versions_are_refused_by_header(tmp_path, code, name):
    path = _with_header(S2_WEIGHTS, tmp_path / "newer.pth", code)
    with pytest.raises(UnsupportedVersionError, match=f"SoVITS {name} file.*v3/v4 are separate models"):
        load_sovits(path)


@pytest.mark.parametrize(("code", "name"), [(b"05", "v2Pro"), (b"06", "v2ProPlus")])
def test_v2pro_header_on_v2_weights_is_refused(tmp_path, code, name):
    # tests/test_s2_v2pro.py loads real v2Pro/v2ProPlus files; a v2 file with their header is mislabelled.
    path = _with_header(S2_WEIGHTS, tmp_path / "mislabelled.pth", code)
    with pytest.raises(CheckpointError, match=f"says it is SoVITS {name} but has no speaker-verification"):
        load_sovits(path)


def test_v2pro_weights_without_header_are_read_by_their_tensors(tmp_path):
    ckpt = torch.load(S2_G, weights_only=True)
    ckpt["weight"]["sv_emb.weight"] = torch.zeros(4, 4, dtype=torch.float16)
    path = tmp_path / "pro.pth"
    torch.save(ckpt, path)
    # Read as v2Pro (sv_emb), then refused because the rest of this v2 file does not fit a v2Pro model.
    with pytest.raises(CheckpointError, match="does not match the SoVITS v2Pro model"):
        load_sovits(path)


# --- wrong files ----------------------------------------------------------------------------------


def test_gpt_given_as_sovits_and_reverse():
    with pytest.raises(WrongModelTypeError, match=r"is a GPT \(S1\) checkpoint; expected a SoVITS"):
        load_sovits(S1_CKPT)
    with pytest.raises(WrongModelTypeError, match=r"is a SoVITS \(S2\) generator; expected a GPT"):
        load_gpt(S2_WEIGHTS)


def test_discriminator_file(tmp_path):
    d = MultiPeriodDiscriminator()
    sd = d.state_dict()
    # Reference figures for the v1/v2 s2D: 111 tensors, 46.7 M elements.
    assert len(sd) == 111
    assert round(sum(v.numel() for v in sd.values()) / 1e6, 1) == 46.7
    path = tmp_path / "s2D_test.pth"
    torch.save({"weight": {k: v.half() for k, v in sd.items()}}, path)
    with pytest.raises(WrongModelTypeError, match="discriminator"):
        load_sovits(path)
    loaded = load_sovits_discriminator(path)
    torch.testing.assert_close(
        loaded.state_dict()["discriminators.1.convs.0.weight_v"],
        sd["discriminators.1.convs.0.weight_v"].half().float(),
    )


def test_truncated_empty_and_foreign_files(tmp_path):
    data = S2_G.read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_sovits(tmp_path / "trunc.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty or truncated"):
        load_sovits(tmp_path / "empty.pth")
    (tmp_path / "text.pth").write_text("hello, not a model")
    with pytest.raises(CheckpointError, match="not a PyTorch weight file"):
        load_gpt(tmp_path / "text.pth")
    with pytest.raises(CheckpointError, match="not found"):
        load_sovits(tmp_path / "missing.pth")


def test_zip_without_weights_is_not_a_model(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"something": [1, 2, 3]}, path)
    assert zipfile.is_zipfile(path)
    with pytest.raises(WrongModelTypeError, match="not a GPT-SoVITS weight file"):
        load_sovits(path)


# --- unsafe pickles -------------------------------------------------------------------------------


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"weight": OrderedDict(), "config": _Payload(marker)}, path)
    for loader in (load_sovits, load_gpt, read_checkpoint):
        with pytest.raises(UnsafeCheckpointError, match=r"references (posix|os)\.system"):
            loader(path)
    assert not marker.exists()
    # The same file with version header bytes goes through the same gate.
    with pytest.raises(UnsafeCheckpointError):
        load_sovits(_with_header(path, tmp_path / "evil_hdr.pth", b"01"))
    assert not marker.exists()
    # Control: the payload is live, an unrestricted load would have run it.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_other_globals_are_refused(tmp_path):
    path = tmp_path / "eval.pth"
    torch.save({"weight": OrderedDict(), "config": {"x": print}}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"(__builtin__|builtins)\.print"):
        read_checkpoint(path)


# --- legacy / newer weight-norm names ------------------------------------------------------------


def test_parametrization_weight_norm_names_are_mapped(tmp_path, io):
    ckpt = read_checkpoint(S2_WEIGHTS).content  # HParams already turned into plain dicts
    renamed = OrderedDict()
    for k, v in ckpt["weight"].items():
        k = k.replace(".weight_g", ".parametrizations.weight.original0")
        k = k.replace(".weight_v", ".parametrizations.weight.original1")
        renamed[k] = v
    assert any("parametrizations" in k for k in renamed)
    ckpt["weight"] = renamed
    path = tmp_path / "param.pth"
    torch.save(ckpt, path)
    model, _ = load_sovits(path)
    assert (_decode(model, io) - io["decode_wav"]).abs().max() < 1e-4


# --- savers ---------------------------------------------------------------------------------------


def test_save_sovits_weights_round_trip(tmp_path, io):
    model, cfg = load_sovits(S2_G)
    path = save_sovits_weights(model, cfg, tmp_path / "out" / "voice_e4_s100.pth", info="4epoch_100iteration")
    content = torch.load(path, weights_only=True)
    assert list(content) == ["weight", "config", "info"]
    assert content["info"] == "4epoch_100iteration"
    assert all(v.dtype == torch.float16 for v in content["weight"].values())
    assert not any(k.startswith("enc_q.") for k in content["weight"])
    assert len(content["weight"]) == 529
    assert content["config"]["model"]["inter_channels"] == 32
    reloaded, cfg2 = load_sovits(path)
    assert cfg2 == cfg
    assert torch.equal(_decode(reloaded, io), _decode(model, io))


def test_load_gpt_and_save_gpt_weights_round_trip(tmp_path):
    model, cfg = load_gpt(S1_CKPT, precision="fp32")  # exact weights (the default is the CPU fast path)
    assert not model.training
    assert cfg.hidden_dim == 64 and cfg.n_layer == 2
    original = torch.load(S1_CKPT, weights_only=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, original["weight"]["model." + k].float()), k
    path = save_gpt_weights(model, cfg, tmp_path / "voice-e3.ckpt", info="GPT-e3", config=original["config"])
    content = torch.load(path, weights_only=True)
    assert content["info"] == "GPT-e3"
    assert set(content["weight"]) == set(original["weight"])
    assert all(v.dtype == torch.float16 for v in content["weight"].values())
    assert content["config"] == original["config"]
    reloaded, cfg2 = load_gpt(path, precision="fp32")
    assert cfg2 == cfg
    for k, v in reloaded.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k


def test_saver_refuses_non_plain_config(tmp_path):
    model, cfg = load_gpt(S1_CKPT, precision="fp32")
    with pytest.raises(TypeError, match="only plain containers"):
        save_gpt_weights(model, cfg, tmp_path / "x.ckpt", config={"data": {"bad": object()}})
    assert not (tmp_path / "x.ckpt").exists()


def test_legacy_non_zip_format_loads_and_is_gated(tmp_path):
    ckpt = torch.load(S1_CKPT, weights_only=True)
    legacy = tmp_path / "legacy.ckpt"
    torch.save(ckpt, legacy, _use_new_zipfile_serialization=False)
    assert legacy.read_bytes()[:2] != b"PK"
    model, cfg = load_gpt(legacy)
    assert cfg.n_layer == 2
    marker = tmp_path / "pwned"
    evil = tmp_path / "legacy_evil.ckpt"
    torch.save(
        {"weight": OrderedDict(), "config": _Payload(marker)}, evil, _use_new_zipfile_serialization=False
    )
    with pytest.raises(UnsafeCheckpointError):
        load_gpt(evil)
    assert not marker.exists()


# --- the cheap check behind the default weights -----------------------------------------------------------


def test_quick_check_tells_loadable_files_without_reading_the_weights(tmp_path):
    from gpt_sovits.models.weights import quick_check

    assert quick_check(S1_CKPT, "gpt") is None and quick_check(S2_WEIGHTS, "sovits") is None
    assert quick_check(_with_header(S2_WEIGHTS, tmp_path / "v2.pth", b"01"), "sovits") is None
    assert "not supported" in quick_check(_with_header(S2_WEIGHTS, tmp_path / "v3.pth", b"02"), "sovits")
    assert quick_check(S1_CKPT, "sovits") == "a GPT (S1) checkpoint, not a SoVITS (S2) generator"
    data = S1_CKPT.read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    assert "truncated" in quick_check(tmp_path / "cut.ckpt", "gpt")
    with zipfile.ZipFile(S1_CKPT) as src, zipfile.ZipFile(tmp_path / "gap.ckpt", "w") as dst:
        for name in src.namelist():
            if not name.endswith("/data/0"):  # one tensor record lost
                dst.writestr(name, src.read(name))
    assert "records are missing" in quick_check(tmp_path / "gap.ckpt", "gpt")
    (tmp_path / "empty.ckpt").write_bytes(b"")
    (tmp_path / "dir.ckpt").mkdir()
    assert quick_check(tmp_path / "empty.ckpt", "gpt") == "empty file (0 bytes)"
    assert quick_check(tmp_path / "dir.ckpt", "gpt") == "a folder, not a weights file"
    marker = tmp_path / "pwned"
    torch.save({"weight": OrderedDict(), "config": _Payload(marker)}, tmp_path / "evil.ckpt")
    assert "refused" in quick_check(tmp_path / "evil.ckpt", "gpt") and not marker.exists()


def test_quick_check_is_cached_by_mtime_and_size(tmp_path):
    from gpt_sovits.models import weights

    path = tmp_path / "me.ckpt"
    path.write_bytes(S1_CKPT.read_bytes())
    assert weights.quick_check(path, "gpt") is None
    before = weights._quick_check_cached.cache_info().hits
    assert weights.quick_check(path, "gpt") is None
    assert weights._quick_check_cached.cache_info().hits == before + 1
    path.write_bytes(S1_CKPT.read_bytes()[:100])  # replaced: checked again
    assert "truncated" in weights.quick_check(path, "gpt")


def test_a_folder_named_like_weights_is_said_to_be_a_folder(tmp_path):
    (tmp_path / "x.ckpt").mkdir()
    with pytest.raises(CheckpointError, match=r"x\.ckpt is a folder, not a weights file"):
        load_gpt(tmp_path / "x.ckpt")
