"""The v2Pro speaker-verification model: reference parity (small variant), official key names, errors."""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from gpt_sovits.models.sv import (
    SV_DIM,
    ERes2NetV2,
    SpeakerVerifier,
    SVConfig,
    SVInputError,
    SVModelMismatchError,
    SVModelNotFoundError,
    load_sv,
    sv_embedding_of_wav32k,
)
from gpt_sovits.models.weights import CheckpointError, UnsafeCheckpointError

DATA = Path(__file__).parent / "data" / "sv"


def _small_config() -> SVConfig:
    args = json.loads((DATA / "small_config.json").read_text())  # the reference constructor's arguments
    return SVConfig(
        num_blocks=tuple(args["num_blocks"]),
        m_channels=args["m_channels"],
        feat_dim=args["feat_dim"],
        embedding_size=args["embedding_size"],
        base_width=args["baseWidth"],
        scale=args["scale"],
        expansion=args["expansion"],
    )


@pytest.fixture(scope="module")
def small() -> SpeakerVerifier:
    torch.set_num_threads(1)
    return load_sv(DATA / "small_sv.ckpt", config=_small_config())


@pytest.fixture(scope="module")
def ref_io() -> dict[str, torch.Tensor]:
    return torch.load(DATA / "small_io.pt", weights_only=True)


def test_small_variant_matches_reference(small, ref_io):
    wav, expected = ref_io["wav16k"], ref_io["embedding"]  # (2, 8000), (2, 960)
    got = small.embed(wav)
    assert got.shape == expected.shape == (2, _small_config().embed_dim)
    assert got.dtype == torch.float32
    rel = ((got - expected).abs().max() / expected.abs().max()).item()
    assert rel <= 1e-5, rel
    # The file's weights really are the ones in use (strict load, nothing left at its initial value).
    file_sd = torch.load(DATA / "small_sv.ckpt", weights_only=True)
    for name, tensor in small.model.state_dict().items():
        assert torch.equal(tensor, file_sd[name]), name


def test_loaded_model_is_eval_fp32(small):
    assert not small.training and not small.model.training
    assert all(p.dtype == torch.float32 for p in small.parameters())


def test_fp16_file_loads_as_fp32(tmp_path, ref_io):
    sd = torch.load(DATA / "small_sv.ckpt", weights_only=True)
    half = OrderedDict((k, v.half() if v.is_floating_point() else v) for k, v in sd.items())
    torch.save(half, tmp_path / "half.ckpt")
    sv = load_sv(tmp_path / "half.ckpt", config=_small_config())
    assert all(p.dtype == torch.float32 for p in sv.parameters())
    got, expected = sv.embed(ref_io["wav16k"]), ref_io["embedding"]
    assert ((got - expected).abs().max() / expected.abs().max()).item() < 2e-2  # fp16-rounded weights


def test_batch_of_two_equals_two_singles(small):
    wav = 0.2 * torch.randn(2, 6400, generator=torch.Generator().manual_seed(3))
    both = small.embed(wav)
    singles = torch.cat([small.embed(wav[:1]), small.embed(wav[1:])])
    torch.testing.assert_close(both, singles, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(both[0], both[1])  # different clips, different embeddings
    torch.testing.assert_close(small.embed(wav[0]), singles[:1])  # (N,) is one clip


def test_embedding_length_and_input_errors(small):
    assert SV_DIM == SVConfig().embed_dim == 20480
    wav = 0.1 * torch.randn(1, 400, generator=torch.Generator().manual_seed(4))
    assert small.embed(wav).shape == (1, 960)  # one fbank frame is enough
    with pytest.raises(SVInputError, match=r"too short.*399 samples"):
        small.embed(wav[:, :399])
    with pytest.raises(SVInputError, match=r"\(batch, samples\).*\(1, 1, 400\)"):
        small.embed(wav[None])
    with pytest.raises(SVInputError, match="torch tensor"):
        small.embed(wav.numpy())


def test_full_size_has_the_official_key_names_and_shapes():
    expected = [line.split("\t") for line in (DATA / "full_keys.txt").read_text().splitlines()]
    sd = ERes2NetV2(SVConfig()).state_dict()
    got = [[k, "x".join(map(str, v.shape)), str(v.dtype).removeprefix("torch.")] for k, v in sd.items()]
    assert got == expected
    assert sum(v.numel() for v in sd.values()) == 53_588_221


def test_full_size_embeds_to_20480(tmp_path):
    # The default config is the official w24s4ep4 model; a short clip keeps this quick.
    torch.manual_seed(0)
    path = tmp_path / "pretrained_eres2netv2w24s4ep4.ckpt"
    torch.save(ERes2NetV2().state_dict(), path)
    sv = load_sv(path)
    emb = sv.embed(0.1 * torch.randn(1, 4000))
    assert emb.shape == (1, SV_DIM) and torch.isfinite(emb).all()


def test_front_door_exports_load_sv():
    import gpt_sovits

    assert gpt_sovits.load_sv is load_sv
    assert "load_sv" in gpt_sovits.__all__


def test_wav32k_helper_resamples_as_the_reference(small):
    import torchaudio

    rng = np.random.default_rng(5)
    audio32k = (0.2 * rng.standard_normal(16000)).astype(np.float32)  # 0.5 s
    got = sv_embedding_of_wav32k(small, audio32k)
    assert got.shape == (1, 960) and got.device.type == "cpu"
    # The reference (2-get-sv.py, TTS.py): torchaudio.transforms.Resample(32000, 16000), then the model.
    wav16k = torchaudio.transforms.Resample(32000, 16000)(torch.from_numpy(audio32k)[None])
    assert wav16k.shape == (1, 8000)
    torch.testing.assert_close(got, small.embed(wav16k), rtol=1e-4, atol=1e-4)
    with pytest.raises(SVInputError, match="mono 32 kHz"):
        sv_embedding_of_wav32k(small, np.zeros((2, 16000), np.float32))


# --- files that are not the SV model -------------------------------------------------------------


def test_missing_file_says_where_it_goes_and_where_it_comes_from(tmp_path):
    path = tmp_path / "sv" / "pretrained_eres2netv2w24s4ep4.ckpt"
    with pytest.raises(SVModelNotFoundError) as caught:
        load_sv(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"pretrained download sv-eres2netv2 --model-dir {tmp_path}" in message
    assert "lj1995/GPT-SoVITS" in message and "sv/pretrained_eres2netv2w24s4ep4.ckpt" in message
    assert isinstance(caught.value, FileNotFoundError)


def _tiny_s2_export(path: Path, version_code: bytes | None = None) -> Path:
    weight = {"enc_p.text_embedding.weight": torch.zeros(4, 4, dtype=torch.float16)}
    if version_code:
        weight["sv_emb.weight"] = torch.zeros(4, 4, dtype=torch.float16)
    torch.save({"weight": weight, "config": {"model": {}}, "info": "1epoch"}, path)
    if version_code:
        data = path.read_bytes()
        path.write_bytes(version_code + data[2:])
    return path


def test_sovits_or_gpt_given_as_sv_is_named(tmp_path):
    with pytest.raises(
        SVModelMismatchError, match=r"is a SoVITS \(S2\) generator, not the speaker-verification"
    ):
        load_sv(_tiny_s2_export(tmp_path / "s2.pth"))
    with pytest.raises(SVModelMismatchError, match=r"v2Pro.*not the speaker-verification model"):
        load_sv(_tiny_s2_export(tmp_path / "pro.pth", b"05"))
    gpt = tmp_path / "gpt.ckpt"
    torch.save(
        {"weight": {"model.ar_text_embedding.word_embeddings.weight": torch.zeros(2, 2)}, "config": {}}, gpt
    )
    with pytest.raises(
        SVModelMismatchError, match=r"is a GPT \(S1\) checkpoint, not the speaker-verification"
    ):
        load_sv(gpt)


def test_sv_file_of_other_sizes_is_explained(tmp_path):
    # The small file read as the full-size model: names match, shapes do not.
    with pytest.raises(
        SVModelMismatchError, match=r"not the ERes2NetV2 speaker-verification model.*other shapes"
    ):
        load_sv(DATA / "small_sv.ckpt")
    # A state dict missing a tensor and carrying a foreign one.
    sd = torch.load(DATA / "small_sv.ckpt", weights_only=True)
    del sd["layer3_ds.weight"]
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "odd.ckpt")
    with pytest.raises(
        SVModelMismatchError, match=r"1 tensors missing \(layer3_ds\.weight\); 1 unexpected \(extra"
    ):
        load_sv(tmp_path / "odd.ckpt", config=_small_config())


def test_file_with_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.ckpt"
    torch.save({"conv1.weight": torch.zeros(1), "x": Payload()}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"(posix|os)\.system"):
        load_sv(path)
    assert not marker.exists()


def test_damaged_file_is_a_clear_error(tmp_path):
    path = tmp_path / "cut.ckpt"
    path.write_bytes((DATA / "small_sv.ckpt").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"cut\.ckpt.*(truncated|damaged)"):
        load_sv(path, config=_small_config())


def test_state_dict_wrapped_in_a_training_checkpoint_loads(tmp_path, ref_io):
    sd = torch.load(DATA / "small_sv.ckpt", weights_only=True)
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "wrapped.ckpt")
    sv = load_sv(tmp_path / "wrapped.ckpt", config=_small_config())
    got, expected = sv.embed(ref_io["wav16k"]), ref_io["embedding"]
    # The parity test's measure (error relative to the peak): element-wise 1e-5 failed once under load by
    # 1.5e-5 on an element of 2.9 (oneDNN's order of summation varies).
    assert ((got - expected).abs().max() / expected.abs().max()).item() <= 1e-5
