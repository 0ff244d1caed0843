"""The ``train`` and ``train-compare`` subcommands of ``python -m diffusemix``.

``add_parser(subparsers)`` declares them (importing nothing heavy);
``run(args)`` runs one. Flags map onto :class:`~diffusemix.train.config.TrainConfig`
fields; ``--set KEY=VALUE`` reaches any other field.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any
from ..errors import DiffuseMixError

__all__ = ["add_parser", "run", "COMMANDS"]

COMMANDS = ("train", "train-compare")

#: flag -> TrainConfig field, for the common settings (--set reaches every field).
_FLAGS = {
    "train": "train", "val": "val", "method": "method", "cache": "cache", "export": "export",
    "budget": "budget", "seed": "seed", "epochs": "epochs", "model": "model", "pretrained": "pretrained",
    "k_per_class": "k_per_class", "device": "device", "mixed_precision": "mixed_precision", "workers": "workers",
}  # fmt: skip


def add_parser(subparsers: Any) -> None:
    """Add ``train`` and ``train-compare`` to the command line's subparsers."""
    from .config import BUDGETS, METHODS

    tr = subparsers.add_parser(
        "train",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="train a classifier with a method (none, standard, mixup, cutmix, diffusemix, diffusemix-export)",
        description="Train a classifier following one of the paper's experiments (a shipped config) or a YAML "
        "config, with one method and one budget, on one or several processes (accelerate launch); write "
        "OUT/result.json (accuracy per epoch, robustness) and OUT/model.",
        epilog="shipped configs: python -m diffusemix train --list\n"
        "several GPUs:    accelerate launch --multi_gpu --num_processes N -m diffusemix train CONFIG ...",
    )
    tr.add_argument("config", metavar="CONFIG", nargs="?", help="a shipped config's name or a YAML file")
    tr.add_argument("--list", action="store_true", help="list the shipped configs and exit")
    tr.add_argument("--show", action="store_true", help="print the resolved settings and their sources, and exit")
    tr.add_argument("--out", metavar="DIR", help="the run folder (default runs/<config>-<method>-<budget>-s<seed>)")
    tr.add_argument("--train", metavar="PATH", help="training class folders, or hf:NAME[:SPLIT]")
    tr.add_argument("--val", metavar="PATH", help="evaluation class folders, or hf:NAME[:SPLIT]")
    tr.add_argument("--method", choices=METHODS, help="the augmentation (default: the config's)")
    tr.add_argument("--cache", metavar="DIR", help="diffusemix: the cache of Î (export --cache)")
    tr.add_argument("--export", metavar="DIR", help="diffusemix-export: a fixed export")
    tr.add_argument("--budget", choices=BUDGETS, help="epochs (the paper's), steps or images (equal across methods)")
    tr.add_argument("--seed", type=int, metavar="N")
    tr.add_argument("--epochs", type=int, metavar="N")
    tr.add_argument("--model", metavar="NAME")
    tr.add_argument("--pretrained", metavar="ID_OR_DIR", help="transfer: start from these weights")
    tr.add_argument("--k-per-class", type=int, metavar="K", help="data scarcity: k images per class")
    tr.add_argument("--device", choices=("auto", "cpu"))
    tr.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"))
    tr.add_argument("--workers", type=int, metavar="N", help="DataLoader workers per process")
    tr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="any other setting (repeatable), e.g. --set lr=0.05 --set attacks=[fgsm,pgd]")  # fmt: skip
    tr.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    tr.add_argument("--stop-at-epoch", type=int, metavar="N", help="stop after epoch N (checkpointed; --resume)")
    tr.add_argument("--note", action="append", default=[], metavar="TEXT",
                    help="recorded with the result, shown by train-compare (e.g. 'smoke run on synthetic data')")

    cp = subparsers.add_parser(
        "train-compare",
        help="plot accuracy per epoch of several runs and print a markdown table",
        description="Read the result.json of each run folder; draw validation accuracy against epoch, one line "
        "per run, into PNG; print a markdown table (method, budget, steps, images seen, accuracy, FGSM, PGD).",
    )
    cp.add_argument("runs", nargs="+", metavar="RUN", help="run folders (or their result.json)")
    cp.add_argument("--out", metavar="PNG", default="compare.png", help="the picture (default compare.png)")
    cp.add_argument("--table", metavar="MD", help="also write the table to this file")


def _loaded(args: argparse.Namespace) -> Any:
    from .config import apply_overrides, load_config, parse_override

    if not args.config:
        raise DiffuseMixError("train needs CONFIG (a shipped config or a YAML file); --list shows the shipped ones")
    loaded = load_config(args.config)
    overrides: dict[str, Any] = dict(parse_override(t) for t in args.set)
    for flag, name in _FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides[name] = value
    return apply_overrides(loaded, overrides, source="command line")


def _run_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .config import shipped_configs

    if args.list:
        from .config import load_config

        for name in shipped_configs():
            print(f"{name:<28} {load_config(name).config.experiment}")
        return 0
    loaded = _loaded(args)
    if args.show:
        for f in dataclasses.fields(loaded.config):
            value = getattr(loaded.config, f.name)
            src = loaded.sources.get(f.name, "default" if f.name not in ("name", "experiment") else "")
            print(f"{f.name:<18} {value!r:<32} {src}")
        return 0
    from .loop import train_run

    c = loaded.config
    out = args.out or str(Path("runs") / f"{c.name}-{c.method}-{c.budget}-s{c.seed}")
    result = train_run(loaded, out, resume=args.resume, stop_at_epoch=args.stop_at_epoch, notes=tuple(args.note))
    return 0 if result is not None else 1


def _run_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .results import markdown_table, plot_runs, read_result

    results = [read_result(r) for r in args.runs]
    png = plot_runs(results, args.out)
    table = markdown_table(results)
    print(table)
    if args.table:
        Path(args.table).write_text(table + "\n", encoding="utf-8")
    print(f"wrote {png}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``train`` or ``train-compare`` (errors propagate as ValueError, exit status 2 in the CLI)."""
    if args.command == "train":
        return _run_train(args)
    return _run_compare(args)
