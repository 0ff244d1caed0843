"""The ``train`` and ``train-compare`` subcommands of ``python -m diffusemix``.

``add_parser(subparsers)`` declares them (importing nothing heavy);
``run(args)`` runs one. The setting flags (``--method``, ``--epochs``, ...)
are made from the :class:`~diffusemix.train.config.TrainConfig` fields that
have ``cli`` on, their help and choices included; ``--set KEY=VALUE`` reaches
every field; ``--list-settings`` lists them all.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from ..errors import DiffuseMixError

__all__ = ["add_parser", "run", "COMMANDS"]

COMMANDS = ("train", "train-compare")


def add_parser(subparsers: Any) -> None:
    """Add ``train`` and ``train-compare`` to the command line's subparsers."""
    from ..schema import add_flags
    from .config import METHODS, TrainConfig

    tr = subparsers.add_parser(
        "train",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help=f"train a classifier with a method ({', '.join(METHODS)})",
        description="Train a classifier following one of the paper's experiments (a shipped config) or a YAML "
        "config, with one method and one budget, on one or several processes (accelerate launch); write "
        "OUT/result.json (accuracy per epoch, robustness) and OUT/model.",
        epilog="shipped configs: python -m diffusemix train --list\n"
        "every setting:   python -m diffusemix train --list-settings\n"
        "several GPUs:    accelerate launch --multi_gpu --num_processes N -m diffusemix train CONFIG ...",
    )
    tr.add_argument("config", metavar="CONFIG", nargs="?", help="a shipped config's name or a YAML file")
    tr.add_argument("--list", action="store_true", help="list the shipped configs and exit")
    tr.add_argument("--list-settings", action="store_true",
                    help="list every setting (the keys of a config and of --set) with its default, and exit")
    tr.add_argument("--show", action="store_true", help="print the resolved settings and their sources, and exit")
    tr.add_argument("--out", metavar="DIR", help="the run folder (default runs/<config>-<method>-<budget>-s<seed>)")
    settings = tr.add_argument_group(
        "settings", "each replaces the config's value; --set KEY=VALUE reaches every other setting"
    )
    add_flags(settings, TrainConfig, default_note=lambda f: "")  # the default is the config's value
    settings.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="any other setting (repeatable), e.g. --set lr=0.05 --set attacks=[fgsm,pgd]")
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
    from ..schema import flag_values
    from .config import TrainConfig, apply_overrides, load_config, parse_override

    if not args.config:
        raise DiffuseMixError("train needs CONFIG (a shipped config or a YAML file); --list shows the shipped ones")
    loaded = load_config(args.config)
    overrides: dict[str, Any] = dict(parse_override(t) for t in args.set)
    overrides.update(flag_values(TrainConfig, args))
    return apply_overrides(loaded, overrides, source="command line")


def _list_settings() -> None:
    """Every setting: its key, its default, and what it does (with its choices or range, and its flag)."""
    from ..schema import flag_for
    from .config import TrainConfig

    for f in dataclasses.fields(TrainConfig):
        m = f.metadata
        default = m["default_text"] or _yaml_text(f.default)
        allowed = ""
        if m["choices"]:
            allowed = f"; one of {', '.join(m['choices'])}"
        elif m["low"] is not None or m["high"] is not None:
            low = "" if m["low"] is None else f"{_number(m['low'])} <= "
            high = "" if m["high"] is None else f" <= {_number(m['high'])}"
            allowed = f"; {low}{f.name}{high}"
        flag = f" [{flag_for(TrainConfig, f.name)}]" if m["cli"] else ""
        print(f"{f.name:<18} {default:<26} {m['help']}{allowed}{flag}")


def _yaml_text(value: Any) -> str:
    """A default as a config file or --set writes it (``null``, ``true``, ``[0.0, 1.0]``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(map(_yaml_text, value)) + "]"
    return str(value) if value != "" else '""'


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _run_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .config import shipped_configs

    if args.list:
        from .config import load_config

        for name in shipped_configs():
            print(f"{name:<28} {load_config(name).config.experiment}")
        return 0
    if args.list_settings:
        _list_settings()
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
    """Run ``train`` or ``train-compare``.

    Raises:
        DiffuseMixError: the user's mistake (the command line prints it and exits 2; ``schema.flag_for`` names a
            setting without a flag of its own by its key, ``lr``, one with a flag by the flag, ``--epochs``).
    """
    if args.command == "train":
        return _run_train(args)
    return _run_compare(args)
