"""Streaming S2 (gpt_sovits.models.s2_stream) on the reference's tiny v2 fixture, and S1's decode_steps."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from gpt_sovits.models.fastpath import FastGenerator
from gpt_sovits.models.s1 import S1Config, Text2Semantic, strip_lightning_prefix
from gpt_sovits.models.s2 import S2Config, SynthesizerTrn, decoder_reach, flow_reach
from gpt_sovits.models.s2_stream import StreamingDecode
from gpt_sovits.models.sampling import SamplingParams
from tests.support.reference_data import REFERENCE_DIR as REF


@pytest.fixture(scope="module")
def model() -> SynthesizerTrn:
    cfg = S2Config.from_hparams(json.loads((REF / "s2_tiny_config.json").read_text()))
    model = SynthesizerTrn(cfg)
    model.load_state_dict(torch.load(REF / "s2_tiny_G.pth", weights_only=True)["weight"], strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def inputs(model: SynthesizerTrn) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    io = torch.load(REF / "s2_tiny_io.pt", weights_only=True)
    codes = torch.randint(0, 1024, (1, 1, 90), generator=torch.Generator().manual_seed(0))
    return codes, io["text"], model.reference_style(io["refer_spec"])


def _stream(
    model: SynthesizerTrn, codes: torch.Tensor, text: torch.Tensor, ge: torch.Tensor, part: int, **kw
) -> list[torch.Tensor]:
    """Feed the tokens as the synthesiser does: when the decoder says the next part is due."""
    decoder = StreamingDecode(model, text, ge, generator=torch.Generator().manual_seed(1), part=part, **kw)
    tokens, parts, n = codes[0, 0], [], 0
    while n < tokens.numel():
        n = min(tokens.numel(), decoder.due)
        parts.append(decoder.feed(tokens[:n], final=n == tokens.numel()))
    return parts


def test_one_final_feed_is_the_whole_decode(model, inputs) -> None:
    codes, text, ge = inputs
    io = torch.load(REF / "s2_tiny_io.pt", weights_only=True)
    whole = model.decode(codes, text, io["refer_spec"], noise_scale=0.0)[0, 0]
    decoder = StreamingDecode(model, text, ge, noise_scale=0.0)
    assert torch.equal(decoder.feed(codes[0, 0], final=True), whole)


def test_parts_cover_the_piece_and_match_a_whole_decode_of_the_same_prior(model, inputs, monkeypatch) -> None:
    codes, text, ge = inputs
    io = torch.load(REF / "s2_tiny_io.pt", weights_only=True)
    whole = model.decode(codes, text, io["refer_spec"], noise_scale=0.0)[0, 0]
    # Real prior: each part's prior sees only the tokens so far, so the audio differs from the whole
    # decode, but the parts add up to its length, hop samples per frame, none empty.
    parts = _stream(model, codes, text, ge, 16, noise_scale=0.0)
    # Parts of 16, 32, then 48 tokens: the first at 20 tokens (16 + 4 held back), the second at 52.
    assert [p.numel() for p in parts] == [32 * 640, 64 * 640, (180 - 96) * 640]
    assert torch.cat(parts).shape == whole.shape
    # With a prior that does not change as tokens come (the whole piece's, cut to the tokens so far), the
    # windows are exact once the lookahead covers the flow's and decoder's reach: the whole decode.
    prior = model.prior(codes, text, ge)
    monkeypatch.setattr(model, "prior", lambda c, *_: tuple(x[..., : 2 * c.size(-1)] for x in prior))
    reach = flow_reach(model.flow) + decoder_reach(model.dec)  # 32 + 13 frames
    exact = _stream(model, codes, text, ge, 16, noise_scale=0.0, lookahead=(reach + 4 + 1) // 2 + 1)
    assert (torch.cat(exact) - whole).abs().max() <= 1e-4 * whole.abs().max()
    # Without lookahead or cross-fade the parts are cut off at each end: what the windows prevent.
    cut = _stream(model, codes, text, ge, 16, noise_scale=0.0, lookahead=0, crossfade=0)
    assert (torch.cat(cut) - whole).abs().max() > 1e-2 * whole.abs().max()


def test_a_piece_encodes_its_phones_once_and_the_memo_changes_no_value(model, inputs) -> None:
    codes, text, ge = inputs
    calls: list[int] = []
    hook = model.enc_p.encoder_text.register_forward_hook(lambda *_: calls.append(1))
    try:
        memo: dict = {}
        remembered = [model.prior(codes[..., :n], text, ge, 1.0, memo) for n in (40, 90)]
        parts = _stream(model, codes, text, ge, 16)
        assert len(calls) == 2  # once for the memo's two priors, once for the stream's three parts
    finally:
        hook.remove()
    assert len(parts) == 3
    for n, got in zip((40, 90), remembered, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(got, model.prior(codes[..., :n], text, ge), strict=True))


def test_noise_is_seeded_and_speed_keeps_the_whole_decodes_length(model, inputs) -> None:
    codes, text, ge = inputs
    a = torch.cat(_stream(model, codes, text, ge, 12))
    assert torch.equal(a, torch.cat(_stream(model, codes, text, ge, 12)))
    assert not torch.equal(a, torch.cat(_stream(model, codes, text, ge, 12, noise_scale=0.0)))
    io = torch.load(REF / "s2_tiny_io.pt", weights_only=True)
    slow = model.decode(codes, text, io["refer_spec"], speed=0.8)
    assert torch.cat(_stream(model, codes, text, ge, 12, speed=0.8)).numel() == slow.numel()


def test_parts_double_up_to_the_largest(model, inputs) -> None:
    codes, text, ge = inputs
    sizes = [p.numel() // 1280 for p in _stream(model, codes.repeat(1, 1, 3), text, ge, 5)]  # 270 tokens
    assert sizes == [5, 10, 20, 40, 48, 48, 48, 270 - 219]  # tokens' worth of frames (2 per token)
    assert [p.numel() // 1280 for p in _stream(model, codes, text, ge, 60)] == [60, 30]


def test_bad_settings_and_empty_input_are_refused(model, inputs) -> None:
    _, text, ge = inputs
    with pytest.raises(ValueError, match="at least one token"):
        StreamingDecode(model, text, ge, part=0)
    with pytest.raises(ValueError, match="needs a lookahead of 3"):
        StreamingDecode(model, text, ge, lookahead=2, crossfade=6)
    decoder = StreamingDecode(model, text, ge)
    assert decoder.feed(torch.zeros(0, dtype=torch.long), final=False).numel() == 0
    with pytest.raises(ValueError, match="no semantic tokens"):
        decoder.feed(torch.zeros(0, dtype=torch.long), final=True)
    # Too few tokens for a part yet: nothing is given out.
    assert decoder.feed(torch.tensor([5, 6, 7]), final=False).numel() == 0


def test_reach_of_the_v2_flow_and_fast_decoder_spans() -> None:
    with torch.device("meta"):
        full = SynthesizerTrn(S2Config(), with_posterior=False)
    assert (flow_reach(full.flow), decoder_reach(full.dec)) == (32, 13)
    # A span of the fast decoder is that part of a whole call (its context taken from the latent).
    torch.manual_seed(0)
    cfg = S2Config.from_hparams(json.loads((REF / "s2_tiny_config.json").read_text()))
    dec = SynthesizerTrn(cfg, with_posterior=False).dec.eval()
    x, g = torch.randn(1, dec.conv_pre.in_channels, 150), torch.randn(1, dec.cond.in_channels, 1)
    for tile, short in ((128, 64), (None, None)):
        fast = FastGenerator(dec, tile=tile, short_tile=short)
        whole = fast(x, g)
        for start, stop in ((0, 20), (40, 76), (30, 150), (0, 150)):  # short tile, long spans, the ends
            part = fast(x, g, start=start, stop=stop)
            assert part.shape == (1, 1, (stop - start) * 640)
            assert (part - whole[..., start * 640 : stop * 640]).abs().max() <= 1e-3 * whole.abs().max()


def test_decode_steps_shows_the_tokens_so_far_and_ends_as_generate() -> None:
    ckpt = torch.load(REF / "s1_tiny.ckpt", weights_only=True)
    gpt = Text2Semantic(S1Config.from_official(ckpt["config"]))
    gpt.load_state_dict({k: v.float() for k, v in strip_lightning_prefix(ckpt["weight"]).items()})
    gpt.eval()
    io = torch.load(REF / "s1_tiny_io.pt", weights_only=True)
    x, bert, prompt = io["x"][0], io["bert_feature"][0], io["prompt"][0]
    params = SamplingParams(top_k=5, max_new_tokens=40, eos_ban_steps=40)
    steps = gpt.decode_steps([x], [bert], prompt, params, generator=torch.Generator().manual_seed(2))
    seen = []
    while True:
        try:
            view = next(steps)
        except StopIteration as done:
            result = done.value
            break
        seen.append(view.tokens[0, : int(view.n_tok[0])].clone())
    tokens = result.candidates[0][0].tokens
    assert [s.numel() for s in seen] == list(range(1, 40))  # one look per step on CPU
    assert all(torch.equal(s, tokens[: s.numel()]) for s in seen)
    again = copy.deepcopy(gpt).generate(
        [x], [bert], prompt, params, generator=torch.Generator().manual_seed(2)
    )
    assert torch.equal(again.candidates[0][0].tokens, tokens)
