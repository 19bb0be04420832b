"""Saved voices: the module (save, list, load, delete, overwrite into the trash) and the CLI's --voice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from gpt_sovits.infer import voices as V
from tests.support.synth import voiced_segments


def _clip(path: Path, seconds: float = 4.0) -> Path:
    audio = voiced_segments([("silence", 0.2), ("voice", seconds - 0.4), ("silence", 0.2)])
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, 32000, subtype="PCM_16")
    return path


def _weights(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "g.ckpt").write_bytes(b"g")
    (folder / "s.pth").write_bytes(b"s")
    return folder / "g.ckpt", folder / "s.pth"


def test_a_saved_voice_round_trips_with_its_clips_copied_in(tmp_path):
    ws = tmp_path / "ws"
    ref, aux = _clip(tmp_path / "up" / "ref.wav"), _clip(tmp_path / "up" / "more.flac", 3.0)
    gpt, sovits = _weights(tmp_path / "w")
    settings = {"top_k": "20", "speed": 1.1, "candidates": 3.0, "seed": 7, "text_lang": "en", "bogus": 1}
    saved = V.save_voice(ws, " Alice ", ref, " 你好。 ", "zh", [aux], gpt, sovits, settings)
    assert saved.name == "Alice" and saved.folder == ws / "voices" / "Alice"
    assert saved.ref_audio == saved.folder / "ref.wav" and saved.ref_audio.read_bytes() == ref.read_bytes()
    assert saved.aux_refs == (saved.folder / "aux-1.flac",)
    # Knobs only, coerced to their types; the seed and the text's language belong to one text, not the voice.
    assert saved.settings == {"top_k": 20, "speed": 1.1, "candidates": 3}
    record = json.loads((saved.folder / "voice.json").read_text(encoding="utf-8"))
    assert (
        record["format_version"] == 1 and record["ref_audio"] == "ref.wav" and record["ref_text"] == "你好。"
    )
    ref.unlink()  # the upload may be cleaned away: the voice keeps its own copy
    loaded = V.load_voice(ws, "Alice")
    assert loaded == saved
    values = loaded.values()
    assert values["ref_audio"] == str(saved.ref_audio) and values["gpt"] == str(gpt)
    assert (
        values["top_k"] == 20
        and values["ref_lang"] == "zh"
        and values["aux_refs"] == [str(saved.aux_refs[0])]
    )
    _clip(tmp_path / "up" / "b.wav")
    V.save_voice(ws, "bob", tmp_path / "up" / "b.wav")
    assert V.list_voices(ws) == ["Alice", "bob"]
    assert [p.name for p in (ws / "voices").iterdir()] != [] and not [
        p for p in (ws / "voices").iterdir() if p.name.startswith(".")
    ]  # no temp folder left behind


@pytest.mark.parametrize("name", ["", "   ", "../up", "a/b", ".hidden", "-x", "x" * 65, "a\\b", "nul\x00"])
def test_bad_names_are_refused_with_what_a_name_may_hold(tmp_path, name):
    with pytest.raises(V.VoiceError, match="Give the voice a name|not a usable voice name"):
        V.save_voice(tmp_path, name, _clip(tmp_path / "r.wav"))
    assert not (tmp_path / "voices").exists() or V.list_voices(tmp_path) == []


def test_missing_clip_and_missing_weights_are_named(tmp_path):
    with pytest.raises(V.VoiceError, match="needs a reference clip"):
        V.save_voice(tmp_path, "v", None)
    with pytest.raises(V.VoiceError, match="gone.wav is not there"):
        V.save_voice(tmp_path, "v", tmp_path / "gone.wav")
    ref = _clip(tmp_path / "r.wav")
    with pytest.raises(V.VoiceError, match="aux.wav is not there"):
        V.save_voice(tmp_path, "v", ref, aux_refs=[tmp_path / "aux.wav"])
    assert V.list_voices(tmp_path) == [] and list((tmp_path / "voices").iterdir()) == []  # nothing half-made

    gpt, sovits = _weights(tmp_path / "w")
    V.save_voice(tmp_path, "v", ref, gpt=gpt, sovits=sovits)
    sovits.unlink()
    with pytest.raises(V.VoiceError, match=r"SoVITS weights s\.pth that are not there any more"):
        V.load_voice(tmp_path, "v")
    assert V.load_voice(tmp_path, "v", check_weights=False).sovits == str(sovits)
    (tmp_path / "voices" / "v" / "ref.wav").unlink()
    with pytest.raises(V.VoiceError, match="lost its clip ref.wav"):
        V.load_voice(tmp_path, "v")
    with pytest.raises(V.VoiceError, match=r"no saved voice called 'nobody'\. Saved voices: v\."):
        V.load_voice(tmp_path, "nobody")
    (tmp_path / "voices" / "v" / "voice.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(V.VoiceError, match="cannot be read .*save it again"):
        V.load_voice(tmp_path, "v")


def test_relative_weights_resolve_against_the_workspace_and_empty_means_the_default(tmp_path):
    ref = _clip(tmp_path / "r.wav")
    _weights(tmp_path / "weights")
    V.save_voice(tmp_path, "rel", ref, gpt="weights/g.ckpt", sovits="")
    voice = V.load_voice(tmp_path, "rel")
    assert voice.gpt == str(tmp_path / "weights" / "g.ckpt") and voice.sovits == ""


def test_overwriting_keeps_the_old_voice_in_the_trash_and_delete_moves_it_there(tmp_path):
    first, second = _clip(tmp_path / "a.wav", 4.0), _clip(tmp_path / "b.wav", 5.0)
    V.save_voice(tmp_path, "v", first, "one")
    with pytest.raises(V.VoiceError, match="exists already"):
        V.save_voice(tmp_path, "v", second, "two")
    assert V.load_voice(tmp_path, "v").ref_text == "one"
    V.save_voice(tmp_path, "v", second, "two", overwrite=True)
    assert V.load_voice(tmp_path, "v").ref_text == "two"
    trashed = list((tmp_path / "trash" / "voices").iterdir())
    assert len(trashed) == 1 and trashed[0].name.startswith("v-")
    old = json.loads((trashed[0] / "voice.json").read_text(encoding="utf-8"))
    assert old["ref_text"] == "one" and (trashed[0] / "ref.wav").read_bytes() == first.read_bytes()
    where = V.delete_voice(tmp_path, "v")
    assert where.parent == tmp_path / "trash" / "voices" and V.list_voices(tmp_path) == []
    with pytest.raises(V.VoiceError, match="no saved voice"):
        V.delete_voice(tmp_path, "v")


# ------------------------------------------------------------------------------------------ the CLI


def test_cli_voice_fills_what_no_flag_gives(tmp_path):
    from gpt_sovits.infer.__main__ import apply_voice, check_required, explicit_flags, make_parser

    gpt, sovits = _weights(tmp_path / "w")
    V.save_voice(
        tmp_path, "v", _clip(tmp_path / "r.wav"), "你好。", "zh", [], gpt, sovits, {"top_k": 30, "pause": 0.1}
    )
    parser = make_parser()
    argv = ["--voice", "v", "--workspace", str(tmp_path), "--text", "hi", "--out", "o.wav", "--pause", "0.5"]
    args = parser.parse_args(argv)
    explicit = explicit_flags(parser, argv)
    assert {"voice", "workspace", "text", "out", "pause"} <= explicit and "top_k" not in explicit
    apply_voice(args, explicit)
    assert (args.gpt, args.sovits) == (str(gpt), str(sovits))
    assert args.ref_audio == str(tmp_path / "voices" / "v" / "ref.wav") and args.ref_text == "你好。"
    assert args.top_k == 30 and args.pause == 0.5  # the voice's setting, but the flag given wins
    assert check_required(args) is None
    assert parser.parse_args(argv).top_k == 15  # the parser's defaults are left as they were
    bare = parser.parse_args(["--text", "hi", "--out", "o.wav"])
    assert "give --gpt, --sovits, --ref-audio" in check_required(bare)


def test_cli_synthesises_with_a_saved_voice(tmp_path, tiny_pretrained, capsys):
    from gpt_sovits.infer.__main__ import main

    ws = tmp_path / "ws"
    settings = {"max_new_tokens": 12, "candidates": 2, "cut": "cut5"}
    V.save_voice(ws, "tiny", _clip(tmp_path / "r.wav"), "你好世界。", "zh", [], tiny_pretrained.s1,
                 tiny_pretrained.s2g, settings)  # fmt: skip
    out = tmp_path / "out.wav"
    argv = ["--voice", "tiny", "--workspace", str(ws), "--model-dir", str(tiny_pretrained.root)]
    code = main([*argv, "--text", "你好世界。今天天气很不错。", "--out", str(out), "--seed", "3"])
    printed = capsys.readouterr().out
    assert code == 0 and sf.info(str(out)).samplerate == 32000 and sf.info(str(out)).frames > 0
    assert printed.count("candidate 2") == 2 and "seed 3" in printed  # the voice's 2 candidates, 2 sentences

    assert main([*argv[:1], "nobody", *argv[2:], "--text", "x", "--out", str(out)]) == 2
    assert "no saved voice called 'nobody'. Saved voices: tiny." in capsys.readouterr().err
