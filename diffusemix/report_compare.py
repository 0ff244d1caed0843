"""Which editor keeps the label? Two or more exports compared (``python -m diffusemix report OUT1 OUT2 ...``).

Exports of the same input with the same recipe (prompts, seed) differ only in
Î when their editors differ: the same (source, prompt, copy) has the same
mask, fractal, λ and editor seed in each. This reads each export's manifest,
errors and settings through :mod:`diffusemix.export.folder` and compares, per
prompt: the Î made, the blank ones, the ones a score rule dropped and the mean
score (the exporter's scores, never recomputed; "-" for an unscored export).
The picture adds the mean score per prompt and editor, and a contact sheet of
the same samples side by side, one row per export (from the saved stages, or
a cache's files: what is on disk).

Each export is named by its editor, model and the licence of its weights.
Exports of different inputs or prompts are compared on what they share, and
the text says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import DiffuseMixError

__all__ = ["ExportSide", "ExportComparison", "read_side", "compare_exports", "draw_comparison", "write_comparison"]


def _key(row: dict[str, Any]) -> tuple[str, str, int]:
    return str(row.get("source")), str(row.get("prompt")), int(row.get("copy") or 0)


@dataclass
class ExportSide:
    """One export as the comparison reads it."""

    root: Path
    editor: str
    weights: str
    settings: dict[str, Any]
    prompts: list[str]
    input: str | None
    seed: int | None
    scorer: str
    rows: dict[tuple[str, str, int], dict[str, Any]]
    blank: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, list[float]] = field(default_factory=dict)
    cache: bool = False

    @property
    def label(self) -> str:
        model = self.settings.get("model")
        shown = Path(model).name if isinstance(model, str) and os.path.isabs(model) else model
        name = "preview (not a diffusion model)" if self.editor == "preview" else self.editor
        return f"{name} ({shown})" if shown else name

    def made(self, prompt: str) -> int:
        return sum(1 for k in self.rows if k[1] == prompt)

    def scores(self, prompt: str) -> list[float]:
        kept = [float(r["score"]) for k, r in self.rows.items() if k[1] == prompt and isinstance(r.get("score"),
                                                                                                  (int, float))]
        return kept + self.dropped.get(prompt, [])

    def generated_file(self, key: tuple[str, str, int]) -> Path | None:
        """Where Î of a sample is on disk (a cache's file, or the saved stage), or None."""
        from .export import folder

        row = self.rows.get(key)
        if row is None:
            return None
        name = row["file_name"] if self.cache else folder.stage_name("generated", row["file_name"])
        path = folder.resolve_in(self.root, name, source=folder.manifest_path(self.root))
        return path if path.is_file() else None

    def input_file(self, key: tuple[str, str, int]) -> Path | None:
        """Where I of a sample is on disk (a cache's input, or the saved stage), or None."""
        from .export import folder

        row = self.rows.get(key)
        if row is None:
            return None
        name = row.get("input_file_name") if self.cache else folder.stage_name("input", row["file_name"])
        if not isinstance(name, str):
            return None
        path = folder.resolve_in(self.root, name, source=folder.manifest_path(self.root))
        return path if path.is_file() else None


def read_side(path: str | os.PathLike[str]) -> ExportSide:
    """Read one export for the comparison.

    Raises:
        DiffuseMixError: no manifest (an unfinished or foreign folder).
    """
    from .export import folder
    from .export.settings import upgrade
    from .report import weights_text

    root = Path(path).expanduser()
    if not folder.manifest_path(root).is_file():
        raise DiffuseMixError(
            "has no manifest", field=str(root),
            hint="Give output folders of `python -m diffusemix export` (after every shard has finished)",
        )
    rows = folder.read_rows(root)
    try:
        settings = upgrade(folder.read_settings(root) or {})
    except DiffuseMixError:
        settings = {}
    editor = dict(settings.get("editor") or {})
    name = str(editor.get("name") or next((r.get("editor") for r in rows if r.get("editor")), "unknown"))
    editor.setdefault("name", name)
    recipe = settings.get("recipe") or {}
    scoring = settings.get("scorer") or {}
    side = ExportSide(
        root=root,
        editor=name,
        weights=weights_text({**settings, "editor": editor}),
        settings=editor,
        prompts=[p for p in recipe.get("prompts", []) if isinstance(p, str)] or list(dict.fromkeys(
            str(r.get("prompt")) for r in rows)),
        input=settings.get("input"),
        seed=recipe.get("seed"),
        scorer=str(scoring.get("name") or next((r.get("scorer") for r in rows if r.get("scorer")), "")),
        rows={_key(r): r for r in rows},
        cache=bool(rows) and isinstance(rows[0].get("input_file_name"), str),
    )
    for e in folder.read_errors(root):
        prompt = str(e.get("prompt"))
        if e.get("kind") == "degenerate":
            side.blank[prompt] = side.blank.get(prompt, 0) + 1
        elif e.get("kind") == "low-score" and isinstance(e.get("score"), (int, float)):
            side.dropped.setdefault(prompt, []).append(float(e["score"]))
    return side


@dataclass
class ExportComparison:
    """Two or more exports, side by side."""

    sides: list[ExportSide]
    prompts: list[str]
    common: list[tuple[str, str, int]]
    notes: list[str]

    def table(self) -> str:
        """Per export: editor, model, licence; then per prompt and export: Î made, blank, dropped, mean score."""
        lines = [f"{len(self.sides)} exports compared (same (source, prompt, copy): same mask, fractal, λ and"
                 " editor seed; only Î differs)", ""]
        for k, s in enumerate(self.sides, 1):
            settings = ", ".join(f"{key} {s.settings[key]}" for key in ("steps", "edit_size", "guidance_scale",
                                                                        "true_cfg_scale") if key in s.settings)
            lines.append(f"[{k}] {s.root}: Î by {s.label}" + (f"; {settings}" if settings else ""))
            if s.weights:
                lines.append(f"    weights: {s.weights}")
            lines.append(f"    scores: {s.scorer or 'none (exported without --score)'}")
        w = max([len(p) for p in self.prompts] + [6])
        head = f"{'prompt':<{w}}  {'export':>6}  {'Î':>5}  {'blank':>5}  {'dropped':>7}  {'mean':>6}"
        lines += ["", head, "-" * len(head)]
        for p in self.prompts:
            for k, s in enumerate(self.sides, 1):
                scores = s.scores(p)
                mean = f"{np.mean(scores):>6.3f}" if scores else f"{'-':>6}"
                lines.append(f"{p:<{w}}  {'[' + str(k) + ']':>6}  {s.made(p):>5}  {s.blank.get(p, 0):>5}"
                             f"  {len(s.dropped.get(p, [])):>7}  {mean}")
        lines += [""] + [f"note: {n}" for n in self.notes]
        return "\n".join(lines).rstrip() + "\n"


def compare_exports(paths: Sequence[str | os.PathLike[str]]) -> ExportComparison:
    """Read two or more exports and line them up by prompt and by sample.

    Raises:
        DiffuseMixError: fewer than two folders, or one without a manifest.
    """
    if len(paths) < 2:
        raise DiffuseMixError("needs two or more export folders to compare", field="report", value=len(paths))
    sides = [read_side(p) for p in paths]
    prompts = list(dict.fromkeys(p for s in sides for p in s.prompts))
    common = sorted(set.intersection(*(set(s.rows) for s in sides)))
    notes = []
    if len({s.input for s in sides}) > 1:
        notes.append("the exports were made from different input folders: only the samples they share are tiled")
    if len({s.seed for s in sides}) > 1:
        notes.append("the exports used different seeds: masks, fractals and λ differ too, not only Î")
    if len({tuple(s.prompts) for s in sides}) > 1:
        notes.append("the exports used different prompts: a prompt one of them lacks shows 0 Î there")
    if any(s.editor == "preview" for s in sides):
        notes.append("an export made with the preview editor is NOT a diffusion model's (colour filters)")
    if not any(all(s.generated_file(k) for s in sides) for k in common):
        notes.append("no sample's Î is on disk in every export: export with --save-stages (or --cache) to see them"
                     " side by side")
    return ExportComparison(sides=sides, prompts=prompts, common=common, notes=notes)


def draw_comparison(cmp: ExportComparison, path: str | os.PathLike[str], *, samples: int = 6) -> Path:
    """The picture: the mean score per prompt and export (when scored), and the same samples side by side."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from PIL import Image

    shown = [k for k in cmp.common if all(s.generated_file(k) for s in cmp.sides)][:samples]
    scored = any(s.scores(p) for s in cmp.sides for p in cmp.prompts)
    n_rows = len(cmp.sides) + 1 if shown else 0
    cols = max(len(shown), 1)
    height = (3.2 if scored else 0.0) + 1.6 * n_rows + 1.4
    fig = plt.figure(figsize=(max(9.0, 1.6 * cols + 2.5), height), dpi=110)
    ratios = [3.2 if scored else 0.4] + ([1.6 * n_rows] if shown else [])
    grid = fig.add_gridspec(len(ratios), 1, height_ratios=ratios, hspace=0.35, left=0.2, right=0.97,
                            top=1 - 1.1 / height, bottom=0.03)
    ax = fig.add_subplot(grid[0])
    if scored:
        width = 0.8 / len(cmp.sides)
        for k, s in enumerate(cmp.sides):
            means = [np.mean(s.scores(p)) if s.scores(p) else np.nan for p in cmp.prompts]
            ax.barh(np.arange(len(cmp.prompts)) + k * width, means, height=width, label=f"[{k + 1}] {s.label}")
        ax.set_yticks(np.arange(len(cmp.prompts)) + 0.4 - width / 2, cmp.prompts)
        ax.invert_yaxis()
        ax.set_xlabel("mean score of Î against I (the exporter's)")
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(axis="x", alpha=0.3)
    else:
        ax.axis("off")
        ax.text(0, 0.5, "No scores: export with --score dino (or clip) to compare how well each editor keeps the"
                " label.", fontsize=9, transform=ax.transAxes)
    if shown:
        sub = grid[1].subgridspec(n_rows, cols, wspace=0.05, hspace=0.25)
        for j, key in enumerate(shown):
            first = cmp.sides[0].input_file(key)
            ax = fig.add_subplot(sub[0, j])
            ax.axis("off")
            if first is not None:
                with Image.open(first) as im:
                    ax.imshow(np.asarray(im.convert("RGB")))
            ax.set_title("\n".join(textwrap.wrap(f"I {Path(key[0]).name} “{key[1]}”", 22)[:2]), fontsize=7)
            for k, s in enumerate(cmp.sides):
                ax = fig.add_subplot(sub[k + 1, j])
                ax.set_xticks([])
                ax.set_yticks([])
                with Image.open(s.generated_file(key)) as im:  # type: ignore[arg-type]
                    ax.imshow(np.asarray(im.convert("RGB")))
                score = s.rows[key].get("score")
                if isinstance(score, (int, float)):
                    ax.set_title(f"{score:.3f}", fontsize=7)
                if j == 0:
                    ax.set_ylabel(f"Î [{k + 1}]", fontsize=8)
    names = "; ".join(f"[{k + 1}] {s.label}" for k, s in enumerate(cmp.sides))
    fig.suptitle("Which editor keeps the label?\n" + "\n".join(textwrap.wrap(names, 120)[:2]), fontsize=10,
                 x=0.02, ha="left")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, metadata={"Software": "diffusemix report"})
    plt.close(fig)
    return out


def write_comparison(
    export_dirs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str] | None = None, *, samples: int = 6
) -> tuple[Path, Path, str]:
    """Compare exports; write the picture (default: ``compare-editors.png`` in the first export) and its table.

    Returns:
        (picture path, table path, table text).
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= 32:
        raise DiffuseMixError("must be an integer in [1, 32]", field="--lowest", value=samples)
    cmp = compare_exports(export_dirs)
    png = Path(out) if out is not None else cmp.sides[0].root / "compare-editors.png"
    draw_comparison(cmp, png, samples=samples)
    text = cmp.table()
    txt = png.with_suffix(".txt")
    txt.write_text(text, encoding="utf-8")
    return png, txt, text
