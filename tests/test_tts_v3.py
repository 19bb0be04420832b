"""v3/v4 SoVITS weights through the one synthesiser: tiny random models and vocoders in the official formats.

The model folder is the official layout (``s2Gv3.pth``, ``models--nvidia--bigvgan_v2_24khz_100band_256x/``,
``gsv-v4-pretrained/s2Gv4.pth`` + ``vocoder.pth``) with tiny random weights; HuBERT, BERT and the GPT are the
tiny v2 ones of conftest. The CFM decode itself is compared with the reference's classes on the fixture in
tests/data/s2_v3_infer/ (see its README).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from gpt_sovits.infer import __main__ as cli
from gpt_sovits.infer.cache import ModelCache
from gpt_sovits.infer.request import SynthesisRequest, TTSInputError, param
from gpt_sovits.infer.synthesizer import Synthesizer
from gpt_sovits.models.s2v3 import (
    PROFILES,
    S2V3Config,
    SynthesizerTrnV3,
    chunk_frames,
    frame_counts,
    infer_mel,
    prompt_condition,
)
from gpt_sovits.models.vocoders import BigVGAN, BigVGANConfig, V4VocoderConfig, VocoderV4
from gpt_sovits.models.weights_v3 import load_bigvgan, load_sovits_v3, load_vocoder_v4
from gpt_sovits.pretrained import BIGVGAN_FOLDER, V3V4_FILES
from tests.support.synth import voiced_segments
from tests.test_s2_v3 import TINY_DIT, TINY_HPARAMS, rel_err, seeded_weights, tiny_shapes

DATA = Path(__file__).parent / "data" / "s2_v3_infer"
REL_TOL = 1e-3
SR_IN = 32000


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _save_sovits(path: Path, version: str, sd: dict[str, torch.Tensor]) -> Path:
    """A pretrained-style generator file: fp16 weights + the official hparams saying its version."""
    cfg = S2V3Config.from_hparams(TINY_HPARAMS, version=version, **TINY_DIT)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": sd, "config": cfg.to_hparams(), "info": f"tiny random {version}"}, path)
    return path


def _tiny_weights() -> dict[str, torch.Tensor]:
    """One random SynthesizerTrnV3 (v3 and v4 have the same parameters), fp16 as pretrained files."""
    torch.manual_seed(1)
    model = SynthesizerTrnV3(S2V3Config.from_hparams(TINY_HPARAMS, version="v3", **TINY_DIT))
    return {k: v.half() for k, v in model.state_dict().items()}


def _save_bigvgan(folder: Path) -> Path:
    """A BigVGAN folder with the official hop (256 = 8 x 8 x 4) and tiny channels, weight-normed."""
    import json

    torch.manual_seed(5)
    cfg = BigVGANConfig(
        upsample_rates=[8, 8, 4],
        upsample_kernel_sizes=[16, 16, 8],
        upsample_initial_channel=32,
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg.to_json_dict()), encoding="utf-8")
    torch.save({"generator": BigVGAN(cfg).state_dict()}, folder / "bigvgan_generator.pt")
    return folder


def _save_vocoder_v4(path: Path) -> Path:
    """vocoder.pth: the official strides (480x) with 32 channels, weight norm removed (as the official file)."""
    torch.manual_seed(6)
    sd = VocoderV4(V4VocoderConfig(upsample_initial_channel=32)).state_dict()
    torch.save(_plain_weights(sd), path)
    return path


def _plain_weights(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """weight_g / weight_v pairs -> the plain weight they stand for (what remove_weight_norm leaves)."""
    out = {}
    for k, v in sd.items():
        if k.endswith(".weight_g"):
            stem = k[: -len(".weight_g")]
            out[stem + ".weight"] = torch._weight_norm(sd[stem + ".weight_v"], v, 0)
        elif not k.endswith(".weight_v"):
            out[k] = v
    return out


@pytest.fixture(scope="module")
def v3dir(tiny_pretrained, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("v3_models")
    for folder in (tiny_pretrained.hubert, tiny_pretrained.bert):
        (root / folder.name).symlink_to(folder, target_is_directory=True)
    sd = _tiny_weights()
    _save_sovits(root / V3V4_FILES["v3"][0], "v3", sd)
    _save_sovits(root / V3V4_FILES["v4"][0], "v4", sd)
    _save_bigvgan(root / BIGVGAN_FOLDER)
    _save_vocoder_v4(root / V3V4_FILES["v4"][1])
    return root


@pytest.fixture(scope="module")
def ref(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("v3_refs") / "ref.wav"
    audio = voiced_segments([("silence", 0.2), ("voice", 3.2), ("silence", 0.2)], amp=0.5, seed=0)
    sf.write(path, audio, SR_IN, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def cache() -> ModelCache:
    return ModelCache()


def _synth(tiny_pretrained, v3dir, cache, version: str) -> Synthesizer:
    return Synthesizer(tiny_pretrained.s1, v3dir / V3V4_FILES[version][0], v3dir, device="cpu", cache=cache)


def _req(ref: Path, **kw) -> SynthesisRequest:
    base = dict(
        text="你好世界。", text_lang="zh", ref_audio=ref, ref_text="你好世界。", ref_lang="zh",
        seed=3, max_new_tokens=14, pause=0.1, sample_steps=2,
    )  # fmt: skip
    base.update(kw)
    return SynthesisRequest(**base)


# ------------------------------------------------------------------------------------------ synthesis


@pytest.mark.parametrize("version", ["v3", "v4"])
def test_v3v4_synthesis_rate_length_and_seed(tiny_pretrained, v3dir, ref, cache, version) -> None:
    synth = _synth(tiny_pretrained, v3dir, cache, version)
    assert synth.model_version() == version and synth.output_rate() == PROFILES[version].output_rate
    a = synth.synthesize(_req(ref, candidates=2))
    b = synth.synthesize(_req(ref, candidates=2))
    c = synth.synthesize(_req(ref, candidates=2, seed=4))
    p = PROFILES[version]
    assert a.sample_rate == p.output_rate and a.audio.dtype == np.float32
    # T25 tokens are floor(2 T25 x frame_factor) mel frames of upsample_rate samples (v3: 1.875, 256; v4: 2, 480).
    (sentence,) = a.sentences
    tokens = len(sentence.candidates[sentence.chosen].tokens)
    assert sentence.audio.size == frame_counts(tokens, version)[0] * p.upsample_rate
    assert a.audio.size == sentence.audio.size + int(p.output_rate * 0.1)
    assert np.abs(sentence.audio).max() > 0 and np.abs(a.audio[-int(p.output_rate * 0.1) :]).max() == 0
    assert np.array_equal(a.audio, b.audio)  # same seed, same audio
    assert a.audio.shape != c.audio.shape or not np.array_equal(a.audio, c.audio)
    # Every candidate re-decodes to what a fresh synthesis picking it would give (reassemble).
    other = 1 - sentence.chosen
    swapped = synth.candidate_audio(a, 0, other)
    assert swapped.size == frame_counts(len(sentence.candidates[other].tokens), version)[0] * p.upsample_rate
    again = synth.reassemble(a, [other])
    assert np.array_equal(again[: swapped.size], swapped) and a.sentences[0].chosen == other


def test_sample_steps_default_and_change(tiny_pretrained, v3dir, ref, cache) -> None:
    synth = _synth(tiny_pretrained, v3dir, cache, "v4")
    assert synth.sample_steps(_req(ref, sample_steps=0)) == 8
    assert _synth(tiny_pretrained, v3dir, cache, "v3").sample_steps(_req(ref, sample_steps=0)) == 32
    two = synth.synthesize(_req(ref, sample_steps=2))
    three = synth.synthesize(_req(ref, sample_steps=3))
    assert two.audio.shape == three.audio.shape and not np.array_equal(two.audio, three.audio)
    # v1/v2 weights ignore the knob
    v2 = Synthesizer(tiny_pretrained.s1, tiny_pretrained.s2g, tiny_pretrained.root, device="cpu", cache=cache)
    assert v2.sample_steps(_req(ref, sample_steps=100)) == 0 and v2.output_rate() == 32000


def test_sample_steps_out_of_range(tiny_pretrained, v3dir, ref, cache) -> None:
    v4 = _synth(tiny_pretrained, v3dir, cache, "v4")
    with pytest.raises(
        TTSInputError, match=r"between 1 and 32 for a SoVITS v4 model \(0: its default, 8\), got 33"
    ):
        v4.synthesize(_req(ref, sample_steps=33))
    v3 = _synth(tiny_pretrained, v3dir, cache, "v3")
    assert v3.sample_steps(_req(ref, sample_steps=128)) == 128
    for steps in (-1, 129):  # the schema's own range, checked before anything loads
        with pytest.raises(TTSInputError, match=f"sample_steps must be between 0 and 128.*got {steps}"):
            v3.synthesize(_req(ref, sample_steps=steps))
    assert param("sample_steps").default == 0


def test_refusals(tiny_pretrained, v3dir, ref, cache, tmp_path) -> None:
    synth = _synth(tiny_pretrained, v3dir, cache, "v3")
    with pytest.raises(TTSInputError, match="needs the text of the reference"):
        synth.synthesize(_req(ref, ref_text=""))
    with pytest.raises(TTSInputError, match="remove the 1 extra reference"):
        synth.synthesize(_req(ref, aux_refs=[ref]))
    # A model folder without the vocoder: named, with where it goes and the download command.
    bare = tmp_path / "models"
    bare.mkdir()
    for name in ("chinese-hubert-base", "chinese-roberta-wwm-ext-large"):
        (bare / name).symlink_to(v3dir / name, target_is_directory=True)
    shutil.copy(v3dir / "s2Gv3.pth", bare / "s2Gv3.pth")
    lonely = Synthesizer(tiny_pretrained.s1, bare / "s2Gv3.pth", bare, device="cpu", cache=ModelCache())
    with pytest.raises(TTSInputError) as e:
        lonely.synthesize(_req(ref))
    message = str(e.value)
    assert BIGVGAN_FOLDER in message and "bigvgan_generator.pt" in message
    assert "python -m gpt_sovits.pretrained download v3" in message


def test_lora_needs_its_base(tiny_pretrained, v3dir, ref, tmp_path) -> None:
    lora = Path(__file__).parent / "data" / "s2_v3" / "lora_v4_tiny.pth"
    synth = Synthesizer(tiny_pretrained.s1, lora, tmp_path, device="cpu", cache=ModelCache())
    with pytest.raises(TTSInputError, match=r"v4 LoRA export.*gsv-v4-pretrained/s2Gv4\.pth"):
        synth.sovits()


def test_cli_writes_wav_at_the_model_rate(tiny_pretrained, v3dir, ref, tmp_path, capsys) -> None:
    out = tmp_path / "v4.wav"
    argv = [
        "--gpt", str(tiny_pretrained.s1), "--sovits", str(v3dir / V3V4_FILES["v4"][0]), "--model-dir",
        str(v3dir), "--ref-audio", str(ref), "--ref-text", "你好世界。", "--text", "你好世界。", "--lang", "zh",
        "--out", str(out), "--seed", "5", "--max-new-tokens", "14", "--sample-steps", "2", "--device", "cpu",
    ]  # fmt: skip
    assert cli.main(argv) == 0
    printed = capsys.readouterr()
    assert "SoVITS v4" in printed.out and "s2Gv4.pth: version v4" in printed.err
    info = sf.info(out)
    assert info.samplerate == 48000 and info.frames > 0


def test_front_door_and_quick_check(v3dir, tmp_path) -> None:
    import gpt_sovits
    from gpt_sovits.infer.sovits import sovits_version, weight_problem

    model, cfg = gpt_sovits.load_sovits(v3dir / V3V4_FILES["v4"][0], precision="fp32")
    assert isinstance(model, SynthesizerTrnV3) and cfg.version == "v4"
    assert sovits_version(v3dir / V3V4_FILES["v4"][0]) == "v4"
    assert sovits_version(v3dir / V3V4_FILES["v3"][0]) == "v3"
    lora = Path(__file__).parent / "data" / "s2_v3" / "lora_v4_tiny.pth"
    merged, lcfg = gpt_sovits.load_sovits(lora, model_dir=v3dir, precision="fp32")
    assert lcfg.version == "v4" and isinstance(merged, SynthesizerTrnV3)
    for path in (v3dir / V3V4_FILES["v3"][0], v3dir / V3V4_FILES["v4"][0], lora):
        assert weight_problem(path, "sovits") is None, path
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"04" + (v3dir / V3V4_FILES["v4"][0]).read_bytes()[2:1000])
    assert weight_problem(broken, "sovits") is not None
    assert "GPT" in (weight_problem(v3dir / V3V4_FILES["v4"][0], "gpt") or "")


def test_weight_listing_offers_v3v4(v3dir, tmp_path) -> None:
    from ui.inference_helpers import WeightChoice, default_weight, sovits_choices, sovits_version

    ws = tmp_path / "ws"
    folder = ws / "weights" / "SoVITS_weights_v4"
    folder.mkdir(parents=True)
    shutil.copy(v3dir / V3V4_FILES["v4"][0], folder / "mine_e1.pth")
    choices = sovits_choices(ws, v3dir)
    labels = [c.label for c in choices]
    assert labels[0] == "SoVITS_weights_v4/mine_e1.pth"
    assert "pretrained v3: s2Gv3.pth" in labels and "pretrained v4: s2Gv4.pth" in labels
    assert default_weight(choices) == str(folder / "mine_e1.pth")  # the newest file that loads
    assert isinstance(choices[0], WeightChoice)
    assert sovits_version(folder / "mine_e1.pth") == "v4"  # shown next to the choice (no header: its config)


# ------------------------------------------------------------------------------------------ parity


@pytest.mark.parametrize("version", ["v3", "v4"])
def test_chunked_decode_matches_the_reference(version, tmp_path) -> None:
    """Our prompt conditioning + chunked CFM + vocoder against the reference's using_vocoder_synthesis on
    the same tiny weights, inputs and seeded noise (tests/data/s2_v3_infer/README.md): a 130-token prompt
    longer than t_ref frames, a 130-token target over two CFM chunks."""
    io = _fixture(version)
    cfg = S2V3Config.from_hparams(TINY_HPARAMS, version=version, **TINY_DIT)
    with torch.device("meta"):
        model = SynthesizerTrnV3(cfg)
    model.load_state_dict(seeded_weights(tiny_shapes(version)), strict=True, assign=True)
    model.eval()
    vocoder = _fixture_vocoder(io, version, tmp_path)
    prompt = prompt_condition(model, io["prompt_codes"], io["prompt_text"], io["refer"], io["ref_mel"])
    p = PROFILES[version]
    assert prompt.mel.shape[-1] == p.t_ref  # the reference's prompt was cut to its last t_ref frames
    target = frame_counts(io["codes"].size(-1), version)[0]
    assert chunk_frames(p.t_ref, target, version) == [p.t_chunk - p.t_ref, target - (p.t_chunk - p.t_ref)]
    gen = torch.Generator().manual_seed(int(io["noise_seed"]))  # the reference drew after manual_seed
    mel = infer_mel(model, prompt, io["codes"], io["text"], int(io["steps"]), generator=gen)
    assert rel_err(mel, io["mel"].float()) <= REL_TOL
    with torch.no_grad():
        wav = vocoder(mel)[0, 0]
    assert wav.shape == io["wav"].shape == (target * p.upsample_rate,)
    assert rel_err(wav, io["wav"].float()) <= REL_TOL


def _fixture(version: str) -> dict:
    import io as _io
    import lzma

    with lzma.open(DATA / f"decode_{version}.pt.xz") as f:
        return torch.load(_io.BytesIO(f.read()), weights_only=True)


def _fixture_vocoder(io: dict, version: str, tmp_path: Path) -> torch.nn.Module:
    """The fixture's vocoder written in its official format and read back by our loader."""
    import json

    saved = io["vocoder"]
    if version == "v3":
        folder = tmp_path / BIGVGAN_FOLDER
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(saved["config"]), encoding="utf-8")
        torch.save({"generator": saved["generator"]}, folder / "bigvgan_generator.pt")
        return load_bigvgan(folder, precision="fp32")
    torch.save(saved["state_dict"], tmp_path / "vocoder.pth")
    return load_vocoder_v4(tmp_path / "vocoder.pth", precision="fp32")


def test_loaders_read_the_fixture_formats(v3dir) -> None:
    """The tiny files of the model folder load through the official loaders (not only the synthesiser)."""
    assert load_bigvgan(v3dir / BIGVGAN_FOLDER, precision="fp32").hop == 256
    assert load_vocoder_v4(v3dir / V3V4_FILES["v4"][1], precision="fp32").hop == 480
    _, cfg = load_sovits_v3(v3dir / V3V4_FILES["v3"][0], precision="fp32")
    assert cfg.version == "v3"


@pytest.mark.parametrize("version", ["v3", "v4"])
def test_formatting_takes_the_tokens_from_the_v3v4_generator(v3dir, tmp_path, version) -> None:
    from gpt_sovits.data import prepare as prep
    from gpt_sovits.data.experiment import ExperimentPaths, read_name2semantic
    from gpt_sovits.models.weights_v3 import load_sovits_v3
    from tests.support.tiny_models import write_tiny_dataset

    list_path = write_tiny_dataset(tmp_path / "data", n=2)
    report = prep.prepare(list_path, tmp_path / "exp", v3dir, version=version, device="cpu", workers=1)
    assert len(report.processed) == 2 and not report.skipped
    paths = ExperimentPaths.of(tmp_path / "exp")
    semantic = read_name2semantic(paths.name2semantic)
    model, _ = load_sovits_v3(v3dir / V3V4_FILES[version][0], precision="fp32", version=version)
    for name, tokens in semantic.items():
        ssl = torch.load(paths.hubert(name), weights_only=True)  # (1, 768, T50)
        with torch.inference_mode():
            expected = model.extract_latent(ssl)[0, 0].tolist()  # the v3/v4 quantizer (reference 1c)
        assert tokens == expected and len(tokens) == ssl.shape[-1] // 2


def test_formatting_refuses_a_generator_of_the_other_version_kind(v3dir, tmp_path) -> None:
    from gpt_sovits.data import prepare as prep
    from tests.support.tiny_models import write_tiny_dataset

    root = tmp_path / "models"
    shutil.copytree(v3dir, root, symlinks=True)
    (root / V3V4_FILES["v3"][0]).write_bytes(b"not a checkpoint")
    list_path = write_tiny_dataset(tmp_path / "data", n=1)
    with pytest.raises(prep.PrepareError, match="SoVITS v3 generator cannot be used"):
        prep.prepare(list_path, tmp_path / "exp", root, version="v3", device="cpu", workers=1)
