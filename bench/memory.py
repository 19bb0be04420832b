"""Memory probes shared by the benchmarks (Linux: /proc and getrusage), and a peak-RSS run per stage.

    .venv/bin/python -m bench.memory make /tmp/long.wav [--hours 3] [--sr 16000]
    .venv/bin/python -m bench.memory stages /tmp/long.wav [--stage slice --stage asr ...]

`make` writes a long mono recording (int16 wav or flac, by the extension) a minute at a time: 3 s of
a 220 Hz tone every minute, silence otherwise. `stages` runs each stage in a fresh process on that
file and prints its peak resident set size (the process and the workers it waited for, from
`wait4`), so one stage's memory never counts against another's.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def rss_mb() -> float:
    """The current resident set size of this process in MiB (NaN where /proc is missing)."""
    with contextlib.suppress(OSError):  # no /proc (not Linux): report NaN rather than fail a benchmark
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident set size in MiB of this process, or of its waited-for children (ru_maxrss is KiB)."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024


def make_recording(path: Path, hours: float = 3.0, sr: int = 16000) -> Path:
    """A long mono recording, mostly silence: 3 s of tone at the start of every minute."""
    import numpy as np
    import soundfile as sf

    t = np.arange(60 * sr) / sr
    minute = (0.3 * np.sin(2 * np.pi * 220 * t) * (t < 3)).astype(np.float32)
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        for _ in range(int(round(hours * 60))):
            f.write(minute)
    return path


def run_measured(
    argv: list[str], cwd: Path = REPO_ROOT, timeout: float = 3600
) -> tuple[int, float, float, str]:
    """(exit code, peak RSS MiB of the process tree's largest process, seconds, stderr tail)."""
    err = tempfile.TemporaryFile()
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
    deadline = t0 + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(0.2)
    seconds = time.monotonic() - t0
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    err.seek(0)
    tail = err.read().decode("utf-8", errors="replace")[-600:]
    return code, usage.ru_maxrss / 1024, seconds, tail


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", "import sys; sys.path.insert(0, '.'); " + code]


def stage_commands(path: Path, work: Path) -> dict[str, list[str]]:
    """The stages of issue 16, each as the argv of a fresh process reading `path`."""
    clips = work / "speaker"
    clips.mkdir(parents=True, exist_ok=True)
    link = clips / path.name
    if not link.exists():
        link.symlink_to(path)
    whisper = work / "faster-whisper-tiny-test"
    p = repr(str(path))
    return {
        "slice": [
            sys.executable,
            "-m",
            "tools.slice",
            str(path),
            "--out",
            str(work / "sliced"),
            "--workers",
            "2",
        ],
        "slice preview": _py(
            f"from pathlib import Path; from tools.slice import SliceParams; from ui.slice_tab import preview; "
            f"fig, rows = preview([Path({p})], SliceParams()); print(len(rows))"
        ),
        "asr (tiny model)": _py(
            f"from tests.support.tiny_whisper import build_tiny_whisper; from pathlib import Path; "
            f"Path({str(whisper)!r}).exists() or build_tiny_whisper({str(whisper)!r}, quantization='int8'); "
            f"from tools.asr import main; sys.exit(main([{str(clips)!r}, '--out', {str(work / 'x.list')!r}, "
            f"'--model', {str(whisper)!r}, '--device', 'cpu', '--compute-type', 'int8']))"
        ),
        "convert (--to, 32 kHz)": [
            sys.executable,
            "-m",
            "core.audio",
            str(path),
            "--to",
            str(work / "wav"),
            "--sr",
            "32000",
        ],
        "formatting clip load": _py(
            f"from pathlib import Path; from gpt_sovits.data.prepare import _load_clip; print(_load_clip(Path({p})))"
        ),
        "reference (synthesis)": _py(
            f"from gpt_sovits.infer.reference import read_reference; from gpt_sovits.infer.request import "
            f"ReferenceLengthError\ntry:\n    read_reference({p})\nexcept ReferenceLengthError as e:\n    print(e)"
        ),
        "trim reference": _py(
            f"from gpt_sovits.infer.reference import trim_reference; from gpt_sovits.infer.request import "
            f"ReferenceLengthError\ntry:\n    trim_reference({p}, {str(work / 'trim.wav')!r})\n"
            f"except ReferenceLengthError as e:\n    print(e)"
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make", help="write a long test recording")
    make.add_argument("path")
    make.add_argument("--hours", type=float, default=3.0)
    make.add_argument("--sr", type=int, default=16000)
    stages = sub.add_parser("stages", help="peak RSS of each stage on a recording")
    stages.add_argument("path")
    stages.add_argument("--stage", action="append", help="only these stages (repeatable)")
    stages.add_argument("--work", default=None, help="scratch folder (default: a temp folder)")
    stages.add_argument(
        "--repo", default=str(REPO_ROOT), help="run the stages of another checkout (e.g. an older commit)"
    )
    args = parser.parse_args(argv)
    if args.command == "make":
        print(make_recording(Path(args.path), args.hours, args.sr))
        return 0
    path = Path(args.path).resolve()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-memory-"))
    commands = stage_commands(path, work)
    print(f"{path.name}: {path.stat().st_size / 2**20:.0f} MiB on disk; scratch {work}")
    print("| stage | peak RSS | time | exit |\n|---|--:|--:|--:|")
    for name, cmd in commands.items():
        if args.stage and name.split(" ")[0] not in args.stage and name not in args.stage:
            continue
        code, peak, seconds, tail = run_measured(cmd, cwd=Path(args.repo))
        print(f"| {name} | {peak:.0f} MiB | {seconds:.0f} s | {code} |", flush=True)
        if code not in (0, 1):
            print(tail, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
