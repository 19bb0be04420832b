"""Load the v3/v4 weight files strictly and safely (restricted unpickler of `weights.read_checkpoint`).

Files (the reference's names under `GPT_SoVITS/pretrained_models/`):

- `s2Gv3.pth`, `gsv-v4-pretrained/s2Gv4.pth`: `{"weight": SynthesizerTrnV3 state dict, "config": hparams,
  ...}` in a plain zip. v3 or v4 is told by the MD5 of the first 8192 bytes (the reference's
  `hash_pretrained_dict`), else by the caller or the config's `model.version`, else v3 (the
  reference's size rule says v3 for every large file without a header).
- LoRA exports (`process_ckpt.savee` with `lora_rank`): header `03` (v3) / `04` (v4) in place of
  `PK`, `{"weight": trained tensors, "config": hparams, "info": str, "lora_rank": r}`. The weights
  are the parts the LoRA trainer left trainable (ref_enc, bridge, wns1, linear_mel, ... and the
  peft adapters `cfm.base_model.model.estimator.*.lora_A/B.default.weight` on to_q/to_k/to_v/to_out.0).
  They load over the pretrained model of the same version and the adapters are merged into the DiT,
  W += B @ A (lora_alpha = r): the numbers the reference's peft `merge_and_unload` gives (the tests
  compare with fixtures the reference made with peft), without importing peft at load time.
- `gsv-v4-pretrained/vocoder.pth`: the v4 vocoder's state dict (weight norm removed).
- `models--nvidia--bigvgan_v2_24khz_100band_256x/`: `config.json` + `bigvgan_generator.pt`
  (`{"generator": state dict}`, weight-normed or not).

"Strict": every parameter of the model comes from the file and every tensor of the file has a place
(shapes checked). Two exceptions, both values fixed by the architecture: the rotary `inv_freq` and
the BigVGAN resampling filters are filled in when a file lacks them; `enc_q.*` (a posterior
encoder that v3/v4 do not have) is ignored, as the reference's non-strict load ignores it.
The DiT size is read from the weights, so reduced test models load through the same path.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.fsutil import atomic_write_bytes, file_problem
from core.model_route import GSV_REPO, download_route, hub_url
from gpt_sovits.models.dit import rotary_inv_freq
from gpt_sovits.models.fastpath import apply_precision
from gpt_sovits.models.model_folders import BIGVGAN_CONFIG, BIGVGAN_WEIGHTS
from gpt_sovits.models.s2v3 import V3V4_VERSIONS, S2V3Config, SynthesizerTrnV3
from gpt_sovits.models.vocoders import (
    BigVGAN,
    BigVGANConfig,
    DownSample1d,
    UpSample1d,
    V4VocoderConfig,
    VocoderV4,
)
from gpt_sovits.models.weights import (
    CheckpointError,
    RawCheckpoint,
    UnsupportedVersionError,
    WrongModelTypeError,
    _check_plain,
    _readable_structure,
    classify,
    read_checkpoint,
)

# MD5 of the first 8192 bytes of the official pretrained generators (process_ckpt.hash_pretrained_dict).
PRETRAINED_MD5 = {
    "43797be674a37c1c83ee81081941ed0f": "v3",  # s2Gv3.pth
    "4f26b9476d0c5033e04162c486074374": "v4",  # gsv-v4-pretrained/s2Gv4.pth
}
LORA_HEADERS = {"v3-lora": "v3", "v4-lora": "v4"}
LORA_TARGETS = ("to_k", "to_q", "to_v", "to_out.0")  # the reference's LoraConfig target_modules
LORA_PREFIX = "cfm.base_model.model."  # where peft puts the CFM's own names


# --- shared helpers ----------------------------------------------------------------------------------


def _weight_norm_names(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Newer torch's `parametrizations.weight.original0/1` -> the legacy `weight_g` / `weight_v`."""
    out = {}
    for k, v in sd.items():
        k = k.replace(".parametrizations.weight.original0", ".weight_g")
        k = k.replace(".parametrizations.weight.original1", ".weight_v")
        out[k] = v
    return out


def _add_weight_norm(sd: dict[str, torch.Tensor], model_keys: set[str]) -> dict[str, torch.Tensor]:
    """Plain `X.weight` where the model has `X.weight_g/_v` (files saved after remove_weight_norm):
    v = w, g = |w| over all dims but 0, so g * v / |v| gives w back."""
    out = dict(sd)
    for k in list(sd):
        if not k.endswith(".weight"):
            continue
        stem = k[: -len(".weight")]
        if k not in model_keys and f"{stem}.weight_g" in model_keys and f"{stem}.weight_v" not in sd:
            w = out.pop(k).float()
            out[f"{stem}.weight_v"] = w
            out[f"{stem}.weight_g"] = torch.norm_except_dim(w, 2, 0)
    return out


def _load_exact(
    model: nn.Module,
    sd: Mapping[str, torch.Tensor],
    path: Path,
    what: str,
    fill: Callable[[str], torch.Tensor | None] = lambda _k: None,
) -> None:
    """Load every model tensor from `sd` (or `fill(name)` for fixed buffers) and refuse leftovers.

    The model may live on the meta device: tensors are assigned, not copied."""
    own = model.state_dict()
    sd = dict(sd)
    missing = []
    for k in own:
        if k not in sd:
            value = fill(k)
            if value is None:
                missing.append(k)
            else:
                sd[k] = value
    unexpected = [k for k in sd if k not in own]
    wrong = [
        f"{k}: file {tuple(sd[k].shape)}, model {tuple(own[k].shape)}"
        for k in own
        if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if items:
                more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
                parts.append(f"{label}: {', '.join(items[:5])}{more}")
        raise CheckpointError(f"{path} does not match the {what}: " + "; ".join(parts))
    dtypes = {k: v.dtype for k, v in own.items()}
    model.load_state_dict(
        {k: v.to(dtypes[k]) if v.is_floating_point() else v for k, v in sd.items()}, strict=True, assign=True
    )


def _tensor_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {str(k): v for k, v in obj.items()}
    return None


def _read_md5_head(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.md5(f.read(8192)).hexdigest()


# --- SoVITS v3 / v4 ----------------------------------------------------------------------------------


def sovits_v3_version(path: str | Path, raw: RawCheckpoint | None = None) -> tuple[str, bool]:
    """("v3" or "v4", is_lora) of a v3/v4 SoVITS file, the way the reference tells them apart."""
    path = Path(path)
    if raw is None:
        raw = read_checkpoint(path, allow_versions=tuple(LORA_HEADERS))
    if raw.header_version in LORA_HEADERS:
        return LORA_HEADERS[raw.header_version], True
    known = PRETRAINED_MD5.get(_read_md5_head(path))
    if known:
        return known, False
    config = raw.content.get("config") if isinstance(raw.content, Mapping) else None
    model = config.get("model") if isinstance(config, Mapping) else None
    stated = model.get("version") if isinstance(model, Mapping) else None
    is_lora = isinstance(raw.content, Mapping) and "lora_rank" in raw.content
    return (stated if stated in V3V4_VERSIONS else "v3"), is_lora


def quick_check_v3(path: str | Path) -> str | None:
    """Why a v3/v4 SoVITS file (generator or LoRA export) would not load, or None: the cheap check of
    `weights.quick_check` (zip directory and pickled keys, no tensor data), cached by path, mtime and size.

    A LoRA export also needs the pretrained generator of its version; that is the loader's to say."""
    path = Path(path)
    problem = file_problem(path)
    if problem:
        return problem
    st = path.stat()
    return _quick_check_v3_cached(str(path.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=256)
def _quick_check_v3_cached(path: str, _mtime_ns: int, _size: int) -> str | None:
    with open(path, "rb") as f:
        head = f.read(2)
    content, problem = _readable_structure(Path(path))
    if problem is not None:
        return problem
    if classify(content) != "sovits-v3":
        return "not a SoVITS v3/v4 model"
    if head in (b"03", b"04") and not isinstance(content.get("lora_rank"), int):
        return "a v3/v4 LoRA export without its lora_rank"
    return None


def _dit_size(sd: Mapping[str, torch.Tensor], prefix: str = "cfm.estimator.") -> dict[str, Any]:
    """The DiT fields of S2V3Config read from the estimator's weights."""

    def count(pattern: str) -> int:
        rx = re.compile(re.escape(prefix) + pattern)
        return len({m.group(1) for k in sd if (m := rx.match(k))})

    try:
        dim = sd[prefix + "proj_out.weight"].shape[1]
        inner = sd[prefix + "transformer_blocks.0.attn.to_q.weight"].shape[0]
        ff = sd[prefix + "transformer_blocks.0.ff.ff.0.0.weight"].shape[0]
    except KeyError as e:
        raise CheckpointError(f"the CFM estimator lacks {e.args[0]}; not a v3/v4 SoVITS model") from None
    inv = sd.get(prefix + "rotary_embed.inv_freq")
    dim_head = 2 * inv.shape[0] if inv is not None else 64  # the official head size
    if inner % dim_head:
        raise CheckpointError(
            f"the CFM estimator's attention width {inner} is not a multiple of its head size {dim_head} "
            "(no rotary_embed.inv_freq to tell it otherwise)"
        )
    return {
        "dit_dim": dim,
        "dit_depth": count(r"transformer_blocks\.(\d+)\."),
        "dit_heads": inner // dim_head,
        "dit_dim_head": dim_head,
        "dit_ff_mult": ff / dim,
        "dit_conv_layers": count(r"text_embed\.text_blocks\.(\d+)\."),
    }


def _encoder_size(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The text encoder's hparams read from its weights (for files without a config)."""
    pre = "enc_p.encoder_text."
    try:
        conv_1 = sd[pre + "ffn_layers.0.conv_1.weight"]  # (filter, hidden, kernel)
        rel_k = sd[pre + "attn_layers.0.emb_rel_k"]  # (1, 2*window+1, hidden/heads)
    except KeyError as e:
        raise CheckpointError(f"the text encoder lacks {e.args[0]}; not a v3/v4 SoVITS model") from None
    layers = {k.split(".")[3] for k in sd if k.startswith(pre + "attn_layers.")}
    return {
        "filter_channels": conv_1.shape[0],
        "kernel_size": conv_1.shape[2],
        "n_heads": conv_1.shape[1] // rel_k.shape[-1],
        "n_layers": len(layers),
    }


def _v3_fill(cfg: S2V3Config) -> Callable[[str], torch.Tensor | None]:
    def fill(k: str) -> torch.Tensor | None:
        if k.endswith("rotary_embed.inv_freq"):
            return rotary_inv_freq(cfg.dit_dim_head)
        return None

    return fill


def _build_v3(raw: RawCheckpoint, version: str, dtype: torch.dtype) -> tuple[SynthesizerTrnV3, S2V3Config]:
    """The model of a full (non-LoRA) v3/v4 file, its weights assigned."""
    kind = classify(raw.content)
    if kind != "sovits-v3":
        what = "a SoVITS v3/v4 model (s2Gv3.pth, s2Gv4.pth or a v3/v4 LoRA export)"
        if kind == "sovits":
            raise WrongModelTypeError(f"{raw.path} is a SoVITS v1/v2 model; expected {what}")
        raise WrongModelTypeError(f"{raw.path} is not {what}")
    content = raw.content
    # {"weight": ...} as official files, or a bare state dict
    sd = _weight_norm_names(_tensor_dict(content.get("weight")) or _tensor_dict(content) or {})
    sd = {k: v for k, v in sd.items() if not k.startswith("enc_q.")}
    config = content.get("config") if isinstance(content.get("config"), Mapping) else None
    if not isinstance((config or {}).get("model"), Mapping):  # no hparams: sizes from the weights
        config = {**(config or {}), "model": _encoder_size(sd)}
    try:
        cfg = S2V3Config.from_hparams(config, version=version, **_dit_size(sd))
        with torch.device("meta"):
            model = SynthesizerTrnV3(cfg)
    except ValueError as e:
        raise CheckpointError(f"{raw.path}: its config cannot build a SoVITS {version} model: {e}") from None
    sd = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items()}
    _load_exact(model, sd, raw.path, f"SoVITS {version} model", fill=_v3_fill(cfg))
    return model, cfg


def _merge_lora(model: SynthesizerTrnV3, raw: RawCheckpoint, dtype: torch.dtype) -> None:
    """Load a LoRA export over `model` (the pretrained base) and merge its adapters into the DiT.

    What the reference does with peft (`get_peft_model`, non-strict load, `merge_and_unload`), done
    directly: for every adapted Linear, W += (B @ A) * lora_alpha / r with lora_alpha = r, in that
    order of operations (peft's `get_delta_weight`), so the merged weights are the same numbers;
    the other tensors of the file replace the base's. (peft's import alone costs seconds.)"""
    rank = raw.content.get("lora_rank")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank <= 0:
        raise CheckpointError(f"{raw.path} is a LoRA export without a valid lora_rank (got {rank!r})")
    lora_sd = _tensor_dict(raw.content.get("weight"))
    if lora_sd is None:
        raise CheckpointError(f"{raw.path} holds no LoRA weights")
    lora_sd = _weight_norm_names(lora_sd)
    modules = dict(model.named_modules())
    own = model.state_dict()
    scaling = rank / rank  # lora_alpha = r in the reference's LoraConfig
    adapters: dict[str, dict[str, torch.Tensor]] = {}
    plain: dict[str, torch.Tensor] = {}
    problems: list[str] = []
    for key, value in lora_sd.items():
        m = re.fullmatch(r"(.+)\.lora_([AB])\.default\.weight", key)
        if m:
            adapters.setdefault(m.group(1), {})[m.group(2)] = value
            continue
        name = key
        if name.startswith(LORA_PREFIX):  # a base tensor under peft's names
            name = "cfm." + name[len(LORA_PREFIX) :].replace(".base_layer.", ".")
        if name not in own:
            problems.append(f"unexpected {key}")
        elif tuple(own[name].shape) != tuple(value.shape):
            problems.append(f"wrong shape {key}")
        else:
            plain[name] = value
    if not adapters:
        problems.append("no lora_A/lora_B adapters")
    merges = []
    for prefix, ab in adapters.items():
        target = "cfm." + prefix[len(LORA_PREFIX) :] if prefix.startswith(LORA_PREFIX) else prefix
        layer = modules.get(target)
        if not isinstance(layer, nn.Linear) or not target.endswith(tuple("." + t for t in LORA_TARGETS)):
            problems.append(f"adapter on {prefix}, which is no to_q/to_k/to_v/to_out.0 layer")
            continue
        a, b = ab.get("A"), ab.get("B")
        if a is None or b is None:
            problems.append(f"{prefix} lacks lora_{'A' if a is None else 'B'}")
            continue
        if tuple(a.shape) != (rank, layer.in_features) or tuple(b.shape) != (layer.out_features, rank):
            problems.append(f"{prefix}: A {tuple(a.shape)}, B {tuple(b.shape)} for rank {rank}")
            continue
        merges.append((layer, a.to(dtype), b.to(dtype)))
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise CheckpointError(
            f"{raw.path} does not match a rank-{rank} LoRA of this SoVITS model: {'; '.join(problems[:3])}{more}"
        )
    model.load_state_dict(
        {k: v.to(own[k].dtype) if v.is_floating_point() else v for k, v in plain.items()}, strict=False
    )
    with torch.no_grad():
        for layer, a, b in merges:
            layer.weight += (b @ a) * scaling


def load_sovits_v3(
    path: str | Path,
    base: str | Path | None = None,
    device: str | torch.device = "cpu",
    precision: str = "auto",
    version: str | None = None,
) -> tuple[SynthesizerTrnV3, S2V3Config]:
    """Load a v3/v4 SoVITS file (pretrained generator or LoRA export), strictly, in eval mode.

    `base`: the pretrained generator of the same version (s2Gv3.pth / s2Gv4.pth), needed for LoRA
    files only. `version` overrides the detection ("v3"/"v4") for full files whose header and hash
    do not tell. `precision` as in `weights.load_sovits`.
    """
    raw = read_checkpoint(path, allow_versions=tuple(LORA_HEADERS))
    detected, is_lora = sovits_v3_version(raw.path, raw)
    if version is not None and version not in V3V4_VERSIONS:
        raise UnsupportedVersionError(f"version must be v3 or v4, got {version!r}")
    if is_lora and version is not None and version != detected:
        raise CheckpointError(f"{raw.path} is a {detected} LoRA export, not {version}")
    version = version or detected
    dtype = torch.float32
    if is_lora:
        if base is None:
            raise CheckpointError(
                f"{raw.path} is a SoVITS {version} LoRA export; it needs the pretrained {version} "
                "generator (s2Gv3.pth / gsv-v4-pretrained/s2Gv4.pth), and none was given"
            )
        problem = file_problem(Path(base), f"pretrained SoVITS {version} generator")
        if problem:
            raise CheckpointError(
                f"the pretrained SoVITS {version} generator {base} that the LoRA {raw.path.name} needs "
                f"is {problem}"
            )
        base_raw = read_checkpoint(base, allow_versions=tuple(LORA_HEADERS))
        base_version, base_lora = sovits_v3_version(base_raw.path, base_raw)
        if base_lora:
            raise CheckpointError(f"{base} is itself a LoRA export; the base must be a pretrained generator")
        if PRETRAINED_MD5.get(_read_md5_head(base_raw.path), version) != version:
            raise CheckpointError(
                f"{base} is the pretrained {base_version} generator; the LoRA {raw.path.name} is for {version}"
            )
        model, cfg = _build_v3(base_raw, version, dtype)
        _merge_lora(model, raw, dtype)  # cfg stays the base's: the architecture the weights have
    else:
        model, cfg = _build_v3(raw, version, dtype)
    model.to(device=device)
    return apply_precision(model.eval(), precision, device), cfg  # type: ignore[return-value]


# The hparams the reference's loaders read from a LoRA export's config (TTS.init_vits_weights).
LORA_CONFIG_KEYS = (
    ("data", "filter_length"),
    ("data", "hop_length"),
    ("data", "win_length"),
    ("data", "sampling_rate"),
    ("data", "n_speakers"),
    ("train", "segment_size"),
    ("model", "semantic_frame_rate"),
)
LORA_VERSION_HEADERS = {"v3": b"03", "v4": b"04"}  # process_ckpt.model_version2byte


def save_sovits_v3_lora(
    weight: Mapping[str, torch.Tensor], cfg: S2V3Config, lora_rank: int, path: str | Path, info: str = ""
) -> Path:
    """Write a LoRA export as the reference's `process_ckpt.savee(..., lora_rank=r)` does.

    `weight`: the trained tensors under the reference's names (peft's
    `cfm.base_model.model.*.lora_A/B.default.weight` and whatever else was trainable); stored fp16,
    without `enc_q.*`. The file is `{"weight", "config" (cfg.to_hparams(), plain containers), "info",
    "lora_rank"}` saved by torch with the zip's leading `PK` replaced by `03` (v3) / `04` (v4).
    """
    if not isinstance(lora_rank, int) or isinstance(lora_rank, bool) or lora_rank <= 0:
        raise ValueError(f"lora_rank must be a positive integer, got {lora_rank!r}")
    if not any(".lora_A." in k for k in weight) or not any(".lora_B." in k for k in weight):
        raise ValueError("a LoRA export needs its lora_A / lora_B adapter tensors")
    config = cfg.to_hparams()
    absent = [".".join(k) for k in LORA_CONFIG_KEYS if k[1] not in (config.get(k[0]) or {})]
    if absent:
        raise ValueError(f"the config lacks {', '.join(absent)}, which the reference's loader reads")
    _check_plain(config)
    payload = {
        "weight": {
            k: v.detach().to("cpu", torch.float16).contiguous() for k, v in weight.items() if "enc_q" not in k
        },
        "config": config,
        "info": str(info),
        "lora_rank": lora_rank,
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    path = Path(path)
    atomic_write_bytes(path, LORA_VERSION_HEADERS[cfg.version] + data[2:])
    return path


# --- vocoders ----------------------------------------------------------------------------------------


def _bigvgan_fill(k: str) -> torch.Tensor | None:
    if k.endswith(".upsample.filter"):
        return UpSample1d(2, 12).filter
    if k.endswith(".downsample.lowpass.filter"):
        return DownSample1d(2, 12).lowpass.filter
    return None


def load_bigvgan(folder: str | Path, device: str | torch.device = "cpu", precision: str = "auto") -> BigVGAN:
    """Load BigVGAN from its folder (`config.json` + `bigvgan_generator.pt`), strictly, in eval mode."""
    folder = Path(folder)
    files, source = (BIGVGAN_CONFIG, BIGVGAN_WEIGHTS), hub_url(GSV_REPO, folder.name, folder=True)
    route = download_route("vocoder-v3", files, folder, source, folder.parent)
    if not folder.is_dir():
        raise CheckpointError(f"BigVGAN folder not found: {folder}. {route}")
    cfg_path, pt_path = folder / BIGVGAN_CONFIG, folder / BIGVGAN_WEIGHTS
    for p in (cfg_path, pt_path):
        problem = file_problem(p, "BigVGAN file")
        if problem:
            raise CheckpointError(f"{p} is {problem}. {route}")
    try:
        cfg = BigVGANConfig.from_json_dict(json.loads(cfg_path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{cfg_path} is not a usable BigVGAN config: {e}") from None
    raw = read_checkpoint(pt_path)
    sd = _tensor_dict(raw.content.get("generator")) if isinstance(raw.content, Mapping) else None
    if sd is None:
        raise WrongModelTypeError(f"{pt_path} has no 'generator' state dict; not a BigVGAN generator file")
    with torch.device("meta"):
        model = BigVGAN(cfg)
    sd = _add_weight_norm(_weight_norm_names(sd), set(model.state_dict()))
    _load_exact(model, sd, pt_path, "BigVGAN built from its config.json", fill=_bigvgan_fill)
    model.to(device=device)
    return apply_precision(model.eval(), precision, device)  # type: ignore[return-value]


def load_vocoder_v4(
    path: str | Path, device: str | torch.device = "cpu", precision: str = "auto"
) -> VocoderV4:
    """Load the v4 vocoder (`gsv-v4-pretrained/vocoder.pth`), strictly, in eval mode."""
    raw = read_checkpoint(path)
    content = raw.content
    sd = _tensor_dict(content)
    if sd is None and isinstance(content, Mapping):
        sd = _tensor_dict(content.get("weight")) or _tensor_dict(content.get("generator"))
    if sd is None or "conv_pre.weight" not in sd or any(k.startswith(("cfm.", "enc_p.")) for k in sd):
        kind = classify(content)
        what = "a GPT-SoVITS model" if kind != "unknown" else "not a vocoder state dict"
        raise WrongModelTypeError(
            f"{raw.path} is {what}; expected the v4 vocoder (gsv-v4-pretrained/vocoder.pth)"
        )
    # Channel widths from the weights (the official file: 100 mel bands, 512); strides are the official ones.
    pre = sd["conv_pre.weight"]
    cfg = V4VocoderConfig(initial_channel=pre.shape[1], upsample_initial_channel=pre.shape[0])
    with torch.device("meta"):
        model = VocoderV4(cfg)
    sd = _add_weight_norm(_weight_norm_names(sd), set(model.state_dict()))
    _load_exact(model, sd, raw.path, "v4 vocoder (upsample 10,6,2,2,2; 48 kHz)")
    model.to(device=device)
    return apply_precision(model.eval(), precision, device)  # type: ignore[return-value]


def load_vocoder(
    version: str, path: str | Path, device: str | torch.device = "cpu", precision: str = "auto"
) -> nn.Module:
    """The vocoder of `version`: BigVGAN folder for v3, vocoder.pth for v4."""
    if version == "v3":
        return load_bigvgan(path, device, precision)
    if version == "v4":
        return load_vocoder_v4(path, device, precision)
    raise UnsupportedVersionError(f"only v3 and v4 use a separate vocoder, not {version!r}")
