"""The trainers' shared command line: common flags, ``--config FILE`` values (flags win), typed configs."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from gpt_sovits.train.errors import ConfigFileError, TrainingError

logger = logging.getLogger(__name__)

ConfigT = TypeVar("ConfigT")


@dataclass
class RunConfig:
    """The options the GPT-SoVITS trainers share (S1, S2, S2 v3/v4 LoRA): the common flags' values.

    A trainer's config extends it with its own fields (and may give ``epochs``/``save_every`` its own
    defaults); its ``__post_init__`` calls this one first. ``OPTIONAL_PATHS`` lists the fields that are a
    path or None (an empty value is None). CLVP's config is separate: several experiment folders, no
    pretrained folder.
    """

    exp_dir: Path
    weights_dir: Path
    exp_name: str = ""  # default: the experiment folder's name
    pretrained_dir: Path | None = None
    epochs: int = 15
    batch_size: int = 0  # 0: from free memory (or the resumed run's)
    save_every: int = 5
    device: str = "auto"
    seed: int = 1234
    fresh: bool = False
    keep_exports: str = "all"
    checkpoint_minutes: float = 2.0

    OPTIONAL_PATHS: ClassVar[tuple[str, ...]] = ("pretrained_dir",)

    def __post_init__(self) -> None:
        self.exp_dir = Path(self.exp_dir)
        self.weights_dir = Path(self.weights_dir)
        for name in self.OPTIONAL_PATHS:
            value = getattr(self, name)
            setattr(self, name, Path(value) if value else None)
        if not self.exp_name:
            self.exp_name = self.exp_dir.resolve().name
        if self.epochs < 1 or self.save_every < 1:
            raise TrainingError("epochs and save_every must be at least 1")
        if self.batch_size < 0:
            raise TrainingError("batch_size must be 0 (automatic) or positive")


def add_common_args(
    parser: argparse.ArgumentParser,
    *,
    epochs: int = RunConfig.epochs,
    save_every: int = RunConfig.save_every,
    multi_exp: bool = False,
) -> argparse.ArgumentParser:
    """Add the flags every trainer shares. Required values may come from ``--config`` instead.

    Defaults follow the reference web UI (S1: 15 epochs, save every 5; S2: 8 epochs, save every 4; pass
    ``epochs``/``save_every`` accordingly). ``multi_exp`` makes ``--exp-dir`` take several folders (CLVP).
    """
    g = parser.add_argument_group("common training options")
    g.add_argument(
        "--exp-dir",
        nargs="+" if multi_exp else None,
        help="experiment folder(s) produced by gpt_sovits.data.prepare (required)",
    )
    g.add_argument(
        "--exp-name", help="name used for exported weights (default: the experiment folder's name)"
    )
    g.add_argument("--pretrained-dir", help="folder of pretrained models in the official layout")
    g.add_argument("--weights-dir", help="folder where exported weights go (required)")
    g.add_argument("--epochs", type=int, default=epochs, help=f"total epochs to train (default {epochs})")
    g.add_argument(
        "--batch-size",
        type=int,
        default=RunConfig.batch_size,
        help="items per batch per device; 0 = choose from free memory",
    )
    g.add_argument(
        "--save-every",
        type=int,
        default=save_every,
        help=f"export weights every N epochs (default {save_every})",
    )
    g.add_argument("--device", default=RunConfig.device, help="auto, cpu, cuda, cuda:N or mps (default auto)")
    g.add_argument("--seed", type=int, default=RunConfig.seed, help=f"random seed (default {RunConfig.seed})")
    g.add_argument(
        "--fresh",
        action="store_true",
        help="start over: move the previous run state to .trash instead of resuming",
    )
    g.add_argument(
        "--config", help="JSON file of option values (keys like the flags); command-line flags win"
    )
    g.add_argument("--events", help="append JSON-lines progress events to this file")
    g.add_argument(
        "--keep-exports",
        choices=("all", "latest"),
        default=RunConfig.keep_exports,
        help="keep every exported weights file (default, like the reference) or only the latest",
    )
    g.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=RunConfig.checkpoint_minutes,
        help="save the full resumable state at least this often, mid-epoch too (default 2: a crash loses at "
        "most ~2 minutes of training); it is always saved at each export, on stop and at the end",
    )
    return parser


def _flag_key(key: str) -> str:
    return key.strip().lstrip("-").replace("-", "_")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a ``--config`` JSON object; keys are normalised to argparse destinations (``exp-dir`` -> ``exp_dir``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigFileError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigFileError(f"config file {path} is not readable JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigFileError(f"config file {path} must hold a JSON object of option values")
    return {_flag_key(k): v for k, v in data.items()}


def parse_args(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
    required: Sequence[str] = ("exp_dir", "weights_dir"),
) -> argparse.Namespace:
    """Parse ``argv`` with ``--config`` values as defaults; flags on the command line override the file.

    Unknown keys in the file are logged and ignored (a caller may store notes there). ``required`` names
    destinations that must be set by either; a missing one is a parser error (exit code 2, usage shown).
    ``exp_name`` defaults to the (first) experiment folder's name.
    """
    first, _ = parser.parse_known_args(argv)
    if getattr(first, "config", None):
        try:
            values = load_config_file(first.config)
        except ConfigFileError as e:
            parser.error(str(e))
        known = {a.dest for a in parser._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            logger.warning("ignoring unknown keys in %s: %s", first.config, ", ".join(unknown))
        parser.set_defaults(**{k: v for k, v in values.items() if k in known and k != "config"})
    args = parser.parse_args(argv)
    missing = [name for name in required if getattr(args, name, None) in (None, "", [])]
    if missing:
        parser.error("missing required option(s): " + ", ".join("--" + m.replace("_", "-") for m in missing))
    if hasattr(args, "exp_name") and not args.exp_name and getattr(args, "exp_dir", None):
        exp_dir = args.exp_dir[0] if isinstance(args.exp_dir, list) else args.exp_dir
        args.exp_name = Path(exp_dir).resolve().name
    for name in ("epochs", "save_every"):
        if getattr(args, name, 1) is not None and getattr(args, name, 1) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if getattr(args, "batch_size", 0) is not None and args.batch_size < 0:
        parser.error("--batch-size must be 0 (automatic) or a positive number")
    return args


def jsonable(obj: Any) -> Any:
    """Namespace/dataclass/Path values as plain JSON types (for config.json and events)."""
    if isinstance(obj, argparse.Namespace):
        obj = vars(obj)
    if hasattr(obj, "__dataclass_fields__"):
        obj = asdict(obj)
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


# Destinations every trainer's parser has that are not part of a run's config: where the values came from
# (--config) and where progress goes (--events, handed to train() as an EventWriter).
NOT_CONFIG = ("config", "events")


def config_from_args(cls: type[ConfigT], args: argparse.Namespace, ignore: Collection[str] = ()) -> ConfigT:
    """A trainer's config dataclass from parsed arguments: each field takes the argument of the same name.

    Fields without a flag keep their defaults. A parsed argument the dataclass lacks is a programming
    error (a flag that would be silently dropped) unless listed in ``ignore`` or ``NOT_CONFIG``."""
    names = {f.name for f in fields(cls) if f.init}  # type: ignore[arg-type]
    values = vars(args)
    dropped = sorted(set(values) - names - set(NOT_CONFIG) - set(ignore))
    if dropped:
        raise TypeError(f"{cls.__name__} has no field for the argument(s) {', '.join(dropped)}")
    return cls(**{k: v for k, v in values.items() if k in names})
