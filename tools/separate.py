"""Split songs into vocals and accompaniment with demucs.

    python -m tools.separate song.mp3 folder/ --out separated/ [--model htdemucs] [--model-dir DIR]

For each input `<name>.<ext>` two wavs are written to `--out`: `<name>_vocals.wav` and
`<name>_accompaniment.wav` (the sum of every non-vocal source), stereo at the model's rate
(44.1 kHz), 32-bit float by default (separated stems can exceed ±1, float keeps them unclipped and
keeps vocals + accompaniment equal to the model's sum of sources; `--pcm16` writes 16-bit).

Existing files are never replaced: a taken name gets ` (1)`, ` (2)`… (or, with `--skip-existing`,
an input whose two outputs already exist is skipped). An `--out` that would make an output path
equal to an input is refused before anything runs.

Memory stays bounded for long files: the input is read from disk in windows (default 40 s) that
overlap by `--crossfade` seconds; each window goes through `demucs.apply.apply_model` (which splits
it again into model segments) and the outputs are cross-faded linearly and appended to the output
files as they come. Inputs soundfile cannot read at the model's rate are first transcoded to a temp
wav beside the outputs, block by block (`core.audio.open_audio`: any channel count and rate; the
model's channels are made as demucs does: mono duplicated, extra channels dropped). An 8-channel
32 kHz file used to crash the process here (SIGSEGV in PyAV's planar frames; `core.audio` reads a
packed plane instead). The mix is normalised with the whole file's mean and std (one cheap
streaming pass first), as demucs itself does.

The CLI separates the files in a worker process (`core.jobs.WorkerProcess`): a file that crashes it
(a native fault, a kill for memory) is reported as failed with the signal, its temporary files are
removed, the worker restarts and the other files go on. `--in-process` runs everything here.
Exit codes (`core.jobs`): 0 done, 1 some files failed, 4 every file failed, 2 a person's mistake,
130 stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.audio import AudioDecodeError, list_audio_files, open_audio
from core.errors import UserError
from core.fsutil import make_temp_path, remove_stale_temporaries, unique_path
from core.jobs import (
    EXIT_STOPPED,
    BatchReport,
    EventWriter,
    FileFailure,
    JobCancelled,
    ProgressFn,
    StopFn,
    WorkerCrashed,
    WorkerProcess,
    batch_exit_code,
    describe_end,
    log_progress,
    never_stop,
    serve_worker,
    stage_failure,
)
from tools.demucs_models import (
    BUILTIN_MODELS,
    DEFAULT_MODEL,
    DEFAULT_MODEL_DIR,
    ModelLoadError,
    ModelNotFoundError,
    UnsafeModelError,
    load_model,
)

logger = logging.getLogger(__name__)

__all__ = [
    "BUILTIN_MODELS",
    "ModelLoadError",
    "ModelNotFoundError",
    "UnsafeModelError",
    "OutputConflictError",
    "SeparationError",
    "SeparationOptions",
    "SeparationResult",
    "separate_file",
    "separate_inputs",
    "main",
]

STEMS = ("vocals", "accompaniment")


class SeparationError(UserError, RuntimeError):
    """Separation of one file failed for a reason a person can act on."""


class OutputConflictError(UserError, ValueError):
    """An output path would be equal to an input: refused so no input is ever overwritten."""


@dataclass
class SeparationOptions:
    model: str = DEFAULT_MODEL
    model_dir: Path | None = None  # default: pretrained_models/demucs in the repo
    download: bool = False  # allow fetching from the Hugging Face hub
    segment: float | None = None  # seconds per model segment; None: the model's own
    overlap: float = 0.25  # overlap between model segments (demucs)
    shifts: int = 0  # random-shift averaging passes (0: off, faster)
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    jobs: int = 0  # parallel segment workers on CPU (demucs num_workers)
    window: float = 40.0  # seconds of audio held in memory per step
    crossfade: float = 1.0  # seconds of overlap between windows (linear cross-fade)
    subtype: str = "FLOAT"  # FLOAT or PCM_16
    skip_existing: bool = False

    def validate(self) -> None:
        if not 0 <= self.overlap < 1:
            raise ValueError(f"overlap must be in [0, 1), got {self.overlap}")
        if self.shifts < 0 or self.jobs < 0:
            raise ValueError("shifts and jobs must be 0 or more")
        if self.segment is not None and self.segment <= 0:
            raise ValueError(f"segment must be positive, got {self.segment}")
        if self.crossfade <= 0 or self.window < 2 * self.crossfade:
            raise ValueError(
                f"window ({self.window} s) must be at least twice the crossfade ({self.crossfade} s)"
            )
        if self.subtype not in ("FLOAT", "PCM_16"):
            raise ValueError(f"subtype must be FLOAT or PCM_16, got {self.subtype}")


@dataclass
class SeparationResult:
    input: Path
    vocals: Path | None
    accompaniment: Path | None
    sample_rate: int = 0
    frames: int = 0
    skipped: bool = False
    outputs: list[Path] = field(default_factory=list)


def pick_device(device: str = "auto") -> str:
    """`auto`: cuda if available, else mps if available, else cpu."""
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


# ---------------------------------------------------------------- input: a seekable file at the model rate


def _transcode(path: Path, sample_rate: int, channels: int, dest: Path) -> Path:
    """Stream `path` into a float wav at `sample_rate` with the model's `channels`, block by block.

    Any channel count and rate: `core.audio` decodes (soundfile, else PyAV as packed float, which
    reads 8-channel files that PyAV's planar frames crashed on) and resamples as it goes.
    """
    import soundfile as sf

    stream = open_audio(path, sample_rate, mono=False)
    with sf.SoundFile(
        str(dest), "w", samplerate=sample_rate, channels=channels, subtype="FLOAT", format="WAV"
    ) as out:
        for block in stream.blocks():  # (c, n) at sample_rate
            out.write(to_channels(block, channels).T)  # (n, channels)
    return dest


def _prepare_input(path: Path, sample_rate: int, channels: int, tmp_dir: Path) -> Path:
    """`path` itself when soundfile reads it at `sample_rate`, else a transcoded temp wav."""
    import soundfile as sf

    if not path.is_file():
        raise AudioDecodeError(f"Not found: {path.name}")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path.name}: the file is empty (0 bytes)")
    try:
        info = sf.info(str(path))
        if info.samplerate == sample_rate and info.frames > 0:
            return path
    except Exception:
        pass  # not a soundfile format (mp3 in old libsndfile, m4a, …): PyAV below
    return _transcode(path, sample_rate, channels, tmp_dir / "input.wav")


def to_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """(c, n) -> (channels, n): mono duplicated, extra channels dropped, as demucs does."""
    if x.shape[0] == channels:
        return x
    if x.shape[0] == 1:
        return np.repeat(x, channels, axis=0)
    if channels == 1:
        return x.mean(axis=0, keepdims=True)
    return x[:channels]


def _mix_stats(sf_file, block: int) -> tuple[float, float]:
    """Mean and std of the mono downmix, streamed (float64 sums)."""
    total, s, ss = 0, 0.0, 0.0
    sf_file.seek(0)
    while True:
        data = sf_file.read(block, dtype="float32", always_2d=True)  # (n, c)
        if not len(data):
            break
        mono = data.mean(axis=1, dtype=np.float64)
        if not np.all(np.isfinite(mono)):
            raise AudioDecodeError("the audio contains NaN or infinite samples")
        total += len(mono)
        s += float(mono.sum())
        ss += float(np.square(mono).sum())
    if total == 0:
        raise AudioDecodeError("the file holds no audio samples")
    mean = s / total
    var = max(ss / total - mean * mean, 0.0) * total / max(total - 1, 1)  # unbiased, like torch.std
    return mean, math.sqrt(var)


# ---------------------------------------------------------------- windowed processing with cross-fade


def window_starts(total: int, window: int, fade: int) -> list[int]:
    """Start frames of windows of `window` frames overlapping by `fade`, covering `total` frames."""
    if total <= window:
        return [0]
    stride = window - fade
    return [i * stride for i in range(1 + math.ceil((total - window) / stride))]


def crossfade_stream(
    total: int,
    window: int,
    fade: int,
    read: Callable[[int, int], np.ndarray],
    process: Callable[[np.ndarray], np.ndarray],
    write: Callable[[np.ndarray], None],
    on_window: Callable[[int, int], None] = lambda i, n: None,
) -> None:
    """Run `process` over overlapping windows and `write` the linearly cross-faded result in order.

    `read(start, n)` -> (c, n); `process(x)` -> (..., n) for any leading shape; `write` receives
    consecutive pieces whose lengths add up to `total`. Only one window plus `fade` frames of the
    previous output are held at a time.
    """
    starts = window_starts(total, window, fade)
    tail: np.ndarray | None = None  # (..., fade): previous window's last frames, not yet written
    for i, start in enumerate(starts):
        n = min(window, total - start)
        y = process(read(start, n))
        if tail is not None:
            ramp = ((np.arange(fade) + 0.5) / fade).astype(y.dtype)  # 0 -> 1 for the new window
            y[..., :fade] = tail * (1 - ramp) + y[..., :fade] * ramp
        if i == len(starts) - 1:
            write(y)
        else:
            write(y[..., : n - fade])
            tail = y[..., n - fade :].copy()
        on_window(i + 1, len(starts))


# ---------------------------------------------------------------- one file


def _output_paths(path: Path, out_dir: Path) -> dict[str, Path]:
    return {stem: out_dir / f"{path.stem}_{stem}.wav" for stem in STEMS}


@contextlib.contextmanager
def _temp_outputs(
    out_dir: Path, names: list[str], sample_rate: int, channels: int, subtype: str
) -> Iterator[list]:
    """Open one SoundFile per name on hidden temp paths in `out_dir`; removed unless renamed."""
    import soundfile as sf

    files, paths = [], []
    try:
        for name in names:
            tmp = make_temp_path(Path(out_dir) / name, suffix=".tmp.wav")
            paths.append(tmp)
            files.append(
                sf.SoundFile(
                    tmp, "w", samplerate=sample_rate, channels=channels, subtype=subtype, format="WAV"
                )
            )
        yield list(zip(files, paths, strict=True))
    finally:
        for f in files:
            if not f.closed:
                f.close()
        for p in paths:
            p.unlink(missing_ok=True)


def separate_file(
    path: str | Path,
    out_dir: str | Path,
    options: SeparationOptions | None = None,
    progress: ProgressFn = log_progress,
    should_stop: StopFn = never_stop,
    model=None,
) -> SeparationResult:
    """Separate one file into `<stem>_vocals.wav` and `<stem>_accompaniment.wav` in `out_dir`.

    `model` is a loaded demucs model/bag (loaded from `options` when None). Raises
    `AudioDecodeError` for unreadable input, `JobCancelled` when `should_stop()` turns true,
    `OutputConflictError` when an output would be the input itself.
    """
    import soundfile as sf
    import torch
    from demucs.apply import apply_model

    options = options or SeparationOptions()
    options.validate()
    path, out_dir = Path(path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    planned = _output_paths(path, out_dir)
    if any(p.resolve() == path.resolve() for p in planned.values()):
        raise OutputConflictError(
            f"{path.name}: an output would overwrite the input; choose another output folder"
        )
    if options.skip_existing and all(p.exists() for p in planned.values()):
        progress(1, 1, f"{path.name}: outputs exist, skipped")
        return SeparationResult(path, planned["vocals"], planned["accompaniment"], skipped=True)
    if model is None:
        model = load_model(options.model, options.model_dir, options.download)
    if "vocals" not in model.sources:
        raise SeparationError(f"model {options.model!r} has no 'vocals' source (it has {model.sources})")
    vocal_idx = list(model.sources).index("vocals")
    sr, channels = int(model.samplerate), int(model.audio_channels)
    segment = options.segment
    max_segment = float(getattr(model, "max_allowed_segment", math.inf))
    if segment is not None and segment > max_segment:
        logger.warning("segment %.2f s is longer than the model allows; using %.2f s", segment, max_segment)
        segment = max_segment
    device = pick_device(options.device)

    def stop_check(_info: dict) -> None:  # demucs calls this around every model segment
        if should_stop():
            raise JobCancelled("separation stopped")

    # The pid in the name: after a crash the batch's parent removes exactly the dead worker's folder.
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".separate-{os.getpid()}-", dir=out_dir))
    try:
        source = _prepare_input(path, sr, channels, tmp_dir)
        temp_names = [planned[s].stem for s in STEMS]
        with (
            sf.SoundFile(str(source)) as infile,
            _temp_outputs(out_dir, temp_names, sr, channels, options.subtype) as outs,
        ):
            try:
                mean, std = _mix_stats(infile, block=sr * 10)
            except AudioDecodeError as e:
                raise AudioDecodeError(f"{path.name}: {e}") from e
            std = std + 1e-8
            total = infile.frames

            def read(start: int, n: int) -> np.ndarray:
                infile.seek(start)
                data = infile.read(n, dtype="float32", always_2d=True).T  # (c, n)
                return to_channels(data, channels)

            def process(x: np.ndarray) -> np.ndarray:
                if should_stop():
                    raise JobCancelled("separation stopped")
                mix = torch.from_numpy((x - mean) / std)[None].float()  # [1, c, n]
                with torch.no_grad():
                    est = (
                        apply_model(
                            model,
                            mix,
                            shifts=options.shifts,
                            split=True,
                            overlap=options.overlap,
                            device=device,
                            num_workers=options.jobs,
                            segment=segment,
                            callback=stop_check,
                        )[0]
                        .cpu()
                        .numpy()
                    )  # [sources, c, n]
                vocals = est[vocal_idx]
                accompaniment = est.sum(axis=0) - vocals
                # The DC offset removed before the model goes back into the accompaniment.
                return np.stack([vocals * std, accompaniment * std + mean]).astype(np.float32)  # [2, c, n]

            def write(y: np.ndarray) -> None:
                for k, (f, _) in enumerate(outs):
                    f.write(y[k].T)

            crossfade_stream(
                total,
                max(int(options.window * sr), 1),
                max(int(options.crossfade * sr), 1),
                read,
                process,
                write,
                on_window=lambda i, n: progress(i, n, f"{path.name}: {min(i / n, 1.0) * total / sr:.0f} s"),
            )
            final = []
            for (f, tmp), stem in zip(outs, STEMS, strict=True):
                f.close()
                target = unique_path(planned[stem])
                os.replace(tmp, target)
                final.append(target)
        return SeparationResult(path, final[0], final[1], sample_rate=sr, frames=total, outputs=final)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


# ---------------------------------------------------------------- many files


def _remove_leftovers(path: Path, out_dir: Path, pid: int | None) -> None:
    """What a crashed worker left of `path`'s separation: its temp folder and half-written stems."""
    if pid is not None:
        for d in out_dir.glob(f".separate-{pid}-*"):
            shutil.rmtree(d, ignore_errors=True)
    names = {p.name for p in _output_paths(path, out_dir).values()}
    remove_stale_temporaries(out_dir, 0, only=lambda target: target in names)


def _worker_init(options: SeparationOptions):
    return load_model(options.model, options.model_dir, options.download)


def _worker_handle(model, item: tuple[str, str, SeparationOptions], progress: ProgressFn) -> SeparationResult:
    path, out_dir, options = item
    return separate_file(path, out_dir, options, progress, never_stop, model=model)


def separation_worker(conn, options: SeparationOptions) -> None:
    """The worker process of an isolated batch: loads the model once, then separates file after file."""
    serve_worker(conn, _worker_init, _worker_handle, options)


def separate_inputs(
    inputs: list[str | Path],
    out_dir: str | Path,
    options: SeparationOptions | None = None,
    progress: ProgressFn = log_progress,
    should_stop: StopFn = never_stop,
    on_result: Callable[[SeparationResult], None] = lambda r: None,
    isolate: bool = False,
    worker: Callable = separation_worker,
) -> BatchReport:
    """Separate every audio file in `inputs` (files or folders); one file's failure does not stop the rest.

    The model loads once; a missing or unsafe model raises before any file is touched. With
    `isolate` (the CLI's default) the files run in a `core.jobs.WorkerProcess` (`worker`): a file
    that crashes its process natively (a segfault, a kill for memory) is reported as failed with
    the signal, the worker restarts (loading the model again) and the rest of the batch goes on.
    """
    options = options or SeparationOptions()
    options.validate()
    out_dir = Path(out_dir)
    files = list_audio_files(inputs)
    if not files:
        raise ValueError("no audio files in the inputs")
    input_keys = {f.resolve() for f in files}
    for f in files:
        for p in _output_paths(f, out_dir).values():
            if p.resolve() in input_keys:
                raise OutputConflictError(f"{p} is an input; choose another output folder")
    pool = WorkerProcess(worker, options) if isolate else None
    model = None if isolate else load_model(options.model, options.model_dir, options.download)
    report = BatchReport()
    scale = 1000  # progress ticks per file, so one bar covers the whole batch
    try:
        for i, f in enumerate(files):
            if should_stop():
                report.cancelled = True
                break

            def file_progress(done: int, total: int, message: str, i: int = i) -> None:
                progress(i * scale + int(scale * done / max(total, 1)), len(files) * scale, message)

            try:
                if pool is not None:
                    result = pool.run((str(f), str(out_dir), options), file_progress, should_stop)
                else:
                    result = separate_file(f, out_dir, options, file_progress, should_stop, model=model)
            except JobCancelled:
                report.cancelled = True
                break
            except (ModelNotFoundError, ModelLoadError, UnsafeModelError):
                raise  # from the worker's start: nothing was separated, the person must fix the model
            except WorkerCrashed as e:
                logger.warning("%s: %s", f, e)
                _remove_leftovers(f, out_dir, e.pid)
                report.failures.append(FileFailure.of(f, e))
                continue
            except (AudioDecodeError, SeparationError, OutputConflictError, OSError, RuntimeError) as e:
                logger.warning("%s: %s", f, e)
                report.failures.append(FileFailure.of(f, e))
                continue
            report.outputs.extend(str(p) for p in result.outputs)
            on_result(result)
    finally:
        if pool is not None:
            pool.finish()
    progress(len(files) * scale, len(files) * scale, "cancelled" if report.cancelled else "done")
    return report


# ---------------------------------------------------------------- CLI


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.separate",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", help="audio files or folders (not recursive)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model name ({', '.join(BUILTIN_MODELS)} or a local bag)"
    )
    p.add_argument("--model-dir", default=str(DEFAULT_MODEL_DIR), help="local model folder")
    p.add_argument(
        "--download", action="store_true", help="allow downloading a missing model from Hugging Face"
    )
    p.add_argument(
        "--segment", type=float, default=None, help="model segment in seconds (default: the model's)"
    )
    p.add_argument("--overlap", type=float, default=0.25, help="overlap between model segments")
    p.add_argument(
        "--shifts", type=int, default=0, help="random-shift passes to average (slower, slightly better)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--jobs", type=int, default=0, help="parallel workers on CPU")
    p.add_argument(
        "--window", type=float, default=40.0, help="seconds of audio processed per step (memory bound)"
    )
    p.add_argument("--crossfade", type=float, default=1.0, help="seconds of cross-fade between steps")
    p.add_argument("--pcm16", action="store_true", help="write 16-bit PCM instead of 32-bit float")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose two outputs already exist")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="separate in this process (a native crash then ends the batch; default: a worker process "
        "that is restarted after a crash, so the other files go on)",
    )
    p.add_argument("--events", default=None, help="append JSON-lines progress events to this file")
    return p


def _raise_cancelled(signum: int, frame: object) -> None:
    raise JobCancelled("separation stopped")


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    in_main = threading.current_thread() is threading.main_thread()
    # Job.stop() sends SIGTERM: unwind normally so temp files are removed, not left half-written.
    previous = signal.signal(signal.SIGTERM, _raise_cancelled) if in_main else None
    try:
        return _run(args)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    events = EventWriter(args.events)
    options = SeparationOptions(
        model=args.model,
        model_dir=Path(args.model_dir),
        download=args.download,
        segment=args.segment,
        overlap=args.overlap,
        shifts=args.shifts,
        device=args.device,
        jobs=args.jobs,
        window=args.window,
        crossfade=args.crossfade,
        subtype="PCM_16" if args.pcm16 else "FLOAT",
        skip_existing=args.skip_existing,
    )

    def on_result(r: SeparationResult) -> None:
        events.emit(
            "result",
            input=str(r.input),
            vocals=str(r.vocals),
            accompaniment=str(r.accompaniment),
            skipped=r.skipped,
        )
        print(f"{r.input} -> {r.vocals}, {r.accompaniment}" + (" (skipped)" if r.skipped else ""))

    try:
        report = separate_inputs(
            args.inputs, args.out, options, events.progress, on_result=on_result, isolate=not args.in_process
        )
    except (
        ModelNotFoundError,
        ModelLoadError,
        UnsafeModelError,
        OutputConflictError,
        FileNotFoundError,
        ValueError,
    ) as e:
        events.emit("error", message=str(e))
        print(f"error: {e}", file=sys.stderr)
        return 2
    except JobCancelled:
        events.emit("cancelled")
        print("cancelled", file=sys.stderr)
        return EXIT_STOPPED
    except Exception as e:  # OSError on the output folder: exit 2 in words; a defect: 3, traceback logged
        return stage_failure(e, events, "separation")
    events.emit("done", **report.to_dict())
    for failure in report.failures:
        print(f"failed: {failure.path}: {failure.error}", file=sys.stderr)
    code = batch_exit_code(report)
    print(describe_end(code).sentence(), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
