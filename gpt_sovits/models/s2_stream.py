"""Streaming S2: one piece's audio, chunk by chunk, while S1 is still generating its tokens (v1-v2ProPlus).

The reference's ``streaming_mode`` (``TTS.py``, ``SynthesizerTrn.decode_streaming``) runs the prior over all
tokens so far at every chunk, then the flow and the decoder over the new tokens plus a few overlapping ones
only, and joins the chunks by a latent cross-fade and a SOLA search. Here, at every chunk:

- the prior (``SynthesizerTrn.prior``: its attention sees the whole past) runs over all tokens so far, and
  the last ``lookahead`` tokens are held back: the frames given out have that much future in their prior;
- the flow and the decoder run over the chunk with their whole reach of context on either side where there
  are frames (``flow_reach`` + ``decoder_reach``), and each frame's noise is drawn once and reused by every
  window it falls in. On the left a part has all the context a whole decode has; on the right it sees the
  end of the tokens so far, which the held-back tokens keep away from it (with a lookahead covering the
  reach, a part is what a whole decode of the same prior gives there; 4 tokens keep 56 dB on full-size v2);
- each chunk is decoded ``crossfade`` frames further than it is given out, and the next chunk fades in over
  those frames (complementary raised-cosine gains: both sit on the same frame grid, so no search is needed).

The first part comes after ``part`` tokens (plus the lookahead); later parts double in size up to
STREAM_MAX_PART tokens (``due`` says when to feed next). The last chunk (S1 done) gives out every
remaining frame, so the chunks add up to the whole decode's length
(2 frames per token, ``int(2 * tokens / speed) + 1`` at another speed), ``hop`` samples per frame.
"""

from __future__ import annotations

import math

import torch

from gpt_sovits.models.s2 import SynthesizerTrn, decoder_reach, flow_reach

STREAM_LOOKAHEAD = 4  # tokens (160 ms) generated after a chunk's last token before it is decoded
STREAM_CROSSFADE = 4  # latent frames (80 ms) over which consecutive chunks are cross-faded
# Parts grow from the first (the request's size) by doubling up to this many tokens: fewer joins and less
# context decoded twice once the player has audio. 48 tokens (96 frames + the cross-fade) fit the core of
# one tile of the CPU fast decoder (fastpath.FAST_DECODER_TILE).
STREAM_MAX_PART = 48


class StreamingDecode:
    """The audio of one piece from its growing token sequence: ``feed`` it all tokens so far.

    text (1, Tt) target phone ids and ge (1, gin, 1) the style (``SynthesizerTrn.reference_style``), on the
    model's device; ``generator`` draws the noise (CPU, as ``decode``'s). Outputs are (samples,) fp32 CPU.
    """

    def __init__(
        self,
        model: SynthesizerTrn,
        text: torch.Tensor,
        ge: torch.Tensor,
        noise_scale: float = 0.5,
        speed: float = 1.0,
        generator: torch.Generator | None = None,
        part: int = 16,
        lookahead: int = STREAM_LOOKAHEAD,
        crossfade: int = STREAM_CROSSFADE,
    ) -> None:
        if part < 1:
            raise ValueError(f"a part needs at least one token, got {part}")
        if lookahead < 0 or crossfade < 0:
            raise ValueError(f"lookahead and crossfade must be >= 0, got {lookahead} and {crossfade}")
        if crossfade > 2 * lookahead:
            raise ValueError(
                f"a cross-fade of {crossfade} frames needs a lookahead of {math.ceil(crossfade / 2)} tokens"
            )
        self.model, self.text, self.ge = model, text, ge
        self.noise_scale, self.speed, self.generator = noise_scale, speed, generator
        self.lookahead, self.crossfade = lookahead, crossfade
        self.part, self.largest = part, max(part, STREAM_MAX_PART)
        self.due = part + lookahead  # tokens at which the next part is settled: feed then
        self.context = decoder_reach(model.dec)
        self.flow_context = flow_reach(model.flow)
        self.emitted = 0  # output frames given out so far
        # The audio of frames [emitted, emitted + crossfade), decoded last time.
        self.tail: torch.Tensor | None = None
        self.noise = torch.zeros(1, model.cfg.inter_channels, 0)  # (1, C, frames drawn so far), CPU
        # The phones' encoding, computed at the first part and reused by the prior at every later one.
        self.text_memo: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] = {}

    def ready(self, n_tokens: int) -> int:
        """Output frames that may be given out once ``n_tokens`` tokens exist (S1 not done yet)."""
        return int(2 * max(0, n_tokens - self.lookahead) / self.speed)

    def _noise(self, frames: int) -> torch.Tensor:
        """(1, C, frames): each frame's noise drawn once, in order, frame by frame."""
        have = self.noise.size(-1)
        if frames > have:
            fresh = torch.randn(frames - have, self.noise.size(1), generator=self.generator)  # (new, C)
            self.noise = torch.cat([self.noise, fresh.t().unsqueeze(0)], dim=-1)
        return self.noise[..., :frames]

    @torch.no_grad()
    def feed(self, tokens: torch.Tensor, final: bool) -> torch.Tensor:
        """All tokens so far (T,) int64 -> the audio of the frames that are now settled (maybe none).

        ``final``: S1 is done, every remaining frame is given out (``tokens`` must then be non-empty).
        """
        model, dev = self.model, self.text.device
        self.due = tokens.numel() + self.part
        if tokens.numel() == 0:
            if final and self.emitted == 0:
                raise ValueError("no semantic tokens to decode")
            return torch.zeros(0)
        codes = tokens.to(dev).view(1, 1, -1)
        _, m, logs, mask = model.prior(codes, self.text, self.ge, self.speed, self.text_memo)  # (1, C, F)
        frames = m.size(-1)
        end = frames if final else min(frames - self.crossfade, self.ready(tokens.numel()))
        if end <= self.emitted:
            return torch.zeros(0)
        stop = end if final else end + self.crossfade  # decoded through the next chunk's fade-in
        lo = max(0, self.emitted - self.context)  # the decoder's window [lo, hi), its flow's [f_lo, f_hi)
        hi = min(frames, stop + self.context)
        f_lo, f_hi = max(0, lo - self.flow_context), min(frames, hi + self.flow_context)
        noise = self._noise(frames)[..., f_lo:f_hi].to(device=dev, dtype=m.dtype)
        window = mask[..., f_lo:f_hi]
        z_p = m[..., f_lo:f_hi] + noise * torch.exp(logs[..., f_lo:f_hi]) * self.noise_scale
        z = model.flow(z_p, window, g=self.ge, reverse=True) * window
        audio = model.decode_frames(z, self.ge, self.emitted - f_lo, stop - f_lo)[0, 0].float().cpu()
        if self.tail is not None:  # fade the new chunk in over the last one's decoded tail
            n = self.tail.numel()
            fade_in = torch.sin(torch.pi / 2 * (torch.arange(n) + 0.5) / n) ** 2
            audio = torch.cat([audio[:n] * fade_in + self.tail * (1 - fade_in), audio[n:]])
        given = (end - self.emitted) * model.hop
        self.tail = None if final else audio[given:].clone()
        self.emitted = end
        self.part = min(2 * self.part, self.largest)
        self.due = tokens.numel() + self.part
        return audio[:given]
