from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tools.dataset_check import DatasetCheckError, check_dataset, histogram, main

SR = 16000


def wav(path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(round(seconds * SR)), dtype=np.float32) + 0.01, SR)


def write_list(root: Path, lines: list[str]) -> Path:
    path = root / "data.list"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_clean_dataset_counts_and_durations(tmp_path):
    wav(tmp_path / "a.wav", 1.0)
    wav(tmp_path / "b.wav", 2.5)
    report = check_dataset(write_list(tmp_path, ["a.wav|s|en|one", "b.wav|s|zh|二"]))
    assert report.clip_count == 2
    assert report.durations == {"a.wav": pytest.approx(1.0), "b.wav": pytest.approx(2.5)}
    assert report.total_duration == pytest.approx(3.5)
    assert (
        sum(report.histogram_counts) == 2 and len(report.histogram_edges) == len(report.histogram_counts) + 1
    )
    assert report.error_count == 0
    assert report.summary_lines()[0] == "clips: 2"


def test_each_finding(tmp_path):
    wav(tmp_path / "ok.wav", 1.0)
    wav(tmp_path / "short.wav", 0.3)
    wav(tmp_path / "long.wav", 55.0)
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really a wav")
    wav(tmp_path / "sub" / "ok.wav", 1.0)
    report = check_dataset(
        write_list(
            tmp_path,
            [
                "ok.wav|s|en|fine",  # 1
                "gone.wav|s|en|missing",  # 2
                "bad.wav|s|en|unreadable",  # 3
                "ok.wav|s|en|",  # 4 empty text
                "ok.wav|s|en|a|b",  # 5 '|' in text
                "ok.wav|s|fr|bonjour",  # 6 language
                "short.wav|s|en|short",  # 7
                "long.wav|s|en|long",  # 8
                "sub/ok.wav|s|en|dup",  # 9 duplicate basename of ok.wav
                "../x.wav|s|en|escape",  # 10
            ],
        )
    )
    assert [p.line for p in report.missing_files] == [2]
    assert [p.line for p in report.unreadable] == [3]
    assert [p.line for p in report.empty_text] == [4]
    assert [p.line for p in report.malformed] == [5] and "'|'" in report.malformed[0].detail
    assert [(p.line, p.detail) for p in report.unsupported_language] == [(6, "fr")]
    assert [p.line for p in report.too_short] == [7]
    assert [p.line for p in report.too_long] == [8]
    assert [p.line for p in report.outside_root] == [10]
    assert set(report.duplicate_basenames) == {"ok.wav"}
    assert "sub/ok.wav" in report.duplicate_basenames["ok.wav"]
    assert report.clip_count == 9  # the malformed line is not a clip


def test_histogram_bins():
    counts, edges = histogram([1.0, 1.1, 9.9, 10.0], bins=10)
    assert counts[1] == 2 and counts[-1] == 2 and edges[0] == 0.0 and edges[-1] == 10.0
    assert histogram([]) == ([], [])


def test_missing_list_is_an_error(tmp_path):
    with pytest.raises(DatasetCheckError, match="not found"):
        check_dataset(tmp_path / "nope.list")


def test_cli(tmp_path, capsys):
    wav(tmp_path / "a.wav", 1.0)
    good = write_list(tmp_path, ["a.wav|s|en|one"])
    assert main([str(good)]) == 0
    assert "clips: 1" in capsys.readouterr().out
    assert main([str(good), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["clip_count"] == 1
    bad = tmp_path / "bad.list"
    bad.write_text("gone.wav|s|en|x\n", encoding="utf-8")
    events = tmp_path / "ev.jsonl"
    assert main([str(bad), "--events", str(events)]) == 1
    assert "missing_files: line 1: gone.wav" in capsys.readouterr().out
    assert json.loads(events.read_text().splitlines()[-1])["type"] == "done"
