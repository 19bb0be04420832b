"""ASR stage: a tiny wired Whisper (tests/support/tiny_whisper.py) run through faster-whisper's real code path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.support.synth import espeak_speech, has_espeak, voiced_segments
from tests.support.tiny_whisper import EXPECTED_TEXT, build_tiny_whisper
from tools import asr
from tools.asr import AsrOptions, ModelNotFoundError, transcribe_folder

REPO_ROOT = Path(__file__).resolve().parent.parent
SIDECAR_KEYS = {
    "path": str,
    "avg_logprob": float,
    "no_speech_prob": float,
    "compression_ratio": float,
    "language": str,
    "language_probability": float,
    "duration": float,
}


@pytest.fixture(scope="session")
def tiny_whisper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_whisper(
        tmp_path_factory.mktemp("models") / "faster-whisper-tiny-test", quantization="int8"
    )


@pytest.fixture(scope="session")
def tiny_model(tiny_whisper_dir: Path):
    return asr.load_whisper(str(tiny_whisper_dir), device="cpu", compute_type="int8")


def speech_wav(path: Path, text: str = "hello there, this is a short test") -> Path:
    if has_espeak():
        return espeak_speech(text, path)
    sf.write(path, voiced_segments([("silence", 0.3), ("voice", 1.5), ("silence", 0.3)]), 32000)
    return path


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    """A speaker folder: two spoken clips, one silent clip, one corrupt file."""
    folder = tmp_path / "alice"
    folder.mkdir()
    speech_wav(folder / "a.wav")
    speech_wav(folder / "b.wav", "good morning, how are you")
    sf.write(folder / "c_silence.wav", np.zeros(24000, dtype=np.float32), 16000)
    (folder / "d_corrupt.wav").write_bytes(b"RIFF not really a wav file")
    return folder


def read_list(path: Path) -> list[list[str]]:
    return [line.split("|") for line in path.read_text(encoding="utf-8").splitlines()]


def test_transcribe_folder_writes_list_sidecar_and_reports(clips: Path, tmp_path: Path, tiny_model) -> None:
    out = tmp_path / "asr" / "alice.list"
    events = []
    result = transcribe_folder(
        clips, out, AsrOptions(device="cpu"), progress=lambda d, t, m: events.append((d, t)), model=tiny_model
    )

    rows = read_list(out)
    assert [Path(r[0]).name for r in rows] == ["a.wav", "b.wav"]
    for path, speaker, lang, text in rows:
        assert Path(path).is_absolute() and Path(path).exists()
        assert (speaker, lang, text) == ("alice", "en", EXPECTED_TEXT)
    sidecar = [json.loads(line) for line in (tmp_path / "asr" / "alice.asr.jsonl").read_text().splitlines()]
    assert [s["path"] for s in sidecar] == [r[0] for r in rows]
    for s in sidecar:
        assert set(s) == set(SIDECAR_KEYS)
        assert all(isinstance(s[k], t) for k, t in SIDECAR_KEYS.items())
        assert s["language"] == "en" and s["language_probability"] > 0.9
        # The tiny model is biased towards its one sentence: about -0.9 to -1.2 depending on the CPU's kernels.
        assert -2.0 < s["avg_logprob"] <= 0.0 and 0.0 <= s["no_speech_prob"] < 0.1
        assert s["duration"] > 0.5
    assert [Path(p).name for p in result.empty] == ["c_silence.wav"]
    assert [Path(f.path).name for f in result.failures] == ["d_corrupt.wav"]
    assert result.failures[0].error.startswith("not a readable audio file")  # the list names the file once
    assert len(result.entries) == 2 and result.unsupported == {} and not result.cancelled
    assert result.list_path == str(out) and result.backup is None
    assert events[-1] == (4, 4)


def test_existing_list_is_backed_up_before_replacing(clips: Path, tmp_path: Path, tiny_model) -> None:
    out = tmp_path / "alice.list"
    out.write_text("edited by hand|alice|en|keep me\n", encoding="utf-8")
    result = transcribe_folder(clips, out, AsrOptions(device="cpu"), model=tiny_model)
    assert result.backup is not None
    backup = Path(result.backup)
    assert backup.parent == tmp_path / ".history"
    assert backup.read_text(encoding="utf-8") == "edited by hand|alice|en|keep me\n"
    assert len(read_list(out)) == 2


def test_the_speaker_column_is_the_given_speaker_or_the_folder(
    clips: Path, tmp_path: Path, tiny_model
) -> None:
    named = transcribe_folder(
        clips, tmp_path / "a.list", AsrOptions(device="cpu", speaker="Ada"), model=tiny_model
    )
    assert named.entries and {
        line.split("|")[1] for line in (tmp_path / "a.list").read_text().splitlines()
    } == {"Ada"}
    transcribe_folder(clips, tmp_path / "b.list", AsrOptions(device="cpu"), model=tiny_model)
    assert {line.split("|")[1] for line in (tmp_path / "b.list").read_text().splitlines()} == {clips.name}
    with pytest.raises(asr.AsrInputError, match="cannot hold"):
        transcribe_folder(
            clips, tmp_path / "c.list", AsrOptions(device="cpu", speaker="a|b"), model=tiny_model
        )


def test_many_asr_runs_keep_the_hand_edited_list(tmp_path: Path) -> None:
    """Re-running ASR onto a list keeps its versions by the Label editor's policy, not the newest 20."""
    out = tmp_path / "alice.list"
    out.write_text("edited by hand|alice|en|keep me\n", encoding="utf-8")
    clip = asr.ClipTranscript("/a.wav", "hi", "en", 1.0, -0.1, 0.0, 1.0, 1.0)
    for _ in range(25):
        asr.write_outputs(out, "alice", [clip])
    kept = [p.read_text(encoding="utf-8") for p in (tmp_path / ".history").glob("alice.list.*.bak")]
    assert "edited by hand|alice|en|keep me\n" in kept and len(kept) == 25


def test_forced_language_and_batched_mode(clips: Path, tmp_path: Path, tiny_model) -> None:
    forced = transcribe_folder(clips, tmp_path / "zh.list", AsrOptions(language="zh"), model=tiny_model)
    assert {r[2] for r in read_list(tmp_path / "zh.list")} == {"zh"}
    # zh text is joined without spaces between segments; the wired model emits one segment.
    assert [e.text for e in forced.entries] == [EXPECTED_TEXT] * 2

    batched = transcribe_folder(clips, tmp_path / "b.list", AsrOptions(batch_size=4), model=tiny_model)
    assert [r[2:] for r in read_list(tmp_path / "b.list")] == [["en", EXPECTED_TEXT]] * 2
    assert len(batched.failures) == 1


def test_unsupported_language_is_written_and_reported(tmp_path: Path) -> None:
    model_dir = build_tiny_whisper(tmp_path / "de-model", language="de")
    folder = tmp_path / "bob"
    folder.mkdir()
    speech_wav(folder / "x.wav")
    result = transcribe_folder(folder, tmp_path / "bob.list", AsrOptions(model=str(model_dir), device="cpu"))
    assert read_list(tmp_path / "bob.list")[0][1:] == ["bob", "de", EXPECTED_TEXT]
    assert list(result.unsupported) == ["de"]


def test_stop_writes_what_was_done(clips: Path, tmp_path: Path, tiny_model) -> None:
    done = []
    result = transcribe_folder(
        clips,
        tmp_path / "s.list",
        progress=lambda d, t, m: done.append(d),
        should_stop=lambda: len(done) >= 1,
        model=tiny_model,
    )
    assert result.cancelled and len(result.entries) == 1
    assert len(read_list(tmp_path / "s.list")) == 1


def test_nothing_written_when_no_clip_gives_text(tmp_path: Path, tiny_model) -> None:
    folder = tmp_path / "quiet"
    folder.mkdir()
    sf.write(folder / "s.wav", np.zeros(16000, dtype=np.float32), 16000)
    result = transcribe_folder(folder, tmp_path / "q.list", model=tiny_model)
    assert result.list_path is None and len(result.empty) == 1
    assert not (tmp_path / "q.list").exists()


def test_model_resolution_from_model_dir(tiny_whisper_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(tiny_whisper_dir, tmp_path / "faster-whisper-tiny")
    assert asr.local_model_folder("tiny", tmp_path) == tmp_path / "faster-whisper-tiny"
    assert asr.model_status("tiny", tmp_path).found
    model = asr.load_whisper("tiny", device="cpu", compute_type="auto", model_dir=tmp_path)
    assert model.model.is_multilingual and model.model.compute_type.startswith("int8")


def test_missing_model_says_where_and_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "HF_HUB_CACHE", str(tmp_path / "hf-cache")
    )  # an empty cache, whatever this machine has
    with pytest.raises(ModelNotFoundError) as err:
        asr.load_whisper("large-v3-turbo", device="cpu", model_dir=tmp_path / "models")
    msg = str(err.value)
    assert "large-v3-turbo" in msg and str(tmp_path / "models" / "faster-whisper-large-v3-turbo") in msg
    assert "model.bin" in msg and "tokenizer.json" in msg
    assert "Open the Models tab" in msg and "mobiuslabsgmbh/faster-whisper-large-v3-turbo" in msg
    assert ".venv/bin/python -m gpt_sovits.pretrained download faster-whisper-large-v3-turbo" in msg
    status = asr.model_status("large-v3", tmp_path / "models")
    assert not status.found and "Systran/faster-whisper-large-v3" in status.message
    with pytest.raises(ModelNotFoundError, match="no faster-whisper model in"):
        asr.load_whisper(str(tmp_path / "empty-folder" / "x"), device="cpu")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("model.bin", "config.json", "tokenizer.json"):
        (broken / name).write_text("{}")
    with pytest.raises(asr.ModelLoadError, match="could not load the faster-whisper model in"):
        asr.load_whisper(str(broken), device="cpu")
    with pytest.raises(ModelNotFoundError, match="unknown faster-whisper model"):
        asr.load_whisper("gigantic", device="cpu", model_dir=tmp_path)


def test_bad_input_and_options() -> None:
    with pytest.raises(asr.AsrInputError):
        transcribe_folder("/nonexistent/folder", "/tmp/x.list")
    with pytest.raises(ValueError):
        AsrOptions(language="de")
    with pytest.raises(ValueError):
        AsrOptions(compute_type="int4")


def test_join_segments_and_compression_ratio() -> None:
    assert asr.join_segments([" Hello ", "world|again\n"], "en") == "Hello world again"
    assert asr.join_segments(["你好", " 世界 "], "zh") == "你好世界"
    assert asr.join_segments(["  ", ""], "ja") == ""
    assert asr.compression_ratio("ab" * 100) > 2.4 > asr.compression_ratio("hello world")


def test_cli_help_and_run(clips: Path, tmp_path: Path, tiny_whisper_dir: Path) -> None:
    with pytest.raises(SystemExit) as e:
        asr.main(["--help"])
    assert e.value.code == 0
    out = tmp_path / "cli" / "alice.list"
    events = tmp_path / "events.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.asr",
            str(clips),
            "--out",
            str(out),
            "--model",
            str(tiny_whisper_dir),
            "--device",
            "cpu",
            "--events",
            str(events),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr  # the corrupt file failed
    assert "wrote 2 lines" in proc.stdout and "no text:" in proc.stdout and "failed:" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert len(read_list(out)) == 2
    kinds = [json.loads(line)["type"] for line in events.read_text().splitlines()]
    assert "progress" in kinds and kinds[-1] == "result"

    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.asr",
            str(clips),
            "--out",
            str(out),
            "--model",
            "medium",
            "--model-dir",
            str(tmp_path / "none"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"HF_HUB_CACHE": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"},
    )
    assert missing.returncode == 2
    assert (
        "error: faster-whisper model 'medium' not found" in missing.stderr
        and "Traceback" not in missing.stderr
    )


def test_tab_helpers(tmp_path: Path, tiny_whisper_dir: Path) -> None:
    from ui import asr_tab
    from ui.context import AppContext

    ctx = AppContext.create(tmp_path / "ws", "en_US", tmp_path / "models")
    (ctx.folder("sliced") / "spk").mkdir()
    (ctx.folder("sliced") / "spk" / "a.wav").write_bytes(b"")
    assert asr_tab.folder_choices(ctx) == ["sliced", "sliced/spk"]
    assert asr_tab.default_folder(ctx) == "sliced/spk"
    assert "⚠️" in asr_tab.status_line(ctx, "large-v3")
    shutil.copytree(tiny_whisper_dir, tmp_path / "models" / "faster-whisper-mine")
    assert asr_tab.model_choices(ctx)[0] == ("mine (local)", "mine")
    assert asr_tab.default_model(ctx) == "mine" and "✅" in asr_tab.status_line(ctx, "mine")
    with pytest.raises(ValueError):
        asr_tab.resolve_input(ctx, "../elsewhere")
    input_dir = asr_tab.resolve_input(ctx, "sliced/spk")
    args = asr_tab.cli_args(ctx, input_dir, "mine", "auto", "cpu", "int8", 5, 0, False)
    assert (
        args[:3] == [str(input_dir), "--out", str(ctx.folder("asr") / "spk.list")] and args[-1] == "--no-vad"
    )
    assert "--speaker" not in args  # no experiment: the folder's name
    from ui.experiment_bar import Experiment, experiment_speaker, save_experiment

    save_experiment(ctx, Experiment("spk", "Ada Lovelace", "en"))
    assert experiment_speaker(ctx, input_dir) == "Ada Lovelace"  # sliced/<exp>: the experiment's speaker
    args = asr_tab.cli_args(ctx, input_dir, "mine", "auto", "cpu", "int8", 5, 0, True, "Ada Lovelace")
    assert args[-2:] == ["--speaker", "Ada Lovelace"]

    listing = ctx.folder("asr") / "spk.list"
    listing.write_text("/x/a.wav|spk|en|hi there\n/x/b.wav|spk|de|hallo\n", encoding="utf-8")
    assert asr_tab.preview_rows(str(listing)) == [
        ["a.wav", "spk", "en", "hi there"],
        ["b.wav", "spk", "de", "hallo"],
    ]
    text = asr_tab.summary(
        ctx,
        {
            "list_path": str(listing),
            "written": 2,
            "empty": ["/x/c.wav"],
            "backup": None,
            "cancelled": False,
            "failures": [{"path": "/x/d.wav", "error": "bad"}],
            "unsupported": {"de": ["/x/b.wav"]},
        },
    )
    assert "Wrote 2 clips" in text and "c.wav" in text and "d.wav`: bad" in text and "Language de" in text
