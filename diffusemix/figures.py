"""The stage grid as a publication figure (matplotlib, no pyplot).

One row per sample, one column per stage, in the method's order::

            I input   Î generated   M mask   H hybrid   F fractal   A augmented
    "snowy"  [ ]        [ ]          [ ]       [ ]        [ ]         [ ]
    λ=0.20 · left

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas, so
nothing touches pyplot's global state (safe in a web server and in threads).
Axes are placed by hand, not by ``tight_layout``: the layout is the same for
any number of rows, and a figure of n rows is exactly n cells tall plus its
header.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import DiffuseMixError
from .engine import STAGE_NAMES, STAGE_SYMBOLS, Stages

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["stage_grid", "save_figure", "stage_label", "sample_label", "FIGURE_FORMATS", "PREVIEW_TITLE"]

#: File formats ``save_figure`` writes, by file suffix.
FIGURE_FORMATS: tuple[str, ...] = ("png", "pdf", "svg")

#: The stage symbols as matplotlib mathtext, for column headers set like the paper's.
_MATH_SYMBOLS: dict[str, str] = {
    "input": r"$I$",
    "generated": r"$\hat{I}$",
    "mask": r"$M$",
    "hybrid": r"$H$",
    "fractal": r"$F$",
    "augmented": r"$A$",
}

#: Added to the title of a figure whose Î comes from the preview editor.
PREVIEW_TITLE = "Î from the preview editor: colour filters, not a diffusion model"

# Layout, in inches.
_CELL = 1.45  # side of one stage image
_GAP = 0.06  # between images
_LABEL_W = 1.35  # row label column at the left
_HEADER_H = 0.42  # column headers at the top
_TITLE_H = 0.34  # extra room for a title
_MARGIN = 0.06


def stage_label(name: str, editor: str | None = None) -> str:
    """A column header: the stage's symbol and name, e.g. ``"Î  generated"``.

    The generated column names the editor when given (``"Î  generated (preview)"``).
    """
    if name not in STAGE_SYMBOLS:
        raise DiffuseMixError(f"unknown stage {name!r}; stages are {', '.join(STAGE_NAMES)}")
    label = f"{STAGE_SYMBOLS[name]}  {name}"
    if name == "generated" and editor:
        label += f" ({editor})"
    return label


def sample_label(stages: Stages) -> str:
    """A row label: the prompt, then λ and the mask layout (and a warning if Î is degenerate)."""
    r = stages.record
    lines = textwrap.wrap(f"“{r.prompt}”", 22) or ["“”"]
    if len(lines) > 2:
        lines = [lines[0], lines[1][:21] + "…”"]
    mask = f"{r.mask} {r.seam} px" if r.mask != "binary" else r.mask
    text = "\n".join(lines) + f"\nλ = {r.lam:.2f} · {r.layout}\n{mask}"
    if stages.degenerate:
        text += "\n(Î degenerate)"
    return text


def stage_grid(
    stages: Sequence[Stages],
    *,
    title: str | None = None,
    editor: str | None = None,
    columns: Sequence[str] = STAGE_NAMES,
) -> Figure:
    """Draw the stages of several samples as a grid: rows = samples, columns = stages.

    Args:
        stages: the samples, e.g. what ``engine.augment`` returns (one per prompt).
        title: an optional title above the grid.
        editor: the editor's name, shown in the Î column header (default:
            the one the stages record, when they all name the same).
            When Î was made by the preview editor, the title says so (a
            figure made with a stand-in must not pass for the method's).
        columns: which stages to show, in order (default: all six).

    Returns:
        A ``matplotlib.figure.Figure`` (Agg canvas, not registered with pyplot);
        save it with :func:`save_figure`.
    """
    # 1. check inputs
    from matplotlib.figure import Figure

    if not stages:
        raise DiffuseMixError("stage_grid needs at least one sample (got an empty sequence)")
    columns = tuple(columns)
    if not columns:
        raise DiffuseMixError("columns must name at least one stage")
    for c in columns:
        if c not in STAGE_NAMES:
            raise DiffuseMixError(f"unknown stage {c!r} in columns; stages are {', '.join(STAGE_NAMES)}")
    for k, s in enumerate(stages):
        if not isinstance(s, Stages):
            raise DiffuseMixError(f"stages[{k}] must be a Stages; got {type(s).__name__}")
    recorded = {s.editor for s in stages}
    if editor is None and len(recorded) == 1:
        editor = recorded.pop()
    heads = [title] if title else []
    if editor == "preview" or "preview" in recorded:
        heads.append(PREVIEW_TITLE)

    # 2. the figure's size, from the number of rows and columns
    rows, cols = len(stages), len(columns)
    top = _MARGIN + _HEADER_H + _TITLE_H * len(heads)
    width = _MARGIN + _LABEL_W + cols * _CELL + (cols - 1) * _GAP + _MARGIN
    height = top + rows * _CELL + (rows - 1) * _GAP + _MARGIN
    fig = Figure(figsize=(width, height))
    fig.patch.set_facecolor("white")

    def box(x: float, y: float, w: float, h: float) -> list[float]:
        """Inches from the top-left corner to figure fractions."""
        return [x / width, 1.0 - (y + h) / height, w / width, h / height]

    # 3. title and column headers
    for k, head in enumerate(heads):
        fig.text(0.5, 1.0 - (_MARGIN + _TITLE_H * (k + 0.45)) / height, head, ha="center", va="center",
                 fontsize=11 if head is title else 9.5, fontweight="bold" if head is title else "normal",
                 color="black" if head is title else "#b00020", parse_math=False)
    x0 = _MARGIN + _LABEL_W
    for j, name in enumerate(columns):
        cx = x0 + j * (_CELL + _GAP) + _CELL / 2
        header = _MATH_SYMBOLS[name] + stage_label(name, editor)[len(STAGE_SYMBOLS[name]):]
        fig.text(cx / width, 1.0 - (top - 0.1) / height, header, ha="center", va="bottom", fontsize=9)

    # 4. one row per sample: its label, then its stage images
    for i, s in enumerate(stages):
        y = top + i * (_CELL + _GAP)
        fig.text((_MARGIN + _LABEL_W - 0.1) / width, 1.0 - (y + _CELL / 2) / height, sample_label(s), ha="right",
                 va="center", fontsize=7.5, linespacing=1.35, color="#b00020" if s.degenerate else "black",
                 parse_math=False)  # a prompt is plain text, even with "$" in it
        for j, name in enumerate(columns):
            ax = fig.add_axes(box(x0 + j * (_CELL + _GAP), y, _CELL, _CELL))
            if name == "mask":
                ax.imshow(s.mask, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            else:
                ax.imshow(getattr(s, name), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_linewidth(0.4)
                spine.set_color("#888888")
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = 200) -> Path:
    """Write a figure to PNG, PDF or SVG, chosen by the file's suffix.

    Args:
        fig: a figure from :func:`stage_grid` (any matplotlib Figure works).
        path: where to write; its suffix (``.png``, ``.pdf``, ``.svg``) picks
            the format. Its folder must exist.
        dpi: resolution of raster output (and of images inside a PDF).

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FIGURE_FORMATS:
        raise DiffuseMixError(f"cannot tell the figure format from {path.name!r}; use a .png, .pdf or .svg file name")
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not 10 <= dpi <= 1200:
        raise DiffuseMixError(f"dpi must be an integer in [10, 1200]; got {dpi!r}")
    if not path.parent.is_dir():
        raise DiffuseMixError(f"folder {str(path.parent)!r} does not exist; create it before saving the figure")
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    metadata = {"Creator": "diffusemix"} if fmt in ("pdf", "svg") else {"Software": "diffusemix"}
    fig.savefig(path, format=fmt, dpi=dpi, facecolor="white", metadata=metadata)
    return path
