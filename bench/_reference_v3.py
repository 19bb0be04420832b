"""The reference's v3/v4 classes at full size for `bench.bench_s2v3 --reference` (random weights,
copied into ours so that both sides run the same numbers).

Imports from a RVC-Boss/GPT-SoVITS checkout at run time only; `x_transformers` (the reference DiT's
rotary embedding) comes from a wheel put on `sys.path` for this process, never installed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

XT_WHEEL = Path("/tmp/xt/x_transformers-2.31.10-py3-none-any.whl")


def import_reference_v3(root: Path, wheel: Path = XT_WHEEL) -> tuple[Any, Any, Any, list[str]]:
    """The reference's SynthesizerTrnV3, Generator (v4 vocoder) and BigVGAN classes, plus the names of
    packages stubbed (missing here, and never called by those classes)."""
    from bench.vs_reference import _stub_missing

    pkg = root / "GPT_SoVITS"
    if not (pkg / "module" / "models.py").is_file() or not (pkg / "BigVGAN" / "bigvgan.py").is_file():
        raise SystemExit(f"{root} is not a GPT-SoVITS checkout (no GPT_SoVITS/module/models.py, BigVGAN/)")
    if wheel.is_file() and str(wheel) not in sys.path:
        sys.path.insert(0, str(wheel))  # a zip wheel imports straight from sys.path
    sys.path[:0] = [str(pkg), str(root)]
    stubbed = _stub_missing(("tqdm", "torchmetrics", "torchmetrics.classification"))
    while True:  # stub each missing import the reference or x_transformers names, then retry
        try:
            from BigVGAN.bigvgan import BigVGAN
            from module.models import Generator, SynthesizerTrnV3

            break
        except ImportError as e:
            name = getattr(e, "name", None)
            if not name or name in stubbed or name.split(".")[0] in ("x_transformers", "module", "BigVGAN"):
                raise
            stubbed += _stub_missing((name,))
            for mod in [
                m
                for m in sys.modules
                if m.split(".")[0] in ("x_transformers", "module", "f5_tts", "GPT_SoVITS")
            ]:
                del sys.modules[mod]  # half-imported modules would keep the failure
    return SynthesizerTrnV3, Generator, BigVGAN, stubbed


def build_reference_s2(cls: Any, version: str) -> nn.Module:
    """The reference's SynthesizerTrnV3 with the official v3/v4 s2 config (its `model` section)."""
    model = cls(
        1025,  # spec_channels: filter_length // 2 + 1
        20480 // 640,  # segment_size // hop_length
        192,
        192,
        768,
        2,
        6,
        3,
        0.1,
        "1",
        [3, 7, 11],
        [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        [10, 8, 2, 2, 2],
        512,
        [16, 16, 8, 2, 2],
        n_speakers=300,
        gin_channels=512,
        semantic_frame_rate="25hz",
        freeze_quantizer=True,
        version=version,
    )
    with torch.no_grad():  # non-zero codebook entries, as trained weights have
        model.quantizer.vq.layers[0]._codebook.embed.normal_()
    return model.eval()


def build_reference_vocoder(version: str, generator_cls: Any, bigvgan_cls: Any) -> nn.Module:
    """The reference's vocoder as `init_vocoder` builds it (weight norm still on: copy, then remove)."""
    if version == "v3":
        from BigVGAN.env import AttrDict

        from gpt_sovits.models.vocoders import BigVGANConfig

        model = bigvgan_cls(AttrDict(BigVGANConfig().to_json_dict()))
        with torch.no_grad():  # SnakeBeta alpha/beta start at zero: give them trained-like spread
            for name, p in model.named_parameters():
                if name.endswith((".alpha", ".beta")):
                    p.add_(torch.randn_like(p) * 0.1)
        return model.eval()
    model = generator_cls(
        initial_channel=100,
        resblock="1",
        resblock_kernel_sizes=[3, 7, 11],
        resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        upsample_rates=[10, 6, 2, 2, 2],
        upsample_initial_channel=512,
        upsample_kernel_sizes=[20, 12, 4, 4, 4],
        gin_channels=0,
        is_bias=True,
    )
    return model.eval()


def ours_from_reference(
    version: str, ref_s2: nn.Module, ref_vocoder: nn.Module
) -> tuple[nn.Module, nn.Module]:
    """Our SynthesizerTrnV3 and vocoder holding the reference's weights (strict, as our loaders read
    official files); the reference vocoder then loses its weight norm, as `init_vocoder` does."""
    from gpt_sovits.models.s2v3 import S2V3Config, SynthesizerTrnV3
    from gpt_sovits.models.vocoders import BigVGAN, BigVGANConfig, VocoderV4
    from gpt_sovits.models.weights_v3 import _add_weight_norm, _bigvgan_fill, _load_exact, _weight_norm_names

    ours = SynthesizerTrnV3(S2V3Config.from_hparams(None, version)).eval()
    ours.load_state_dict(ref_s2.state_dict(), strict=True)
    voc = BigVGAN(BigVGANConfig()) if version == "v3" else VocoderV4()
    if version == "v4":
        ref_vocoder.remove_weight_norm()  # vocoder.pth is saved after remove_weight_norm
    sd = _add_weight_norm(_weight_norm_names(ref_vocoder.state_dict()), set(voc.state_dict()))
    fill = _bigvgan_fill if version == "v3" else (lambda _k: None)
    _load_exact(voc, sd, Path(f"<reference {version} vocoder>"), f"{version} vocoder", fill=fill)
    if version == "v3":
        ref_vocoder.remove_weight_norm()
    return ours, voc.eval()


@torch.inference_mode()
def reference_decode(
    model: nn.Module,
    t_ref: int,
    t_chunk: int,
    prompt: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    codes: torch.Tensor,
    text: torch.Tensor,
    steps: int,
) -> torch.Tensor:
    """The reference's v3/v4 decode (TTS.py `using_vocoder_synthesis`, from `decode_encp` to the mel
    handed to the vocoder) driven through the reference model's own calls: prompt = (tokens (1, 1, Tp),
    phones (1, Np), spectrogram (1, 1025, Tr), log-mel (1, 100, Tm)); returns the denormalised mel."""
    from gpt_sovits.models.s2v3 import denorm_spec, norm_spec

    ref_codes, ref_text, refer, ref_mel = prompt
    fea_ref, ge = model.decode_encp(ref_codes, ref_text, refer)
    mel2 = norm_spec(ref_mel)
    t_min = min(mel2.shape[2], fea_ref.shape[2])
    mel2, fea_ref = mel2[:, :, :t_min], fea_ref[:, :, :t_min]
    if t_min > t_ref:
        mel2, fea_ref, t_min = mel2[:, :, -t_ref:], fea_ref[:, :, -t_ref:], t_ref
    chunk_len = t_chunk - t_min
    fea_todo, ge = model.decode_encp(codes, text, refer, ge, 1)
    out = []
    for start in range(0, fea_todo.shape[-1], chunk_len):
        chunk = fea_todo[:, :, start : start + chunk_len]
        fea = torch.cat([fea_ref, chunk], 2).transpose(2, 1)  # (1, Tp + Tc, 512)
        res = model.cfm.inference(fea, torch.LongTensor([fea.size(1)]), mel2, steps, inference_cfg_rate=0)
        res = res[:, :, mel2.shape[2] :]
        mel2, fea_ref = res[:, :, -t_min:], chunk[:, :, -t_min:]
        out.append(res)
    return denorm_spec(torch.cat(out, 2))
