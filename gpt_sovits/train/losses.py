"""S2 (SoVITS) training losses: pure functions, as in the reference `module/losses.py`.

The generator step uses `45 * mel L1 + kl + feature matching + adversarial + commit`, the
discriminator step the least-squares GAN loss; `c_mel` / `c_kl` come from the train config.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def feature_loss(
    fmap_r: Sequence[Sequence[torch.Tensor]], fmap_g: Sequence[Sequence[torch.Tensor]]
) -> torch.Tensor:
    """Feature matching: 2 x sum of mean |real - fake| over every discriminator layer."""
    loss = torch.zeros(())
    for dr, dg in zip(fmap_r, fmap_g, strict=True):
        for rl, gl in zip(dr, dg, strict=True):
            loss = loss + torch.mean(torch.abs(rl.float().detach() - gl.float()))
    return loss * 2


def discriminator_loss(
    real_outputs: Sequence[torch.Tensor], fake_outputs: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, list[float], list[float]]:
    """LSGAN discriminator loss: mean (1 - D(real))^2 + mean D(fake)^2, summed over discriminators."""
    loss = torch.zeros(())
    r_losses, g_losses = [], []
    for dr, dg in zip(real_outputs, fake_outputs, strict=True):
        r = torch.mean((1 - dr.float()) ** 2)
        g = torch.mean(dg.float() ** 2)
        loss = loss + r + g
        r_losses.append(r.item())
        g_losses.append(g.item())
    return loss, r_losses, g_losses


def generator_loss(fake_outputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """LSGAN generator loss: mean (1 - D(fake))^2, summed over discriminators."""
    losses = [torch.mean((1 - dg.float()) ** 2) for dg in fake_outputs]
    return torch.stack(losses).sum(), losses


def kl_loss(
    z_p: torch.Tensor, logs_q: torch.Tensor, m_p: torch.Tensor, logs_p: torch.Tensor, z_mask: torch.Tensor
) -> torch.Tensor:
    """KL between the flowed posterior sample and the prior, averaged over valid positions.

    z_p, logs_q: (B, C, T) posterior sample (after the flow) and its log-std; m_p, logs_p: prior.
    """
    z_p, logs_q, m_p, logs_p, z_mask = (t.float() for t in (z_p, logs_q, m_p, logs_p, z_mask))
    kl = logs_p - logs_q - 0.5
    kl = kl + 0.5 * ((z_p - m_p) ** 2) * torch.exp(-2.0 * logs_p)
    return torch.sum(kl * z_mask) / torch.sum(z_mask)


def mel_l1_loss(mel_real: torch.Tensor, mel_fake: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between log-mel spectrograms (the reference weights it by c_mel = 45)."""
    return torch.nn.functional.l1_loss(mel_fake, mel_real)
