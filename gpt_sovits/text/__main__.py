"""Print the phones and phone ids of a text: ``python -m gpt_sovits.text "文本" --lang zh`` (or ja, ko, ...)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from gpt_sovits.text.errors import TextFrontendError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gpt_sovits.text",
        description="Show how the GPT-SoVITS text frontend reads a text (phones, ids, word2ph).",
    )
    parser.add_argument("text", help="the text to convert")
    parser.add_argument(
        "--lang",
        default="zh",
        help="language mode: zh (Chinese + English), all_zh, en, ja, all_ja, ko, all_ko, yue, all_yue, auto, "
        "auto_yue (default zh)",
    )
    parser.add_argument("--version", default="v2", help="symbol table: v1 or v2 (default v2)")
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "pretrained_models",
        help="pretrained-models folder: Chinese v2 pinyin uses its G2PWModel/ when complete (default: %(default)s)",
    )
    parser.add_argument("--no-g2pw", action="store_true", help="read Chinese pinyin with pypinyin only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")

    from gpt_sovits.text.chinese import pinyin_backend
    from gpt_sovits.text.g2pw import load_g2pw
    from gpt_sovits.text.lang_segment import clean_mixed_text
    from gpt_sovits.text.symbols import cleaned_text_to_sequence

    g2pw = None if args.no_g2pw or args.version == "v1" else load_g2pw(args.model_dir)
    try:
        segments = clean_mixed_text(args.text, args.lang, args.version, g2pw=g2pw)
    except TextFrontendError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if any(s.language == "zh" for s in segments):
        print(f"pinyin: {pinyin_backend(g2pw)}")
    for s in segments:
        print(f"[{s.language}] norm_text: {s.norm_text}")
        print(f"  phones:  {' '.join(s.phones)}")
        print(f"  ids:     {' '.join(map(str, cleaned_text_to_sequence(s.phones, args.version)))}")
        if s.word2ph is not None:
            print(f"  word2ph: {s.word2ph}")
    if not segments:
        print("(no phones: the text has nothing to read)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
