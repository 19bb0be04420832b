"""What the Training tab shows while a step runs: step/total, epoch and ETA from the job's progress
events, and loss/accuracy curves from the run folder's metrics.jsonl (plain functions, no gradio)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class ProgressView:
    """What the status line shows for the running step."""

    done: int = 0
    total: int = 0
    message: str = ""
    epoch: int | None = None
    eta_seconds: float | None = None
    first: tuple[float, int] | None = None  # (time, done) of the first progress event

    def update(self, event: dict[str, Any]) -> None:
        """Fold in one `progress` event ({"done", "total", "message", "time"})."""
        done, total, t = int(event.get("done", 0)), int(event.get("total", 0)), float(event.get("time", 0))
        self.done, self.total, self.message = done, total, str(event.get("message", ""))
        epoch = event.get("epoch")
        if epoch is None:
            match = re.search(r"epoch\D{0,3}(\d+)", self.message, re.IGNORECASE)
            epoch = int(match.group(1)) if match else None
        if epoch is not None:
            self.epoch = int(epoch)
        if self.first is None or done < self.first[1]:
            self.first = (t, done)
        self.eta_seconds = eta_seconds(self.first, (t, done), total)


def eta_seconds(first: tuple[float, int], last: tuple[float, int], total: int) -> float | None:
    """Remaining seconds at the mean rate between two (time, done) points; None before a rate exists."""
    (t0, d0), (t1, d1) = first, last
    if d1 <= d0 or t1 <= t0 or total <= 0:
        return None
    return max(0.0, (total - d1) * (t1 - t0) / (d1 - d0))


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


_NOT_PLOTTED = {"step", "epoch", "time"}


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Records of a metrics.jsonl (a torn last line while the trainer writes is skipped)."""
    if not path.is_file():
        return []
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "step" in record:
                out.append(record)
    return out


def metric_series(
    records: Sequence[dict[str, Any]], max_points: int = 400
) -> dict[str, list[tuple[int, float]]]:
    """{metric name: [(step, value)]} of every numeric metric except step/epoch/time and learning rates.

    Long runs are thinned to about `max_points` per series by averaging consecutive points, which
    also smooths the noisy per-step losses.
    """
    series: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        step = r.get("step")
        if not isinstance(step, int | float):
            continue
        for key, value in r.items():
            if key in _NOT_PLOTTED or "lr" in key.split("/")[-1].lower() or isinstance(value, bool):
                continue
            if isinstance(value, int | float) and math.isfinite(value):
                series.setdefault(key, []).append((int(step), float(value)))
    return {k: _thin(v, max_points) for k, v in series.items()}


def _thin(points: list[tuple[int, float]], max_points: int) -> list[tuple[int, float]]:
    if len(points) <= max_points:
        return points
    size = math.ceil(len(points) / max_points)
    out = []
    for i in range(0, len(points), size):
        chunk = points[i : i + size]
        out.append((chunk[-1][0], sum(v for _s, v in chunk) / len(chunk)))
    return out


def plot_rows(
    series: dict[str, list[tuple[int, float]]],
    keep: Callable[[str], bool] = lambda k: True,
    label: Callable[[str], str] = lambda k: k,
) -> list[dict]:
    """Long-format rows {"step" (int), "value", "metric" (its `label`)} for a line plot of the kept series."""
    return [
        {"step": int(step), "value": value, "metric": label(name)}
        for name, points in sorted(series.items())
        if keep(name)
        for step, value in points
    ]


def is_accuracy(name: str) -> bool:
    return "acc" in name.lower() or "top1" in name.lower()


def is_loss(name: str) -> bool:
    """Loss curves only: gradient norms and the like have other scales and would flatten them."""
    return "loss" in name.lower()


# The SoVITS (S2) losses in three families, each on its own axis: their scales differ by two orders
# of magnitude (mel L1 x 45 against a KL near 1 and adversarial terms near 2-4).
S2_FAMILIES: tuple[str, ...] = ("mel", "kl", "adversarial")


def s2_family(name: str) -> str:
    """Which S2 plot a loss goes to: KL terms, adversarial / feature-matching / discriminator terms,
    else the reconstruction family (mel, the generator's total, and any loss added later)."""
    leaf = name.lower()
    if "kl" in leaf:
        return "kl"
    if leaf.startswith("loss/d/") or leaf.split("/")[-1] in ("gen", "fm", "adv"):
        return "adversarial"
    return "mel"


def in_family(family: str) -> Callable[[str], bool]:
    """The `keep` test of `plot_rows` for one S2 family (losses only)."""
    return lambda name: is_loss(name) and s2_family(name) == family
