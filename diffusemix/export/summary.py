"""Step 5, report: what an export did (:class:`ExportSummary`) and the notes it adds."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from . import folder

if TYPE_CHECKING:  # pragma: no cover
    from ..fractals import FractalSet


@dataclass
class ExportSummary:
    """What an export did."""

    made: int
    skipped_done: int
    failed: list[tuple[str, str]]  # (source, reason) for input images that could not be read
    degenerate: int  # samples whose Î stayed blank after the editor's retries (not written)
    seconds: float
    output_dir: Path
    manifest: Path | None  # None while other shards have not finished
    label_mode: str
    classes: tuple[str, ...]
    shard: tuple[int, int]
    pending_shards: list[tuple[int, int]] = field(default_factory=list)
    cancelled: bool = False
    editor: str = ""
    notes: list[str] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (path, why) of files that are not inputs
    preview: bool = False  # Î came from the preview editor (a stand-in): the head line says so
    rejected: int = 0  # samples whose Î failed the score rule after every retry (not written)
    scores: dict[str, tuple[float, int, int]] = field(default_factory=dict)  # prompt -> (mean, scored, dropped)
    scorer: str = ""  # what scored Î, and the rule (empty: no scores)
    empty_classes: tuple[str, ...] = ()  # class folders that hold no usable image (left out)
    licence: str = ""  # the editor's weights and their licence (and its acceptance); empty for the preview

    @property
    def images_per_second(self) -> float:
        return self.made / self.seconds if self.seconds > 0 else 0.0

    def format(self, *, resume_hint: bool = True) -> str:
        """The summary as text; ``resume_hint=False`` leaves out how to resume from the command line
        (a shell that resumes its own way, such as the app)."""
        head = "DiffuseMix export " + ("cancelled" if self.cancelled else "finished")
        head += f" in {self.seconds:.1f} s"
        if self.shard[1] > 1:
            head += f" (shard {self.shard[0]}/{self.shard[1]})"
        if self.preview:
            head += " with the PREVIEW editor: a preview dataset (Î from colour filters, not a diffusion model)"
        labels = self.label_mode
        if labels == "class folders":
            cls = ", ".join(self.classes[:8]) + (", ..." if len(self.classes) > 8 else "")
            labels = f"class folders, {len(self.classes)} classes ({cls})"
        lines = [
            head,
            f"  made:             {self.made} image(s)"
            + (f" ({self.images_per_second:.1f} images/s)" if self.made else ""),
            f"  skipped as done:  {self.skipped_done}",
            f"  failed inputs:    {len(self.failed)}",
        ]
        for src, reason in self.failed[:10]:
            lines.append(f"    {src}: {reason}")
        if len(self.failed) > 10:
            lines.append(f"    ... and {len(self.failed) - 10} more")
        if self.ignored:
            lines.append(f"  ignored files:    {len(self.ignored)} (not usable as inputs; why below)")
            for src, reason in self.ignored[:5]:
                lines.append(f"    {src}: {reason}")
            if len(self.ignored) > 5:
                lines.append(f"    ... and {len(self.ignored) - 5} more")
        lines.append(f"  degenerate:       {self.degenerate} (blank generated images, not written)")
        if self.scorer:
            lines.append(f"  low score:        {self.rejected} (generated images below the rule, not written)")
            lines.append(f"  scorer:           {self.scorer}")
            width = max([len(p) for p in self.scores] + [6])
            for p, (mean, n, dropped) in self.scores.items():
                lines.append(f"    {p:<{width}}  mean score {mean:.3f}  dropped {dropped}/{n} ({dropped / n:.0%})")
        if self.failed or self.degenerate or self.ignored or self.rejected:
            lines.append(f"  errors listed in: {folder.errors_path(self.output_dir)}")
        lines.append(f"  labels:           {labels}")
        if self.empty_classes:
            lines.append(f"  empty class folders left out: {', '.join(self.empty_classes)}")
        if self.editor:
            lines.append(f"  editor:           {self.editor}")
        if self.licence:
            lines.append(f"  licence:          {self.licence}")
        lines.append(f"  output:           {self.output_dir}")
        if self.manifest is not None:
            lines.append(f"  manifest:         {self.manifest}")
        elif self.cancelled:
            lines.append("  manifest:         not written" + ("; run the same command again to resume" if resume_hint
                                                               else ""))
        else:
            waiting = ", ".join(f"{i}/{n}" for i, n in self.pending_shards)
            lines.append(
                f"  manifest:         written when the other shards finish (waiting for {waiting}), "
                f"or run `python -m diffusemix merge {self.output_dir}`"
            )
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


#: The words 🤗 datasets reads as split names (``datasets.data_files.SPLIT_KEYWORDS``, 5.2.0), and the
#: characters that bound them (``NON_WORDS_CHARS``): matched case-sensitively, as its glob patterns are.
_SPLIT_WORDS = ("train", "training", "validation", "valid", "dev", "val", "test", "testing", "eval", "evaluation")
_SEP = "-._ 0-9"
_IN_DIR = re.compile(rf"(?:^|[{_SEP}])(?:{'|'.join(_SPLIT_WORDS)})(?:[{_SEP}]|$)")
_IN_FILE = re.compile(rf"(?:^|[{_SEP}])(?:{'|'.join(_SPLIT_WORDS)})[{_SEP}]")


def has_split_word(name: str) -> bool:
    """Whether ``load_dataset("imagefolder", data_dir=...)`` would read this path (relative, POSIX) as part
    of a split: a folder named with a split word between separators (``val``, ``cat_test``), or a file name
    holding one (``cat_train_0.png``), as datasets 5.2's default patterns match them."""
    *dirs, file = name.split("/")
    return any(_IN_DIR.search(d) for d in dirs) or bool(_IN_FILE.search(file))


def split_name_note(names: Iterable[str], out: Path) -> list[str]:
    """A note when some output paths would make ``load_dataset("imagefolder", data_dir=OUTPUT)`` guess splits
    (and leave out the manifest): ``load_dataset(OUTPUT)`` reads the card, which names the files."""
    hits = []
    for name in names:
        if has_split_word(name):
            hits.append(name)
            if len(hits) == 3:
                break
    if not hits:
        return []
    return [
        f"some file or class names hold a split word ({', '.join(hits)}{', ...' if len(hits) == 3 else ''}): "
        f"load_dataset('imagefolder', data_dir='{out}') would read them as splits and leave out "
        f"{folder.MANIFEST_NAME}'s columns; load_dataset('{out}') reads {folder.CARD_NAME}, which names the files"
        " (label is a ClassLabel there too)"
    ]


def orphans_note(orphans: int) -> list[str]:
    """A note when earlier output files are no longer planned (they stay on disk)."""
    if not orphans:
        return []
    return [
        f"{orphans} earlier output file(s) no longer match an input image (inputs removed or renamed,"
        " or names changed by a new file with the same stem); they stay on disk but are left out of"
        f" {folder.MANIFEST_NAME}"
    ]


def fractals_note(fractals: "FractalSet") -> list[str]:
    """A note when the fractal set left out files it could not read (``FractalSet.skipped``)."""
    if not fractals.skipped:
        return []
    return [f"fractal set: {fractals.summary()}; those files were left out, replace or remove them"]
