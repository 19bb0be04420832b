"""Training tab logic: the check before starting, argv/config per step, metrics -> plot data, progress,
sample planning, exported weights, and the step runner's sequencing with real subprocesses."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.support.tiny_models import write_tiny_dataset
from ui.training_common import Layout, StepSpec, TrainingInputError, existing_experiments, validate_exp_name
from ui.training_plan import (
    PIPELINE,
    REQUEST_FILE,
    FormatState,
    ModelFile,
    PreflightInputs,
    TrainSettings,
    build_step,
    check_plan,
    dataset_summary,
    gather_preflight,
)
from ui.training_progress import (
    ProgressView,
    eta_seconds,
    is_accuracy,
    is_loss,
    metric_series,
    plot_rows,
    read_metrics,
)
from ui.training_runner import SampleQueue, StepResult, StepRunner
from ui.training_samples import (
    Export,
    SampleReference,
    SampleSpec,
    choose_reference,
    latest_export,
    list_exports,
    plan_sample,
    sample_config,
)

V2 = "gsv-v2final-pretrained"


def fake_pretrained(root: Path) -> Path:
    """A pretrained folder whose files exist in the official names (contents are not read by the check)."""
    (root / V2).mkdir(parents=True)
    for name in ("s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt", "s2G2333k.pth", "s2D2333k.pth"):
        (root / V2 / name).write_bytes(b"x")
    for folder in ("chinese-hubert-base", "chinese-roberta-wwm-ext-large"):
        (root / folder).mkdir()
        for name in ("config.json", "model.safetensors", "vocab.txt"):
            (root / folder / name).write_text("{}")
    return root


@pytest.fixture
def ws(tmp_path: Path) -> Layout:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return Layout(workspace, fake_pretrained(tmp_path / "models"))


def settings(layout: Layout, list_path: Path | str = "", **kw) -> TrainSettings:
    return TrainSettings(exp_name=kw.pop("exp_name", "voice"), list_path=str(list_path), **kw)


def messages(problems, severity: str) -> list[str]:
    return [p.message for p in problems if p.severity == severity]


# ---------------------------------------------------------------- experiment name


@pytest.mark.parametrize("name", ["voice", "my_voice-2", "v1.0", "声音", "A" * 64])
def test_safe_experiment_names_pass(name):
    assert validate_exp_name(f"  {name} ") == name


@pytest.mark.parametrize("name", ["", "   ", "../x", "a/b", "a b", ".hidden", "-x", "a.", "A" * 65, "a|b"])
def test_unsafe_experiment_names_are_refused(name):
    with pytest.raises(TrainingInputError):
        validate_exp_name(name)


# ---------------------------------------------------------------- the check before starting


def test_good_dataset_passes_with_only_a_duration_warning(ws):
    lst = write_tiny_dataset(ws.workspace / "data", n=6)
    inputs = gather_preflight(ws, settings(ws, lst), PIPELINE)
    assert dataset_summary(inputs) == "6 of 6 clips usable, 0.2 min of audio."
    problems = check_plan(inputs)
    assert messages(problems, "error") == []
    # 6 clips of 1.6 s: far below a minute, said but not blocking
    assert any("s of usable audio" in m for m in messages(problems, "warning"))


def test_bad_dataset_lists_each_blocking_problem(ws):
    lst = write_tiny_dataset(ws.workspace / "data", n=6)
    lines = lst.read_text(encoding="utf-8").splitlines()
    wavs = ws.workspace / "data" / "wavs"
    (wavs / "broken.wav").write_bytes(b"RIFF no audio here")
    lines[0] = lines[0].rsplit("|", 1)[0] + "|"  # empty text
    lines[1] = lines[1].replace("|zh|", "|fr|")  # unsupported language
    lines += [f"{wavs / 'gone.wav'}|tiny|zh|你好。", f"{wavs / 'broken.wav'}|tiny|zh|你好。"]
    lst.write_text("\n".join(lines) + "\n", encoding="utf-8")
    errors = messages(check_plan(gather_preflight(ws, settings(ws, lst), PIPELINE)), "error")
    text = "\n".join(errors)
    assert "empty text: 1 (clip_000.wav)" in text
    assert "unsupported language" in text and "clip_001.wav" in text
    assert "Missing audio files: 1 (gone.wav)" in text
    assert "Unreadable audio files: 1 (broken.wav)" in text
    # 6 listed clips minus empty text and French leave 4 usable: below the minimum of 5
    assert "Only 4 usable clips" in text
    assert errors[-1].startswith("Fix the label file")


def test_too_short_and_too_long_clips_are_warnings_and_not_usable(ws):
    lst = write_tiny_dataset(ws.workspace / "data", n=6)
    sf.write(ws.workspace / "data" / "wavs" / "blip.wav", np.zeros(3200, np.float32), 32000)
    with open(lst, "a", encoding="utf-8") as f:
        f.write(f"{ws.workspace / 'data' / 'wavs' / 'blip.wav'}|tiny|zh|你好。\n")
    problems = check_plan(gather_preflight(ws, settings(ws, lst), PIPELINE))
    assert messages(problems, "error") == []
    assert any(m.startswith("1 clips are shorter than 0.6 s") for m in messages(problems, "warning"))


def test_empty_or_missing_list_blocks(ws):
    empty = ws.workspace / "empty.list"
    empty.write_text("", encoding="utf-8")
    assert messages(check_plan(gather_preflight(ws, settings(ws, empty), PIPELINE)), "error") == [
        "The label file has no clips."
    ]
    assert messages(check_plan(gather_preflight(ws, settings(ws, ""), ("prepare",))), "error") == [
        "Choose the .list file to train on."
    ]
    missing = messages(
        check_plan(gather_preflight(ws, settings(ws, ws.workspace / "nope.list"), PIPELINE)), "error"
    )
    assert (
        len(missing) == 1
        and missing[0].startswith("Cannot read the label file")
        and "nope.list" in missing[0]
    )


def test_training_alone_needs_formatted_features_but_not_the_list(ws):
    s = settings(ws, "")
    for step in ("s2", "s1", "clvp"):
        errors = messages(check_plan(gather_preflight(ws, s, (step,))), "error")
        assert errors == ["Experiment voice is not formatted yet (features missing): run Format first."]
    exp = ws.exp_dir("voice")
    (exp / "4-cnhubert").mkdir(parents=True)
    (exp / "5-wav32k").mkdir()
    (exp / "4-cnhubert" / "a.wav.pt").write_bytes(b"x")
    (exp / "5-wav32k" / "a.wav").write_bytes(b"x")
    (exp / "2-name2text.txt").write_text("a.wav\tn i3\t[2]\t你\n", encoding="utf-8")
    assert messages(check_plan(gather_preflight(ws, s, ("s2",))), "error") == []
    # S1 also needs the semantic tokens: a header alone is not enough
    (exp / "6-name2semantic.tsv").write_text("item_name\tsemantic_audio\n", encoding="utf-8")
    assert messages(check_plan(gather_preflight(ws, s, ("s1",))), "error")
    (exp / "6-name2semantic.tsv").write_text("item_name\tsemantic_audio\na.wav\t1 2 3\n", encoding="utf-8")
    assert messages(check_plan(gather_preflight(ws, s, ("s1",))), "error") == []


def test_missing_pretrained_models_block_only_the_steps_that_read_them(ws):
    (ws.model_dir / V2 / "s2D2333k.pth").unlink()
    state = FormatState(1, 1, 1, 1)
    base = gather_preflight(ws, settings(ws, ""), ("s1",))
    s1_only = PreflightInputs(**{**base.__dict__, "format_state": state})
    assert messages(check_plan(s1_only), "error") == []
    s2 = PreflightInputs(**{**s1_only.__dict__, "steps": ("s2",)})
    errors = messages(check_plan(s2), "error")
    assert len(errors) == 1 and "s2D2333k.pth" in errors[0]
    assert "python -m gpt_sovits.pretrained download sovits-d-v2" in errors[0]  # how to get it


def test_settings_and_disk_space_checks():
    s = TrainSettings(exp_name="bad name", s2_epochs=0)
    inputs = PreflightInputs(
        steps=("s2",),
        exp_name=s.exp_name,
        settings=s,
        models=(ModelFile("s2g", "/m/g.pth", True), ModelFile("s2d", "/m/d.pth", True)),
        format_state=FormatState(1, 1, 1, 1),
        free_bytes=100 * 1024**2,
    )
    problems = check_plan(inputs)
    errors = messages(problems, "error")
    assert any("not a safe folder name" in m for m in errors)
    assert "Epochs and save frequency must be at least 1." in errors
    assert any("GiB free on the workspace disk: checkpoints will not fit" in m for m in errors)
    low = PreflightInputs(**{**inputs.__dict__, "free_bytes": 1024**3, "exp_name": "ok"})
    low = PreflightInputs(**{**low.__dict__, "settings": TrainSettings(exp_name="ok")})
    assert messages(check_plan(low), "error") == []
    assert messages(check_plan(low), "warning") == ["Only 1.0 GiB free on the workspace disk."]
    assert [p.blocking for p in problems] == sorted((p.blocking for p in problems), reverse=True)


def test_messages_go_through_the_translator(ws):
    from i18n import I18n

    zh = I18n("zh_CN")
    problems = check_plan(gather_preflight(ws, settings(ws, "", exp_name=""), ("prepare",)), zh)
    assert "请输入实验名称。" in messages(problems, "error")


# ---------------------------------------------------------------- argv and config per step


def test_each_step_argv_and_config(ws):
    s = settings(
        ws, "/ws/data/tiny.list", s2_epochs=3, s2_batch=0, s2_save_every=1, s1_epochs=2, s1_batch=4,
        s1_save_every=2, dpo=True, clvp_epochs=7, fresh=True, device="cpu",
    )  # fmt: skip
    exp = str(ws.exp_dir("voice"))
    prep = build_step("prepare", s, ws)
    assert prep.module == "gpt_sovits.data.prepare" and prep.run_dir == ws.exp_dir("voice")
    assert prep.args[:2] == ["--config", str(prep.config_path)]
    assert prep.args[2:] == [
        "--list", "/ws/data/tiny.list", "--exp-dir", exp, "--pretrained-dir", str(ws.model_dir),
        "--version", "v2", "--device", "cpu",
    ]  # fmt: skip
    s2 = build_step("s2", s, ws)
    assert s2.module == "gpt_sovits.train.s2" and s2.run_dir == ws.exp_dir("voice") / "s2_train"
    assert s2.config_path == s2.run_dir / REQUEST_FILE
    assert s2.args[2:] == [
        "--exp-dir", exp, "--exp-name", "voice", "--pretrained-dir", str(ws.model_dir),
        "--weights-dir", str(ws.sovits_dir("v2")), "--version", "v2", "--epochs", "3", "--batch-size", "0", "--save-every", "1",
        "--device", "cpu", "--fresh",
    ]  # fmt: skip
    s1 = build_step("s1", s, ws)
    assert s1.run_dir.name == "s1_train" and "--dpo" in s1.args and "--fresh" in s1.args
    assert s1.args[s1.args.index("--epochs") + 1] == "2" and s1.args[s1.args.index("--batch-size") + 1] == "4"
    clvp = build_step("clvp", s, ws)
    assert clvp.module == "clvp.train"
    assert s1.args[s1.args.index("--weights-dir") + 1] == str(ws.gpt_dir("v2"))
    v1 = build_step("s1", TrainSettings("voice", version="v1"), ws)
    assert v1.config["weights_dir"] == str(ws.weights_dir / "GPT_weights") and v1.config["version"] == "v1"
    assert clvp.args[2:8] == [
        "--exp-dir",
        exp,
        "--exp-name",
        "voice",
        "--out",
        str(ws.exp_dir("voice") / "clvp_train"),
    ]
    assert clvp.args[clvp.args.index("--epochs") + 1] == "7"
    assert clvp.args[clvp.args.index("--weights-dir") + 1] == str(ws.clvp_dir) and "--init" not in clvp.args
    tuned = build_step("clvp", TrainSettings("voice", clvp_init="/m/clvp/general.pt"), ws)
    assert tuned.args[tuned.args.index("--init") + 1] == "/m/clvp/general.pt"
    not_fresh = build_step("s2", TrainSettings(exp_name="voice"), ws)
    assert (
        "--fresh" not in not_fresh.args and "--dpo" not in build_step("s1", TrainSettings("voice"), ws).args
    )
    with pytest.raises(TrainingInputError):
        build_step("s3", s, ws)


def test_written_config_is_accepted_by_the_real_parsers(ws):
    """The config file and flags parse with the formatter's and the trainers' own argument parsers."""
    from gpt_sovits.data import prepare
    from gpt_sovits.train import cli as training

    s = settings(ws, "/ws/data/tiny.list", s2_epochs=3, fresh=True)
    prep = build_step("prepare", s, ws)
    prep.write_config()
    opts = prepare._options(prepare.make_parser().parse_args([*prep.args, "--events", "e.jsonl"]))
    assert opts["list"] == "/ws/data/tiny.list" and opts["exp_dir"] == str(ws.exp_dir("voice"))

    from clvp import train as clvp_train
    from gpt_sovits.train import s1 as train_s1
    from gpt_sovits.train import s2 as train_s2

    parsers = {
        "s2": train_s2.build_parser(),
        "s1": train_s1.build_parser(),
        "clvp": clvp_train.build_parser(),
    }
    for step, parser in parsers.items():
        spec = build_step(step, dataclasses.replace(s, dpo=True, clvp_init="/m/c.pt"), ws)
        assert json.loads(spec.write_config().read_text(encoding="utf-8")) == spec.config
        assert set(spec.config) <= {a.dest for a in parser._actions}  # no key the trainer ignores
        args = training.parse_args(parser, spec.args)
        exp_dirs = args.exp_dir if step == "clvp" else [args.exp_dir]
        assert exp_dirs == [str(ws.exp_dir("voice"))] and args.fresh is True and args.exp_name == "voice"
        # the config file alone gives the same values as the flags
        only_config = training.parse_args(parser, ["--config", str(spec.config_path)])
        assert vars(only_config) | {"config": None} == vars(args) | {"config": None}
    parsed = train_s1.build_parser().parse_args(build_step("s1", s, ws).args)
    assert parsed.version == "v2" and parsed.dpo is False and parsed.weights_dir == str(ws.gpt_dir("v2"))


def test_v2pro_versions_steps_and_pretrained_files(ws):
    """v2Pro/v2ProPlus: offered in the reference's order, the version's own files, S1 from s1v3.ckpt as a
    v2-phone-set GPT, formatting needs the SV model and S2 training the 7-sv_cn embeddings."""
    from gpt_sovits.train import s1 as train_s1
    from ui.training_plan import VERSIONS

    assert VERSIONS == ("v1", "v2", "v3", "v4", "v2Pro", "v2ProPlus")  # v3/v4: tests/test_train_s2v3.py
    (ws.model_dir / "v2Pro").mkdir()
    for rel in ("s1v3.ckpt", "v2Pro/s2Gv2Pro.pth", "v2Pro/s2Dv2Pro.pth"):
        (ws.model_dir / rel).write_bytes(b"x")
    s = settings(ws, "/ws/data/tiny.list", version="v2Pro")
    prep = build_step("prepare", s, ws)
    assert prep.args[prep.args.index("--version") + 1] == "v2Pro"
    s2 = build_step("s2", s, ws)
    assert s2.config["version"] == "v2Pro" and s2.config["weights_dir"] == str(
        ws.weights_dir / "SoVITS_weights_v2Pro"
    )
    s1 = build_step("s1", s, ws)
    assert s1.config["version"] == "v2" and s1.config["pretrained_s1"] == str(ws.model_dir / "s1v3.ckpt")
    assert s1.config["weights_dir"] == str(ws.weights_dir / "GPT_weights_v2Pro")
    parsed = train_s1.build_parser().parse_args(s1.args)
    assert parsed.version == "v2" and parsed.pretrained_s1 == str(ws.model_dir / "s1v3.ckpt")
    from gpt_sovits.train import s2 as train_s2
    from gpt_sovits.train.cli import parse_args

    for version in ("v2Pro", "v2ProPlus"):  # the S2 trainer takes both, with the config file written
        spec = build_step("s2", settings(ws, "", version=version), ws)
        spec.write_config()
        assert parse_args(train_s2.build_parser(), spec.args).version == version
    assert "pretrained_s1" not in build_step("s1", settings(ws, "", version="v2"), ws).config

    # Formatting reads the SV model: missing, it blocks with the registry's line.
    base = gather_preflight(ws, s, ("prepare",))
    roles = {m.role: m for m in base.models}
    assert set(roles) == {"s1", "s2g", "s2d", "hubert", "bert", "sv"} and not roles["sv"].present
    assert roles["s2g"].present and roles["s2g"].path == str(ws.model_dir / "v2Pro" / "s2Gv2Pro.pth")
    errors = messages(check_plan(base), "error")
    assert any("pretrained_eres2netv2w24s4ep4.ckpt" in m and "download sv-eres2netv2" in m for m in errors)
    # S2 alone does not read the SV model but needs 7-sv_cn from formatting.
    s2_in = PreflightInputs(**{**base.__dict__, "steps": ("s2",), "format_state": FormatState(1, 1, 1, 1)})
    assert messages(check_plan(s2_in), "error") == [
        "Experiment voice is not formatted yet (features missing): run Format first."
    ]
    formatted = PreflightInputs(**{**s2_in.__dict__, "format_state": FormatState(1, 1, 1, 1, sv_files=1)})
    assert messages(check_plan(formatted), "error") == []
    v2_inputs = PreflightInputs(**{**s2_in.__dict__, "settings": settings(ws, "", version="v2")})
    assert messages(check_plan(v2_inputs), "error") == []  # v2 S2 does not need 7-sv_cn
    unknown = PreflightInputs(**{**s2_in.__dict__, "settings": settings(ws, "", version="v5")})
    assert any(
        "choose one of v1, v2, v3, v4, v2Pro, v2ProPlus" in m for m in messages(check_plan(unknown), "error")
    )


# ---------------------------------------------------------------- metrics and progress


def test_metrics_to_plot_series(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = [
        {
            "step": i,
            "epoch": 0,
            "time": 1.0 + i,
            "loss/mel": 30.0 - i,
            "loss/kl": 2.0,
            "lr": 1e-4,
            "grad_norm_g": 5.0,
            "acc/top3": 0.1 * i,
        }
        for i in range(1, 6)
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + '\n{"step": 6, "loss/me', encoding="utf-8")
    read = read_metrics(path)
    assert len(read) == 5  # the torn last line is skipped
    series = metric_series(read)
    assert set(series) == {"loss/mel", "loss/kl", "acc/top3", "grad_norm_g"}  # not step, epoch, time or lr
    assert series["loss/mel"] == [(i, 30.0 - i) for i in range(1, 6)]
    rows = plot_rows(series, is_loss)
    assert {r["metric"] for r in rows} == {"loss/mel", "loss/kl"} and len(rows) == 10
    assert rows[0].keys() == {"step", "value", "metric"}
    assert [r["metric"] for r in plot_rows(series, is_accuracy)] == ["acc/top3"] * 5
    assert read_metrics(tmp_path / "none.jsonl") == []


def test_long_series_are_thinned_by_averaging():
    records = [{"step": i, "loss": float(i % 2)} for i in range(1000)]
    points = metric_series(records, max_points=100)["loss"]
    assert len(points) == 100
    assert all(v == pytest.approx(0.5) for _s, v in points)  # pairs of 0 and 1 averaged
    assert points[-1][0] == 999


def test_progress_view_epoch_and_eta():
    view = ProgressView()
    view.update({"done": 10, "total": 110, "message": "epoch 2, step 10/110, loss 3.1", "time": 100.0})
    assert view.epoch == 2 and view.eta_seconds is None
    view.update({"done": 20, "total": 110, "message": "epoch 3, step 20/110", "time": 110.0})
    assert view.epoch == 3
    assert view.eta_seconds == pytest.approx(90.0)  # 1 s per step, 90 steps left
    assert eta_seconds((0.0, 5), (10.0, 5), 100) is None


# ---------------------------------------------------------------- samples and exports


def export(tmp_path: Path, name: str) -> Path:
    tmp_path.parent.mkdir(parents=True, exist_ok=True)
    p = tmp_path
    p.write_bytes(b"w")
    return p


def test_list_exports_matches_only_this_experiment(ws):
    sovits, gpt = ws.sovits_dir("v2"), ws.gpt_dir("v2")
    for p in (
        sovits / "voice_e4_s40.pth",
        sovits / "voice_e8_s80.pth",
        sovits / "voice_b_e9_s90.pth",  # another experiment "voice_b"
        gpt / "voice-e5.ckpt",
        gpt / "voice-e15.ckpt",
        gpt / "voicex-e1.ckpt",
        ws.clvp_dir / "voice-e3.pt",
    ):
        export(p, p.name)
    found = list_exports(ws, "voice", "v2")
    assert [(e.model, e.epoch, e.step) for e in found] == [
        ("s2", 8, 80), ("s2", 4, 40), ("s1", 15, None), ("s1", 5, None), ("clvp", 3, None),
    ]  # fmt: skip
    assert latest_export(found, "s1") == str(gpt / "voice-e15.ckpt")
    assert latest_export(found, "s2") == str(sovits / "voice_e8_s80.pth")
    assert ws.sovits_dir("v1").name == "SoVITS_weights" and ws.gpt_dir("v1").name == "GPT_weights"


def test_plan_sample_pairs_the_new_checkpoint_with_the_latest_other_model(ws):
    ref = SampleReference("/ws/a.wav", "你好", "zh", "这是样本。", "zh")
    s2_event = {"type": "saved", "model": "s2", "path": "/w/voice_e4_s40.pth", "epoch": 4, "step": 40}
    spec = plan_sample(s2_event, ws, "voice", [], "/m/s1.ckpt", "/m/s2G.pth", ref)
    assert (spec.gpt_path, spec.sovits_path) == ("/m/s1.ckpt", "/w/voice_e4_s40.pth")
    assert spec.out_path == str(ws.exp_dir("voice") / "samples" / "s2_e4.wav")
    exports = [
        Export("s2", 4, 40, "/w/voice_e4_s40.pth", 0.0),
        Export("s2", 8, 80, "/w/voice_e8_s80.pth", 0.0),
        Export("s1", 5, None, "/w/voice-e5.ckpt", 0.0),
    ]
    spec = plan_sample(s2_event, ws, "voice", exports, "/m/s1.ckpt", "/m/s2G.pth", ref)
    assert spec.gpt_path == "/w/voice-e5.ckpt"  # the finished GPT, not the pretrained one
    s1_event = {"type": "saved", "model": "s1", "path": "/w/voice-e10.ckpt", "epoch": 10}
    spec = plan_sample(s1_event, ws, "voice", exports, "/m/s1.ckpt", "/m/s2G.pth", ref)
    assert (spec.gpt_path, spec.sovits_path) == ("/w/voice-e10.ckpt", "/w/voice_e8_s80.pth")
    assert spec.out_path.endswith("s1_e10.wav")
    spec = plan_sample(s1_event, ws, "voice", [], "/m/s1.ckpt", "/m/s2G.pth", ref)
    assert spec.sovits_path == "/m/s2G.pth"
    clvp_event = {"type": "saved", "model": "clvp", "path": "/w/voice-e3.pt", "epoch": 3}
    assert plan_sample(clvp_event, ws, "voice", [], "/m/s1.ckpt", "/m/s2G.pth", ref) is None
    assert plan_sample(s1_event, ws, "voice", [], "/m/s1.ckpt", "/m/s2G.pth", None) is None
    config = sample_config(spec, ws.model_dir)
    assert config["ref_audio"] == "/ws/a.wav" and config["text"] == "这是样本。" and config["seed"] == 1234


def test_choose_reference_prefers_the_chosen_clip_then_a_prompt_length_clip():
    clips = [("/a.wav", "zh", "一", 1.5), ("/b.wav", "en", "two", 4.0), ("/c.wav", "zh", "三", 5.0)]
    ref = choose_reference(clips)
    assert (ref.audio, ref.language, ref.text, ref.target_language) == ("/b.wav", "en", "two", "en")
    assert ref.target_text.startswith("This is a short sample")
    assert choose_reference(clips, "/c.wav").audio == "/c.wav"
    assert choose_reference(clips[:1]).audio == "/a.wav"  # nothing 3-10 s: the first clip
    assert choose_reference([]) is None


# ---------------------------------------------------------------- the runner, with real subprocesses


def child_spec(tmp_path: Path, step: str, *args: str) -> StepSpec:
    run = tmp_path / step
    return StepSpec(
        step,
        "tests.support.training_child",
        ["--config", str(run / REQUEST_FILE), *args],
        {"x": 1},
        run,
        run / REQUEST_FILE,
    )


def wait_done(runner: StepRunner, timeout: float = 30.0) -> list[dict]:
    saved, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        saved += runner.poll()
        if not runner.running:
            return saved
        time.sleep(0.1)
    raise TimeoutError("runner did not finish")


def test_runner_runs_steps_in_order_and_reports_saves(tmp_path):
    runner = StepRunner(
        [child_spec(tmp_path, "s2", "--saved", "s2:/w/a.pth:4"), child_spec(tmp_path, "s1", "--code", "0")],
        tmp_path / "jobs",
    )
    runner.begin()
    saved = wait_done(runner)
    assert [(r.step, r.code) for r in runner.results] == [("s2", 0), ("s1", 0)]
    assert [(e["model"], e["path"], e["epoch"]) for e in saved] == [("s2", "/w/a.pth", 4)]
    assert json.loads((tmp_path / "s2" / REQUEST_FILE).read_text()) == {"x": 1}  # config written first
    assert runner.progress.done == 2 and runner.progress.epoch == 2


def test_runner_stops_the_sequence_on_a_failed_step(tmp_path):
    runner = StepRunner(
        [child_spec(tmp_path, "prepare", "--code", "2"), child_spec(tmp_path, "s2")], tmp_path / "j"
    )
    runner.begin()
    wait_done(runner)
    assert [(r.step, r.code, r.error) for r in runner.results] == [
        ("prepare", 2, "something a person can fix")
    ]
    assert runner.pending == []


def test_runner_stop_ends_the_job_and_drops_the_rest(tmp_path):
    runner = StepRunner(
        [child_spec(tmp_path, "s2", "--sleep", "30"), child_spec(tmp_path, "s1")], tmp_path / "j"
    )
    runner.begin()
    deadline = time.monotonic() + 20
    while runner.progress.total == 0 and time.monotonic() < deadline:
        runner.poll()
        time.sleep(0.1)
    assert runner.progress.total == 4
    runner.stop()
    wait_done(runner)
    assert len(runner.results) == 1 and runner.results[0].stopped and runner.results[0].code != 0
    assert runner.pending == []


def test_sample_queue_reports_a_failed_sample_with_its_message(tmp_path):
    queue = SampleQueue(tmp_path / "jobs", tmp_path / "models", "cpu")
    ref = SampleReference(str(tmp_path / "nope.wav"), "你好", "zh", "样本。", "zh")
    out = tmp_path / "exp" / "samples" / "s2_e1.wav"
    queue.add("SoVITS epoch 1 sample", SampleSpec("s2", 1, "/none/g.ckpt", "/none/s.pth", str(out), ref))
    queue.poll()
    assert queue.busy and (tmp_path / "exp" / "samples" / "s2_e1.json").is_file()
    deadline = time.monotonic() + 60
    while queue.busy and time.monotonic() < deadline:
        time.sleep(0.2)
        queue.poll()
    assert len(queue.outcomes) == 1 and not queue.outcomes[0].ok and queue.outcomes[0].message
    assert not out.exists()


def test_short_clips_are_joined_into_one_prompt(tmp_path):
    short = [("/a.wav", "zh", "一。", 1.6), ("/b.wav", "zh", "二。", 1.6), ("/c.wav", "zh", "三。", 1.6)]
    ref = choose_reference(short)
    assert ref.parts == ("/a.wav", "/b.wav") and ref.text == "一。二。"  # 1.6 + 0.3 + 1.6 = 3.5 s
    mixed = [("/e.wav", "en", "One.", 1.6), ("/f.wav", "en", "Two.", 1.6), ("/g.wav", "zh", "三。", 1.6)]
    assert choose_reference(mixed).text == "One. Two."  # spaced languages are joined with a space
    lone = [("/e.wav", "en", "One.", 1.6), ("/g.wav", "zh", "三。", 1.6)]
    assert choose_reference(lone).parts == () and choose_reference(lone).audio == "/e.wav"
    assert choose_reference(short, "/b.wav").parts == ("/b.wav", "/c.wav")

    from ui.training_samples import materialize_reference

    wavs = []
    for name, seconds in (("a.wav", 1.6), ("b.wav", 1.6)):
        sf.write(tmp_path / name, np.full(int(seconds * 32000), 0.1, np.float32), 32000)
        wavs.append(str(tmp_path / name))
    joined = choose_reference([(wavs[0], "zh", "一。", 1.6), (wavs[1], "zh", "二。", 1.6)])
    out = materialize_reference(joined, tmp_path / "samples" / "reference.wav")
    audio, sr = sf.read(out.audio)
    assert sr == 32000 and len(audio) == int(1.6 * 32000) * 2 + int(0.3 * 32000)
    assert np.all(audio[51200 : 51200 + 9600] == 0)  # the gap
    assert (
        materialize_reference(
            dataclasses.replace(joined, parts=(wavs[0], str(tmp_path / "gone.wav"))), tmp_path / "r.wav"
        )
        is None
    )


def test_a_running_step_is_followed_from_another_page_and_blocks_a_second_start(tmp_path, ws):
    from ui.training_jobs import JOB_RECORD, live_job
    from ui.training_runner import StepRunner

    exp = ws.exp_dir("voice")
    spec = child_spec(exp, "s2", "--sleep", "30")
    first = StepRunner([spec], tmp_path / "jobs")
    first.begin()
    try:
        assert json.loads((exp / JOB_RECORD).read_text())["step"] == "s2"
        live = live_job(exp)
        assert live is not None and live[0].step == "s2" and live[1].process.pid == first.job.process.pid
        # a second start on the same experiment is refused by the check
        inputs = gather_preflight(ws, settings(ws, ""), ("s1",))
        assert inputs.running.startswith("s2 (pid ")
        assert any("is already running s2" in m for m in messages(check_plan(inputs), "error"))
        follower = StepRunner.attach(live[0], live[1], tmp_path / "jobs")
        deadline = time.monotonic() + 20
        while follower.progress.total == 0 and time.monotonic() < deadline:
            follower.poll()
            time.sleep(0.1)
        assert follower.progress.total == 4  # the events written before it attached
        follower.stop()
        wait_done(follower)
        assert [(r.step, r.code, r.stopped) for r in follower.results] == [("s2", 130, True)]
        assert live_job(exp) is None
        # The page that started it did not ask for the stop and its child died of SIGTERM without a
        # word: it still reads "stopped" (the follower's marker), not a crash.
        wait_done(first)
        assert [(r.step, r.code, r.stopped) for r in first.results] == [("s2", -15, True)]
    finally:
        first.stop()


def test_a_stop_from_another_page_also_stops_the_step_that_run_began_meanwhile(tmp_path, ws):
    """The followed step ended just before the stop arrived and its page started the next step:
    the stop reaches that one too, and the page that started the run reads it as stopped."""
    from ui.training_jobs import live_job
    from ui.training_runner import StepRunner

    exp = ws.exp_dir("voice")
    first = StepRunner(
        [child_spec(exp, "s2", "--sleep", "1"), child_spec(exp, "s1", "--sleep", "30")], tmp_path / "j"
    )
    first.begin()
    try:
        live = live_job(exp)
        assert live is not None and live[0].step == "s2"
        follower = StepRunner.attach(live[0], live[1], tmp_path / "jobs")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (first.current is None or first.current.step != "s1"):
            first.poll()  # s2 ends, s1 starts
            time.sleep(0.05)
        assert first.current is not None and first.current.step == "s1"
        wait_done(follower)  # the follower saw its s2 end before the stop arrived
        follower.stop()  # ... and the stop still reaches the s1 the first page began meanwhile
        assert live_job(exp) is None
        wait_done(first)
        assert [(r.step, r.stopped) for r in first.results] == [("s2", False), ("s1", True)]
    finally:
        first.stop()


# ---------------------------------------------------------------- what the tab shows


def status_of(*results: StepResult, **kw) -> dict:
    """A run's status as the supervisor writes it (see RunSupervisor.status)."""
    return {
        "exp": "voice",
        "state": "failed",
        "results": [r.to_dict() for r in results],
        "started": 0.0,
        **kw,
    }


def test_tab_views_of_status_progress_plots_and_models(tmp_path, ws):
    from i18n import I18n
    from ui.context import AppContext
    from ui.training_views import (
        models_markdown,
        plots_for,
        progress_markdown,
        status_markdown,
        suggested_name,
    )

    en = I18n("en_US")
    assert suggested_name("asr/My Voice (1).list") == "My_Voice_1" and suggested_name(None) == ""
    stopped = status_of(StepResult("prepare", 0), StepResult("s2", 1, stopped=True), state="stopped")
    text = status_markdown(ws, stopped, False, en)
    assert text.splitlines()[:2] == ["- Formatting: Done.", "- SoVITS (S2) training: Stopped."]
    assert text.endswith("Click the same step again to resume where it stopped, or tick Start over.")
    killed = status_of(StepResult("s2", -9))  # killed, not by Stop
    assert status_markdown(ws, killed, False, en).startswith(
        "- SoVITS (S2) training: Failed: the process was killed (signal 9)"
    )
    sigterm = status_of(StepResult("s2", -15, stopped=True), state="stopped")
    assert status_markdown(ws, sigterm, False, en).startswith("- SoVITS (S2) training: Stopped.")
    failed = status_of(StepResult("s1", 2, error="no clip left after filtering"))
    assert (
        status_markdown(ws, failed, False, en) == "- GPT (S1) training: Failed. no clip left after filtering"
    )
    current = {"step": "s1", "done": 5, "total": 20, "epoch": 2, "eta_seconds": None, "message": "epoch 2"}
    running = status_of(state="running", current=current, pending=["clvp"])
    assert progress_markdown(running, True, en).startswith(
        "**GPT (S1) training** · step 5/20 · epoch 2 · ETA ? (25%)"
    )
    assert status_markdown(ws, running, True, en).splitlines() == [
        "- GPT (S1) training: running…",
        "- Next: CLVP training",
    ]
    # a "running" status whose supervisor is gone (killed): said so, not shown as running
    assert progress_markdown(running, False, en) == ""
    assert "interrupted: the process that ran it is gone" in status_markdown(ws, running, False, en)

    run = ws.run_dir("voice", "s1")
    run.mkdir(parents=True)
    lines = [{"step": i, "epoch": 1, "loss/ce": 5.0 - i, "acc/top3": 0.1 * i, "lr": 0.01} for i in (1, 2, 3)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    mel, kl, adv, s1_loss, s1_acc, clvp = plots_for(ws, "voice", en)
    assert len(mel) == len(kl) == len(adv) == len(clvp) == 0
    assert s1_loss["metric"].unique().tolist() == ["cross-entropy"] and s1_loss["value"].tolist() == [
        4.0,
        3.0,
        2.0,
    ]
    assert s1_acc["step"].tolist() == [1, 2, 3] and s1_acc["metric"].unique().tolist() == ["top-3 accuracy"]

    (ws.model_dir / V2 / "s2G2333k.pth").unlink()
    md = models_markdown(AppContext(ws.workspace, en, ws.model_dir), "v2")
    assert md.count("found") == 4 and "❌ SoVITS (S2) generator: missing" in md
    assert "python -m gpt_sovits.pretrained download sovits-v2" in md


def test_s2_losses_are_plotted_per_family_with_readable_names_and_whole_steps(ws):
    from i18n import I18n
    from ui.training_page import build_page
    from ui.training_views import PLOTS, plots_for

    run = ws.run_dir("voice", "s2")
    run.mkdir(parents=True)
    keys = (
        "loss/d/total",
        "loss/g/total",
        "loss/g/mel",
        "loss/g/kl",
        "loss/g/fm",
        "loss/g/gen",
        "loss/g/kl_ssl",
    )
    records = [{"step": i, "epoch": 1, **{k: float(i) for k in keys}, "lr": 1e-4} for i in (1, 2, 3)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    frames = dict(zip(PLOTS, plots_for(ws, "voice", I18n("en_US")), strict=True))
    names = {plot: sorted(frame["metric"].unique()) for plot, frame in frames.items()}
    assert names == {
        "s2_mel": ["generator total", "mel reconstruction"],
        "s2_kl": ["KL (posterior vs prior)", "SSL quantiser commitment"],
        "s2_adversarial": ["discriminator", "feature matching", "generator adversarial"],
        "s1_loss": [], "s1_acc": [], "clvp": [],
    }  # fmt: skip
    assert str(frames["s2_mel"]["step"].dtype) == "int64"
    assert frames["s2_kl"]["step"].tolist() == [1, 2, 3, 1, 2, 3]  # per metric, in step order
    assert sum(len(f) for f in frames.values()) == 3 * len(keys)  # every loss is on exactly one plot
    import gradio as gr

    from ui.context import AppContext

    with gr.Blocks():
        page = build_page(AppContext(ws.workspace, I18n("en_US"), ws.model_dir))
    assert len(page.plots) == len(PLOTS) and all(p.x_axis_format == "d" for p in page.plots)
    assert [p.label for p in page.plots[:3]] == [
        "SoVITS (S2): mel reconstruction",
        "SoVITS (S2): KL",
        "SoVITS (S2): adversarial and feature matching",
    ]


def test_existing_experiments_lists_safe_folder_names(ws):
    assert existing_experiments(ws) == []
    for name in ("b_voice", "a", ".trash", "has space"):
        (ws.workspace / "experiments" / name).mkdir(parents=True)
    (ws.workspace / "experiments" / "file.txt").write_text("x")
    assert existing_experiments(ws) == ["a", "b_voice"]


def test_a_step_that_reports_a_stop_ends_the_sequence(tmp_path):
    """A trainer stopped from elsewhere exits 0 with stopped=true: the next step must not start."""
    runner = StepRunner([child_spec(tmp_path, "s2", "--stopped"), child_spec(tmp_path, "s1")], tmp_path / "j")
    runner.begin()
    wait_done(runner)
    assert [(r.step, r.code, r.stopped) for r in runner.results] == [("s2", 0, True)]
    from i18n import I18n
    from ui.training_views import status_markdown

    status = status_of(*runner.results, state="stopped")
    assert status_markdown(Layout(tmp_path, tmp_path), status, False, I18n("en_US")).startswith(
        "- SoVITS (S2) training: Stopped."
    )


def test_tail_text_reads_the_end_of_a_long_log(tmp_path):
    from ui.training_jobs import tail_text

    log = tmp_path / "log.txt"
    log.write_text("".join(f"步 {i}\n" for i in range(100_000)), encoding="utf-8")
    assert tail_text(log, 12) == "\n步 99998\n步 99999\n"[-12:]
    assert tail_text(tmp_path / "none.txt") == ""


def test_progress_sample_cli_refuses_an_incomplete_request(tmp_path):
    from gpt_sovits.infer.samples import SampleRequest, SampleRequestError, main

    request = tmp_path / "s2_e1.json"
    request.write_text(json.dumps({"gpt_path": "g.ckpt", "text": "你好"}), encoding="utf-8")
    events = tmp_path / "events.jsonl"
    assert main(["--config", str(request), "--events", str(events)]) == 2
    error = json.loads(events.read_text(encoding="utf-8").splitlines()[-1])
    assert error["type"] == "error" and "lacks: model_dir, out, ref_audio" in error["message"]
    with pytest.raises(SampleRequestError, match="cannot read"):
        SampleRequest.read(tmp_path / "none.json")
    spec = plan_sample(
        {"model": "s2", "path": "/w/v_e1_s2.pth", "epoch": 1},
        Layout(tmp_path, tmp_path / "m"),
        "v",
        [],
        "/m/s1.ckpt",
        "/m/g.pth",
        SampleReference("/a.wav", "一", "zh", "二", "zh"),
    )
    request.write_text(json.dumps(sample_config(spec, tmp_path / "m", "cpu")), encoding="utf-8")
    read = SampleRequest.read(request)  # what the tab writes is a complete request
    assert (read.gpt_path, read.sovits_path, read.device, read.seed) == (
        "/m/s1.ckpt",
        "/w/v_e1_s2.pth",
        "cpu",
        1234,
    )


def test_the_check_says_which_trainers_resume(ws):
    from i18n import I18n
    from ui.training_views import problems_markdown

    run = ws.run_dir("voice", "s1")
    run.mkdir(parents=True)
    (run / "checkpoint.pt").write_bytes(b"x")
    inputs = gather_preflight(ws, settings(ws, ""), ("s2", "s1"))
    assert inputs.resumable == ("s1",)
    notes = [p for p in check_plan(inputs) if p.severity == "info"]
    assert [p.message for p in notes] == [
        "GPT (S1): continues the previous run (tick Start over to begin again)."
    ]
    fresh = gather_preflight(ws, settings(ws, "", fresh=True), ("s1",))
    assert [p.message for p in check_plan(fresh) if p.severity == "info"] == [
        "GPT (S1): the previous run is moved aside and training starts over."
    ]
    text = problems_markdown(notes, I18n("en_US"), "6 of 6 clips usable")
    assert text.splitlines() == [
        "**✅ All checks passed.**",
        "- ℹ️ GPT (S1): continues the previous run (tick Start over to begin again).",
        "",
        "6 of 6 clips usable",
    ]


# ---------------------------------------------------------------- the tab's handlers, without a browser


def test_handlers_read_named_values_and_a_blocked_start_writes_nothing(ws):
    """Each handler takes the app context and {component: value}, and returns {component: update}."""
    import gradio as gr

    from i18n import I18n
    from ui.context import AppContext
    from ui.training_page import build_page
    from ui.training_runner import TrainingSession
    from ui.training_tab import TrainingContext, check, choose_list, start_steps, stop

    write_tiny_dataset(ws.workspace / "data", n=3)
    app = AppContext(ws.workspace, I18n("en_US"), ws.model_dir)
    with gr.Blocks():
        page = build_page(app)
    tc = TrainingContext(app, page)
    values = {c: c.value for c in (*page.settings_inputs, page.ref_choice, page.sample_text)}
    values[page.state] = session = TrainingSession()
    values[page.list_choice] = "data/tiny.list"

    chosen = choose_list(tc, values)
    assert chosen[page.exp_name] == "tiny" and len(chosen[page.ref_choice]["choices"]) == 4
    values[page.exp_name] = chosen[page.exp_name]
    assert "Only 3 usable clips" in check(tc, values)[page.check_md]

    started = start_steps(tc, PIPELINE, values)
    assert "Cannot start" in started[page.check_md]
    assert started[page.status_md] == "❌ Not started." and page.exports not in started
    assert session.exp is None and not ws.exp_dir("tiny").exists()
    assert stop(tc, {page.state: session}) == {page.status_md: "Nothing is running on this experiment."}

    values[page.clvp_init] = "../outside.pt"  # a person's mistake: its message in the toast
    with pytest.raises(gr.Error, match="Not a weights file"):
        start_steps(tc, ("clvp",), values)


def test_the_training_modules_import_one_way():
    """No import cycle among ui/training_*.py; imports inside functions count too."""
    import ast

    folder = Path(__file__).resolve().parents[1] / "ui"
    imports: dict[str, set[str]] = {}
    for path in folder.glob("training_*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            found |= {n.removeprefix("ui.") for n in names if n.startswith("ui.training_")}
        imports[path.stem] = found
    assert {"training_plan", "training_runner", "training_samples", "training_tab"} <= set(imports)
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module not in done:
            for dep in imports.get(module, ()):
                visit(dep, (*path, module))
            done.add(module)

    for module in imports:
        visit(module, ())


# ---------------------------------------------------------------- a run that reports itself


def test_a_run_makes_its_samples_and_status_with_no_page_open(tmp_path, tiny_pretrained):
    """The supervisor alone (nothing polls it: no page) hears each export: a wav and its index entry."""
    from ui.training_common import last_trained_weights
    from ui.training_runner import RunPlan, read_sample_index, read_status, run_alive, start_run
    from ui.training_samples import materialize_reference, reference_clips

    layout = Layout(tmp_path / "ws", tiny_pretrained.root)
    data = write_tiny_dataset(layout.workspace / "data", n=4)
    samples = layout.samples_dir("voice")
    ref = materialize_reference(
        choose_reference(reference_clips(data, layout.workspace)), samples / "ref.wav"
    )
    spec = child_spec(layout.exp_dir("voice"), "s2", "--saved", f"s2:{tiny_pretrained.s2g}:1")
    plan = RunPlan(
        "voice", "v2", layout.workspace, layout.model_dir, tmp_path / "jobs", (spec,), ref, "cpu",
        pretrained_s1=str(tiny_pretrained.s1), pretrained_s2g=str(tiny_pretrained.s2g),
    )  # fmt: skip
    start_run(plan)
    assert run_alive(read_status(layout, "voice"))  # seen as running before the supervisor's first write
    deadline = time.monotonic() + 300
    while run_alive(read_status(layout, "voice")) and time.monotonic() < deadline:
        time.sleep(0.5)
    status = read_status(layout, "voice")
    assert status["state"] == "done" and status["weights"] == {"s2": str(tiny_pretrained.s2g)}
    assert [(r["step"], r["code"]) for r in status["results"]] == [("s2", 0)]
    [entry] = read_sample_index(layout.sample_index("voice"))
    assert entry["ok"], entry["message"]
    assert (entry["model"], entry["epoch"], entry["step"], entry["file"]) == ("s2", 1, 2, "s2_e1.wav")
    assert entry["gpt"] == str(tiny_pretrained.s1)  # no GPT export yet: heard with the pretrained one
    audio, sr = sf.read(samples / "s2_e1.wav")
    assert sr == 32000 and len(audio) > 0.2 * sr and np.abs(audio).max() > 0
    assert last_trained_weights(layout.workspace)["sovits"] == str(tiny_pretrained.s2g)


def test_a_stop_says_which_step_it_waits_for_then_where_the_run_stopped(tmp_path):
    from i18n import I18n
    from ui.training_runner import RunPlan, RunSupervisor, read_status, request_stop
    from ui.training_views import status_markdown

    layout = Layout(tmp_path / "ws", tmp_path / "models")
    exp = layout.exp_dir("voice")
    specs = (child_spec(exp, "s2", "--sleep", "30"), child_spec(exp, "s1"))
    sup = RunSupervisor(RunPlan("voice", "v2", layout.workspace, layout.model_dir, tmp_path / "jobs", specs))
    sup.begin()
    seen: list[dict] = []
    real_stop = sup.runner.stop
    sup.runner.stop = lambda grace: (
        seen.append(read_status(layout, "voice")),
        real_stop(grace),
    )  # a page reads
    deadline = time.monotonic() + 30
    while sup.runner.progress.done < 2 and time.monotonic() < deadline:  # the child reports step 2, sleeps
        sup.tick()
        time.sleep(0.05)
    request_stop(layout, "voice")  # the page's Stop: a marker in the experiment folder
    while sup.tick(sup.stop_requested()) and time.monotonic() < deadline:
        time.sleep(0.05)
    sup.write_status(force=True)
    en = I18n("en_US")
    [waiting] = seen
    assert waiting["state"] == "stopping" and waiting["stop"]["at"] == 3
    assert status_markdown(layout, waiting, True, en).splitlines() == [
        "- SoVITS (S2) training: Stopping: waiting for step 3 to finish (state is saved, then the run ends)",
        "- Next: GPT (S1) training",
    ]
    final = read_status(layout, "voice")
    assert final["state"] == "stopped" and final["pending"] == [] and len(final["results"]) == 1
    assert status_markdown(layout, final, False, en).splitlines() == [
        "- SoVITS (S2) training: Stopped.",
        "",
        "Stopped after step 2; resume continues from there.",
        "Click the same step again to resume, or tick Start over.",
    ]


def test_reopening_an_experiment_shows_its_last_run_from_its_folder(ws):
    """A new page (a reload, another browser) shows the status, log, samples and curves of the last run."""
    import gradio as gr

    from i18n import I18n
    from ui.context import AppContext
    from ui.training_page import build_page
    from ui.training_runner import SampleOutcome, TrainingSession, record_sample
    from ui.training_tab import TrainingContext, show_experiment, tick

    gpt = ws.gpt_dir("v2") / "voice-e2.ckpt"
    sovits = ws.sovits_dir("v2") / "voice_e4_s8.pth"
    for f in (gpt, sovits):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    log = ws.workspace / "jobs" / "train-s1-x" / "log.txt"
    log.parent.mkdir(parents=True)
    log.write_text("epoch 2 done\n", encoding="utf-8")
    results = [StepResult("s2", 0, last_step=8), StepResult("s1", 0, last_step=4)]
    status = status_of(
        *results, state="done", pid=1, log=str(log), weights={"s1": str(gpt), "s2": str(sovits)}
    )
    ws.exp_dir("voice").mkdir(parents=True)
    ws.status_path("voice").write_text(json.dumps(status), encoding="utf-8")
    wav = ws.samples_dir("voice") / "s2_e4.wav"
    wav.parent.mkdir(parents=True)
    sf.write(wav, np.zeros(3200, np.float32), 32000)
    ref = SampleReference("/a.wav", "一", "zh", "二", "zh")
    spec = SampleSpec("s2", 4, "/g.ckpt", str(sovits), str(wav), ref)
    record_sample(ws.sample_index("voice"), SampleOutcome("s2", str(wav), True, "", spec), 8)
    s2_run = ws.run_dir("voice", "s2")
    s2_run.mkdir(parents=True)
    (s2_run / "metrics.jsonl").write_text(
        json.dumps({"step": 8, "loss/g/mel": 20.0}) + "\n", encoding="utf-8"
    )

    app = AppContext(ws.workspace, I18n("en_US"), ws.model_dir)
    with gr.Blocks():
        page = build_page(app)
    tc = TrainingContext(app, page)
    session = TrainingSession()
    out = show_experiment(tc, {page.exp_name: "voice", page.version: "v2", page.state: session})
    assert out[page.status_md].splitlines() == [
        "- SoVITS (S2) training: Done.",
        "- GPT (S1) training: Done.",
        "",
        "✅ All steps finished.",
        "✅ Weights ready: open Voice cloning (it selects the new weights: "
        "`GPT_weights_v2/voice-e2.ckpt`, `SoVITS_weights_v2/voice_e4_s8.pth`).",
    ]
    assert out[page.log_box] == "epoch 2 done\n" and out[page.progress_md] == ""
    player = out[page.sample_players[0]]
    assert (
        player["visible"]
        and player["value"] == str(wav)
        and player["label"] == "SoVITS epoch 4 sample (step 8)"
    )
    assert not out[page.sample_players[1]]["visible"]
    assert out[page.s2_mel_plot]["metric"].tolist() == ["mel reconstruction"]
    assert out[page.timer].active is False and session.exp == "voice"  # nothing runs: no timer
    later = tick(tc, {page.state: session})
    assert page.s2_mel_plot not in later and page.sample_players[0] not in later  # unchanged: not resent


def test_the_run_supervisor_process_loads_neither_torch_nor_gradio():
    """It lives as long as the training (hours) beside the trainer: a few tens of MB, started in a second."""
    import subprocess
    import sys

    code = "import sys, ui.training_runner; print(sorted({'torch', 'gradio'} & set(sys.modules)))"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_start_hands_the_run_to_its_own_process_and_a_second_start_is_refused(ws, monkeypatch):
    import subprocess

    import gradio as gr

    from core.jobs import Job
    from i18n import I18n
    from ui import training_tab
    from ui.context import AppContext
    from ui.training_page import build_page
    from ui.training_runner import RunPlan, TrainingSession, start_run

    write_tiny_dataset(ws.workspace / "data", n=6)
    plans: list[RunPlan] = []

    def recorded_start(plan: RunPlan) -> Job:  # the real start_run, with a process that does nothing
        plans.append(plan)
        return start_run(plan, start=lambda m, a, d: Job([m, *a], Path(d), subprocess.Popen(["true"])))

    monkeypatch.setattr(training_tab, "start_run", recorded_start)
    app = AppContext(ws.workspace, I18n("en_US"), ws.model_dir)
    with gr.Blocks():
        page = build_page(app)
    tc = training_tab.TrainingContext(app, page)
    values = {c: c.value for c in (*page.settings_inputs, page.ref_choice, page.sample_text)}
    values.update({page.state: TrainingSession(), page.list_choice: "data/tiny.list", page.exp_name: "tiny"})
    out = training_tab.start_steps(tc, PIPELINE, values)
    [plan] = plans
    assert [s.step for s in plan.specs] == list(PIPELINE) and plan.exp == "tiny"
    assert plan.pretrained_s1.endswith("s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt")
    assert plan.reference is not None and Path(plan.reference.audio).is_file()  # short clips joined
    assert RunPlan.from_dict(json.loads(ws.plan_path("tiny").read_text(encoding="utf-8"))) == plan
    assert out[page.status_md].splitlines() == [
        "- Formatting: running…",
        "- Next: SoVITS (S2) training, GPT (S1) training",
    ]
    assert out[page.timer].active is True
    with pytest.raises(gr.Error, match="Experiment tiny is already running"):
        training_tab.start_steps(tc, ("s1",), values)
    stopped = training_tab.stop(tc, {page.state: values[page.state]})[page.status_md]
    assert "- Formatting: Stopping: waiting for the current file to finish, then the run ends" in stopped
    assert ws.stop_path("tiny").exists()  # what the supervisor reads


def test_a_trainer_stopped_before_its_first_step_is_not_waited_for(tmp_path):
    """Still loading: nothing to save, so the stop does not wait a minute for loading plus one step."""
    from i18n import I18n
    from ui.training_runner import NOT_BEGUN_GRACE_SECONDS, STOP_GRACE_SECONDS, RunPlan, RunSupervisor
    from ui.training_views import stop_waiting_line

    layout = Layout(tmp_path / "ws", tmp_path / "models")
    spec = child_spec(layout.exp_dir("voice"), "s2")
    sup = RunSupervisor(RunPlan("voice", "v2", layout.workspace, layout.model_dir, tmp_path / "j", (spec,)))
    graces: list[float] = []
    sup.runner.stop = lambda grace: graces.append(grace)
    sup.runner.current = spec  # started, no progress event yet
    sup.stop()
    sup.runner.progress.total = 40  # a trainer at work: it finishes its step and saves
    sup.stop()
    assert graces == [NOT_BEGUN_GRACE_SECONDS, STOP_GRACE_SECONDS]
    en = I18n("en_US")
    assert stop_waiting_line({"current": {"step": "s2", "total": 0}}, en) == (
        "Stopping: the training had not begun its first step; it ends now (nothing to save)"
    )
    assert stop_waiting_line({"current": {"step": "s1", "done": 7, "total": 40}}, en) == (
        "Stopping: waiting for step 8 to finish (state is saved, then the run ends)"
    )
