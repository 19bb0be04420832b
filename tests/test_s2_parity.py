"""S2 (SoVITS v2) parity with the official implementation on the tiny reference fixtures."""

from __future__ import annotations

import json

import pytest
import torch

from gpt_sovits.models.s2 import S2Config, SynthesizerTrn
from tests.support.reference_data import REFERENCE_DIR

REF = REFERENCE_DIR

WAV_ATOL = 1e-4


@pytest.fixture(scope="module")
def io() -> dict:
    return torch.load(REF / "s2_tiny_io.pt", weights_only=True)


@pytest.fixture(scope="module")
def model() -> SynthesizerTrn:
    cfg = S2Config.from_hparams(json.loads((REF / "s2_tiny_config.json").read_text()))
    m = SynthesizerTrn(cfg)
    ckpt = torch.load(REF / "s2_tiny_G.pth", weights_only=True)
    m.load_state_dict(ckpt["weight"], strict=True)
    return m.eval()


def test_extract_latent_codes_exact(model, io):
    codes = model.extract_latent(io["ssl"])
    assert codes.shape == (1, 1, 20)
    assert torch.equal(codes, io["codes"])


def test_intermediates(model, io):
    with torch.no_grad():
        ge = model.style(io["refer_spec"])
        torch.testing.assert_close(ge, io["ge"], atol=1e-5, rtol=0)
        quantized = model._upsample_content(model.quantizer.decode(io["codes"]))
        y_len = torch.tensor([quantized.size(2)])
        t_len = torch.tensor([io["text"].size(1)])
        x, m_p, logs_p, y_mask = model.enc_p(quantized, y_len, io["text"], t_len, ge)
        torch.testing.assert_close(x, io["enc_p_x"], atol=1e-4, rtol=0)
        torch.testing.assert_close(m_p, io["m_p"], atol=1e-5, rtol=0)
        torch.testing.assert_close(logs_p, io["logs_p"], atol=1e-5, rtol=0)
        torch.testing.assert_close(y_mask, io["y_mask"])
        z = model.flow(m_p, y_mask, g=ge, reverse=True)
        torch.testing.assert_close(z, io["z"], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("key", "refs", "speed"),
    [
        ("decode_wav", "one", 1.0),
        ("decode_wav_two_refs", "two", 1.0),
        ("decode_wav_speed1_25", "list", 1.25),
    ],
)
def test_decode_waveforms(model, io, key, refs, speed):
    refer = {
        "one": io["refer_spec"],
        "two": [io["refer_spec"], io["refer_spec2"]],
        "list": [io["refer_spec"]],
    }[refs]
    wav = model.decode(io["codes"], io["text"], refer, noise_scale=0.0, speed=speed)
    expected = io[key]
    assert wav.shape == expected.shape
    err = (wav - expected).abs().max().item()
    assert err < WAV_ATOL, f"{key}: max abs error {err:.3g}"


def test_noise_scale_changes_output_and_generator_is_reproducible(model, io):
    a = model.decode(
        io["codes"], io["text"], io["refer_spec"], 0.5, generator=torch.Generator().manual_seed(0)
    )
    b = model.decode(
        io["codes"], io["text"], io["refer_spec"], 0.5, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(a, b)
    assert (a - io["decode_wav"]).abs().max() > 1e-3


def test_decode_rejects_empty_inputs(model, io):
    with pytest.raises(ValueError, match="no semantic tokens"):
        model.decode(io["codes"][..., :0], io["text"], io["refer_spec"])
    with pytest.raises(ValueError, match="phone"):
        model.decode(io["codes"], io["text"][:, :0], io["refer_spec"])
