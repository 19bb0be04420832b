"""Train (or fine-tune) CLVP on one or several formatted experiment folders.

    python -m clvp.train --exp-dir D [D ...] --weights-dir W [--out RUN_DIR] [--exp-name N] [--epochs 20]
        [--batch-size 0] [--model tiny|base|FILE.json] [--init CKPT] [--negatives 4] [--lr 3e-4]
        [--held-out 0.1] [--fresh] [--device auto] [--events FILE] [--config OPTIONS.json]

The run folder (default ``<first exp-dir>/clvp_train``) holds config.json, metrics.jsonl, checkpoint.pt and
log.txt (``gpt_sovits.train.common.RunDir``); running again resumes unless ``--fresh``. Every ``--save-every``
epochs and at the end the model is exported to ``<weights-dir>/<exp-name>-e<epoch>.pt`` and a ``saved``
event (model="clvp") is emitted. ``--init`` starts from a CLVP weight file (a general model) and keeps its
architecture: that is fine-tuning on one speaker's data. ``--model`` picks the size of a new model
(``--config`` is the shared JSON file of option values, as for the other trainers).

Each step contrasts every text against the batch's true token sequences and ``--negatives`` corrupted
copies of each (``clvp.negatives``); at each epoch end the held-out part (by name hash) gives
``val/loss`` and ``val/top1`` (true sequence ranked first among itself and 5 corruptions).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from clvp.checkpoint import read_clvp_file, save_clvp
from clvp.data import ClvpDataError, ClvpItem, collate, load_items, split_items
from clvp.model import ClvpConfig, ClvpConfigError, ClvpModel
from core.jobs import EventWriter
from gpt_sovits.device import autocast_for
from gpt_sovits.train import common as T


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m clvp.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    T.add_common_args(ap, epochs=20, save_every=5, multi_exp=True)
    g = ap.add_argument_group("CLVP options")
    g.add_argument("--out", help="run folder (default: <first exp-dir>/clvp_train)")
    g.add_argument("--model", default="base", help="size of a new model: tiny, base or a JSON config file")
    g.add_argument("--init", help="start from these CLVP weights (fine-tuning a general model)")
    g.add_argument("--negatives", type=int, default=4, help="hard negatives per item and step (default 4)")
    g.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (default 3e-4)")
    g.add_argument("--weight-decay", type=float, default=0.01)
    g.add_argument("--warmup-steps", type=int, default=200)
    g.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for torch (0 = torch's default); 1 is much faster on a machine shared with other jobs",
    )
    g.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm (default 1)")
    g.add_argument("--held-out", type=float, default=0.1, help="fraction of clips kept out (default 0.1)")
    g.add_argument("--max-tokens", type=int, default=1500, help="skip clips longer than this (60 s)")
    return ap


def model_config(spec: str) -> ClvpConfig:
    """``tiny``/``base`` or a JSON file of ClvpConfig fields."""
    if spec in ("tiny", "base"):
        return ClvpConfig.preset(spec)
    p = Path(spec)
    if not p.is_file():
        raise ClvpConfigError(f"--model {spec!r} is neither tiny, base nor an existing JSON config file")
    return ClvpConfig.from_dict(json.loads(p.read_text(encoding="utf-8")))


def initial_model(args: argparse.Namespace) -> tuple[ClvpModel, str]:
    """A fresh model of ``--model`` size, or the ``--init`` weights (their stored architecture wins)."""
    if args.init:
        payload = read_clvp_file(args.init)
        model = ClvpModel(ClvpConfig.from_dict(payload["config"]))
        model.load_state_dict(payload["state_dict"])
        return model, f"initialised from {args.init}"
    cfg = model_config(args.model)
    return ClvpModel(cfg), f"new {args.model} model"


def make_optimizer(
    model: ClvpModel, args: argparse.Namespace, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (no decay on norms, biases and the scale) with warm-up and cosine decay."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.98),
    )
    warmup = min(args.warmup_steps, max(1, total_steps // 10))
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(warmup, total_steps))


def lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to 10% of the peak."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))

    return f


def pick_batch_size(
    args: argparse.Namespace, model: ClvpModel, items: Sequence[ClvpItem], device: torch.device
) -> int:
    if args.batch_size:
        return args.batch_size
    cfg = model.cfg
    n_params = sum(p.numel() for p in model.parameters())
    mean_len = sum(len(it.tokens) for it in items) / max(1, len(items))
    # one item = its text + (1 + negatives) speech sequences; ~24 floats per position, layer and channel
    per_item = int(
        (1 + args.negatives) * mean_len * cfg.dim * max(cfg.text_layers, cfg.speech_layers) * 24 * 4
    )
    return T.default_batch_size(device, fixed_bytes=n_params * 16, per_item_bytes=per_item, lo=2, hi=64)


@torch.no_grad()
def validation(model: ClvpModel, val: Sequence[ClvpItem], negatives: int, seed: int) -> dict[str, float]:
    """Held-out contrastive loss (fixed negatives) and reranking top-1 over true + 5 corruptions."""
    from clvp.evaluate import evaluate_clvp

    val = val[:500]  # enough for a stable figure; a big held-out part would slow every epoch end
    if len(val) < 2:
        return {}
    model.eval()
    device = next(model.parameters()).device
    rng = random.Random(seed)
    losses = []
    for i in range(0, len(val), 32):
        chunk = val[i : i + 32]
        if len(chunk) < 2:
            continue
        b = collate(chunk, negatives, rng, model.cfg.text_pad, model.cfg.speech_pad, pool=val).to(device)
        losses.append(float(model(b.text, b.text_lens, b.speech, b.speech_lens, b.neg, b.neg_lens).loss))
    res = evaluate_clvp(model, val, k=6, seed=seed)
    model.train()
    out = {"val/top1": res.top1, "val/mean_rank": res.mean_rank}
    if losses:
        out["val/loss"] = sum(losses) / len(losses)
    return out


def train(args: argparse.Namespace, events: EventWriter) -> dict[str, Any]:
    exp_dirs = [str(d) for d in args.exp_dir]
    run = T.RunDir(args.out or Path(exp_dirs[0]) / "clvp_train")
    items, notes = load_items(exp_dirs, args.max_tokens)
    for n in notes:
        run.log(n)
    train_items, val_items = split_items(items, args.held_out)
    if len(train_items) < 2:
        raise ClvpDataError(f"CLVP needs at least 2 training clips; found {len(train_items)}")
    device = T.pick_device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    T.seed_everything(args.seed)
    model, origin = initial_model(args)
    model.to(device).train()
    bs = min(pick_batch_size(args, model, train_items, device), len(train_items))
    bs = max(2, bs)
    lengths = [len(it.tokens) for it in train_items]
    steps_per_epoch = len(T.length_bucketed_batches(lengths, bs, args.seed, 0))
    total = steps_per_epoch * args.epochs
    opt, sched = make_optimizer(model, args, total)
    scaler = T.make_grad_scaler(device)
    prog = T.TrainProgress()
    state = run.prepare(fresh=args.fresh, map_location=device)
    if state is not None:
        saved_cfg = ClvpConfig.from_dict(state["extra"]["model_config"])
        if saved_cfg != model.cfg:  # the run was started with another size: its state decides
            model = ClvpModel(saved_cfg).to(device).train()
            opt, sched = make_optimizer(model, args, total)
        prog = T.restore_training_state(state, model=model, optimizer=opt, scheduler=sched, scaler=scaler)
        origin = f"resumed at epoch {prog.epoch}, step {prog.step}"
    config = {**T.jsonable(args), "batch_size_used": bs, "model_config": model.cfg.to_dict()}
    run.write_config(config)
    n_params = sum(p.numel() for p in model.parameters())
    run.log(
        f"CLVP: {origin}; {n_params / 1e6:.2f}M parameters; {len(train_items)} train / {len(val_items)} held-out "
        f"clips from {len(exp_dirs)} folder(s); batch {bs}, {steps_per_epoch} steps per epoch, device {device}"
    )
    reporter = T.ProgressReporter(events, "clvp", total, start_step=prog.step)
    timer = T.CheckpointTimer(args.checkpoint_minutes)
    weights_dir = Path(args.weights_dir)
    last_export: Path | None = None
    last_val: dict[str, float] = {}

    def save_state() -> None:
        run.save(
            T.training_state(
                model=model,
                optimizer=opt,
                scheduler=sched,
                scaler=scaler,
                progress=prog,
                config=config,
                extra={"model_config": model.cfg.to_dict()},
            )
        )
        timer.reset()

    stopped = False
    with T.StopFlag() as stop:
        for epoch in range(prog.epoch, args.epochs):
            batches = T.length_bucketed_batches(lengths, bs, args.seed, epoch)
            for i, idx in enumerate(batches):
                if i < prog.batch_in_epoch:
                    continue
                if stop():
                    stopped = True
                    break
                # negatives depend only on (seed, epoch, batch): a resumed run sees the same data
                rng = random.Random(args.seed * 1_000_003 + epoch * 10_007 + i)
                chunk = [train_items[j] for j in idx]
                if len(chunk) < 2:
                    chunk.append(train_items[rng.randrange(len(train_items))])
                pool = chunk + [train_items[rng.randrange(len(train_items))] for _ in range(8)]
                b = collate(chunk, args.negatives, rng, model.cfg.text_pad, model.cfg.speech_pad, pool=pool)
                b = b.to(device)
                with autocast_for(device):
                    out = model(b.text, b.text_lens, b.speech, b.speech_lens, b.neg, b.neg_lens)
                opt.zero_grad(set_to_none=True)
                scaler.scale(out.loss).backward()
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
                scaler.step(opt)
                scaler.update()
                sched.step()
                prog.step += 1
                prog.batch_in_epoch = i + 1
                metrics = {
                    "loss/train": float(out.loss.detach()),
                    "acc/train": float(out.accuracy.detach()),
                    "scale": float(model.scale().detach()),
                    "lr": sched.get_last_lr()[0],
                }
                if prog.step % 10 == 0 or i == len(batches) - 1:
                    run.append_metrics({"step": prog.step, "epoch": epoch, **metrics})
                reporter.step(prog.step, epoch, {"loss": metrics["loss/train"]})
                if timer.due():
                    save_state()
            if stopped:
                break
            prog.epoch, prog.batch_in_epoch = epoch + 1, 0
            last_val = validation(model, val_items, args.negatives, args.seed)
            if last_val:
                run.append_metrics({"step": prog.step, "epoch": epoch, **last_val})
                run.log(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in last_val.items()))
            save_state()
            if (epoch + 1) % args.save_every == 0 or epoch + 1 == args.epochs:
                last_export = export(model, weights_dir, args, prog, last_val)
                reporter.saved(last_export, prog.epoch, prog.step)
    if stopped:
        save_state()
        run.log(f"stopped at epoch {prog.epoch}, step {prog.step}; run again to resume")
    result = {
        "epoch": prog.epoch,
        "step": prog.step,
        "stopped": stopped,
        "weights": str(last_export) if last_export else None,
        **last_val,
    }
    reporter.result(**result)
    return result


def export(
    model: ClvpModel,
    weights_dir: Path,
    args: argparse.Namespace,
    prog: T.TrainProgress,
    val: dict[str, float],
) -> Path:
    path = weights_dir / f"{args.exp_name}-e{prog.epoch}.pt"
    info = {"epoch": prog.epoch, "step": prog.step, "exp_name": args.exp_name, **val}
    return T.export_weights(
        path,
        lambda p: save_clvp(p, model, info),
        estimate=sum(t.numel() * 4 for t in model.state_dict().values()),
        keep=args.keep_exports,
        older_exports=f"{args.exp_name}-e*.pt",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = T.parse_args(build_parser(), argv)
    events = EventWriter(args.events)
    threads = torch.get_num_threads()  # --threads applies to this run only (main may be called in-process)
    try:
        result = train(args, events)
    except (T.TrainingError, ClvpDataError, ClvpConfigError, ValueError) as e:
        return T.report_failure(e, events)
    finally:
        torch.set_num_threads(threads)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
