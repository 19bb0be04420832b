"""Transcribe a folder of clips with faster-whisper into a GPT-SoVITS `.list` file.

    python -m tools.asr INPUT_DIR --out FILE.list [--model large-v3] [--language auto] ...

Each clip becomes one line `audio_path|speaker|lang|text` (absolute path, speaker = the input
folder's name, lang = zh/en/ja/ko/yue or the detected code). Beside `X.list` goes `X.asr.jsonl`,
one JSON object per written clip with the recognizer's confidence figures, so the label editor can
show doubtful clips first. Clips that give no text are reported and left out of the list.

Memory follows a window, not the file: a clip is read in blocks and a clip longer than
`WINDOW_SECONDS` is transcribed window by window (each cut at its quietest 100 ms near the window's
end, so words are rarely split), the texts joined; faster-whisper's features and VAD then cover
one window at a time.

The CLI transcribes in a worker process that is restarted after a native crash (the clip that
crashed it is reported as failed, the others go on). Exit codes: 0, 1 some clips failed, 4 every
clip failed, 2 a person's mistake.

An existing `X.list` (the user may have edited it) is copied into `.history/` beside it before it
is replaced; nothing is written when no clip gave text.

Models: a size name (tiny … large-v3, large-v3-turbo, .en variants) or a CTranslate2 folder. A size
is looked up in `<model-dir>/faster-whisper-<size>`, then the Hugging Face cache, and downloaded
only with `--download`; otherwise `ModelNotFoundError` says where to put it and how to fetch it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.audio import list_audio_files, open_audio
from core.errors import UserError
from core.fsutil import atomic_write_text, backup_copy
from core.jobs import (
    EXIT_ALL_FAILED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EventWriter,
    FileFailure,
    JobCancelled,
    ProgressFn,
    StopFn,
    WorkerProcess,
    log_progress,
    never_stop,
    serve_worker,
    stage_failure,
)
from core.model_route import download_route, hub_url
from tools.labels import prune_history

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO_ROOT / "pretrained_models"
DEFAULT_MODEL = "large-v3"
SAMPLE_RATE = 16000  # Whisper's input rate

# Size name -> Hugging Face repository of its CTranslate2 conversion.
MODEL_REPOS: dict[str, str] = {
    "tiny": "Systran/faster-whisper-tiny",
    "tiny.en": "Systran/faster-whisper-tiny.en",
    "base": "Systran/faster-whisper-base",
    "base.en": "Systran/faster-whisper-base.en",
    "small": "Systran/faster-whisper-small",
    "small.en": "Systran/faster-whisper-small.en",
    "medium": "Systran/faster-whisper-medium",
    "medium.en": "Systran/faster-whisper-medium.en",
    "large-v1": "Systran/faster-whisper-large-v1",
    "large-v2": "Systran/faster-whisper-large-v2",
    "large-v3": "Systran/faster-whisper-large-v3",
    "large-v3-turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
    "distil-large-v3": "Systran/faster-distil-whisper-large-v3",
}
MODEL_FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.*")

LANGUAGES = ("auto", "zh", "en", "ja", "ko", "yue")
SUPPORTED_LANGUAGES = ("zh", "en", "ja", "ko", "yue")  # what GPT-SoVITS v2 trains on
_UNSPACED_LANGUAGES = ("zh", "ja", "yue")  # joined without spaces; everything else with one
DEVICES = ("auto", "cuda", "cpu")
COMPUTE_TYPES = ("auto", "int8", "float16", "float32")


class ModelNotFoundError(UserError, RuntimeError):
    """The Whisper model is not in the model folder nor the Hugging Face cache, and downloading is off."""


class ModelLoadError(UserError, RuntimeError):
    """The model files are there but CTranslate2 could not load them (corrupt files, no CUDA, …)."""


class AsrInputError(UserError, ValueError):
    """The input folder is missing or holds no audio."""


@dataclass
class AsrOptions:
    model: str = DEFAULT_MODEL  # a size name or a CTranslate2 folder
    model_dir: Path = DEFAULT_MODEL_DIR
    device: str = "auto"
    compute_type: str = "auto"
    language: str = "auto"
    beam_size: int = 5
    vad_filter: bool = True
    min_silence_ms: int = 700
    batch_size: int = 0  # 0/1: sequential decoding; N > 1: BatchedInferencePipeline
    download: bool = False
    speaker: str = ""  # the list's speaker column ("": the input folder's name)

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {self.language!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {self.device!r}")
        if self.compute_type not in COMPUTE_TYPES:
            raise ValueError(
                f"compute type must be one of {', '.join(COMPUTE_TYPES)}, not {self.compute_type!r}"
            )
        if self.beam_size < 1:
            raise ValueError("beam size must be at least 1")
        if self.batch_size < 0:
            raise ValueError("batch size must be 0 (sequential) or more")
        self.model_dir = Path(self.model_dir)


@dataclass
class ClipTranscript:
    """One clip's text and the recognizer's figures (what the `.asr.jsonl` sidecar holds)."""

    path: str
    text: str
    language: str  # lower-case code written in the list (zh, en, ja, ko, yue, or e.g. de)
    language_probability: float
    avg_logprob: float  # duration-weighted mean over segments
    no_speech_prob: float  # max over segments
    compression_ratio: float  # of the joined text, as Whisper computes it
    duration: float  # seconds of audio

    def sidecar(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("text")
        return d


@dataclass
class AsrResult:
    list_path: str | None  # None when no clip gave text (nothing written)
    sidecar_path: str | None
    entries: list[ClipTranscript] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)  # clips that gave no text
    failures: list[FileFailure] = field(default_factory=list)
    unsupported: dict[str, list[str]] = field(default_factory=dict)  # language -> clips
    backup: str | None = None  # where the previous list was copied
    cancelled: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "list_path": self.list_path,
            "sidecar_path": self.sidecar_path,
            "written": len(self.entries),
            "entries": [asdict(e) for e in self.entries],
            "empty": list(self.empty),
            "failures": [{"path": f.path, "error": f.error} for f in self.failures],
            "unsupported": {k: list(v) for k, v in self.unsupported.items()},
            "backup": self.backup,
            "cancelled": self.cancelled,
        }


# ---------------------------------------------------------------- model resolution


def _is_ct2_folder(path: Path) -> bool:
    # tokenizer.json is required too: without it faster-whisper would fetch one from the Hub.
    return all((path / name).is_file() for name in ("model.bin", "config.json", "tokenizer.json"))


def _looks_like_path(model: str) -> bool:
    return "/" in model or "\\" in model or model.startswith(".") or Path(model).is_dir()


def local_model_folder(model: str, model_dir: str | Path = DEFAULT_MODEL_DIR) -> Path | None:
    """The CTranslate2 folder for `model` (a folder, or `<model_dir>/faster-whisper-<size>`), if present."""
    if _looks_like_path(model):
        folder = Path(model).expanduser()
        return folder if _is_ct2_folder(folder) else None
    folder = Path(model_dir) / f"faster-whisper-{model}"
    return folder if _is_ct2_folder(folder) else None


def _missing_message(model: str, model_dir: str | Path) -> str:
    if _looks_like_path(model):
        files = ", ".join(MODEL_FILES)
        return f"no faster-whisper model in {model}: the folder must hold {files} (a CTranslate2 Whisper)"
    folder = Path(model_dir) / f"faster-whisper-{model}"
    source = hub_url(MODEL_REPOS.get(model, f"Systran/faster-whisper-{model}"))
    # The registry row of a size is faster-whisper-<size> (gpt_sovits.pretrained).
    route = download_route(f"faster-whisper-{model}", MODEL_FILES, folder, source, model_dir)
    return f"faster-whisper model '{model}' not found in {folder}. {route}"


def _in_hf_cache(model: str) -> bool:
    """True when the Hugging Face cache already holds `model` (never touches the network)."""
    repo = MODEL_REPOS.get(model)
    if repo is None:
        return False
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(
            repo, local_files_only=True, allow_patterns=["model.bin", "config.json", "tokenizer.json"]
        )
    except Exception:  # noqa: BLE001 - any failure means "not usable from the cache"
        return False
    return _is_ct2_folder(Path(path))


@dataclass(frozen=True)
class ModelStatus:
    found: bool
    where: str  # folder, "huggingface cache", or "" when missing
    message: str


def model_status(model: str, model_dir: str | Path = DEFAULT_MODEL_DIR) -> ModelStatus:
    """Where `model` would load from, without loading it (for the UI's status line)."""
    folder = local_model_folder(model, model_dir)
    if folder is not None:
        return ModelStatus(True, str(folder), f"found in {folder}")
    if not _looks_like_path(model) and _in_hf_cache(model):
        return ModelStatus(True, "huggingface cache", "found in the Hugging Face cache")
    return ModelStatus(False, "", _missing_message(model, model_dir))


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_compute_type(compute_type: str, device: str) -> str:
    if compute_type != "auto":
        return compute_type
    return "float16" if device == "cuda" else "int8"


def load_whisper(
    model: str = DEFAULT_MODEL,
    device: str = "auto",
    compute_type: str = "auto",
    model_dir: str | Path = DEFAULT_MODEL_DIR,
    download: bool = False,
):
    """Load a `faster_whisper.WhisperModel`: local folder, then HF cache, then (if allowed) download."""
    from faster_whisper import WhisperModel

    device = resolve_device(device)
    compute_type = resolve_compute_type(compute_type, device)
    folder = local_model_folder(model, model_dir)
    if folder is not None:
        try:
            return WhisperModel(str(folder), device=device, compute_type=compute_type)
        except Exception as e:  # noqa: BLE001 - CTranslate2 raises RuntimeError/ValueError with terse text
            raise ModelLoadError(
                f"could not load the faster-whisper model in {folder} on {device}: {e}"
            ) from e
    if _looks_like_path(model):
        raise ModelNotFoundError(_missing_message(model, model_dir))
    if model not in MODEL_REPOS:
        raise ModelNotFoundError(
            f"unknown faster-whisper model '{model}': use one of {', '.join(MODEL_REPOS)} or a model folder"
        )
    try:
        return WhisperModel(model, device=device, compute_type=compute_type, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - huggingface_hub raises several types for "not cached"
        if not download:
            raise ModelNotFoundError(_missing_message(model, model_dir)) from e
    logger.info("downloading %s from the Hugging Face Hub", MODEL_REPOS[model])
    try:
        return WhisperModel(model, device=device, compute_type=compute_type)
    except Exception as e:  # noqa: BLE001
        raise ModelNotFoundError(
            f"could not download '{model}': {e}. {_missing_message(model, model_dir)}"
        ) from e


# ---------------------------------------------------------------- transcription


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def join_segments(texts: list[str], language: str) -> str:
    """Strip and join segment texts; no separator for zh/ja/yue. '|' and newlines would break the list."""
    parts = [t.strip() for t in texts if t.strip()]
    text = ("" if language in _UNSPACED_LANGUAGES else " ").join(parts)
    for bad in ("|", "\r", "\n"):
        text = text.replace(bad, " ")
    return " ".join(text.split()) if language not in _UNSPACED_LANGUAGES else text.strip()


WINDOW_SECONDS = 300.0  # longest audio handed to faster-whisper at once (memory: features of 5 min)
CUT_SEARCH_SECONDS = 10.0  # a window ends at the quietest 100 ms of its last 10 s


def quiet_cut(audio: np.ndarray, sr: int, search_s: float = CUT_SEARCH_SECONDS) -> int:
    """Index to end a window of `audio` at: the start of the quietest 100 ms frame in its last `search_s`."""
    frame = max(1, sr // 10)
    lo = max(0, audio.shape[0] - int(search_s * sr))
    n = (audio.shape[0] - lo) // frame
    if n < 2:
        return audio.shape[0]
    energy = np.square(audio[lo : lo + n * frame].reshape(n, frame)).mean(axis=1)
    return lo + int(np.argmin(energy[1:]) + 1) * frame  # never the very first frame: no empty window


def audio_windows(
    path: Path, sample_rate: int = SAMPLE_RATE, window_s: float = WINDOW_SECONDS
) -> Iterator[np.ndarray]:
    """Mono float32 pieces of at most `window_s` (cut at quiet places), read in blocks."""
    limit = int(window_s * sample_rate)
    pending: list[np.ndarray] = []  # blocks not yet handed out (joined only once a window is full)
    size = 0
    for block in open_audio(path, sample_rate).blocks():
        pending.append(block)
        size += block.shape[0]
        if size <= limit:
            continue
        buf = np.concatenate(pending)
        while buf.shape[0] > limit:
            cut = quiet_cut(buf[:limit], sample_rate)
            yield buf[:cut]
            buf = buf[cut:]
        pending, size = [buf], buf.shape[0]
    if size:
        yield np.concatenate(pending)


def _transcribe(model, audio: np.ndarray, options: AsrOptions, language: str | None, pipeline=None):
    vad = {"min_silence_duration_ms": options.min_silence_ms}
    if pipeline is not None:
        segments, info = pipeline.transcribe(
            audio,
            language=language,
            beam_size=options.beam_size,
            vad_filter=options.vad_filter,
            vad_parameters=vad,
            batch_size=options.batch_size,
        )
    else:
        segments, info = model.transcribe(
            audio,
            language=language,
            beam_size=options.beam_size,
            vad_filter=options.vad_filter,
            vad_parameters=vad,
        )
    return list(segments), info  # the generator does the decoding


def transcribe_clip(
    model, audio_path: Path, options: AsrOptions, pipeline=None, window_s: float = WINDOW_SECONDS
) -> ClipTranscript:
    """Transcribe one clip; `pipeline` is a BatchedInferencePipeline when batching.

    A clip longer than `window_s` goes window by window; the language found in the first window
    is used for the others (the same speaker, the same language), so one clip gives one language.
    """
    language = None if options.language == "auto" else options.language
    segments: list = []
    duration, lang, lang_prob = 0.0, "", 0.0
    for k, audio in enumerate(audio_windows(audio_path, SAMPLE_RATE, window_s)):
        found, info = _transcribe(model, audio, options, language, pipeline)
        if k == 0:
            lang = (info.language or language or "").lower()
            lang_prob = float(info.language_probability)
            language = language or info.language
        segments += found
        duration += float(info.duration)
    text = join_segments([s.text for s in segments], lang)
    durations = [max(s.end - s.start, 0.0) for s in segments]
    total = sum(durations)
    if segments and total > 0:
        avg_logprob = sum(s.avg_logprob * d for s, d in zip(segments, durations, strict=True)) / total
    elif segments:
        avg_logprob = sum(s.avg_logprob for s in segments) / len(segments)
    else:
        avg_logprob = 0.0
    return ClipTranscript(
        path=str(audio_path.resolve()),
        text=text,
        language=lang,
        language_probability=lang_prob,
        avg_logprob=float(avg_logprob),
        no_speech_prob=float(max((s.no_speech_prob for s in segments), default=0.0)),
        compression_ratio=float(compression_ratio(text)),
        duration=duration,
    )


def sidecar_path_for(list_path: str | Path) -> Path:
    """`X.list` -> `X.asr.jsonl`."""
    list_path = Path(list_path)
    return list_path.with_name(list_path.stem + ".asr.jsonl")


def write_outputs(out_list: Path, speaker: str, entries: list[ClipTranscript]) -> str | None:
    """Back up an existing list (and sidecar) into `.history/`, then write both atomically."""
    history = out_list.parent / ".history"
    # The list's versions are kept by the Label editor's policy (age and size, originals kept), not a count.
    backup = backup_copy(out_list, history, keep=sys.maxsize)
    if backup is not None:  # .history/ exists only once something was backed up
        prune_history(history, out_list.name)
    sidecar = sidecar_path_for(out_list)
    backup_copy(sidecar, history)
    lines = [f"{e.path}|{speaker}|{e.language}|{e.text}\n" for e in entries]
    atomic_write_text(out_list, "".join(lines))
    atomic_write_text(sidecar, "".join(json.dumps(e.sidecar(), ensure_ascii=False) + "\n" for e in entries))
    return str(backup) if backup else None


def _pipeline(model, options: AsrOptions):
    if options.batch_size <= 1:
        return None
    from faster_whisper import BatchedInferencePipeline

    return BatchedInferencePipeline(model)


def _worker_init(options: AsrOptions):
    model = load_whisper(
        options.model, options.device, options.compute_type, options.model_dir, options.download
    )
    return model, _pipeline(model, options), options


def _worker_handle(state, path: Path, progress: ProgressFn) -> ClipTranscript:
    model, pipeline, options = state
    return transcribe_clip(model, Path(path), options, pipeline)


def asr_worker(conn, options: AsrOptions) -> None:
    """The worker process of an isolated run: loads the model once, then transcribes clip after clip."""
    serve_worker(conn, _worker_init, _worker_handle, options)


def transcribe_folder(
    input_dir: str | Path,
    out_list: str | Path,
    options: AsrOptions | None = None,
    progress: ProgressFn = log_progress,
    should_stop: StopFn = never_stop,
    model=None,
    isolate: bool = False,
    worker: Callable | None = None,
) -> AsrResult:
    """Transcribe every audio file in `input_dir` (not recursive) into `out_list` and its sidecar.

    A file that fails is recorded and the rest go on. `model` may be a loaded WhisperModel (tests,
    repeated calls); otherwise it is loaded from `options`. On stop, what was done is written.
    With `isolate` (the CLI; needs `model=None`) the clips run in a `core.jobs.WorkerProcess`
    (`worker`, default `asr_worker`): a clip that crashes its process natively fails alone, the worker
    restarts (loading the model again) and the rest go on.
    """
    options = options or AsrOptions()
    input_dir = Path(input_dir)
    out_list = Path(out_list)
    if not input_dir.is_dir():
        raise AsrInputError(f"Not found: {input_dir.name or input_dir}")
    files = list_audio_files([input_dir])
    if not files:
        raise AsrInputError(f"No audio files in {input_dir.name or input_dir}")
    pool = None
    if isolate and model is None:
        progress(0, len(files), f"loading model {options.model}")
        pool = WorkerProcess(worker or asr_worker, options)
        model, pipeline = None, None
    else:
        if model is None:
            progress(0, len(files), f"loading model {options.model}")
            model = load_whisper(
                options.model, options.device, options.compute_type, options.model_dir, options.download
            )
        pipeline = _pipeline(model, options)

    speaker = options.speaker.strip() or input_dir.resolve().name
    if "|" in speaker or "\n" in speaker:
        raise AsrInputError(
            f"the speaker name {speaker!r} cannot hold '|' or a line break (the list's separators)"
        )
    result = AsrResult(list_path=None, sidecar_path=None)
    for i, path in enumerate(files):
        if should_stop():
            result.cancelled = True
            break
        try:
            if pool is not None:
                clip = pool.run(path, lambda d, t, m: None, should_stop)
            else:
                clip = transcribe_clip(model, path, options, pipeline)
        except JobCancelled:
            result.cancelled = True
            break
        except (ModelNotFoundError, ModelLoadError):
            raise  # from the worker's start: nothing was transcribed, the person must fix the model
        except Exception as e:  # noqa: BLE001 - one bad file (or a crash on it) must not stop the batch
            logger.warning("failed on %s: %s", path, e)
            result.failures.append(FileFailure.of(path, e))
            progress(i + 1, len(files), f"{path.name}: failed")
            continue
        if not clip.text:
            result.empty.append(clip.path)
            progress(i + 1, len(files), f"{path.name}: no text")
            continue
        result.entries.append(clip)
        if clip.language not in SUPPORTED_LANGUAGES:
            result.unsupported.setdefault(clip.language, []).append(clip.path)
        progress(i + 1, len(files), f"{path.name}: {clip.text[:60]}")

    if pool is not None:
        pool.finish()
    if result.entries:
        result.backup = write_outputs(out_list, speaker, result.entries)
        result.list_path = str(out_list)
        result.sidecar_path = str(sidecar_path_for(out_list))
    return result


# ---------------------------------------------------------------- CLI


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.asr", description=__doc__.split("\n")[0])
    p.add_argument(
        "input_dir", help="folder of clips (e.g. the slicer's output); its name becomes the speaker"
    )
    p.add_argument(
        "--out", required=True, help="the .list file to write (a previous one is backed up to .history/)"
    )
    p.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"size name ({', '.join(MODEL_REPOS)}) or a model folder"
    )
    p.add_argument(
        "--model-dir", default=str(DEFAULT_MODEL_DIR), help="folder holding faster-whisper-<size>/"
    )
    p.add_argument(
        "--download", action="store_true", help="download the model from the Hugging Face Hub if missing"
    )
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument(
        "--compute-type", choices=COMPUTE_TYPES, default="auto", help="auto: float16 on CUDA, int8 on CPU"
    )
    p.add_argument("--language", choices=LANGUAGES, default="auto")
    p.add_argument(
        "--speaker", default="", help="the list's speaker column (default: the input folder's name)"
    )
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument(
        "--batch-size", type=int, default=0, help="N > 1: batched decoding; 0 or 1: one segment at a time"
    )
    p.add_argument("--no-vad", action="store_true", help="do not drop silence with the Silero VAD")
    p.add_argument("--min-silence-ms", type=int, default=700, help="VAD: silence that splits speech (ms)")
    p.add_argument("--events", default=None, help="append JSON-lines progress events to this file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    events = EventWriter(args.events)
    try:
        options = AsrOptions(
            model=args.model,
            model_dir=Path(args.model_dir),
            device=args.device,
            compute_type=args.compute_type,
            language=args.language,
            beam_size=args.beam_size,
            vad_filter=not args.no_vad,
            min_silence_ms=args.min_silence_ms,
            batch_size=args.batch_size,
            download=args.download,
            speaker=args.speaker,
        )
        result = transcribe_folder(args.input_dir, args.out, options, progress=events.progress, isolate=True)
    except (ModelNotFoundError, ModelLoadError, AsrInputError, ValueError) as e:
        events.emit("error", message=str(e))
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # OSError writing the list: exit 2 in words; a defect: 3 (never Python's 1)
        return stage_failure(e, events, "transcription")
    events.emit("result", **result.to_dict())
    if result.list_path:
        print(f"wrote {len(result.entries)} lines to {result.list_path} (details: {result.sidecar_path})")
        if result.backup:
            print(f"previous list kept as {result.backup}")
    else:
        print("no clip gave text: nothing written")
    for path in result.empty:
        print(f"no text: {path}")
    for lang, paths in result.unsupported.items():
        print(f"language '{lang}' is not supported for training ({len(paths)} clips), e.g. {paths[0]}")
    for f in result.failures:
        print(f"failed: {f.path}: {f.error}")
    if result.cancelled:
        print("stopped before the end")
    if result.failures and not result.entries and not result.empty:
        return EXIT_ALL_FAILED  # every file failed: "Failed.", not "Done, some files failed."
    return EXIT_SOME_FAILED if result.failures else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
