"""Side by side with the reference implementation: same random full-size v2 weights, same inputs, alternating.

    .venv/bin/python -m bench.vs_reference --reference /path/to/GPT-SoVITS [--threads 2] [--repeats 3]

``--reference`` is a checkout of RVC-Boss/GPT-SoVITS made by whoever runs this; nothing of it enters this
repository. Its own classes build the random full-size models (``Text2SemanticDecoder`` from
``s1longer-v2`` sizes, ``SynthesizerTrn`` from ``s2.json``); the S1 weights are written to a GPT ``.ckpt`` in
the official format and loaded back by both sides (ours through ``gpt_sovits.load_gpt`` with its default
precision, the fast path on CPU); the S2 state dict is copied into ours (strict) and loaded through
``apply_precision`` the same way. Reference and project then run in turn, ``--repeats`` times each, and the
best time of each side is reported with the ratio reference / project (> 1: the project is faster):

- S1 step, batch 1: the reference's ``infer_panel_naive`` vs ``Text2Semantic.generate``;
- S1 step, batch 8: ``infer_panel_batch_infer`` (8 copies of the sentence) vs 8 candidates;
  per-step time = (time for ``--tokens`` tokens - time for 10 tokens) / (``--tokens`` - 10), EOS never
  sampled (its output row is zeroed, so its logit 0 never reaches the top-k of random logits);
- S2 decode of ``--s2-seconds`` s (``decode`` on both sides, noise scale 0.5, same seed), one token longer
  at each call (the same lengths on both sides): sentences differ in length, and a cost paid once per
  input length (oneDNN creating its convolutions) belongs in the figure;
- model stages end to end for a 10 s sentence (250 tokens): S1 prompt pass + 250 steps at batch 1, then
  the S2 decode of those 10 s. The reference's text frontend (G2P, BERT) needs packages and model files this
  script does not assume, so the text-to-phone and BERT stages are left out on both sides.

Optional packages that the reference imports at module level but that these classes never use at
inference (torchmetrics, x_transformers, ...) are replaced by empty stand-in modules when missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

STUBBED = (
    "torchmetrics",
    "torchmetrics.classification",
    "x_transformers",
    "x_transformers.x_transformers",
    "tqdm",
)


class _Anything:
    """Stand-in for any name of a missing optional package: constructible, callable, does nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Takes any arguments and keeps none: the reference only constructs these, it never reads them."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return args[0] if args else None

    def __getattr__(self, name: str) -> Any:
        return _Anything()


def _stub_missing(names: tuple[str, ...]) -> list[str]:
    """Put an empty module under each name in ``names`` that does not import; return those names."""
    import importlib

    stubbed = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            mod = types.ModuleType(name)
            mod.__path__ = []  # a package, so that submodules can be stubbed under it

            def stand_in(attr: str) -> type:
                if attr.startswith("__"):
                    raise AttributeError(attr)
                return _Anything

            mod.__getattr__ = stand_in  # type: ignore[method-assign]
            sys.modules[name] = mod
            stubbed.append(name)
    return stubbed


def _import_reference(root: Path) -> tuple[Any, Any, list[str]]:
    """The reference's Text2SemanticDecoder and SynthesizerTrn classes, importing from ``root``."""
    pkg = root / "GPT_SoVITS"
    if not (pkg / "AR" / "models" / "t2s_model.py").is_file():
        raise SystemExit(f"{root} is not a GPT-SoVITS checkout (no GPT_SoVITS/AR/models/t2s_model.py)")
    sys.path[:0] = [str(pkg), str(root)]
    stubbed = _stub_missing(STUBBED)
    from AR.models.t2s_model import Text2SemanticDecoder

    try:
        from module.models import SynthesizerTrn
    except ImportError as e:  # its v3/v4 imports need more packages: stub the one named, retry
        missing: list[str] = []
        while True:
            name = getattr(e, "name", None)
            if not name or name in missing or len(missing) > 10:
                raise
            missing.append(name)
            stubbed += _stub_missing((name,))
            try:
                from module.models import SynthesizerTrn

                break
            except ImportError as again:
                e = again
    return Text2SemanticDecoder, SynthesizerTrn, stubbed


def _best(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", required=True, type=Path, help="checkout of RVC-Boss/GPT-SoVITS")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--prompt", type=int, default=150, help="prompt semantic tokens")
    p.add_argument("--phones", type=int, default=60)
    p.add_argument("--tokens", type=int, default=110, help="new tokens per timed S1 decode")
    p.add_argument("--s2-seconds", type=float, default=10.0)
    p.add_argument("--skip", nargs="*", default=[], choices=["s1", "s1b8", "s2", "e2e"])
    args = p.parse_args(argv)

    os.environ.setdefault("TQDM_DISABLE", "1")  # the reference's decode loops draw progress bars
    import torch

    torch.set_num_threads(args.threads)
    ref_t2s, ref_s2, stubbed = _import_reference(args.reference.resolve())

    from gpt_sovits.models.fastpath import apply_precision, fast_path_active
    from gpt_sovits.models.s2 import S2Config, SynthesizerTrn
    from gpt_sovits.models.sampling import SamplingParams
    from gpt_sovits.models.weights import load_gpt

    config = {  # s1longer-v2.yaml, the sections the model reads
        "model": {
            "vocab_size": 1025,
            "phoneme_vocab_size": 732,
            "embedding_dim": 512,
            "hidden_dim": 512,
            "head": 16,
            "linear_units": 2048,
            "n_layer": 24,
            "dropout": 0,
            "EOS": 1024,
            "random_bert": 0,
        },
        "data": {"max_eval_sample": 8, "max_sec": 54, "num_workers": 4, "pad_val": 1024},
        "inference": {"top_k": 15},
    }
    torch.manual_seed(0)
    ref_gpt = ref_t2s(config, top_k=3).eval()
    with torch.no_grad():
        ref_gpt.ar_predict_layer.weight[1024].zero_()  # EOS logit 0: never in the top-k of random logits
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "random-v2.ckpt"
        weight = {f"model.{k}": v.half() for k, v in ref_gpt.state_dict().items() if "accuracy" not in k}
        torch.save({"weight": weight, "config": config, "info": "random"}, ckpt)
        ref_gpt.load_state_dict({k[6:]: v.float() for k, v in weight.items()}, strict=False)
        gpt, _ = load_gpt(ckpt)  # the front door's default precision
    print(
        f"threads {torch.get_num_threads()}; reference at {args.reference} (stand-ins for {stubbed or 'nothing'});"
        f" project S1 fast path {'on' if fast_path_active(gpt) else 'off'}",
        flush=True,
    )

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 732, (args.phones,), generator=g)
    bert = torch.randn(1024, args.phones, generator=g)
    prompt = torch.randint(0, 1024, (args.prompt,), generator=g)

    def ref_s1(batch: int, n: int) -> None:
        with torch.no_grad():
            if batch == 1:  # a generator at this commit; it yields once when not streaming
                y, _ = next(ref_gpt.infer_panel_naive(
                    x[None], torch.tensor([args.phones]), prompt[None], bert[None],
                    top_k=15, top_p=1.0, temperature=1.0, early_stop_num=n - 1, repetition_penalty=1.35,
                ))  # fmt: skip
                assert y.shape[1] - args.prompt == n, "the reference stopped early"
            else:
                ref_gpt.infer_panel_batch_infer(
                    [x] * batch, torch.tensor([args.phones] * batch), prompt[None].repeat(batch, 1), [bert] * batch,
                    top_k=15, top_p=1.0, temperature=1.0, early_stop_num=n - 1, repetition_penalty=1.35,
                )  # fmt: skip

    def our_s1(batch: int, n: int) -> None:
        params = SamplingParams(top_k=15, repetition_penalty=1.35, max_new_tokens=n)
        res = gpt.generate([x], [bert], prompt, params, num_candidates=batch)
        assert all(c.tokens.numel() == n for c in res.candidates[0])

    def per_step(fn: Callable[[int, int], None], batch: int) -> float:
        return (_best(lambda: fn(batch, args.tokens)) - _best(lambda: fn(batch, 10))) / (args.tokens - 10)

    def side_by_side(name: str, ref: Callable[[], float], ours: Callable[[], float], unit: str) -> None:
        ref(), ours()  # warm-up
        r_times, o_times = [], []
        for _ in range(args.repeats):
            r_times.append(ref())
            o_times.append(ours())
        r, o = min(r_times), min(o_times)
        scale = 1000.0 if unit == "ms" else 1.0
        print(
            f"{name:<34} reference {r * scale:8.1f} {unit}   project {o * scale:8.1f} {unit}   {r / o:5.2f}x",
            flush=True,
        )

    if "s1" not in args.skip:
        side_by_side("S1 step, batch 1", lambda: per_step(ref_s1, 1), lambda: per_step(our_s1, 1), "ms")
    if "s1b8" not in args.skip:
        side_by_side("S1 step, batch 8", lambda: per_step(ref_s1, 8), lambda: per_step(our_s1, 8), "ms")

    hps = json.loads((args.reference / "GPT_SoVITS" / "configs" / "s2.json").read_text())
    torch.manual_seed(0)
    ref_sovits = ref_s2(
        hps["data"]["filter_length"] // 2 + 1,
        hps["train"]["segment_size"] // hps["data"]["hop_length"],
        n_speakers=hps["data"]["n_speakers"],
        **{**hps["model"], "version": "v2"},
    ).eval()
    with torch.no_grad():  # codebook entries as a trained model has (a fresh one is all zeros)
        ref_sovits.quantizer.vq.layers[0]._codebook.embed.normal_()
    ours_sovits = SynthesizerTrn(S2Config(), with_posterior=False)
    sd = {k: v for k, v in ref_sovits.state_dict().items() if not k.startswith("enc_q.")}
    missing, unexpected = ours_sovits.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise SystemExit(f"S2 state dicts differ: missing {missing[:5]}, unexpected {unexpected[:5]}")
    ours_sovits = apply_precision(ours_sovits.eval(), "auto", "cpu")
    sr, hop = 32000, 640
    n_tok = int(args.s2_seconds * 25)
    # Every sentence has its own length: the k-th decode of each side takes n_tok + k tokens (the same
    # lengths on both sides), so a cost paid once per new input length is in every figure, as in use.
    codes = torch.randint(0, 1024, (1, 1, n_tok + 4 * args.repeats + 8), generator=g)
    text = torch.randint(0, 732, (1, int(12 * args.s2_seconds)), generator=g)
    refer = torch.rand(1, 1025, 3 * sr // hop, generator=g)
    calls = {"ref": 0, "ours": 0}

    def next_codes(side: str) -> torch.Tensor:
        calls[side] += 1
        return codes[:, :, : n_tok + calls[side]]

    def ref_decode() -> float:
        torch.manual_seed(1)
        c = next_codes("ref")
        with torch.no_grad():
            return _best(lambda: ref_sovits.decode(c, text, refer, noise_scale=0.5))

    def our_decode() -> float:
        torch.manual_seed(1)
        c = next_codes("ours")
        return _best(lambda: ours_sovits.decode(c, text, refer, noise_scale=0.5))

    if "s2" not in args.skip:
        side_by_side(f"S2 decode of {args.s2_seconds:g} s", ref_decode, our_decode, "s")
    if "e2e" not in args.skip:

        def ref_e2e() -> float:
            return _best(lambda: ref_s1(1, 250)) + ref_decode()

        def our_e2e() -> float:
            return _best(lambda: our_s1(1, 250)) + our_decode()

        side_by_side("model stages, 10 s sentence", ref_e2e, our_e2e, "s")
        print("  (real-time factor = the seconds above / 10)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
