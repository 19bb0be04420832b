"""Dataset formatting (gpt_sovits.data.prepare) and the experiment tables (gpt_sovits.data.experiment)."""

from __future__ import annotations

import functools
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from gpt_sovits.data import prepare as prep
from gpt_sovits.data.experiment import (
    ExperimentFormatError,
    ExperimentPaths,
    PhoneEntry,
    read_languages,
    read_name2semantic,
    read_name2text,
    write_name2semantic,
    write_name2text,
)
from tests.support.synth import voiced_tone
from tests.support.tiny_models import write_tiny_dataset

# ------------------------------------------------------------------------------------ experiment tables


def test_name2text_round_trip_in_the_reference_format(tmp_path):
    path = tmp_path / "2-name2text.txt"
    entries = [
        PhoneEntry("a.wav", ["n", "i2", "h", "ao3", "."], [2, 2, 1], "你好.", "zh"),
        PhoneEntry("b.wav", [",", "HH", "AY1"], None, "hi", "en"),
    ]
    write_name2text(path, entries)
    # the reference's line: word2ph as str(list) for Chinese, None otherwise; a final line break
    assert path.read_text(encoding="utf-8") == (
        "a.wav\tn i2 h ao3 .\t[2, 2, 1]\t你好.\nb.wav\t, HH AY1\tNone\thi\n"
    )
    back = read_name2text(path, languages={"a.wav": "zh"})
    assert back["a.wav"] == entries[0]
    assert back["b.wav"] == PhoneEntry("b.wav", [",", "HH", "AY1"], None, "hi", None)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("a.wav\tn i2\n", "line 1: expected 4"),
        ("a.wav\tn i2\t[1, 1]\tx\nb.wav\tn\t[oops]\tx\n", "line 2: word2ph"),
        ("a.wav\tn i2 h\t[1, 1]\tx\n", "adds up to 2 but there are 3 phones"),
        ("a.wav\t\tNone\tx\n", "no phones"),
    ],
)
def test_name2text_malformed_lines_name_the_line(tmp_path, content, fragment):
    path = tmp_path / "2-name2text.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ExperimentFormatError, match=fragment.replace("[", r"\[")):
        read_name2text(path)


def test_name2semantic_round_trip_and_errors(tmp_path):
    path = tmp_path / "6-name2semantic.tsv"
    write_name2semantic(path, {"a.wav": [1, 2, 1023], "b.wav": [0]})
    assert path.read_text(encoding="utf-8") == "item_name\tsemantic_audio\na.wav\t1 2 1023\nb.wav\t0\n"
    assert read_name2semantic(path) == {"a.wav": [1, 2, 1023], "b.wav": [0]}
    path.write_text("item_name\tsemantic_audio\na.wav\t1 x 3\n", encoding="utf-8")
    with pytest.raises(ExperimentFormatError, match="line 2"):
        read_name2semantic(path)
    with pytest.raises(ExperimentFormatError, match="tab or line break"):
        write_name2text(tmp_path / "t.txt", [PhoneEntry("a\tb", ["a"], None, "x")])


# ------------------------------------------------------------------------------------------- helpers


def _run(list_path: Path, exp: Path, tiny, **kw) -> prep.PrepareReport:
    kw.setdefault("device", "cpu")
    kw.setdefault("workers", 1)
    return prep.prepare(list_path, exp, tiny.root, progress=lambda *a: None, **kw)


def _mtimes(exp: Path) -> dict[str, int]:
    return {str(p.relative_to(exp)): p.stat().st_mtime_ns for p in sorted(exp.rglob("*")) if p.is_file()}


def _rewrite_line(list_path: Path, index: int, new_text: str) -> None:
    lines = list_path.read_text(encoding="utf-8").splitlines()
    path, spk, lang, _ = lines[index].split("|")
    lines[index] = f"{path}|{spk}|{lang}|{new_text}"
    list_path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _check_consistent(exp: Path) -> tuple[dict, dict]:
    paths = ExperimentPaths.of(exp)
    texts = read_name2text(paths.name2text, read_languages(paths))
    semantic = read_name2semantic(paths.name2semantic)
    assert set(texts) == set(semantic)
    for name, entry in texts.items():
        ssl = torch.load(paths.hubert(name), weights_only=True)
        assert ssl.dtype == torch.float32 and ssl.shape[:2] == (1, 768)
        assert len(semantic[name]) == ssl.shape[-1] // 2  # ssl_proj: kernel 2, stride 2
        assert all(0 <= t < 1024 for t in semantic[name])
        info = sf.info(str(paths.wav(name)))
        assert info.samplerate == 32000 and info.subtype == "PCM_16" and info.channels == 1
        # HuBERT runs at 50 Hz on the 16 kHz version of the same clip
        assert abs(ssl.shape[-1] - info.frames / 640) <= 1
        if entry.language == "zh":
            bert = torch.load(paths.bert(name), weights_only=True)
            assert bert.dtype == torch.float32 and bert.shape == (1024, len(entry.phones))
            assert entry.word2ph is not None and sum(entry.word2ph) == len(entry.phones)
        else:
            assert entry.language == "en" and entry.word2ph is None
            assert not paths.bert(name).exists()
    return texts, semantic


# ----------------------------------------------------------------------------------------- formatting


def test_formats_consistently_and_a_rerun_writes_nothing(tmp_path, tiny_pretrained):
    list_path = write_tiny_dataset(tmp_path / "data", n=6)
    exp = tmp_path / "exp"
    calls = []
    report = prep.prepare(
        list_path, exp, tiny_pretrained.root, device="cpu", workers=1, progress=lambda *a: calls.append(a)
    )
    assert not report.skipped and not report.cancelled
    assert report.formatted == [f"clip_{i:03d}.wav" for i in range(6)]
    assert sorted(report.processed) == report.formatted
    assert calls[-1][:2] == (6, 6)
    texts, _ = _check_consistent(exp)
    assert {e.language for e in texts.values()} == {"zh", "en"}
    assert sorted(p.name for p in (exp / "3-bert").iterdir()) == sorted(
        f"{n}.pt" for n, e in texts.items() if e.language == "zh"
    )

    before = _mtimes(exp)
    again = _run(list_path, exp, tiny_pretrained)
    assert again.processed == [] and again.reused == 6 and again.formatted == report.formatted
    assert _mtimes(exp) == before  # nothing rewritten, not even the tables or the manifest


def test_changed_text_or_audio_redoes_only_that_clip_and_removed_lines_are_dropped(tmp_path, tiny_pretrained):
    list_path = write_tiny_dataset(tmp_path / "data", n=5)
    exp = tmp_path / "exp"
    _run(list_path, exp, tiny_pretrained)
    paths = ExperimentPaths.of(exp)
    before = _mtimes(exp)

    _rewrite_line(list_path, 1, "我们去公园。")  # clip_001 (zh): new text, same audio
    report = _run(list_path, exp, tiny_pretrained)
    assert report.processed == ["clip_001.wav"]
    assert read_name2text(paths.name2text)["clip_001.wav"].norm_text == "我们去公园."
    after = _mtimes(exp)
    changed = {k for k in after if after[k] != before.get(k)}
    # the text part only: BERT features and the tables; its audio outputs are kept
    assert changed == {"3-bert/clip_001.wav.pt", "2-name2text.txt", "prepare_manifest.json"}
    assert torch.load(paths.bert("clip_001.wav"), weights_only=True).shape[1] == len(
        read_name2text(paths.name2text)["clip_001.wav"].phones
    )

    # new audio for clip_002: its wav, HuBERT and tokens are redone, its text part is not
    audio = voiced_tone(1.2, 32000, f0=200, seed=7)
    sf.write(list_path.parent / "wavs" / "clip_002.wav", audio, 32000, subtype="PCM_16")
    before = _mtimes(exp)
    report = _run(list_path, exp, tiny_pretrained)
    assert report.processed == ["clip_002.wav"]
    after = _mtimes(exp)
    changed = {k for k in after if after[k] != before.get(k)}
    assert {"5-wav32k/clip_002.wav", "4-cnhubert/clip_002.wav.pt", "6-name2semantic.tsv"} <= changed
    assert not any(
        k.startswith(("3-bert", "4-cnhubert/clip_00", "5-wav32k/clip_00")) and "002" not in k for k in changed
    )
    assert sf.info(str(paths.wav("clip_002.wav"))).frames == len(audio)

    # clip_000 becomes English: its old BERT features go (trainers load them whenever they exist)
    _rewrite_line(list_path, 0, "Hello world.")
    lines = list_path.read_text(encoding="utf-8").splitlines()
    lines[0] = lines[0].replace("|zh|", "|en|")
    list_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert _run(list_path, exp, tiny_pretrained).processed == ["clip_000.wav"]
    assert not paths.bert("clip_000.wav").exists()
    assert read_name2text(paths.name2text)["clip_000.wav"].word2ph is None

    # a line removed from the list is dropped from both tables
    lines = list_path.read_text(encoding="utf-8").splitlines()
    list_path.write_text("\n".join(lines[:3] + lines[4:]) + "\n", encoding="utf-8")
    report = _run(list_path, exp, tiny_pretrained)
    assert report.removed == ["clip_003.wav"] and report.processed == []
    texts, semantic = _check_consistent(exp)
    assert "clip_003.wav" not in texts and "clip_003.wav" not in semantic and len(texts) == 4


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path, tiny_pretrained):
    list_path = write_tiny_dataset(tmp_path / "data", n=6)
    exp = tmp_path / "exp"
    done = {"n": 0}

    def crash_after_three() -> bool:
        if done["n"] >= 3:  # 3 clips complete, then the process "dies" in the middle of the run
            raise RuntimeError("simulated crash")
        return False

    def progress(n: int, total: int, message: str = "") -> None:
        done["n"] = n

    with pytest.raises(RuntimeError, match="simulated crash"):
        prep.prepare(
            list_path, exp, tiny_pretrained.root, device="cpu", workers=1,
            progress=progress, should_stop=crash_after_three,
        )  # fmt: skip
    texts, _ = _check_consistent(exp)
    assert sorted(texts) == ["clip_000.wav", "clip_001.wav", "clip_002.wav"]
    done_files = _mtimes(exp)

    report = _run(list_path, exp, tiny_pretrained)
    assert report.processed == ["clip_003.wav", "clip_004.wav", "clip_005.wav"] and report.reused == 3
    assert len(_check_consistent(exp)[0]) == 6
    now = _mtimes(exp)
    finished = ("clip_000.wav", "clip_001.wav", "clip_002.wav")
    kept = [
        k for k in done_files if k.startswith(("3-", "4-", "5-")) and k.split("/")[1].startswith(finished)
    ]
    assert len(kept) == 3 + 3 + 2  # wav, HuBERT, and BERT for the two Chinese clips among the first three
    assert all(now[k] == done_files[k] for k in kept)  # the finished clips were not redone

    # a polite stop (the UI's Stop button) saves what is done and says so
    shutil.rmtree(exp)
    stopped = prep.prepare(
        list_path, exp, tiny_pretrained.root, device="cpu", workers=1,
        progress=lambda *a: None, should_stop=lambda: len(list((exp / "4-cnhubert").glob("*.pt"))) >= 2,
    )  # fmt: skip
    assert stopped.cancelled and stopped.formatted == ["clip_000.wav", "clip_001.wav"]
    assert len(_check_consistent(exp)[0]) == 2


def test_bad_clips_are_reported_with_reasons_and_the_rest_formatted(tmp_path, tiny_pretrained):
    list_path = write_tiny_dataset(tmp_path / "data", n=2)
    wavs = list_path.parent / "wavs"
    other = tmp_path / "other"
    other.mkdir()
    sf.write(other / "clip_000.wav", voiced_tone(1.0, 32000), 32000, subtype="PCM_16")  # same basename
    loud = voiced_tone(1.0, 32000) / 0.5 * 3.0  # peak 3.0: only a float file can hold it
    sf.write(wavs / "loud.wav", loud.astype(np.float32), 32000, subtype="FLOAT")
    sf.write(wavs / "short.wav", voiced_tone(0.1, 32000), 32000, subtype="PCM_16")
    sf.write(wavs / "silent.wav", np.zeros(32000, dtype=np.float32), 32000, subtype="PCM_16")
    sf.write(wavs / "fr.wav", voiced_tone(1.0, 32000), 32000, subtype="PCM_16")
    sf.write(wavs / "empty.wav", voiced_tone(1.0, 32000), 32000, subtype="PCM_16")
    sf.write(wavs / "long_text.wav", voiced_tone(1.0, 32000), 32000, subtype="PCM_16")
    (wavs / "broken.wav").write_bytes(b"RIFF not really a wav")
    extra = [
        f"{wavs / 'fr.wav'}|tiny|fr|Bonjour tout le monde.",
        f"{wavs / 'empty.wav'}|tiny|zh|   ",
        f"{wavs / 'missing.wav'}|tiny|zh|你好世界。",
        f"{wavs / 'loud.wav'}|tiny|zh|你好世界。",
        f"{other / 'clip_000.wav'}|tiny|zh|你好世界。",
        f"{wavs / 'short.wav'}|tiny|zh|你好世界。",
        f"{wavs / 'silent.wav'}|tiny|zh|你好世界。",
        f"{wavs / 'broken.wav'}|tiny|zh|你好世界。",
        f"{wavs / 'long_text.wav'}|tiny|zh|{'你好世界' * 150}",  # more than BERT's 512 positions
        "no fields here",
    ]
    with open(list_path, "a", encoding="utf-8") as f:
        f.write("\n".join(extra) + "\n")
    exp = tmp_path / "exp"
    report = _run(list_path, exp, tiny_pretrained)
    reasons = {(s.name or s.path): s.reason for s in report.skipped}
    assert reasons == {
        "fr.wav": "unsupported_language",
        "empty.wav": "empty_text",
        "missing.wav": "missing_file",
        "loud.wav": "too_loud",
        "clip_000.wav": "duplicate_name",
        "short.wav": "too_short",
        "silent.wav": "silent",
        "broken.wav": "unreadable",
        "long_text.wav": "feature_error",
        "no fields here": "malformed_line",
    }
    assert [s.line for s in report.skipped] == sorted(s.line for s in report.skipped)
    assert all(str(s) for s in report.skipped)
    assert report.formatted == ["clip_000.wav", "clip_001.wav"]
    texts, _ = _check_consistent(exp)
    assert sorted(texts) == report.formatted
    for folder in ("3-bert", "4-cnhubert", "5-wav32k"):  # nothing left behind for the skipped clips
        assert sorted(p.name.removesuffix(".pt") for p in (exp / folder).iterdir()) == report.formatted

    before = _mtimes(exp)
    again = _run(list_path, exp, tiny_pretrained)
    assert {(s.name or s.path): s.reason for s in again.skipped} == reasons  # remembered, not redone
    assert again.processed == [] and _mtimes(exp) == before


def test_files_follow_the_reference_recipe(tmp_path, tiny_pretrained):
    """One clip recomputed here step by step from 2-get-hubert-wav32k.py / 3-get-semantic.py / 1-get-text.py."""
    import torchaudio.functional as AF
    from transformers import AutoModelForMaskedLM, AutoTokenizer, HubertModel

    from gpt_sovits.models.weights import load_sovits

    list_path = write_tiny_dataset(tmp_path / "data", n=1)  # clip_000: zh "你好世界。"
    exp = tmp_path / "exp"
    _run(list_path, exp, tiny_pretrained)
    paths = ExperimentPaths.of(exp)
    name = "clip_000.wav"

    x, sr = sf.read(str(list_path.parent / "wavs" / name), dtype="float32")
    assert sr == 32000
    peak = np.abs(x).max()
    mix = x / peak * np.float32(0.95 * 0.5 * 32768) + np.float32(0.5 * 32768) * x
    written, _ = sf.read(str(paths.wav(name)), dtype="int16")
    np.testing.assert_array_equal(written, mix.astype(np.int16))

    mix_b = x / peak * np.float32(0.95 * 0.5 * 1145.14) + np.float32(0.5 * 1145.14) * x
    wav16 = AF.resample(torch.from_numpy(mix_b.astype(np.float32)), 32000, 16000)
    hubert = HubertModel.from_pretrained(str(tiny_pretrained.hubert)).eval()
    with torch.no_grad():
        expected = hubert(wav16.unsqueeze(0)).last_hidden_state.transpose(1, 2)
    saved = torch.load(paths.hubert(name), weights_only=True)
    torch.testing.assert_close(saved, expected, rtol=1e-4, atol=1e-4)

    s2, _ = load_sovits(tiny_pretrained.s2g)
    with torch.no_grad():
        codes = s2.extract_latent(saved)
    assert read_name2semantic(paths.name2semantic)[name] == codes[0, 0].tolist()

    entry = read_name2text(paths.name2text)[name]
    tok = AutoTokenizer.from_pretrained(str(tiny_pretrained.bert))
    bert = AutoModelForMaskedLM.from_pretrained(str(tiny_pretrained.bert)).eval()
    with torch.no_grad():
        hidden = bert(**tok(entry.norm_text, return_tensors="pt"), output_hidden_states=True).hidden_states
    res = hidden[-3][0][1:-1]
    expected_bert = torch.cat([res[i].repeat(n, 1) for i, n in enumerate(entry.word2ph)], 0).T
    torch.testing.assert_close(
        torch.load(paths.bert(name), weights_only=True), expected_bert, rtol=1e-4, atol=1e-4
    )


def test_text_cleaning_in_worker_processes_gives_the_same_results(tmp_path, monkeypatch):
    list_path = write_tiny_dataset(tmp_path / "data", n=4)
    sources, _ = prep.read_sources(list_path)
    serial = prep._clean_texts(sources, "v2", 1, lambda: False, lambda m: None)
    monkeypatch.setattr(prep, "PARALLEL_TEXT_MIN_ITEMS", 1)
    notes = []
    pooled = prep._clean_texts(sources, "v2", 2, lambda: False, notes.append)
    assert pooled == serial and len(serial) == 4 and notes[-1] == "texts to phones: 4/4"
    assert all(isinstance(v, tuple) and v[0] for v in pooled.values())


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_with_config_events_and_wav_dir(tmp_path, tiny_pretrained, capsys):
    list_path = write_tiny_dataset(tmp_path / "data", n=2)
    # a list written on Windows: only the basename counts when --wav-dir is given (as the reference)
    lines = [
        "C:\\Users\\someone\\slices\\" + line.split("|", 1)[0].rsplit("/", 1)[1] + "|" + line.split("|", 1)[1]
        for line in list_path.read_text(encoding="utf-8").splitlines()
    ]
    lines[0] = '\u202a"' + lines[0].replace("|", '"|', 1)  # "copy as path" quotes and its invisible mark
    list_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    exp = tmp_path / "exp"
    config = tmp_path / "prepare.json"
    config.write_text(
        json.dumps({"list": str(list_path), "exp_dir": str(exp), "pretrained_dir": "/nowhere", "workers": 1}),
        encoding="utf-8",
    )
    events = tmp_path / "events.jsonl"
    argv = ["--config", str(config), "--pretrained-dir", str(tiny_pretrained.root)]  # the flag overrides
    rc = prep.main(
        [*argv, "--wav-dir", str(list_path.parent / "wavs"), "--device", "cpu", "--events", str(events)]
    )
    assert rc == 0, capsys.readouterr().err
    kinds = [json.loads(line)["type"] for line in events.read_text(encoding="utf-8").splitlines()]
    assert kinds[0] == "progress" and kinds[-1] == "result"
    result = json.loads(events.read_text(encoding="utf-8").splitlines()[-1])
    assert result["formatted"] == ["clip_000.wav", "clip_001.wav"]
    assert len(_check_consistent(exp)[0]) == 2


def test_missing_pretrained_models_give_one_clear_message(tmp_path, tiny_pretrained, capsys):
    list_path = write_tiny_dataset(tmp_path / "data", n=2)
    empty = tmp_path / "models"
    empty.mkdir()
    with pytest.raises(prep.PretrainedMissingError) as err:
        prep.prepare(list_path, tmp_path / "exp", empty, device="cpu", progress=lambda *a: None)
    msg = str(err.value)
    for part in (
        "s2G2333k.pth",
        "gsv-v2final-pretrained",
        "chinese-hubert-base",
        "chinese-roberta-wwm-ext-large",
    ):
        assert part in msg
    assert "python -m gpt_sovits.pretrained download" in msg
    assert not (tmp_path / "exp" / "2-name2text.txt").exists()

    rc = prep.main(
        ["--list", str(list_path), "--exp-dir", str(tmp_path / "exp"), "--pretrained-dir", str(empty)]
    )
    err_text = capsys.readouterr().err
    assert rc == 2 and "s2G2333k.pth" in err_text and "Traceback" not in err_text
    assert prep.main(["--exp-dir", str(tmp_path / "exp")]) == 2
    assert "--list is required" in capsys.readouterr().err


def test_a_pretrained_generator_of_another_version_is_refused_before_any_work(tmp_path, tiny_pretrained):
    from dataclasses import replace

    from gpt_sovits.models.s2 import SynthesizerTrn
    from tests.support.tiny_models import tiny_s2_config

    models = tmp_path / "models"
    shutil.copytree(tiny_pretrained.root, models)
    cfg = replace(tiny_s2_config(), version="v1")
    gen = SynthesizerTrn(cfg, with_posterior=True)
    torch.save(
        {"weight": gen.state_dict(), "config": cfg.to_hparams()},
        models / "gsv-v2final-pretrained" / "s2G2333k.pth",
    )
    list_path = write_tiny_dataset(tmp_path / "data", n=1)
    with pytest.raises(prep.PrepareError, match="is a SoVITS v1 model but version v2"):
        prep.prepare(list_path, tmp_path / "exp", models, device="cpu", workers=1, progress=lambda *a: None)
    assert not (tmp_path / "exp" / "4-cnhubert").exists()


def test_v2pro_pretrained_files_are_checked_before_any_work(tmp_path, tiny_pretrained):
    """v2Pro formatting reads v2Pro/s2Gv2Pro.pth (a v2 generator there is refused) and the SV model (a file
    that is not one is refused), both before any clip is touched."""
    from dataclasses import replace

    from gpt_sovits.models.s2 import SynthesizerTrn
    from tests.support.tiny_models import tiny_s2_config

    models = tmp_path / "models"
    for name in ("chinese-hubert-base", "chinese-roberta-wwm-ext-large"):
        (models / name).parent.mkdir(parents=True, exist_ok=True)
        (models / name).symlink_to(tiny_pretrained.root / name, target_is_directory=True)
    (models / "v2Pro").mkdir()
    shutil.copyfile(tiny_pretrained.s2g, models / "v2Pro" / "s2Gv2Pro.pth")
    (models / "sv").mkdir()
    shutil.copyfile(
        tiny_pretrained.s1, models / "sv" / "pretrained_eres2netv2w24s4ep4.ckpt"
    )  # not an SV model
    list_path = write_tiny_dataset(tmp_path / "data", n=1)
    run = functools.partial(
        prep.prepare, list_path, tmp_path / "exp", models, version="v2Pro", device="cpu", workers=1
    )
    with pytest.raises(prep.PrepareError, match="is a SoVITS v2 model but version v2Pro"):
        run()
    cfg = replace(tiny_s2_config(), version="v2Pro", gin_channels=64, p_dropout=0.0)
    gen = SynthesizerTrn(cfg, with_posterior=True)
    torch.save({"weight": gen.state_dict(), "config": cfg.to_hparams()}, models / "v2Pro" / "s2Gv2Pro.pth")
    with pytest.raises(prep.PrepareError, match="speaker-verification model cannot be used.*GPT"):
        run()
    assert not (tmp_path / "exp" / "2-name2text.txt").exists() and not (tmp_path / "exp" / "7-sv_cn").exists()
    assert prep.make_parser().parse_args(["--version", "v2ProPlus"]).version == "v2ProPlus"
    with pytest.raises(
        prep.PrepareError, match="unknown version 'v5': use one of v1, v2, v2Pro, v2ProPlus, v3, v4"
    ):
        prep.prepare(list_path, tmp_path / "exp", models, version="v5")
    with pytest.raises(prep.PretrainedMissingError, match="gsv-v4-pretrained/s2Gv4.pth"):
        prep.prepare(list_path, tmp_path / "exp", models, version="v4")  # v4's own generator is asked for


def test_an_unreadable_table_means_a_full_redo_not_a_crash(tmp_path, tiny_pretrained):
    list_path = write_tiny_dataset(tmp_path / "data", n=2)
    exp = tmp_path / "exp"
    _run(list_path, exp, tiny_pretrained)
    (exp / "2-name2text.txt").write_text("garbage line\n", encoding="utf-8")
    report = _run(list_path, exp, tiny_pretrained)
    assert sorted(report.processed) == ["clip_000.wav", "clip_001.wav"]
    assert len(_check_consistent(exp)[0]) == 2
    assert os.path.getsize(exp / "6-name2semantic.tsv") > len("item_name\tsemantic_audio\n")


def test_an_empty_or_missing_list_is_a_clear_error_not_a_crash(tmp_path, tiny_pretrained, capsys):
    empty = tmp_path / "empty.list"
    empty.write_text("\n", encoding="utf-8")
    report = _run(empty, tmp_path / "exp", tiny_pretrained)
    assert report.formatted == [] and report.skipped == [] and not report.cancelled
    args = ["--exp-dir", str(tmp_path / "exp"), "--pretrained-dir", str(tiny_pretrained.root)]
    assert prep.main(["--list", str(empty), *args]) == 4  # EXIT_ALL_FAILED: the Training tab says "Failed."
    assert "no clip could be formatted" in capsys.readouterr().err
    assert prep.main(["--list", str(tmp_path / "nope.list"), *args]) == 2
    assert "label file not found" in capsys.readouterr().err


def test_stopping_the_cli_job_saves_what_is_done_and_a_rerun_finishes(tmp_path, tiny_pretrained):
    """The Training tab's Stop: SIGTERM to the job's process group; the clip in hand finishes, tables are saved."""
    import time

    from core.jobs import Job

    list_path = write_tiny_dataset(tmp_path / "data", n=16, seconds=0.6)
    exp = tmp_path / "exp"
    args = ["--list", str(list_path), "--exp-dir", str(exp), "--pretrained-dir", str(tiny_pretrained.root)]
    job = Job.start("gpt_sovits.data.prepare", [*args, "--device", "cpu", "--workers", "1"], tmp_path / "job")
    events: list[dict] = []
    deadline = time.monotonic() + 120
    while not any(e["type"] == "progress" and e["done"] >= 1 for e in events):
        assert job.running() and time.monotonic() < deadline, job.log_tail()
        time.sleep(0.05)
        events += job.poll()
    job.stop(grace=60)
    events += job.poll()
    assert job.process.returncode == 1, job.log_tail()  # stopped, not crashed
    result = next(e for e in events if e["type"] == "result")
    assert result["cancelled"] and 1 <= len(result["formatted"]) < 16
    texts, _ = _check_consistent(exp)
    assert sorted(texts) == sorted(result["formatted"])

    report = _run(list_path, exp, tiny_pretrained)
    assert report.reused == len(result["formatted"]) and len(report.formatted) == 16


def test_nan_features_are_reported_and_retried_on_the_next_run(tmp_path, tiny_pretrained, monkeypatch):
    import gpt_sovits.models.features as features

    list_path = write_tiny_dataset(tmp_path / "data", n=2)
    exp = tmp_path / "exp"
    real = features.hubert_features

    def nan_for_the_second(model, wav16k):
        out = real(model, wav16k)
        nan_for_the_second.calls += 1
        return out * float("nan") if nan_for_the_second.calls == 2 else out

    nan_for_the_second.calls = 0
    monkeypatch.setattr(features, "hubert_features", nan_for_the_second)
    report = _run(list_path, exp, tiny_pretrained)
    assert report.formatted == ["clip_000.wav"]
    assert [(s.name, s.reason) for s in report.skipped] == [("clip_001.wav", "feature_error")]
    assert not (exp / "3-bert" / "clip_001.wav.pt").exists()  # its BERT pass output was removed

    monkeypatch.setattr(features, "hubert_features", real)
    again = _run(list_path, exp, tiny_pretrained)  # not remembered as a skip: tried again
    assert again.processed == ["clip_001.wav"] and not again.skipped
    assert len(_check_consistent(exp)[0]) == 2


def test_chinese_texts_use_g2pw_when_the_pretrained_folder_has_it(tmp_path):
    from gpt_sovits.data.prepare import _clean_one, _g2pw_folder
    from tests.test_text_g2pw import build_tiny_g2pw_root

    root = build_tiny_g2pw_root(tmp_path / "pretrained")
    assert _g2pw_folder(root, "v2") == str(root)
    assert _g2pw_folder(root, "v1") is None  # v1 always reads pinyin with pypinyin, as the reference
    assert _g2pw_folder(tmp_path, "v2") is None
    with_g2pw = _clean_one("他很重", "zh", "v2", str(root))
    without = _clean_one("他很重", "zh", "v2", None)
    assert with_g2pw[0][-2:] == ["ch", "ong2"]  # the tiny model's reading of 重 here
    assert without[0][-2:] == ["zh", "ong4"]
    assert _clean_one("Hello.", "en", "v2", str(root)) == _clean_one("Hello.", "en", "v2", None)
