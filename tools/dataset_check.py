"""Check a `.list` dataset before training: durations, missing or unreadable audio, bad labels.

Findings: malformed lines (wrong field count, '|' in the text), empty text, unsupported languages,
audio paths outside the dataset root, missing files, unreadable audio, clips too short (< 0.6 s) or
too long (> 54 s) for S2 training (the reference's bounds), and duplicate basenames (features are
keyed by file basename, so two clips named alike overwrite each other's features).

    python -m tools.dataset_check FILE.list [--root DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.fsutil import PathOutsideRootError
from core.jobs import EventWriter, ProgressFn, StopFn, log_progress, never_stop
from tools.labels import LANGUAGES, LabelError, add_within_argument, field_count_message, load_list

MIN_SECONDS = 0.6
MAX_SECONDS = 54.0


class DatasetCheckError(LabelError):
    """The list itself cannot be read."""


@dataclass(frozen=True)
class ClipProblem:
    line: int
    path: str
    detail: str


@dataclass
class DatasetReport:
    list_path: str
    root: str
    clip_count: int = 0
    durations: dict[str, float] = field(default_factory=dict)  # path string -> seconds (readable clips)
    histogram_counts: list[int] = field(default_factory=list)
    histogram_edges: list[float] = field(default_factory=list)  # len(counts) + 1 edges, seconds
    malformed: list[ClipProblem] = field(default_factory=list)
    empty_text: list[ClipProblem] = field(default_factory=list)
    unsupported_language: list[ClipProblem] = field(default_factory=list)
    outside_root: list[ClipProblem] = field(default_factory=list)
    missing_files: list[ClipProblem] = field(default_factory=list)
    unreadable: list[ClipProblem] = field(default_factory=list)
    too_short: list[ClipProblem] = field(default_factory=list)
    too_long: list[ClipProblem] = field(default_factory=list)
    duplicate_basenames: dict[str, list[str]] = field(default_factory=dict)  # basename -> paths

    @property
    def total_duration(self) -> float:
        return float(sum(self.durations.values()))

    @property
    def error_count(self) -> int:
        """Problems that break training (too short/long clips are only skipped by it)."""
        return (
            len(self.malformed)
            + len(self.empty_text)
            + len(self.unsupported_language)
            + len(self.outside_root)
            + len(self.missing_files)
            + len(self.unreadable)
            + len(self.duplicate_basenames)
        )

    def problem_tables(self) -> dict[str, list[ClipProblem]]:
        dups = [
            ClipProblem(0, p, f"basename {name} is shared")
            for name, ps in self.duplicate_basenames.items()
            for p in ps
        ]
        return {
            "malformed": self.malformed,
            "empty_text": self.empty_text,
            "unsupported_language": self.unsupported_language,
            "outside_root": self.outside_root,
            "missing_files": self.missing_files,
            "unreadable": self.unreadable,
            "too_short": self.too_short,
            "too_long": self.too_long,
            "duplicate_basenames": dups,
        }

    def to_dict(self) -> dict:
        d = asdict(self)
        d["total_duration"] = self.total_duration
        d["error_count"] = self.error_count
        return d

    def summary_lines(self) -> list[str]:
        ds = list(self.durations.values())
        lines = [
            f"clips: {self.clip_count}",
            f"total duration: {self.total_duration:.1f} s ({self.total_duration / 60:.1f} min)",
        ]
        if ds:
            lines.append(f"per clip: min {min(ds):.2f} s, mean {np.mean(ds):.2f} s, max {max(ds):.2f} s")
        for name, rows in self.problem_tables().items():
            if rows:
                lines.append(f"{name.replace('_', ' ')}: {len(rows)}")
        return lines


def histogram(durations: list[float], bins: int = 10) -> tuple[list[int], list[float]]:
    """Counts and edges of clip durations (seconds); empty lists for no clips."""
    if not durations:
        return [], []
    hi = max(durations)
    counts, edges = np.histogram(durations, bins=bins, range=(0.0, hi if hi > 0 else 1.0))
    return counts.astype(int).tolist(), [float(x) for x in edges]


def check_dataset(
    list_path: str | Path,
    root: str | Path | None = None,
    boundary: str | Path | None = None,
    min_seconds: float = MIN_SECONDS,
    max_seconds: float = MAX_SECONDS,
    progress: ProgressFn = log_progress,
    should_stop: StopFn = never_stop,
) -> DatasetReport:
    """Read every clip of `list_path` once and report each problem found."""
    from core.audio import audio_info

    try:
        doc = load_list(list_path, root=root, boundary=boundary)
    except LabelError as e:
        raise DatasetCheckError(str(e)) from e
    report = DatasetReport(list_path=str(list_path), root=str(doc.root), clip_count=len(doc.entries))
    report.malformed = [ClipProblem(r.line, "", field_count_message(r.text)) for r in doc.malformed]
    by_basename: dict[str, list[str]] = defaultdict(list)
    entries = doc.entries
    for n, e in enumerate(entries, start=1):
        if should_stop():
            break
        if not e.text.strip():
            report.empty_text.append(ClipProblem(e.line, e.path, "empty text"))
        if e.language not in LANGUAGES:
            report.unsupported_language.append(ClipProblem(e.line, e.path, e.language))
        if not e.path.strip():
            report.malformed.append(ClipProblem(e.line, "", "empty audio path"))
            continue
        by_basename[Path(e.path).name].append(e.path)
        try:
            audio = doc.resolve_audio(e)
        except PathOutsideRootError:
            report.outside_root.append(ClipProblem(e.line, e.path, f"outside {doc.boundary}"))
            continue
        if not audio.is_file():
            report.missing_files.append(ClipProblem(e.line, e.path, str(audio)))
            continue
        try:
            seconds = audio_info(audio).duration
        except Exception as err:  # any decoder failure is a finding, never a crash
            report.unreadable.append(ClipProblem(e.line, e.path, str(err)))
            continue
        report.durations[e.path] = seconds
        if seconds < min_seconds:
            report.too_short.append(ClipProblem(e.line, e.path, f"{seconds:.2f} s < {min_seconds:g} s"))
        elif seconds > max_seconds:
            report.too_long.append(ClipProblem(e.line, e.path, f"{seconds:.2f} s > {max_seconds:g} s"))
        progress(n, len(entries), e.path)
    report.duplicate_basenames = {k: v for k, v in by_basename.items() if len(v) > 1}
    report.histogram_counts, report.histogram_edges = histogram(list(report.durations.values()))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.dataset_check", description="Check a .list dataset before training."
    )
    parser.add_argument("list_file", metavar="FILE.list")
    parser.add_argument(
        "--root", default=None, help="dataset root for relative audio paths (default: the list's folder)"
    )
    add_within_argument(parser)
    parser.add_argument("--min-seconds", type=float, default=MIN_SECONDS)
    parser.add_argument("--max-seconds", type=float, default=MAX_SECONDS)
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    parser.add_argument("--events", default=None, help="write JSON-lines progress events to this file")
    args = parser.parse_args(argv)
    events = EventWriter(args.events)
    try:
        report = check_dataset(
            args.list_file,
            root=args.root,
            boundary=args.within,
            min_seconds=args.min_seconds,
            max_seconds=args.max_seconds,
            progress=events.progress,
        )
    except DatasetCheckError as e:
        print(f"error: {e}", file=sys.stderr)
        events.emit("error", message=str(e))
        return 2
    events.emit("done", report=report.to_dict())
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=1))
    else:
        print("\n".join(report.summary_lines()))
        for name, rows in report.problem_tables().items():
            for row in rows:
                where = f"line {row.line}: " if row.line else ""
                print(f"{name}: {where}{row.path} {row.detail}".rstrip())
    return 1 if report.error_count else 0


if __name__ == "__main__":
    sys.exit(main())
