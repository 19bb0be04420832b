"""The synthesis CLI: speak a text in the voice of a reference clip, with every candidate's scores printed.

    python -m gpt_sovits.infer --gpt G.ckpt --sovits S.pth --ref-audio ref.wav --text ... --out out.wav
    python -m gpt_sovits.infer --voice NAME --text ... --out out.wav     # a voice saved in the web UI

A saved voice (``<workspace>/voices/NAME/``, see gpt_sovits.infer.voices) gives the reference clip(s),
its text and language, the weights and the synthesis settings; any flag given explicitly wins over it.

The SoVITS weights' version (v1, v2, v2Pro, v2ProPlus, v3, v4; detected from the file as the reference does)
is printed before synthesis and with the result. v3/v4 weights also need their vocoder in ``--model-dir`` and
write 24 kHz (v3) / 48 kHz (v4) audio. v2Pro/v2ProPlus weights also need the speaker-verification
model ``sv/pretrained_eres2netv2w24s4ep4.ckpt`` in ``--model-dir``; any GPT of the SoVITS model's phone set
goes with them (s1v3.ckpt is the reference's pairing).

The synthesis flags come from the one parameter schema (gpt_sovits.infer.request.SYNTHESIS_PARAMS), as do
the web app's. Like the web UI, this entry point composes the synthesiser with the CLVP reranker
(``--clvp``), so it sits in the top layer beside webui.py: the library itself never imports clvp.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import UserError
from core.jobs import EXIT_OK, EXIT_USER_ERROR
from gpt_sovits.infer.request import add_flags, add_max_text_flag, add_precision_flag

if TYPE_CHECKING:
    from gpt_sovits.infer.result import SynthesisResult

PROG = "python -m gpt_sovits.infer"
DEFAULT_WORKSPACE = Path(__file__).resolve().parents[2] / "workspace"  # the web UI's default


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Speak a text in the voice of a 3-10 s reference clip (GPT-SoVITS v1, v2, v2Pro, v2ProPlus, v3 or v4 "
            "weights; the SoVITS version is detected from the file and printed)."
        ),
    )
    p.add_argument(
        "--voice", default=None, help="a saved voice's name (the web UI's 'Save as voice'); flags given win"
    )
    p.add_argument(
        "--workspace",
        default=str(DEFAULT_WORKSPACE),
        help="the web UI's workspace, where saved voices live (default: %(default)s)",
    )
    p.add_argument("--gpt", default=None, help="GPT (S1) weights .ckpt (required without --voice)")
    p.add_argument(
        "--sovits",
        default=None,
        help="SoVITS (S2) weights .pth (v2Pro/v2ProPlus also need sv/pretrained_eres2netv2w24s4ep4.ckpt in --model-dir)",
    )
    p.add_argument("--ref-audio", default=None, help="reference clip, 3-10 s (required without --voice)")
    p.add_argument("--aux-ref", action="append", default=[], help="extra clip whose timbre is averaged in")
    p.add_argument("--trim-reference", action="store_true", help="trim a reference longer than 10 s first")
    text = p.add_mutually_exclusive_group(required=True)
    text.add_argument("--text", help="text to speak")
    text.add_argument("--text-file", help="UTF-8 file with the text to speak (long texts)")
    p.add_argument("--out", required=True, help="output .wav (16-bit; 32 kHz, v3 24 kHz, v4 48 kHz)")
    p.add_argument("--clvp", default=None, help="CLVP checkpoint to rerank the candidates")
    add_flags(p)
    add_max_text_flag(p)
    p.add_argument("--model-dir", default=None, help="folder with chinese-hubert-base/, sv/ etc.")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    add_precision_flag(p)
    return p


def explicit_flags(parser: argparse.ArgumentParser, argv: list[str] | None) -> set[str]:
    """The destinations of the flags given on the command line (a default is not "given")."""
    saved = [(a, a.default) for a in parser._actions]
    try:
        for action, _default in saved:
            action.default = argparse.SUPPRESS
        return set(vars(parser.parse_args(argv)))
    finally:
        for action, default in saved:
            action.default = default


def apply_voice(args: argparse.Namespace, explicit: set[str]) -> None:
    """Fill ``args`` from the saved voice ``args.voice`` where no flag was given (raises VoiceError)."""
    from gpt_sovits.infer.voices import load_voice

    voice = load_voice(args.workspace, args.voice)
    filled = voice.values() | {"aux_ref": [str(p) for p in voice.aux_refs]}
    for dest, value in filled.items():
        if dest in vars(args) and dest not in explicit and value not in (None, ""):
            setattr(args, dest, value)


def check_required(args: argparse.Namespace) -> str | None:
    """What is still missing once the voice (if any) filled its part, or None."""
    missing = [flag for flag, dest in (("--gpt", "gpt"), ("--sovits", "sovits"), ("--ref-audio", "ref_audio"))
               if not getattr(args, dest)]  # fmt: skip
    if not missing:
        return None
    where = f"the voice {args.voice!r} has none; " if args.voice else ""
    return f"{where}give {', '.join(missing)} (or --voice NAME of a voice saved in the web UI)"


def _print_scores(result: SynthesisResult) -> None:
    for i, s in enumerate(result.sentences):
        print(f"[{i + 1}/{len(result.sentences)}] {s.text}")
        for j, c in enumerate(s.candidates):
            mark = "*" if j == s.chosen else " "
            scores = " ".join(f"{k}={v:.3f}" for k, v in c.scores.items())
            print(f"  {mark} candidate {j + 1}: {len(c.tokens)} tokens, {scores}, total={c.total:.3f}")


def _reference(args: argparse.Namespace, tmp: Path) -> str | Path:
    """The reference clip, trimmed into a copy under ``tmp`` when asked and too long."""
    from gpt_sovits.infer.reference import REF_MAX_S, read_reference, trim_reference

    ref: str | Path = args.ref_audio
    if args.trim_reference:
        samples, sr = read_reference(ref)
        if samples.size / sr > REF_MAX_S:
            ref = trim_reference(ref, tmp / "reference.wav")
            print(f"reference trimmed to {read_reference(ref)[0].size / sr:.1f} s")
    return ref


def sovits_version(path: str | Path) -> str:
    """The SoVITS file's version as detected from the file (header, known hashes, shapes), or why not."""
    from gpt_sovits.infer.sovits import sovits_version as detect

    try:
        return detect(path)
    except (UserError, OSError, ValueError) as e:
        return f"unknown ({e})"


def _synthesize(args: argparse.Namespace, text: str, ref: str | Path) -> tuple[SynthesisResult, str]:
    """The synthesis result and the SoVITS model's version (as loaded)."""
    import clvp
    from gpt_sovits.infer.request import SynthesisRequest, knob_values
    from gpt_sovits.infer.synthesizer import Synthesizer
    from gpt_sovits.pretrained import DEFAULT_MODEL_DIR

    request = SynthesisRequest(
        text=text, ref_audio=ref, aux_refs=list(args.aux_ref), clvp_path=args.clvp, **knob_values(args)
    )
    model_dir = args.model_dir or DEFAULT_MODEL_DIR
    print(f"SoVITS {Path(args.sovits).name}: version {sovits_version(args.sovits)}", file=sys.stderr)
    synth = Synthesizer(
        args.gpt,
        args.sovits,
        model_dir,
        device=args.device,
        reranker_loader=clvp.load_scorer,
        max_text=args.max_text,
        precision=args.precision,
    )
    result = synth.synthesize(
        request, progress=lambda done, total, msg: print(f"{done}/{total} {msg}", file=sys.stderr)
    )
    return result, synth.model_version()


def main(argv: list[str] | None = None) -> int:
    from core.audio import save_wav

    parser = make_parser()
    args = parser.parse_args(argv)
    if args.voice:
        try:
            apply_voice(args, explicit_flags(parser, argv))
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_USER_ERROR
    missing = check_required(args)
    if missing:
        parser.error(missing)
    try:
        text = args.text if args.text is not None else Path(args.text_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        print(f"error: cannot read --text-file: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    with tempfile.TemporaryDirectory(prefix="tts-ref-") as tmp:
        try:
            result, version = _synthesize(args, text, _reference(args, Path(tmp)))
        except UserError as e:  # TTSInputError and the other errors a person can act on
            print(f"error: {e}", file=sys.stderr)
            return EXIT_USER_ERROR
    _print_scores(result)
    out = save_wav(args.out, result.audio, result.sample_rate)
    t = result.timings
    print(
        f"wrote {out} ({result.duration:.2f} s, seed {result.seed}, SoVITS {version}); "
        f"time {t.get('total', 0):.2f} s, RTF {t.get('total', 0) / max(result.duration, 1e-9):.3f}"
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
