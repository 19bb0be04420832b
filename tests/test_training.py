"""Shared trainer infrastructure (gpt_sovits.train.*): checkpoints, resume, disk space, config, batching."""

from __future__ import annotations

import argparse
import json
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from core.jobs import EXIT_OK, EXIT_USER_ERROR, EventWriter
from gpt_sovits.train import state as train_state
from gpt_sovits.train.batching import default_batch_size, length_bucketed_batches, shard_batches
from gpt_sovits.train.cli import add_common_args, config_from_args, parse_args
from gpt_sovits.train.distributed import DistInfo
from gpt_sovits.train.errors import DiskSpaceError, TrainingError
from gpt_sovits.train.progress import ProgressReporter, run_trainer
from gpt_sovits.train.run_dir import RunDir, export_name_pattern, export_weights
from gpt_sovits.train.state import (
    CHECKPOINT_FORMAT,
    TrainProgress,
    load_checkpoint,
    restore_training_state,
    save_checkpoint,
    seed_everything,
    training_state,
)


def _tiny_setup(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    return model, opt, sched


def _train(model, opt, sched, steps: int) -> None:
    for _ in range(steps):
        x = torch.randn(3, 4)
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def test_checkpoint_roundtrip_weights_only_restores_everything(tmp_path):
    model, opt, sched = _tiny_setup()
    seed_everything(7)
    _train(model, opt, sched, 3)
    payload = training_state(
        model=model,
        optimizer=opt,
        scheduler=sched,
        progress=TrainProgress(1, 3, 2),
        config={"a": tmp_path},
    )
    path = save_checkpoint(tmp_path / "run" / "checkpoint.pt", payload)
    # the RNG streams after the save, to compare with the restored ones
    expect = (random.random(), np.random.rand(), torch.rand(2))

    torch.load(path, weights_only=True)  # must not raise: only tensors and plain containers inside
    state = load_checkpoint(path)
    model2, opt2, sched2 = _tiny_setup(seed=99)
    prog = restore_training_state(state, model=model2, optimizer=opt2, scheduler=sched2)
    assert prog == TrainProgress(epoch=1, step=3, batch_in_epoch=2)
    for a, b in zip(model.state_dict().values(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    for k in s1:
        assert torch.equal(s1[k]["exp_avg"], s2[k]["exp_avg"])
        assert torch.equal(s1[k]["exp_avg_sq"], s2[k]["exp_avg_sq"])
    assert sched2.last_epoch == sched.last_epoch == 3
    assert state["config"] == {"a": str(tmp_path)}
    got = (random.random(), np.random.rand(), torch.rand(2))
    assert got[0] == expect[0] and got[1] == expect[1] and torch.equal(got[2], expect[2])
    # no temp files are left beside the checkpoint
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt"]


def test_disk_full_raises_before_writing_and_keeps_old_checkpoint(tmp_path, monkeypatch):
    model, opt, sched = _tiny_setup()
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, training_state(model=model, optimizer=opt, progress=TrainProgress(0, 1, 0)))
    before = path.read_bytes()
    monkeypatch.setattr(train_state, "free_bytes", lambda p: 1000)
    with pytest.raises(DiskSpaceError, match=r"no disk space for checkpoints: need .*MB, have 1000 B"):
        save_checkpoint(path, training_state(model=model, optimizer=opt, progress=TrainProgress(0, 2, 0)))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    with pytest.raises(DiskSpaceError, match="exported weights"):
        export_weights(tmp_path / "w.ckpt", lambda p: p.write_bytes(b"x"), estimate=10)
    assert not (tmp_path / "w.ckpt").exists()


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    model, opt, _ = _tiny_setup()
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, training_state(model=model, optimizer=opt, progress=TrainProgress()))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(TrainingError, match="--fresh"):
        load_checkpoint(path)


def test_rundir_fresh_moves_state_to_trash_and_resume_truncates_metrics(tmp_path):
    run = RunDir(tmp_path / "s1_train")
    model, opt, _ = _tiny_setup()
    run.write_config({"epochs": 3})
    for step in range(1, 6):
        run.append_metrics({"step": step, "epoch": 0, "loss/total": torch.tensor(1.0 / step)})
    run.save(training_state(model=model, optimizer=opt, progress=TrainProgress(0, 3, 3)))
    state = run.prepare(fresh=False)
    assert state is not None and state["progress"]["step"] == 3
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3]
    assert run.read_metrics()[1]["loss/total"] == 0.5

    assert run.prepare(fresh=True) is None
    assert not run.checkpoint_path.exists() and not run.metrics_path.exists()
    trashed = list((run.trash_dir).glob("fresh-*/checkpoint.pt"))
    assert len(trashed) == 1 and zipfile.is_zipfile(trashed[0])
    assert list(run.trash_dir.glob("fresh-*/config.json"))


def test_non_writer_rank_writes_nothing(tmp_path):
    run = RunDir(tmp_path / "r", writer=False)
    run.write_config({"a": 1})
    run.append_metrics({"step": 1})
    run.log("hello")
    assert run.save({"format": CHECKPOINT_FORMAT}) is None
    assert not (tmp_path / "r").exists()


def test_config_file_defaults_and_flags_override(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"exp-dir": str(tmp_path / "exp"), "weights_dir": "W", "epochs": 4, "note": 1}))
    parser = add_common_args(argparse.ArgumentParser())
    args = parse_args(parser, ["--config", str(cfg), "--epochs", "9"])
    assert args.epochs == 9 and args.weights_dir == "W" and args.exp_name == "exp" and args.batch_size == 0
    with pytest.raises(SystemExit):
        parse_args(add_common_args(argparse.ArgumentParser()), ["--epochs", "2"])  # no --exp-dir


def test_batches_deterministic_cover_everything_and_shard_evenly():
    lengths = [random.Random(0).randint(5, 500) for _ in range(103)]
    a = length_bucketed_batches(lengths, 8, seed=3, epoch=2)
    assert a == length_bucketed_batches(lengths, 8, seed=3, epoch=2)
    assert a != length_bucketed_batches(lengths, 8, seed=3, epoch=3)
    assert sorted(i for b in a for i in b) == list(range(103))
    shards = [shard_batches(a, DistInfo(rank=r, world_size=3)) for r in range(3)]
    assert len({len(s) for s in shards}) == 1 and sum(len(s) for s in shards) == len(a) - len(a) % 3


def test_export_keep_latest_moves_older_to_trash(tmp_path):
    for name in ("x-e1.ckpt", "x-e2.ckpt", "x-extra-e1.ckpt"):
        export_weights(tmp_path / name, lambda p: p.write_bytes(b"w"), estimate=1)
    pattern = export_name_pattern("x-e{epoch}.ckpt")
    export_weights(
        tmp_path / "x-e3.ckpt",
        lambda p: p.write_bytes(b"w"),
        estimate=1,
        keep="latest",
        older_exports=pattern,
    )
    # another experiment whose name starts the same ("x-extra") keeps its file
    assert sorted(p.name for p in tmp_path.glob("*.ckpt")) == ["x-e3.ckpt", "x-extra-e1.ckpt"]
    assert sorted(p.name for p in (tmp_path / ".trash").iterdir()) == ["x-e1.ckpt", "x-e2.ckpt"]
    s2 = export_name_pattern("a.b_e{epoch}_s{step}.pth")
    assert s2.fullmatch("a.b_e2_s40.pth") and not s2.fullmatch("aXb_e2_s40.pth")


def test_progress_reporter_eta_and_saved_event(tmp_path):
    now = [0.0]
    events = EventWriter(tmp_path / "ev.jsonl")
    rep = ProgressReporter(events, "s1", total_steps=10, start_step=4, min_interval=0, clock=lambda: now[0])
    now[0] = 6.0
    rep.step(6, 1, {"loss": 0.5})  # 2 steps in 6 s -> 3 s/step, 4 left -> 12 s
    rep.saved(tmp_path / "a.ckpt", epoch=2, step=6)
    lines = [json.loads(x) for x in (tmp_path / "ev.jsonl").read_text().splitlines()]
    assert lines[0]["type"] == "progress" and lines[0]["done"] == 6 and "ETA 0m12s" in lines[0]["message"]
    assert lines[1] == {**lines[1], "type": "saved", "model": "s1", "epoch": 2, "step": 6}


def test_default_batch_size_scales_with_memory():
    cpu = torch.device("cpu")
    assert default_batch_size(cpu, fixed_bytes=100, per_item_bytes=10, available=1000) == 32
    assert default_batch_size(cpu, fixed_bytes=600, per_item_bytes=10, available=1000) == 10
    assert default_batch_size(cpu, fixed_bytes=10**6, per_item_bytes=10, available=1000) == 1


def test_interrupted_save_leaves_previous_checkpoint(tmp_path, monkeypatch):
    model, opt, _ = _tiny_setup()
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, training_state(model=model, optimizer=opt, progress=TrainProgress(0, 1, 0)))

    def half_written(obj, f):  # a kill in the middle of the write, as seen by the writer
        Path(f).write_bytes(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", half_written)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, training_state(model=model, optimizer=opt, progress=TrainProgress(0, 2, 0)))
    assert load_checkpoint(path)["progress"]["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_state_of_another_model_is_a_clear_error(tmp_path):
    model, opt, _ = _tiny_setup()
    state = training_state(model=model, optimizer=opt, progress=TrainProgress())
    other = torch.nn.Linear(3, 3)
    with pytest.raises(TrainingError, match="does not fit this model.*--fresh"):
        restore_training_state(state, model=other, optimizer=torch.optim.AdamW(other.parameters()))


def test_export_never_replaces_a_file_without_a_copy(tmp_path):
    target = tmp_path / "x-e1.ckpt"
    target.write_bytes(b"old run")
    export_weights(target, lambda p: p.write_bytes(b"new run"), estimate=1)
    assert target.read_bytes() == b"new run"
    assert (tmp_path / ".trash" / "x-e1.ckpt").read_bytes() == b"old run"

    def failing(p):
        raise OSError(28, "No space left on device")

    with pytest.raises(DiskSpaceError):
        export_weights(target, failing, estimate=1)
    assert target.read_bytes() == b"new run"  # put back


# ----------------------------------------------------------------------------------------------- the contract


def _trainers():
    from clvp import train as clvp_train
    from gpt_sovits.train import s1, s2

    return [
        (s1.build_parser, s1.S1TrainConfig, ()),
        (s2.build_parser, s2.S2TrainConfig, ()),
        (clvp_train.build_parser, clvp_train.ClvpTrainConfig, clvp_train.UNUSED_FLAGS),
    ]


@pytest.mark.parametrize("index", range(3), ids=["s1", "s2", "clvp"])
def test_every_flag_lands_in_the_typed_config_and_flags_beat_the_file(tmp_path, index):
    build_parser, config_class, unused = _trainers()[index]
    (tmp_path / "exp").mkdir()
    file = tmp_path / "c.json"
    file.write_text(
        json.dumps({"exp-dir": str(tmp_path / "exp"), "weights_dir": "W", "epochs": 3, "seed": 5})
    )
    args = parse_args(build_parser(), ["--config", str(file), "--seed", "9", "--fresh"])
    cfg = config_from_args(config_class, args, ignore=unused)
    assert (cfg.epochs, cfg.seed, cfg.fresh, cfg.exp_name) == (3, 9, True, "exp")
    assert cfg.weights_dir == Path("W") and cfg.run_path.parent == tmp_path / "exp"
    # a flag the config would silently drop is a programming error
    parser = build_parser()
    parser.add_argument("--not-a-field", default=1)
    with pytest.raises(TypeError, match="not_a_field"):
        config_from_args(config_class, parse_args(parser, ["--config", str(file)]), ignore=unused)


@dataclass
class _Cfg:
    run_path: Path


def test_run_trainer_wires_the_stop_flag_and_reports_user_errors(tmp_path, capsys):
    events_path = tmp_path / "ev.jsonl"
    seen = []

    def train(cfg, events, should_stop):
        seen.append(should_stop())
        return "result"

    assert run_trainer(lambda: _Cfg(tmp_path / "run"), train, EventWriter(events_path)) == (EXIT_OK, "result")
    assert seen == [False]

    def fails(cfg, events, should_stop):
        cfg.run_path.mkdir()
        raise TrainingError("no data in the folder")

    code, result = run_trainer(lambda: _Cfg(tmp_path / "run"), fails, EventWriter(events_path))
    assert (code, result) == (EXIT_USER_ERROR, None)
    assert capsys.readouterr().err == "error: no data in the folder\n"
    assert "error: no data in the folder" in (tmp_path / "run" / "log.txt").read_text()
    last = json.loads(events_path.read_text().splitlines()[-1])
    assert last == {**last, "type": "error", "message": "no data in the folder"}


def test_run_trainer_raises_an_unexpected_error_with_its_traceback_logged(tmp_path):
    """A defect (here a KeyError) is not disguised as the person's mistake: it propagates, and the
    event and log.txt call it an internal error."""
    (tmp_path / "run").mkdir()
    events_path = tmp_path / "ev.jsonl"

    def broken(cfg, events, should_stop):
        return {}["missing"]

    with pytest.raises(KeyError):
        run_trainer(lambda: _Cfg(tmp_path / "run"), broken, EventWriter(events_path))
    message = json.loads(events_path.read_text().splitlines()[-1])["message"]
    assert message.startswith("internal error") and "KeyError" in message
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "Traceback (most recent call last)" in log and "in broken" in log


def test_unreadable_checkpoints_name_the_reason_without_torch_advice(tmp_path):
    (tmp_path / "folder.pt").mkdir()
    with pytest.raises(TrainingError, match=r"a folder, not a checkpoint file\); run with --fresh"):
        load_checkpoint(tmp_path / "folder.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(TrainingError, match=r"\(empty file \(0 bytes\)\)"):
        load_checkpoint(tmp_path / "empty.pt")
    torch.save({"format": CHECKPOINT_FORMAT, "x": zipfile.ZipInfo("a")}, tmp_path / "foreign.pt")
    with pytest.raises(TrainingError) as caught:
        load_checkpoint(tmp_path / "foreign.pt")
    assert "nothing from it ran" in str(caught.value) and "weights_only" not in str(caught.value)


def test_run_start_removes_the_temporaries_of_killed_saves(tmp_path):
    from core.fsutil import make_temp_path

    run = RunDir(tmp_path / "s2_train")
    killed = make_temp_path(run.checkpoint_path, ".pt")  # as a kill -9 during torch.save leaves it
    killed.write_bytes(b"PK\x03\x04 partial")
    notes = run.path / ".notes"
    notes.write_text("mine")
    assert run.prepare() is None
    assert not killed.exists() and notes.exists()
    assert "leftover temp file" in run.log_path.read_text()
    (tmp_path / "other").mkdir()
    other = RunDir(tmp_path / "other", writer=False)  # ranks other than 0 never delete
    stray = make_temp_path(other.checkpoint_path, ".pt")
    other.prepare()
    assert stray.exists()


def test_export_removes_its_own_killed_exports_only(tmp_path):
    from core.fsutil import make_temp_path

    folder = tmp_path / "GPT_weights_v2"
    folder.mkdir()
    mine = make_temp_path(folder / "voice-e3.ckpt", ".ckpt")
    others = make_temp_path(folder / "other-e3.ckpt", ".ckpt")  # another experiment may be exporting now
    export_weights(
        folder / "voice-e4.ckpt",
        lambda p: p.write_bytes(b"w"),
        estimate=1,
        older_exports=export_name_pattern("voice-e{epoch}.ckpt"),
    )
    assert not mine.exists() and others.exists() and (folder / "voice-e4.ckpt").exists()
