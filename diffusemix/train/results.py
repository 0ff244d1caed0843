"""One JSON per run (``OUT/result.json``), and the comparison across runs: a plot and a markdown table.

A result holds the config and where each value came from, the method, the
budget (mode, steps, images seen, passes), the seed, the accuracy after every
epoch, the robustness figures, what the run trained on, and every reason its
numbers are not paper numbers (a tiny test model, a preview-editor cache,
notes such as "smoke run on synthetic data"); the plot and the table repeat
those reasons, so a figure made from stand-ins says so.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any, Mapping, Sequence
from ..errors import DiffuseMixError

__all__ = ["RESULT_FILE", "FORMAT", "build_result", "write_json", "read_result", "markdown_table", "plot_runs",
           "stand_ins"]  # fmt: skip

RESULT_FILE = "result.json"
FORMAT = "diffusemix-train-run/1"


def write_json(path: Path, data: Any) -> None:
    """Write atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "accelerate", "kornia", "diffusemix"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def build_result(loaded: Any, *, tset: Any, budget: Any, state: Mapping[str, Any], robust: Any, complete: bool,
                 params: int, world: int, device: str, notes: Sequence[str],
                 wall: float) -> dict[str, Any]:  # fmt: skip
    """The run's JSON (see the module docstring)."""
    config = loaded.config
    history = list(state["history"])
    accs = [h["val_acc"] for h in history]
    reasons = list(notes)
    if config.model.startswith("tiny-"):
        reasons.append(f"tiny test model ({config.model}), random initialisation")
    if tset.stand_in:
        reasons.append(tset.stand_in)
    return {
        "format": FORMAT,
        "name": config.name,
        "experiment": config.experiment,
        "method": config.method,
        "seed": config.seed,
        "complete": complete,
        "budget": budget.to_dict(),
        "steps_taken": state["step"],
        "images_seen": state["images_seen"],
        "resumed_at": list(state.get("resumed_at", [])),
        "epochs": history,
        "final": {
            "val_acc": accs[-1] if accs else None,
            "best_val_acc": max(accs) if accs else None,
            "val_top5": history[-1]["val_top5"] if history else None,
        },
        "robustness": robust,
        "data": {
            "train": config.train,
            "val": config.val,
            "classes": len(tset.classes),
            "real_images": tset.real_images,
            "items_per_epoch": len(tset.items),
            "summary": tset.summary,
            "subset": None
            if tset.subset is None
            else {"k_per_class": config.k_per_class, "seed": config.subset_seed, "keys": tset.subset},
        },
        "model": {"name": config.model, "pretrained": config.pretrained, "parameters": params},
        "config": config.to_dict(),
        "sources": dict(loaded.sources),
        "config_file": loaded.path,
        "not_paper_numbers": reasons,
        "environment": {"processes": world, "device": device, "mixed_precision": config.mixed_precision,
                        **_versions()},  # fmt: skip
        "wall_seconds": round(wall, 2),
    }


def read_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A run's result: ``RUN_DIR`` (its result.json) or the JSON file itself.

    Raises:
        DiffuseMixError: no result there, or not a result of this format.
    """
    p = Path(path)
    if p.is_dir():
        p = p / RESULT_FILE
    if not p.is_file():
        raise DiffuseMixError(f"{path}: no {RESULT_FILE} (is it a finished `python -m diffusemix train` run folder?)")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DiffuseMixError(f"{p} is not a training result ({FORMAT}): not JSON ({e})") from None
    got = data.get("format") if isinstance(data, dict) else type(data).__name__
    if got != FORMAT:
        raise DiffuseMixError(f"{p} is not a training result ({FORMAT}); got format {got!r}")
    data["_path"] = str(p)
    return data


def _label(r: Mapping[str, Any]) -> str:
    return f"{r['name']}: {r['method']} ({r['budget']['mode']}, seed {r['seed']})"


def stand_ins(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every distinct reason the runs' numbers are not paper numbers, in order."""
    seen: list[str] = []
    for r in results:
        for why in r.get("not_paper_numbers", []):
            if why not in seen:
                seen.append(why)
    return seen


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def markdown_table(results: Sequence[Mapping[str, Any]]) -> str:
    """One row per run: config, method, budget, steps, images seen, final and best accuracy, FGSM/PGD."""
    lines = [
        "| run | method | budget | steps | images seen | epochs | final top-1 % | best top-1 % | FGSM % | PGD % |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rob = r.get("robustness") or {}
        lines.append(
            f"| {r['name']} | {r['method']} | {r['budget']['mode']} | {r['steps_taken']} | {r['images_seen']} | "
            f"{len(r['epochs'])} | {_pct(r['final']['val_acc'])} | {_pct(r['final']['best_val_acc'])} | "
            f"{_pct((rob.get('fgsm') or {}).get('accuracy'))} | {_pct((rob.get('pgd') or {}).get('accuracy'))} |"
        )
    reasons = stand_ins(results)
    if reasons:
        lines.append("")
        lines.append("Not paper numbers: " + "; ".join(r.rstrip(". ") for r in reasons) + ".")
    return "\n".join(lines)


def plot_runs(results: Sequence[Mapping[str, Any]], out: str | os.PathLike[str]) -> Path:
    """Validation top-1 accuracy against epoch, one line per run; stand-ins named in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for r in results:
        xs = [h["epoch"] for h in r["epochs"]]
        ys = [100 * h["val_acc"] for h in r["epochs"]]
        ax.plot(xs, ys, marker="o", label=_label(r))
    ax.set_xlabel("epoch (of the budget)")
    ax.set_ylabel("validation top-1 accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    title = "Accuracy per epoch"
    reasons = stand_ins(results)
    if reasons:
        title = "NOT PAPER NUMBERS: " + "; ".join(reasons)
        ax.set_title(title, fontsize=9, color="#b00020", wrap=True)
    else:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
