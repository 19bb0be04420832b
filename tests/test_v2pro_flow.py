"""v2Pro end to end on tiny random models in the official formats: registry, formatting (7-sv_cn),
synthesis with the SV embedding, the CLI's version line, and the messages for a missing SV model and for
GPT/SoVITS versions that do not go together.

The SV model is A's ERes2NetV2 with fewer blocks and a tiny classifier head (its 20480-d forward3
embedding, what S2 reads, keeps the official size); the v2Pro generator is B's SynthesizerTrn with tiny
sizes. Both load through the real loaders: only `load_sv` is handed the small config (monkeypatched).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from gpt_sovits import pretrained as registry
from gpt_sovits.infer.request import SynthesisRequest, TTSInputError
from gpt_sovits.models import sv as sv_module
from gpt_sovits.models.s1 import Text2Semantic
from gpt_sovits.models.s2 import S2Config, SynthesizerTrn
from gpt_sovits.models.weights import save_gpt_weights
from tests.support.synth import voiced_segments
from tests.support.tiny_models import tiny_s1_config, tiny_s2_config, write_tiny_dataset

# Fewer blocks, a tiny seg_1 head: forward3 still gives 2048 channels x 10 bands = 20480.
TINY_SV = sv_module.SVConfig(num_blocks=(1, 1, 1, 1), embedding_size=8)


@dataclass(frozen=True)
class ProModels:
    root: Path  # a pretrained folder with the v2Pro files (and HuBERT/BERT of the tiny v2 folder)
    bare: Path  # the same without the SV model
    s1v3: Path
    s2g: Path
    v1_gpt: Path
    sv_loads: list[str]  # paths load_sv was called with (counts loads)


def _link_features(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("chinese-hubert-base", "chinese-roberta-wwm-ext-large"):
        (dst / name).symlink_to(src / name, target_is_directory=True)


def _tiny_v2pro_config() -> S2Config:
    base = tiny_s2_config()
    return S2Config(
        version="v2Pro",
        inter_channels=base.inter_channels,
        hidden_channels=base.hidden_channels,
        filter_channels=base.filter_channels,
        n_heads=base.n_heads,
        n_layers=base.n_layers,
        upsample_initial_channel=base.upsample_initial_channel,
        gin_channels=64,  # v2Pro maps ge to MRTE's 512 with ge_to512, so gin may differ from 512
        p_dropout=0.0,
    )


@pytest.fixture(scope="module")
def pro(tiny_pretrained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProModels]:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("pro_pretrained")
    bare = tmp_path_factory.mktemp("pro_pretrained_no_sv")
    for folder in (root, bare):
        _link_features(tiny_pretrained.root, folder)
    s1v3 = root / registry.S1V3_FILE
    shutil.copyfile(tiny_pretrained.s1, s1v3)  # a v2-phone-set GPT, as s1v3.ckpt is
    shutil.copyfile(tiny_pretrained.s1, bare / registry.S1V3_FILE)
    v1_gpt = root / "tiny_v1_gpt.ckpt"
    v1_cfg = dataclasses.replace(tiny_s1_config(), phoneme_vocab_size=512)
    save_gpt_weights(Text2Semantic(v1_cfg), v1_cfg, v1_gpt, info="tiny v1 GPT")

    s2_cfg = _tiny_v2pro_config()
    generator = SynthesizerTrn(s2_cfg, with_posterior=True).eval()
    s2g = root / registry.PRETRAINED_FILES["v2Pro"][1]
    s2g.parent.mkdir(parents=True)
    # The official pretrained layout: {"weight": fp16 state dict (with enc_q)}, plus our plain config.
    weight = OrderedDict((k, v.half()) for k, v in generator.state_dict().items())
    torch.save({"weight": weight, "config": s2_cfg.to_hparams(), "info": "tiny v2Pro"}, s2g)
    (bare / s2g.relative_to(root)).parent.mkdir(parents=True)
    shutil.copyfile(s2g, bare / s2g.relative_to(root))

    sv_path = root / registry.SV_FILE
    sv_path.parent.mkdir(parents=True)
    torch.save(sv_module.SpeakerVerifier(TINY_SV).model.state_dict(), sv_path)  # the official: a state dict

    loads: list[str] = []
    real = sv_module.load_sv

    def tiny_load_sv(path, device="cpu", **kw):
        loads.append(str(path))
        return real(path, device, config=TINY_SV)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sv_module, "load_sv", tiny_load_sv)
        yield ProModels(root, bare, s1v3, s2g, v1_gpt, loads)


@pytest.fixture(scope="module")
def ref_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    audio = voiced_segments([("silence", 0.2), ("voice", 3.0), ("silence", 0.2)], seed=7)
    path = tmp_path_factory.mktemp("pro_ref") / "ref.wav"
    sf.write(path, audio, 32000, subtype="PCM_16")
    return path


def test_registry_lists_the_six_files(tmp_path: Path) -> None:
    rows = {r.name: r for r in registry.model_status(tmp_path)}
    expected = {
        "gpt-s1v3": "s1v3.ckpt",
        "sovits-v2Pro": "v2Pro/s2Gv2Pro.pth",
        "sovits-d-v2Pro": "v2Pro/s2Dv2Pro.pth",
        "sovits-v2ProPlus": "v2Pro/s2Gv2ProPlus.pth",
        "sovits-d-v2ProPlus": "v2Pro/s2Dv2ProPlus.pth",
        "sv-eres2netv2": "sv/pretrained_eres2netv2w24s4ep4.ckpt",
    }
    for name, rel in expected.items():
        assert rows[name].path == tmp_path / rel
        assert not rows[name].present
        # where it goes, where it comes from, and the command that fetches it
        assert str(tmp_path / rel) in rows[name].how_to_get
        assert f"lj1995/GPT-SoVITS/blob/main/{rel}" in rows[name].how_to_get
        assert f"download {name}" in rows[name].how_to_get
    for version in ("v2Pro", "v2ProPlus"):
        need = registry.version_models(version)
        assert need["s1"] == "gpt-s1v3" and need["sv"] == "sv-eres2netv2"
        assert need["s2g"] == f"sovits-{version}" and need["s2d"] == f"sovits-d-{version}"
        assert set(registry.GROUPS[version]) == set(need.values())
    assert "sv" not in registry.version_models("v2")
    assert registry.pretrained_paths(tmp_path, "v2").sv is None
    assert registry.pretrained_paths(tmp_path, "v2ProPlus").s1 == tmp_path / "s1v3.ckpt"


def test_format_writes_sv_embeddings_incrementally(pro: ProModels, tmp_path: Path) -> None:
    from gpt_sovits.data.experiment import ExperimentPaths
    from gpt_sovits.data.prepare import prepare

    torch.set_num_threads(1)
    list_path = write_tiny_dataset(tmp_path / "data", n=3, seconds=1.2)
    exp = tmp_path / "exp"
    pro.sv_loads.clear()
    report = prepare(list_path, exp, pro.root, version="v2Pro", device="cpu", workers=1)
    assert len(report.formatted) == 3, [str(s) for s in report.skipped]
    assert len(pro.sv_loads) == 1  # loaded once, for the whole run
    paths = ExperimentPaths.of(exp)
    pro_sv = sv_module.load_sv(pro.root / registry.SV_FILE)
    for name in report.formatted:
        emb = torch.load(paths.sv(name), weights_only=True)
        assert emb.shape == (1, sv_module.SV_DIM) and emb.dtype == torch.float32
        # what 2-get-sv.py embeds: the 5-wav32k samples as float (int16 / 32768)
        wav, sr = sf.read(paths.wav(name), dtype="int16")
        assert sr == 32000
        expected = sv_module.sv_embedding_of_wav32k(pro_sv, wav.astype(np.float32) / 32768.0)
        torch.testing.assert_close(emb, expected)

    # The v2Pro S2 trainer's data scan accepts the experiment (it checks every clip's 7-sv_cn file).
    from gpt_sovits.data.s2_dataset import scan_experiment

    items, _ = scan_experiment(exp, "v2Pro")
    assert sorted(i.name for i in items) == sorted(report.formatted)

    # Nothing to do: nothing loaded, nothing rewritten.
    pro.sv_loads.clear()
    again = prepare(list_path, exp, pro.root, version="v2Pro", device="cpu", workers=1)
    assert again.processed == [] and again.reused == 3 and pro.sv_loads == []

    # An SV model missing its embedding file for one clip: only that embedding is redone.
    first = report.formatted[0]
    hubert_mtime = paths.hubert(first).stat().st_mtime_ns
    paths.sv(first).unlink()
    redo = prepare(list_path, exp, pro.root, version="v2Pro", device="cpu", workers=1)
    assert redo.processed == [first] and paths.sv(first).is_file()
    assert paths.hubert(first).stat().st_mtime_ns == hubert_mtime  # the audio part was up to date


def test_format_without_sv_model_names_it(pro: ProModels, tmp_path: Path) -> None:
    from gpt_sovits.data.prepare import PretrainedMissingError, prepare

    list_path = write_tiny_dataset(tmp_path / "data", n=1, seconds=1.0)
    with pytest.raises(PretrainedMissingError) as info:
        prepare(list_path, tmp_path / "exp", pro.bare, version="v2Pro", device="cpu", workers=1)
    message = str(info.value)
    assert "pretrained_eres2netv2w24s4ep4.ckpt" in message
    assert str(pro.bare / "sv") in message
    assert "python -m gpt_sovits.pretrained download sv-eres2netv2" in message
    assert not (tmp_path / "exp" / "2-name2text.txt").exists()  # no clip touched


def test_format_v2_writes_no_sv(tiny_pretrained, tmp_path: Path) -> None:
    """A v2 experiment needs no SV model and gets no 7-sv_cn (the tiny v2 folder has none)."""
    from gpt_sovits.data.prepare import prepare

    list_path = write_tiny_dataset(tmp_path / "data", n=1, seconds=1.0)
    report = prepare(list_path, tmp_path / "exp", tiny_pretrained.root, version="v2", device="cpu", workers=1)
    assert report.formatted and not (tmp_path / "exp" / "7-sv_cn").exists()


def _request(ref: Path, **kw) -> SynthesisRequest:
    return SynthesisRequest(
        text="Hello world.", text_lang="en", ref_audio=str(ref), candidates=1, seed=3, max_new_tokens=20, **kw
    )


def test_synthesis_uses_the_sv_embedding(pro: ProModels, ref_wav: Path) -> None:
    from gpt_sovits.infer.synthesizer import Synthesizer

    torch.set_num_threads(1)
    synth = Synthesizer(pro.s1v3, pro.s2g, pro.root, device="cpu")
    assert synth.model_version() == "v2Pro" and synth.uses_sv()
    request = _request(ref_wav, aux_refs=[str(ref_wav)])
    result = synth.synthesize(request)
    assert result.audio.size > 0 and np.isfinite(result.audio).all()
    # One embedding per reference (main + auxiliary), kept for re-decoding.
    assert result.refer_sv is not None and len(result.refer_sv) == 2
    assert all(e.shape == (1, sv_module.SV_DIM) for e in result.refer_sv)
    ref = synth.prepare_reference(request)  # cached with the prepared reference: no second SV run
    assert ref.sv is not None and torch.equal(ref.sv[0].cpu(), result.refer_sv[0])
    assert [k for k in synth.cache.loads if k[0] == "sv"] and all(n == 1 for n in synth.cache.loads.values())
    # The embedding is what S2 decodes with: the same tokens with another embedding sound different.
    sentence = result.sentences[0]
    again = synth.candidate_audio(result, 0, sentence.chosen)
    tokens = sentence.candidates[sentence.chosen].tokens
    same = synth._decode(
        tokens, sentence.phones, result.refer_specs, request, result.seed, 0, result.refer_sv
    )
    other_sv = [torch.randn_like(e) for e in result.refer_sv]
    other = synth._decode(tokens, sentence.phones, result.refer_specs, request, result.seed, 0, other_sv)
    assert np.array_equal(again, sentence.audio) and np.array_equal(same, sentence.audio)
    assert not np.allclose(other, same)


def test_missing_sv_model_is_one_message(pro: ProModels, ref_wav: Path) -> None:
    from gpt_sovits.infer.synthesizer import Synthesizer

    synth = Synthesizer(pro.bare / registry.S1V3_FILE, pro.bare / pro.s2g.relative_to(pro.root), pro.bare)
    with pytest.raises(TTSInputError) as info:
        synth.synthesize(_request(ref_wav))
    message = str(info.value)
    assert message.count("pretrained_eres2netv2w24s4ep4.ckpt") >= 1
    assert "v2Pro" in message and str(pro.bare / "sv") in message
    assert "python -m gpt_sovits.pretrained download sv-eres2netv2" in message
    assert "Traceback" not in message


def test_mismatched_gpt_is_refused(pro: ProModels, ref_wav: Path) -> None:
    from gpt_sovits.infer.synthesizer import Synthesizer

    synth = Synthesizer(pro.v1_gpt, pro.s2g, pro.root, device="cpu")
    with pytest.raises(TTSInputError, match=r"v1 \(phone vocabulary 512\).*v2Pro"):
        synth.synthesize(_request(ref_wav))


def test_v2_model_does_not_use_sv(tiny_pretrained, pro: ProModels, ref_wav: Path) -> None:
    """A v2 SoVITS beside an SV model: the SV model is never loaded and S2 gets no embedding."""
    from gpt_sovits.infer.synthesizer import Synthesizer

    synth = Synthesizer(tiny_pretrained.s1, tiny_pretrained.s2g, pro.root, device="cpu")
    pro.sv_loads.clear()
    ref = synth.prepare_reference(SynthesisRequest(text="x", ref_audio=str(ref_wav), ref_text=""))
    assert synth.model_version() == "v2" and not synth.uses_sv()
    assert ref.sv is None and pro.sv_loads == []


def test_cli_prints_the_version(pro: ProModels, ref_wav: Path, tmp_path: Path, capsys) -> None:
    from gpt_sovits.infer.__main__ import main, make_parser

    assert "v2Pro" in make_parser().format_help()
    out = tmp_path / "out.wav"
    argv = ["--gpt", str(pro.s1v3), "--sovits", str(pro.s2g), "--ref-audio", str(ref_wav)]
    argv += ["--text", "Hello.", "--lang", "en", "--out", str(out), "--model-dir", str(pro.root)]
    argv += ["--device", "cpu", "--candidates", "1", "--max-new-tokens", "10"]
    assert main(argv) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    assert f"SoVITS {pro.s2g.name}: version v2Pro" in captured.err
    assert "SoVITS v2Pro" in captured.out and out.is_file()


def test_voice_cloning_lists_v2pro_exports_with_their_version(pro: ProModels, tmp_path: Path) -> None:
    """Exports in the reference's SoVITS_weights_v2Pro folder are offered, the version shown beside them."""
    from gpt_sovits.models.weights import load_sovits, save_sovits_weights
    from ui import inference_helpers as H
    from ui.inference_layout import weight_dropdown_choices

    model, cfg = load_sovits(pro.s2g, "cpu", precision="fp32")
    export = save_sovits_weights(model, cfg, tmp_path / "weights" / "SoVITS_weights_v2Pro" / "voice_e1.pth")
    choices = H.sovits_choices(tmp_path, pro.root)
    labels = dict((path, label) for label, path in weight_dropdown_choices(choices, lambda s: s))
    assert labels[str(export)] == "SoVITS_weights_v2Pro/voice_e1.pth · v2Pro"
    assert labels[str(pro.s2g)] == "pretrained v2Pro: s2Gv2Pro.pth · v2Pro"
    assert H.sovits_version(export) == "v2Pro"
    gpts = [(c.label, c.path) for c in H.gpt_choices(tmp_path, pro.root)]
    # The SV model's line in the model status: a note (not a warning) when missing, as v2 needs none.
    from ui.context import AppContext
    from ui.inference_layout import models_markdown

    found = models_markdown(AppContext.create(tmp_path / "ws", "en_US", pro.root))
    assert "- ✅ `sv-eres2netv2` (v2Pro/v2ProPlus only): found" in found.splitlines()
    missing = models_markdown(AppContext.create(tmp_path / "ws", "en_US", pro.bare))
    line = next(ln for ln in missing.splitlines() if "sv-eres2netv2" in ln)
    assert (
        line.startswith("- ℹ️ `sv-eres2netv2` (v2Pro/v2ProPlus only): missing.")
        and "download sv-eres2netv2" in line
    )
    # s1v3.ckpt serves both Pro versions: listed once, for both
    assert [label for label, path in gpts if path == str(pro.s1v3)] == [
        "pretrained v2Pro/v2ProPlus: s1v3.ckpt"
    ]
