"""Conditional flow matching (`cfm`) of the v3/v4 S2: a DiT turns noise into normalised mel frames.

Sampling (Euler, `n_timesteps` equal steps from t=0 to 1), as the reference's `CFM.inference`:

    x0 = noise * temperature (B, mel, T); the first `prompt_len` frames of x are held at 0 and the
    prompt mel is given as `cond` there; at every step x += dt * v(x, cond, mu, t, dt)
    (v mixed with the unconditional branch when inference_cfg_rate > 0).

`mu` (B, T, 512) is the per-frame conditioning from `SynthesizerTrnV3.decode_encp` (prompt frames
first). Mel values are normalised to [-1, 1] by `norm_spec` (spec_min -12, spec_max 2);
`denorm_spec` undoes it before the vocoder.

Training (`forward`) follows the reference: a random t per item, the prompt part held out of the
loss, and with probability 0.3 a two-step shortcut target (d in 1/4 .. 1/128).
"""

from __future__ import annotations

import random

import torch
from torch import nn

from gpt_sovits.models.dit import DiT

SPEC_MIN = -12.0  # log-mel range the CFM was trained on (TTS.py spec_min / spec_max)
SPEC_MAX = 2.0
SHORTCUT_PROBABILITY = 0.3  # share of training items with the two-step (shortcut) target


def norm_spec(x: torch.Tensor) -> torch.Tensor:
    """log-mel -> the CFM's [-1, 1] range."""
    return (x - SPEC_MIN) / (SPEC_MAX - SPEC_MIN) * 2 - 1


def denorm_spec(x: torch.Tensor) -> torch.Tensor:
    """The CFM's [-1, 1] range -> log-mel for the vocoder."""
    return (x + 1) / 2 * (SPEC_MAX - SPEC_MIN) + SPEC_MIN


class CFM(nn.Module):
    """Flow-matching wrapper around the DiT `estimator` (names as the reference: `cfm.estimator.*`)."""

    def __init__(self, in_channels: int, dit: DiT) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.estimator = dit

    @torch.inference_mode()
    def inference(
        self,
        mu: torch.Tensor,
        x_lens: torch.Tensor,
        prompt: torch.Tensor,
        n_timesteps: int,
        temperature: float = 1.0,
        inference_cfg_rate: float = 0.0,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Sample mel frames.

        mu: (B, T, 512) conditioning; x_lens: (B,) or (1,) frames; prompt: (B, mel, Tp) normalised
        prompt mel (Tp <= T); n_timesteps: Euler steps (v3 default 32, v4 8).
        `noise` (B, mel, T) replaces the initial draw (fixed-noise parity); otherwise it is drawn with
        `generator` (seeded synthesis) or the global RNG, as the reference does.
        Returns (B, mel, T) normalised mel; the prompt frames are 0.
        """
        if n_timesteps < 1:
            raise ValueError(f"n_timesteps must be at least 1, got {n_timesteps}")
        b, t_len = mu.size(0), mu.size(1)
        shape = (b, self.in_channels, t_len)
        if noise is None and generator is None:  # the reference's draw: global RNG, mu's device and dtype
            noise = torch.randn(shape, device=mu.device, dtype=mu.dtype)
        elif noise is None:  # seeded: the same numbers on every device (a CPU generator)
            noise = torch.randn(shape, generator=generator, dtype=mu.dtype)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"noise must have shape {shape}, got {tuple(noise.shape)}")
        x = noise.to(device=mu.device, dtype=mu.dtype) * temperature
        prompt_len = prompt.size(-1)
        prompt_x = torch.zeros_like(x)
        prompt_x[..., :prompt_len] = prompt[..., :prompt_len]
        x[..., :prompt_len] = 0
        mu = mu.transpose(2, 1)  # (B, 512, T)
        d = 1 / n_timesteps
        d_tensor = torch.full((b,), d, device=x.device, dtype=mu.dtype)
        t = 0.0  # accumulated as a Python float, as the reference
        text_cache = text_cfg_cache = dt_cache = None
        for _ in range(n_timesteps):
            t_tensor = torch.full((b,), t, device=x.device, dtype=mu.dtype)
            v, text_cache, dt_cache = self.estimator(
                x, prompt_x, x_lens, t_tensor, d_tensor, mu, text_cache=text_cache, dt_cache=dt_cache
            )
            if inference_cfg_rate > 1e-5:
                neg, text_cfg_cache, _ = self.estimator(
                    x,
                    prompt_x,
                    x_lens,
                    t_tensor,
                    d_tensor,
                    mu,
                    drop_audio_cond=True,
                    drop_text=True,
                    text_cache=text_cfg_cache,
                    dt_cache=dt_cache,
                )
                v = v + (v - neg) * inference_cfg_rate
            x = x + d * v
            t = t + d
            x[:, :, :prompt_len] = 0
        return x

    def forward(
        self,
        x1: torch.Tensor,
        x_lens: torch.Tensor,
        prompt_lens: torch.Tensor,
        mu: torch.Tensor,
        use_grad_ckpt: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Training loss (MSE of the velocity past each item's prompt).

        x1: (B, mel, T) target normalised mel; x_lens, prompt_lens: (B,); mu: (B, 512, T).
        `generator` seeds t, the noise and the shortcut draw (None: global RNGs, as the reference).
        """
        b = x1.shape[0]
        dev = x1.device
        t = torch.rand((b,), generator=generator, dtype=x1.dtype).to(dev)
        x0 = torch.randn(x1.shape, generator=generator, dtype=x1.dtype).to(dev)
        vt = x1 - x0
        xt = x0 + t[:, None, None] * vt
        dt = torch.zeros_like(t)
        prompt = torch.zeros_like(x1)
        for i in range(b):
            prompt[i, :, : prompt_lens[i]] = x1[i, :, : prompt_lens[i]]
            xt[i, :, : prompt_lens[i]] = 0
        draw = random.random() if generator is None else float(torch.rand((), generator=generator))
        if draw < SHORTCUT_PROBABILITY:
            base = torch.randint(2, 8, (b,), generator=generator).to(dev)
            d = 1 / torch.pow(2, base)
            d_input = d.clone()
            d_input[d_input < 1e-2] = 0
            with torch.no_grad():
                v1 = self.estimator(xt, prompt, x_lens, t, d_input, mu, use_grad_ckpt)[0]
                x_mid = xt + d[:, None, None] * v1
                v2 = self.estimator(x_mid, prompt, x_lens, t + d, d_input, mu, use_grad_ckpt)[0]
            vt = (v1 + v2) / 2
            dt = 2 * d
        vt_pred = self.estimator(xt, prompt, x_lens, t, dt, mu, use_grad_ckpt)[0]
        loss = x1.new_zeros(())
        for i in range(b):
            p, n = int(prompt_lens[i]), int(x_lens[i])
            loss = loss + torch.mean((vt_pred[i, :, p:n] - vt[i, :, p:n]) ** 2)
        return loss / b
