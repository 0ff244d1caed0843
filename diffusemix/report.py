"""Which prompts keep the label? A report of a scored export (``python -m diffusemix report OUT``).

Reads the export's manifest (the kept Î, with their scores) and its errors
(the Î dropped for their score, with it; blank ones) through
:mod:`diffusemix.export.folder`, and draws one picture, per prompt × class:

1. a heat map of the mean score, with the share of Î kept in each cell;
2. the distribution of the scores per prompt (kept and dropped apart, the
   rule's threshold as a line);
3. a contact sheet of the lowest-scoring Î (the saved stages ``generated``
   and ``rejected``: the export needs ``--save-stages``).

and a short text table. The scores are the exporter's, never recomputed.
"""

from __future__ import annotations

import io
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DiffuseMixError

__all__ = ["ReportError", "Cell", "ScoreReport", "read_report", "draw_report", "write_report"]

#: Most classes drawn in the heat map (the lowest-scoring ones when there are more).
MAX_CLASSES_DRAWN = 30


class ReportError(DiffuseMixError):
    """A folder that is not a scored export."""


@dataclass
class Cell:
    """What one (prompt, class) got: scores of kept and dropped Î, and blank ones."""

    kept: list[float] = field(default_factory=list)
    dropped: list[float] = field(default_factory=list)
    blank: int = 0

    @property
    def total(self) -> int:
        return len(self.kept) + len(self.dropped) + self.blank

    @property
    def scores(self) -> list[float]:
        return self.kept + self.dropped

    @property
    def share_kept(self) -> float:
        return len(self.kept) / self.total if self.total else float("nan")

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores)) if self.scores else float("nan")

    @property
    def min(self) -> float:
        return float(np.min(self.scores)) if self.scores else float("nan")


@dataclass
class ScoreReport:
    """A scored export, read back: cells per (prompt, class), the lowest Î, the rule."""

    root: Path
    scorer: str
    rule: dict[str, Any]
    #: what made Î (the editor's name; "preview" is not a diffusion model)
    editor: str
    prompts: list[str]
    classes: list[str]
    cells: dict[tuple[str, str], Cell]
    #: (score, prompt, class, file_name, kept) of every scored Î, lowest first.
    ranked: list[tuple[float, str, str, str, bool]]
    #: True for a cache (``--cache``): a kept row's ``file_name`` is Î itself.
    cache: bool = False
    #: (file_name, kept) -> (the file its row is in, the row's number): named when a path is refused.
    where: dict[tuple[str, bool], tuple[Path, int]] = field(default_factory=dict, repr=False)
    #: The editor's model and its weights' licence (from the run's settings), "" when not known.
    weights: str = ""

    def by_prompt(self, prompt: str) -> Cell:
        cell = Cell()
        for c in self.classes:
            got = self.cells.get((prompt, c))
            if got is not None:
                cell.kept += got.kept
                cell.dropped += got.dropped
                cell.blank += got.blank
        return cell

    def stage_file(self, file_name: str, kept: bool) -> Path:
        """Where Î of a row is on disk: the cache file, or the saved stage generated (kept) / rejected.

        Raises:
            RecordError: ``file_name`` leaves the folder (absolute, ``..``, or a link out of it).
        """
        from .export import folder

        source, n = self.where.get((file_name, kept), (folder.manifest_path(self.root), None))
        if kept and self.cache:
            return folder.resolve_in(self.root, file_name, source=source, row=n)
        stage = "generated" if kept else "rejected"
        return folder.resolve_in(self.root, folder.stage_name(stage, file_name), source=source, row=n)

    def table(self) -> str:
        """Per prompt (all classes), then per prompt × class: Î, mean, min, share kept."""
        w = max([len(p) for p in self.prompts] + [6])
        cw = max([len(c) for c in self.classes] + [5])
        rule = ", ".join(f"{k} {v:g}" for k, v in self.rule.items() if v is not None) or "no threshold"
        lines = [f"Î by {self.editor}, scores by {self.scorer} ({rule}) in {self.root}"]
        lines += [f"weights: {self.weights}", ""] if self.weights else [""]
        head = f"{'prompt':<{w}}  {'class':<{cw}}  {'Î':>5}  {'mean':>6}  {'min':>6}  {'kept':>5}"
        lines += [head, "-" * len(head)]

        def row(p: str, c: str, cell: Cell) -> str:
            return (f"{p:<{w}}  {c:<{cw}}  {cell.total:>5}  {cell.mean:>6.3f}  {cell.min:>6.3f}"
                    f"  {cell.share_kept:>5.0%}")

        for p in self.prompts:
            lines.append(row(p, "(all)", self.by_prompt(p)))
        lines.append("")
        for p in self.prompts:
            for c in self.classes:
                cell = self.cells.get((p, c))
                if cell is not None and cell.total:
                    lines.append(row(p, c, cell))
        return "\n".join(lines) + "\n"


def read_report(path: str | os.PathLike[str]) -> ScoreReport:
    """Read a scored export's manifest and errors.

    Raises:
        ReportError: no manifest, or no scores in it (exported without --score).
        RecordError: a row that breaks the schema (a path that leaves the folder, a field of the
            wrong type, a score out of range, a repeated row), with its file, row and field.
    """
    from .export import folder
    from .export.settings import readable_settings

    root = Path(path).expanduser()
    if not folder.manifest_path(root).is_file():
        raise ReportError(
            "has no manifest", field=str(root),
            hint="Give the output folder of `python -m diffusemix export` (after every shard has finished, or"
            " `python -m diffusemix merge` on it)",
        )
    rows = folder.read_rows(root)  # each row checked: paths inside the folder, types, scores, no repeats
    errors = folder.read_errors(root)
    dropped = [e for e in errors if e.get("kind") == "low-score"]
    if not any(isinstance(r.get("score"), (int, float)) for r in rows + dropped):
        raise ReportError(
            "has no scores", field=str(root),
            hint="Export it with --score dino|clip|clip-label (e.g. `python -m diffusemix export INPUT OUT --score dino"
            " --save-stages`) to measure which prompts keep the label",
        )
    settings, _why = readable_settings(root)  # names only: an unreadable run.json leaves them to the rows
    scoring = settings.get("scorer") or {}
    prompts = [p for p in (settings.get("recipe") or {}).get("prompts", []) if isinstance(p, str)]
    # a row's class: class_name (its label is the class index), or a string label (older exports)
    for r in rows:
        r["label"] = r.get("class_name", r.get("label"))
    source_label = {r["source"]: r["label"] for r in rows if "source" in r and r.get("label") is not None}
    cells: dict[tuple[str, str], Cell] = defaultdict(Cell)
    ranked = []
    where: dict[tuple[str, bool], tuple[Path, int]] = {}
    for n, r in enumerate(rows, 1):
        where[(r["file_name"], True)] = (folder.manifest_path(root), n)
        if isinstance(r.get("score"), (int, float)):
            cells[(r["prompt"], r["label"])].kept.append(float(r["score"]))
            ranked.append((float(r["score"]), r["prompt"], r["label"], r["file_name"], True))
    for n, e in enumerate(errors, 1):
        if isinstance(e.get("file_name"), str):
            where[(e["file_name"], False)] = (folder.errors_path(root), n)
        if e.get("kind") not in ("low-score", "degenerate"):
            continue
        label = (
            e.get("class_name") or e.get("label") or source_label.get(e["source"]) or Path(e["source"]).parent.as_posix()
        )
        if e["kind"] == "degenerate":
            cells[(e["prompt"], label)].blank += 1
        elif isinstance(e.get("score"), (int, float)):
            cells[(e["prompt"], label)].dropped.append(float(e["score"]))
            ranked.append((float(e["score"]), e["prompt"], label, e["file_name"], False))
    for p, _ in cells:
        if p not in prompts:
            prompts.append(p)
    classes = sorted({c for _, c in cells})
    ranked.sort(key=lambda t: (t[0], t[3]))
    name = str(scoring.get("name") or next((r.get("scorer") for r in rows if r.get("scorer")), "scorer"))
    model = scoring.get("model")
    if isinstance(model, str) and os.path.isabs(model):  # a local folder: its name says enough
        model = Path(model).name
    return ScoreReport(
        root=root,
        scorer=f"{name} ({model})" if model else name,
        rule=dict(scoring.get("rule") or {}),
        editor=str((settings.get("editor") or {}).get("name")
                   or next((r.get("editor") for r in rows if r.get("editor")), "unknown")),
        prompts=[p for p in prompts if any(k[0] == p for k in cells)],
        classes=classes,
        cells=dict(cells),
        ranked=ranked,
        cache=bool(rows) and isinstance(rows[0].get("input_file_name"), str),
        where=where,
        weights=weights_text(settings),
    )


def weights_text(settings: dict[str, Any]) -> str:
    """The model and its weights' licence as a run's settings record them (folders made before licences were
    recorded: from the model card of the editor's model, when diffusemix knows it); "" for the preview."""
    editor = settings.get("editor") or {}
    name, model = editor.get("name"), editor.get("model")
    if not name or name == "preview":
        return ""
    record = settings.get("licence")
    if not isinstance(record, dict) and isinstance(model, str):
        from .editors.model_cards import card_for

        card = card_for(model, editor=str(name))
        record = None if card is None else {"model": card.title, "name": card.licence.name,
                                            "commercial_use": card.licence.commercial_use}
    shown = Path(model).name if isinstance(model, str) and os.path.isabs(model) else model
    if not isinstance(record, dict) or not record.get("name"):
        text = f"{name} ({shown}): licence unknown here"
    else:
        allowed = "allowed" if record.get("commercial_use") else "NOT allowed"
        text = f"{record.get('model') or name} ({shown}): {record['name']}, commercial use {allowed}"
    if isinstance(record, dict) and record.get("accepted"):
        text += f"; accepted: {record['accepted']} use of the weights"
    return text


# ---------------------------------------------------------------------------
# the picture


def _heatmap(ax: Any, rep: ScoreReport, classes: list[str]) -> Any:
    mean = np.array([[rep.cells.get((p, c), Cell()).mean for c in classes] for p in rep.prompts], dtype=float)
    kept = np.array([[rep.cells.get((p, c), Cell()).share_kept for c in classes] for p in rep.prompts], dtype=float)
    finite = mean[np.isfinite(mean)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi - lo < 1e-6:
        lo, hi = lo - 0.05, hi + 0.05
    im = ax.imshow(np.ma.masked_invalid(mean), cmap="RdYlGn", vmin=lo, vmax=hi, aspect="auto")
    tilt = len(classes) > 4
    ax.set_xticks(range(len(classes)), classes, rotation=35 if tilt else 0, ha="right" if tilt else "center")
    ax.set_yticks(range(len(rep.prompts)), rep.prompts)
    for i in range(len(rep.prompts)):
        for j in range(len(classes)):
            if np.isfinite(mean[i, j]):
                ax.text(j, i, f"{mean[i, j]:.3f}\n{kept[i, j]:.0%} kept", ha="center", va="center", fontsize=8.5,
                        color="black")
    ax.set_title("mean score per prompt × class, and the share of Î kept", fontsize=11, loc="left")
    return im


def _distribution(ax: Any, rep: ScoreReport) -> None:
    threshold = rep.rule.get("min_score")
    for i, p in enumerate(rep.prompts):
        cell = rep.by_prompt(p)
        rng = np.random.default_rng(i)  # jitter only; the same picture every time
        if cell.scores:
            ax.boxplot([cell.scores], positions=[i], orientation="horizontal", widths=0.6, showfliers=False,
                       medianprops={"color": "black"}, boxprops={"color": "0.5"}, whiskerprops={"color": "0.5"},
                       capprops={"color": "0.5"})
        for vals, colour, label in ((cell.kept, "#2a9d5c", "kept"), (cell.dropped, "#d1495b", "dropped")):
            if vals:
                ax.scatter(vals, i + rng.uniform(-0.22, 0.22, len(vals)), s=14, color=colour, alpha=0.75,
                           label=label if i == 0 or not ax.get_legend_handles_labels()[1].count(label) else None,
                           zorder=3)
        ax.text(1.01, i, f"{cell.share_kept:.0%} kept of {cell.total}", transform=ax.get_yaxis_transform(),
                va="center", fontsize=9)
    if threshold is not None:
        ax.axvline(threshold, color="#d1495b", ls="--", lw=1.2, label=f"threshold {threshold:g}")
    ax.set_yticks(range(len(rep.prompts)), rep.prompts)
    ax.set_ylim(len(rep.prompts) - 0.5, -0.5)
    ax.set_xlabel(f"score ({rep.scorer})")
    ax.set_title("score distribution per prompt (all classes)", fontsize=11, loc="left")
    handles, labels = ax.get_legend_handles_labels()
    seen: dict[str, Any] = {}
    for h, lab in zip(handles, labels):
        seen.setdefault(lab, h)
    if seen:
        ax.legend(seen.values(), seen.keys(), loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(seen),
                  fontsize=8.5, frameon=False)
    ax.grid(axis="x", alpha=0.3)


def _contact_sheet(fig: Any, spec: Any, rep: ScoreReport, n: int) -> None:
    from .images import open_image

    lowest = [t for t in rep.ranked if rep.stage_file(t[3], t[4]).is_file()][:n]
    if not lowest:
        ax = fig.add_subplot(spec)
        ax.axis("off")
        ax.text(0.0, 0.5, "No contact sheet: the lowest-scoring Î are not on disk. Export with --save-stages\n"
                "(Î goes to stages/generated, dropped Î to stages/rejected) to see them here.",
                fontsize=10, va="center", transform=ax.transAxes)
        return
    import textwrap

    sub = spec.subgridspec(1, n, wspace=0.08)
    for k in range(n):
        ax = fig.add_subplot(sub[0, k])
        ax.axis("off")
        if k >= len(lowest):
            continue
        score, prompt, label, name, kept = lowest[k]
        path = rep.stage_file(name, kept)
        fail = lambda reason, path=path: ReportError(f"{reason}; the contact sheet cannot draw it", field=str(path))  # noqa: E731
        with open_image(path, fail=fail) as im:  # a regular file, not a header bomb
            ax.imshow(np.asarray(im.convert("RGB")))
        words = textwrap.shorten(f"“{prompt}” · {label}", 40, placeholder="…")
        ax.set_title(f"{score:.3f} {'kept' if kept else 'dropped'}\n" + "\n".join(textwrap.wrap(words, 16)[:2]),
                     fontsize=8, color="black" if kept else "#d1495b")



def draw_report(rep: ScoreReport, path: str | os.PathLike[str], *, lowest: int = 8) -> Path:
    """Draw the report picture (PNG, or any format matplotlib writes by extension)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    classes = rep.classes
    note = ""
    if len(classes) > MAX_CLASSES_DRAWN:
        worst = sorted(classes, key=lambda c: np.nanmean([rep.cells.get((p, c), Cell()).mean for p in rep.prompts]))
        classes = sorted(worst[:MAX_CLASSES_DRAWN])
        note = f" (the {MAX_CLASSES_DRAWN} classes of {len(rep.classes)} with the lowest mean; all in the table)"
    n_p = max(len(rep.prompts), 1)
    width = max(11.0, 1.1 * len(classes) + 3.5)
    heights = [0.55 * n_p + 1.6, 0.5 * n_p + 1.4, 0.55, width / max(lowest, 1) * 0.72 + 0.2]
    title_in = 1.0 + (0.3 if rep.weights else 0.0)  # inches for the title: two lines, three with the weights
    total = sum(heights) + 0.6 + title_in
    fig = plt.figure(figsize=(width, total), dpi=110)
    top = 1 - title_in / total  # a fixed room for the title, whatever the figure's height
    grid = fig.add_gridspec(4, 1, height_ratios=heights, hspace=0.42, left=0.16, right=0.86, top=top, bottom=0.02)
    rule = ", ".join(f"{k} {v:g}" for k, v in rep.rule.items() if v is not None) or "no threshold"
    made_by = "the preview editor (NOT a diffusion model)" if rep.editor == "preview" else rep.editor
    weights = f"\nweights: {rep.weights}" if rep.weights else ""
    fig.suptitle(f"Which prompts keep the label?  {rep.root.name}\nÎ by {made_by}; scored by {rep.scorer};"
                 f" rule: {rule}{note}{weights}", fontsize=11.5, x=0.02, ha="left")
    ax = fig.add_subplot(grid[0])
    im = _heatmap(ax, rep, classes)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01, label="mean score")
    _distribution(fig.add_subplot(grid[1]), rep)
    head = fig.add_subplot(grid[2])
    head.axis("off")
    head.text(0.0, 0.0, f"the {lowest} lowest-scoring Î on disk (red: dropped by the rule; black: kept)", fontsize=11,
              transform=head.transAxes, va="bottom")
    _contact_sheet(fig, grid[3], rep, lowest)
    out = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=out.suffix.lstrip(".").lower() or "png", metadata={"Software": "diffusemix report"})
    plt.close(fig)
    _write(rep.root, out, buf.getvalue())
    return out


def _write(root: Path, path: Path, data: bytes) -> None:
    """Write a report file: inside the export through its folder's guard (never through a link that
    leads out of it: the folder may have come from elsewhere), elsewhere where the user said."""
    from .export import folder

    path.parent.mkdir(parents=True, exist_ok=True)
    inside, where = os.path.realpath(root), os.path.realpath(path.parent)
    if where == inside or where.startswith(inside.rstrip(os.sep) + os.sep):
        folder.write_file(root, path, data, tag=folder.temp_tag((0, 0)))
    else:
        path.write_bytes(data)


def write_report(
    export_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *, lowest: int = 8
) -> tuple[Path, Path, str]:
    """Read an export, write ``report.png`` and ``report.txt`` (next to ``out``, default in the export).

    Returns:
        (picture path, table path, table text).
    """
    if isinstance(lowest, bool) or not isinstance(lowest, int) or not 1 <= lowest <= 32:
        raise DiffuseMixError(f"lowest (--lowest) must be an integer in [1, 32]; got {lowest!r}")
    rep = read_report(export_dir)
    png = Path(out) if out is not None else rep.root / "report.png"
    on_disk = [rep.stage_file(t[3], t[4]).is_file() for t in rep.ranked]  # every path checked before drawing
    draw_report(rep, png, lowest=lowest)
    text = rep.table()
    if not any(on_disk):
        text += "\nnote: no contact sheet of the lowest-scoring Î: export with --save-stages to keep Î on disk\n"
    elif not all(on_disk):
        where = ("a cache does not keep them" if rep.cache else "export with --save-stages to keep them")
        text += f"\nnote: the contact sheet shows only the Î on disk, not the dropped ones ({where}; an export with" \
                " --save-stages keeps them in stages/rejected)\n"
    txt = png.with_suffix(".txt")
    _write(rep.root, txt, text.encode("utf-8"))
    return png, txt, text
