"""Build a tiny Whisper in CTranslate2 format for tests: no download, a few seconds on CPU.

The model is made with transformers (`WhisperForConditionalGeneration`, d_model 64, 2 layers,
2 heads) and converted with `ctranslate2.converters.TransformersConverter`, so faster-whisper
loads it through its ordinary code path (`WhisperModel(folder)`).

Its weights are random except that the decoder is wired as a deterministic bigram model, so that
the output is known in advance whatever the audio:

* every decoder block's output projections (self-attention, cross-attention, feed-forward) are
  zero, and the position embeddings are zero, so the decoder state is `LN(embed[previous token])`;
* a few "source" tokens get a one-hot embedding on their own dimension, and the output projection
  row of the wanted next token reads that dimension with a large weight.

So after `<|startoftranscript|>` it predicts `<|en|>` (language detection says English, or the
`language` asked for), after
`<|transcribe|>` it emits `<|0.00|> hello world <|1.00|> <|endoftext|>`, which faster-whisper
decodes to the text " hello world". Silence is still empty: the VAD drops it before the model.

The vocabulary holds the real Whisper special tokens that faster-whisper's `Tokenizer` looks up
by string: `<|endoftext|>`, `<|startoftranscript|>`, one `<|xx|>` per language code,
`<|translate|>`, `<|transcribe|>`, `<|startoflm|>`, `<|startofprev|>`, `<|nocaptions|>`,
`<|notimestamps|>`, then the timestamps `<|0.00|>`, `<|0.02|>` … (which must follow
`<|notimestamps|>` directly: faster-whisper computes `timestamp_begin = no_timestamps + 1`).
"""

from __future__ import annotations

import json
from pathlib import Path

EXPECTED_TEXT = "hello world"

_TRAINING_TEXT = [
    "hello world",
    " hello world",
    "hello world, hello world. the quick brown fox jumps over the lazy dog.",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z 0 1 2 3 4 5 6 7 8 9 ' - . , ! ?",
] * 20

_SPECIALS_BEFORE_LANGS = ["<|endoftext|>", "<|startoftranscript|>"]
_SPECIALS_AFTER_LANGS = [
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|notimestamps|>",
]
_N_TIMESTAMPS = 1501  # <|0.00|> … <|30.00|>: the converter appends them after <|notimestamps|>


def _build_tokenizer():
    """Byte-level BPE trained on a few sentences, plus Whisper's special tokens after the text tokens."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(_TRAINING_TEXT, trainer=trainer)
    specials = _SPECIALS_BEFORE_LANGS + [f"<|{code}|>" for code in _LANGUAGE_CODES] + _SPECIALS_AFTER_LANGS
    n_text = tok.get_vocab_size()
    tok.add_special_tokens(specials)
    # Special ids must be contiguous after the text ids (eot = first special).
    assert tok.token_to_id("<|endoftext|>") == n_text
    return tok, list(_LANGUAGE_CODES)


def _wire_bigram(model, chain: list[tuple[int, int]], gain: float = 3.0) -> None:
    """Make the decoder predict `next` after `prev` for each (prev, next) pair, whatever the audio."""
    import torch

    dec = model.model.decoder
    d = model.config.d_model
    assert len(chain) <= d, "one embedding dimension per source token"
    with torch.no_grad():
        for layer in dec.layers:
            for lin in (layer.self_attn.out_proj, layer.encoder_attn.out_proj, layer.fc2):
                lin.weight.zero_()
                if lin.bias is not None:
                    lin.bias.zero_()
        dec.embed_positions.weight.zero_()
        dec.layer_norm.weight.fill_(1.0)
        dec.layer_norm.bias.zero_()
        proj = model.proj_out.weight  # [vocab, d]
        proj.zero_()
        emb = dec.embed_tokens.weight  # [vocab, d]
        for dim, (prev, nxt) in enumerate(chain):
            emb[prev] = 0.0
            emb[prev, dim] = 1.0
            proj[nxt, dim] = gain


def build_tiny_whisper(
    out_dir: str | Path, quantization: str | None = None, language: str = "en", seed: int = 0
) -> Path:
    """Write a tiny CTranslate2 Whisper (model.bin, config.json, vocabulary.json, tokenizer.json).

    `language` is what its language detection answers (any Whisper code, e.g. "de").
    """
    import tempfile

    import ctranslate2
    import torch
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

    out_dir = Path(out_dir)
    tok, langs = _build_tokenizer()
    ts_begin = tok.get_vocab_size()  # first timestamp id, added by the converter
    vocab_size = ts_begin + _N_TIMESTAMPS

    def tid(token: str) -> int:
        if token.startswith("<|") and token[2].isdigit():  # <|s.ss|> timestamps
            return ts_begin + round(float(token[2:-2]) / 0.02)
        return tok.token_to_id(token)

    eot, sot = tid("<|endoftext|>"), tid("<|startoftranscript|>")
    config = WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=80,
        d_model=64,
        encoder_layers=2,
        encoder_attention_heads=2,
        decoder_layers=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        max_source_positions=1500,
        max_target_positions=448,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
        suppress_tokens=[],
        begin_suppress_tokens=[eot],
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()

    text_ids = tok.encode(" " + EXPECTED_TEXT, add_special_tokens=False).ids
    assert len(set(text_ids)) == len(text_ids), "the wired text must not repeat a token"
    seq = [tid("<|0.00|>"), *text_ids, tid("<|1.00|>"), eot]
    chain = [
        (sot, tid(f"<|{language}|>")),
        (tid("<|transcribe|>"), seq[0]),
        (tid("<|notimestamps|>"), text_ids[0]),
    ]
    chain += list(zip(seq[:-1], seq[1:], strict=True))
    _wire_bigram(model, chain)

    with tempfile.TemporaryDirectory(prefix="tiny-whisper-hf-") as hf:
        hf_dir = Path(hf)
        model.generation_config = GenerationConfig(
            decoder_start_token_id=sot,
            eos_token_id=eot,
            pad_token_id=eot,
            suppress_tokens=[],
            begin_suppress_tokens=[eot],
            alignment_heads=[[1, 0], [1, 1]],
            lang_to_id={f"<|{c}|>": tid(f"<|{c}|>") for c in langs},
        )
        model.save_pretrained(hf_dir)
        tok.save(str(hf_dir / "tokenizer.json"))
        (hf_dir / "tokenizer_config.json").write_text(
            json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>"}),
            encoding="utf-8",
        )
        converter = ctranslate2.converters.TransformersConverter(str(hf_dir), copy_files=["tokenizer.json"])
        converter.convert(str(out_dir), quantization=quantization, force=True)
    _mark_multilingual(out_dir / "vocabulary.json")
    return out_dir


def _mark_multilingual(vocabulary_json: Path) -> None:
    """Rename one unused byte token of the CT2 vocabulary to "".

    CTranslate2 4.8 treats a Whisper model as multilingual (language detection allowed) only when
    its vocabulary holds the empty-string token, as OpenAI's multilingual vocabulary does. The CT2
    vocabulary only maps ids to strings inside CTranslate2; faster-whisper decodes text with
    tokenizer.json, so renaming a byte token the wired model never emits changes nothing else.
    """
    vocab = json.loads(vocabulary_json.read_text(encoding="utf-8"))
    vocab[vocab.index("Ā")] = ""  # byte 0x00 in byte-level BPE
    vocabulary_json.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    import sys
    import time

    t0 = time.perf_counter()
    print(
        build_tiny_whisper(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tiny-whisper"),
        time.perf_counter() - t0,
    )
