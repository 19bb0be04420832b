"""One CPU training step of S2 (generator + multi-period discriminator) on a tiny config."""

from __future__ import annotations

import json

import torch

from gpt_sovits.models.commons import slice_segments
from gpt_sovits.models.features import mel_spectrogram, spec_to_mel, spectrogram
from gpt_sovits.models.s2 import MultiPeriodDiscriminator, S2Config, SynthesizerTrn
from gpt_sovits.train.losses import discriminator_loss, feature_loss, generator_loss, kl_loss
from tests.support.reference_data import REFERENCE_DIR

REF = REFERENCE_DIR


def test_one_training_step_updates_generator_and_discriminator():
    torch.manual_seed(0)
    cfg = S2Config.from_hparams(json.loads((REF / "s2_tiny_config.json").read_text()))
    cfg.segment_size = 4 * cfg.hop_length  # 4 frames keep the discriminator step small
    net_g, net_d = SynthesizerTrn(cfg).train(), MultiPeriodDiscriminator().train()
    hop = cfg.hop_length
    frames = 12
    wav = 0.3 * torch.randn(1, 1, frames * hop)
    spec = spectrogram(wav.squeeze(1))  # (1, 1025, frames)
    assert spec.shape == (1, 1025, frames)
    spec_len = torch.tensor([frames])
    ssl = torch.randn(1, 768, frames)  # 50 Hz features: 2 per 25 Hz token, one per spectrogram frame
    text, text_len = torch.randint(0, 732, (1, 7)), torch.tensor([7])

    opt_g = torch.optim.AdamW(net_g.parameters(), 1e-4, betas=(0.8, 0.99), eps=1e-9)
    opt_d = torch.optim.AdamW(net_d.parameters(), 1e-4, betas=(0.8, 0.99), eps=1e-9)
    before = {k: v.clone() for k, v in net_g.state_dict().items()}

    out = net_g(ssl, spec, spec_len, text, text_len, generator=torch.Generator().manual_seed(1))
    seg = cfg.segment_frames
    assert out.wav_slice.shape == (1, 1, seg * hop)
    y = slice_segments(wav, out.ids_slice * hop, seg * hop)
    y_mel = slice_segments(spec_to_mel(spec), out.ids_slice, seg)
    y_hat_mel = mel_spectrogram(out.wav_slice.squeeze(1))
    assert y_hat_mel.shape == y_mel.shape

    # Discriminator step.
    d_real, d_fake, _, _ = net_d(y, out.wav_slice.detach())
    loss_d, _, _ = discriminator_loss(d_real, d_fake)
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()

    # Generator step.
    d_real, d_fake, fmap_r, fmap_g = net_d(y, out.wav_slice)
    loss_mel = torch.nn.functional.l1_loss(y_mel, y_hat_mel) * cfg.train["c_mel"]
    loss_kl = kl_loss(out.z_p, out.logs_q, out.m_p, out.logs_p, out.y_mask) * cfg.train["c_kl"]
    loss_gen, _ = generator_loss(d_fake)
    loss_g = loss_gen + feature_loss(fmap_r, fmap_g) + loss_mel + loss_kl + out.commit_loss
    assert all(torch.isfinite(t) for t in (loss_d, loss_g, loss_mel, loss_kl))
    assert out.commit_loss.item() == 0.0  # frozen quantizer
    opt_g.zero_grad()
    loss_g.backward()
    for name in ("enc_q.pre.weight", "flow.flows.0.enc.in_layers.0.weight_v", "dec.conv_pre.weight"):
        assert net_g.get_parameter(name).grad is not None, name
    assert net_g.get_parameter("enc_p.encoder2.attn_layers.0.conv_q.weight").grad.abs().sum() > 0
    assert net_g.ssl_proj.weight.grad is None  # frozen content path
    opt_g.step()

    after = net_g.state_dict()
    assert not torch.equal(after["dec.conv_pre.weight"], before["dec.conv_pre.weight"])
    assert torch.equal(after["ssl_proj.weight"], before["ssl_proj.weight"])
    assert torch.equal(
        after["quantizer.vq.layers.0._codebook.embed"], before["quantizer.vq.layers.0._codebook.embed"]
    )
