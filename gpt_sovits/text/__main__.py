"""Print the phones and phone ids of a text: ``python -m gpt_sovits.text "文本" --lang zh``."""

from __future__ import annotations

import argparse
import sys

from gpt_sovits.text.errors import TextFrontendError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gpt_sovits.text",
        description="Show how the GPT-SoVITS text frontend reads a text (phones, ids, word2ph).",
    )
    parser.add_argument("text", help="the text to convert")
    parser.add_argument("--lang", default="zh", help="zh (Chinese + English), all_zh, en, auto (default zh)")
    parser.add_argument("--version", default="v2", help="symbol table: v1 or v2 (default v2)")
    args = parser.parse_args(argv)

    from gpt_sovits.text.chinese import pinyin_backend
    from gpt_sovits.text.lang_segment import clean_mixed_text
    from gpt_sovits.text.symbols import cleaned_text_to_sequence

    try:
        segments = clean_mixed_text(args.text, args.lang, args.version)
    except TextFrontendError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if any(s.language == "zh" for s in segments):
        print(f"pinyin: {pinyin_backend()}")
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
