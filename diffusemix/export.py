"""Batch export: a label-preserving augmented copy of an image dataset.

scan → plan → shard → skip done → generate → mix → write, streaming:

1. ``scan_input`` finds the images: ``INPUT/<class>/.../<image>`` as
   torchvision's ImageFolder reads it (classes are the sorted subfolder
   names, images are found recursively inside them, hidden files are
   ignored), or a flat folder of images with one label, the folder's name.
2. The plan is every (image, prompt, copy) in a fixed order: images by
   (class, path), then the recipe's prompts, then copies. Sample ``k`` of the
   plan belongs to shard ``k % N``, so shards balance and never share a file.
3. The shard's samples are cut into fixed chunks of ``batch_size`` samples (the
   same chunks on every run, so a resumed run makes the same editor batches
   as an uninterrupted one). A chunk whose samples are all finished is
   skipped; the others are decoded ahead of time on worker threads, sent to
   the editor in one call, and mixed, encoded and written by worker threads,
   with a bounded number of chunks in flight: memory stays constant.
4. Each finished sample's row goes to the shard's journal after its files
   are in place; when every shard has finished, the journals are merged into
   ``OUTPUT/metadata.jsonl`` in plan order (see :mod:`diffusemix.manifest`).

The command line (``python -m diffusemix export``) is a thin shell over
:func:`plan_export` and :func:`export_dataset`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import re
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from . import manifest
from .engine import apply_record, generate
from .errors import Cancelled, DiffuseMixError, ImageError
from .manifest import DEGENERATE_KEY, merge_manifests
from .recipe import Recipe, SampleRecord, draw

if TYPE_CHECKING:  # pragma: no cover
    from .editors.base import CancelToken, Editor
    from .fractals import FractalSet

__all__ = [
    "ExportOptions",
    "ExportPlan",
    "ExportSummary",
    "InputScan",
    "ImageEntry",
    "FORMATS",
    "scan_input",
    "plan_export",
    "export_dataset",
    "merge_manifests",
    "detect_shard",
    "parse_shard",
]

#: Output formats and their file extensions.
FORMATS: dict[str, str] = {"png": ".png", "jpeg": ".jpg"}
#: Stages written by ``save_stages`` (all but A, which is the output itself).
SAVED_STAGES: tuple[str, ...] = ("input", "generated", "mask", "hybrid", "fractal")
#: Editor description keys that do not change pixels (left out of run.json and the manifest).
_NON_PIXEL_EDITOR_KEYS = frozenset({"device", "batch_size", "notice", "summary"})
#: PNG text key in a saved Î holding the seed actually used (read by reuse_generated).
_GENERATED_META_KEY = "diffusemix"
_SETTINGS_VERSION = 1


# ---------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------


def _opt_err(name: str, value: Any, what: str) -> ValueError:
    return ValueError(f"ExportOptions.{name} {what}; got {value!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


@dataclass(frozen=True)
class ExportOptions:
    """How an export is written (the method's settings are the :class:`Recipe`)."""

    # Output file format: "png" (lossless, the default) or "jpeg".
    format: str = "png"
    # JPEG quality, 1..100 (ignored for PNG).
    quality: int = 95
    # Also write I, Î, M, H, F as PNG under OUTPUT/stages/<stage>/<same path>.
    save_stages: bool = False
    # Read Î from OUTPUT/stages/generated/... where saved instead of calling the editor.
    reuse_generated: bool = False
    # This process's share of the work: samples k with k % shard_count == shard_index.
    shard_index: int = 0
    shard_count: int = 1
    # Samples per editor call.
    batch_size: int = 8
    # CPU threads for decoding, and as many again for mixing, encoding and writing.
    workers: int = 2

    def __post_init__(self) -> None:
        fmt = self.format.lower() if isinstance(self.format, str) else self.format
        if fmt == "jpg":
            fmt = "jpeg"
        if fmt not in FORMATS:
            raise _opt_err("format", self.format, f"must be one of {', '.join(FORMATS)}")
        object.__setattr__(self, "format", fmt)
        if not _is_int(self.quality) or not 1 <= self.quality <= 100:
            raise _opt_err("quality", self.quality, "must be an integer in [1, 100]")
        for name in ("save_stages", "reuse_generated"):
            if not isinstance(getattr(self, name), bool):
                raise _opt_err(name, getattr(self, name), "must be True or False")
        if not _is_int(self.shard_count) or self.shard_count < 1:
            raise _opt_err("shard_count", self.shard_count, "must be an integer >= 1")
        if not _is_int(self.shard_index) or not 0 <= self.shard_index < self.shard_count:
            raise _opt_err("shard_index", self.shard_index, f"must be an integer in [0, {self.shard_count - 1}]")
        if not _is_int(self.batch_size) or not 1 <= self.batch_size <= 4096:
            raise _opt_err("batch_size", self.batch_size, "must be an integer in [1, 4096]")
        if not _is_int(self.workers) or not 1 <= self.workers <= 64:
            raise _opt_err("workers", self.workers, "must be an integer in [1, 64]")

    @property
    def shard(self) -> tuple[int, int]:
        return (int(self.shard_index), int(self.shard_count))

    @property
    def extension(self) -> str:
        return FORMATS[self.format]


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` → (I, N) with 0 <= I < N; a ValueError that says the syntax otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if m is None:
        raise ValueError(f"--shard must look like I/N, e.g. 0/2 for the first of two shards; got {text!r}")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard I/N needs N >= 1 and 0 <= I < N (shards count from 0); got {text!r}")
    return i, n


_ACCELERATE_ENV = ("ACCELERATE_MIXED_PRECISION", "ACCELERATE_DYNAMO_BACKEND", "ACCELERATE_USE_CPU")


def detect_shard() -> tuple[int, int, str | None] | None:
    """(process index, process count, device) under ``accelerate launch``, else None.

    ``accelerate.PartialState`` is created only when accelerate's launcher
    variables are in the environment, so a plain run never initialises
    torch.distributed. When the launcher started several processes (``RANK``
    and ``WORLD_SIZE`` set, e.g. by torchrun) but accelerate sees only one
    (a CPU machine without ``--cpu``), the shard comes from those variables,
    so two processes never do the same shard.
    """
    if not any(k in os.environ for k in _ACCELERATE_ENV):
        return None
    from accelerate import PartialState

    cpu = os.environ.get("ACCELERATE_USE_CPU", "").strip().lower() in ("1", "true", "yes")
    state = PartialState(cpu=cpu)
    index, count = int(state.process_index), int(state.num_processes)
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if count == 1 and world > 1:
        index, count = int(os.environ.get("RANK", "0") or 0), world
    return index, count, str(state.device)


# ---------------------------------------------------------------------------
# scanning the input
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageEntry:
    """One input image.

    Attributes:
        path: the file.
        source: its path relative to INPUT (POSIX), the key of its records.
        label: its class name (the folder's name in flat mode).
        out_stem: output path relative to OUTPUT without the ``_<prompt>_<copy>.<ext>`` end.
    """

    path: Path
    source: str
    label: str
    out_stem: str


@dataclass(frozen=True)
class InputScan:
    """What ``scan_input`` found."""

    root: Path
    entries: tuple[ImageEntry, ...]
    classes: tuple[str, ...]
    flat: bool
    # (source, reason) for files that are not images or not in a class folder
    ignored: tuple[tuple[str, str], ...] = ()
    # class folders that hold no image (left out, as ImageFolder would fail on them)
    empty_classes: tuple[str, ...] = ()

    @property
    def label_mode(self) -> str:
        if self.flat:
            return f"flat folder, one label {self.classes[0]!r}"
        return "class folders"


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:n]


def _walk_images(root: Path, top: Path) -> tuple[list[Path], list[Path]]:
    """Image files and other files below ``top`` (recursive, following links, no hidden)."""
    images, others = [], []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        for name in sorted(filenames):
            if _hidden(name):
                continue
            p = Path(dirpath) / name
            (images if _is_image_name(name) else others).append(p)
    return images, others


def _is_image_name(name: str) -> bool:
    from .images import IMAGE_EXTENSIONS

    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _not_image_reason(name: str) -> str:
    from .images import IMAGE_EXTENSIONS

    ext = os.path.splitext(name)[1].lower() or "(none)"
    return f"not an image file: extension {ext} is not one of {', '.join(sorted(IMAGE_EXTENSIONS))}"


def _out_stems(items: Sequence[tuple[Path, str, str, str]]) -> list[str]:
    """Deterministic, unique output stems for (path, source, label, folder) items.

    The stem is ``<folder>/<file stem>``; files whose stems collide in one
    folder (``a.jpg`` and ``a.png``, or ``A.png`` and ``a.png`` on a
    case-insensitive disk) get ``-<hash of the source path>`` appended.
    """

    def base(item: tuple[Path, str, str, str]) -> str:
        stem = Path(item[1]).stem
        if len(stem) > 150:
            stem = stem[:120] + "-" + _short_hash(stem)
        return stem

    groups: dict[tuple[str, str], int] = {}
    for it in items:
        key = (it[3].casefold(), base(it).casefold())
        groups[key] = groups.get(key, 0) + 1
    out = []
    for it in items:
        stem = base(it)
        if groups[(it[3].casefold(), stem.casefold())] > 1:
            stem = f"{stem}-{_short_hash(it[1])}"
        out.append(f"{it[3]}/{stem}" if it[3] else stem)
    return out


def scan_input(input_dir: str | os.PathLike[str]) -> InputScan:
    """Find the images of a class-folder or flat dataset, in plan order.

    Class-folder mode (any non-hidden subfolder holds an image): classes are
    the sorted subfolder names; images are found recursively in each, by
    extension (``images.IMAGE_EXTENSIONS``); hidden files and folders are
    ignored; files at the top level are listed as ignored. Flat mode: the
    images at the top level, one label (the folder's name).

    Raises:
        DiffuseMixError: the folder does not exist, is a file, or holds no image.
    """
    root = Path(input_dir)
    if not root.exists():
        raise DiffuseMixError(f"input folder {root} does not exist; pass the folder of your dataset")
    if not root.is_dir():
        raise DiffuseMixError(f"input {root} is a file, not a folder; pass the folder of your dataset")
    from .images import IMAGE_EXTENSIONS

    try:
        children = sorted((c for c in os.scandir(root) if not _hidden(c.name)), key=lambda c: c.name)
    except OSError as e:
        raise DiffuseMixError(f"input folder {root} cannot be read: {e.strerror or e}") from None
    subdirs = [c for c in children if c.is_dir()]
    top_files = [c for c in children if not c.is_dir()]

    # 1. class folders
    per_class: list[tuple[str, list[Path], list[Path]]] = []
    for d in subdirs:
        imgs, others = _walk_images(root, Path(d.path))
        per_class.append((d.name, imgs, others))
    ignored: list[tuple[str, str]] = []
    items: list[tuple[Path, str, str, str]] = []  # (path, source, label, out folder)
    if any(imgs for _, imgs, _ in per_class):
        classes = tuple(name for name, imgs, _ in per_class if imgs)
        empty = tuple(name for name, imgs, _ in per_class if not imgs)
        for name, imgs, others in per_class:
            for p in imgs:
                src = p.relative_to(root).as_posix()
                items.append((p, src, name, str(Path(src).parent.as_posix())))
            for p in others:
                ignored.append((p.relative_to(root).as_posix(), _not_image_reason(p.name)))
        for c in top_files:
            ignored.append((c.name, "not inside a class folder (INPUT/<class>/<image>); ignored"))
        flat = False
    # 2. a flat folder
    else:
        label = root.resolve().name or "images"
        for c in top_files:
            if _is_image_name(c.name):
                items.append((Path(c.path), c.name, label, ""))
            else:
                ignored.append((c.name, _not_image_reason(c.name)))
        classes, empty, flat = (label,), (), True
    if not items:
        raise DiffuseMixError(
            f"no images found in {root}: expected INPUT/<class>/<image> (class folders) or images directly "
            f"in INPUT (a flat folder), with extensions {', '.join(sorted(IMAGE_EXTENSIONS))}"
        )
    items.sort(key=lambda it: manifest.image_sort_key(it[2], it[1]))
    stems = _out_stems(items)
    entries = tuple(
        ImageEntry(path=p, source=s, label=lab, out_stem=st) for (p, s, lab, _), st in zip(items, stems, strict=True)
    )
    ignored.sort(key=lambda e: tuple(e[0].split("/")))
    return InputScan(
        root=root, entries=entries, classes=tuple(classes), flat=flat, ignored=tuple(ignored), empty_classes=empty
    )


# ---------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------


def prompt_slugs(prompts: Sequence[str]) -> dict[str, str]:
    """File-name-safe, unique slugs for prompts: ``"watercolor art"`` → ``"watercolor-art"``.

    Slugs hold no underscore, so ``<stem>_<slug>_<copy>`` names never collide;
    prompts whose slugs would coincide get ``-<hash>`` appended.
    """
    raw = {}
    for p in prompts:
        s = re.sub(r"[\W_]+", "-", p.casefold()).strip("-")[:40].strip("-")
        raw[p] = s or "prompt"
    counts: dict[str, int] = {}
    for s in raw.values():
        counts[s] = counts.get(s, 0) + 1
    return {p: (s if counts[s] == 1 else f"{s}-{_short_hash(p, 6)}") for p, s in raw.items()}


#: Folder names that Hugging Face ``datasets`` reads as split names.
_SPLIT_WORDS = frozenset(
    {"train", "training", "test", "testing", "eval", "evaluation", "valid", "validation", "val", "dev"}
)


def _split_name_note(scan: InputScan, out: Path) -> list[str]:
    """A hint when class names would be taken for splits by ``load_dataset(data_dir=...)``."""
    clash = (
        [c for c in scan.classes if re.split(r"[-._ 0-9]", c.casefold())[0] in _SPLIT_WORDS] if not scan.flat else []
    )
    if not clash:
        return []
    note = (
        f"class folder(s) {', '.join(clash)} look like split names to Hugging Face datasets; load with "
        f"load_dataset('imagefolder', data_files={{'train': ['{out}/metadata.jsonl', '{out}/**']}}) "
        "instead of data_dir"
    )
    return [note]


def _check_reserved(scan: InputScan, options: ExportOptions) -> None:
    reserved = {manifest.MANIFEST_NAME, manifest.ERRORS_NAME, "stages"}
    for entry in scan.entries:
        top = entry.out_stem.split("/")[0].casefold()
        if top in reserved and "/" in entry.out_stem:
            raise DiffuseMixError(
                f"class folder {top!r} would clash with the export's own {top!r}; rename that class folder"
            )


# ---------------------------------------------------------------------------
# checks shared by plan and export
# ---------------------------------------------------------------------------


def _check_folders(input_dir: Path, output_dir: Path) -> None:
    inp = input_dir.resolve()
    out = output_dir.resolve()
    if out == inp:
        raise DiffuseMixError(f"output folder {output_dir} is the input folder; choose another output folder")
    if inp in out.parents:
        raise DiffuseMixError(
            f"output folder {output_dir} is inside the input folder {input_dir}; its images would be read "
            "back as input. Choose an output folder outside the input"
        )
    if out.exists() and not out.is_dir():
        raise DiffuseMixError(f"output {output_dir} exists and is a file; choose a folder")
    # the nearest existing ancestor must be writable
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise DiffuseMixError(f"output folder {output_dir} cannot be created: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise DiffuseMixError(f"output folder {output_dir} cannot be written ({probe} is not writable)")


def _check_foreign_output(output_dir: Path) -> None:
    """Refuse a non-empty folder that diffusemix did not make (its files could be overwritten)."""
    if not output_dir.is_dir() or manifest.read_settings(output_dir) is not None:
        return
    foreign = [c.name for c in os.scandir(output_dir) if not _hidden(c.name) and c.name != "stages"]
    if foreign:
        raise DiffuseMixError(
            f"output folder {output_dir} is not empty and was not made by diffusemix export "
            f"(it holds {', '.join(sorted(foreign)[:3])}{', ...' if len(foreign) > 3 else ''}); "
            "choose a new or empty folder"
        )


def _count_for_shard(total: int, shard: tuple[int, int]) -> int:
    i, n = shard
    return max(0, math.ceil((total - i) / n))


def _est_bytes_per_sample(size: int, options: ExportOptions) -> int:
    px = size * size * 3
    a = px * 0.55 if options.format == "png" else px * (0.06 + 0.25 * options.quality / 100)
    stages = px * 0.55 * 4 + size * size * 0.02 if options.save_stages else 0
    return int(a + stages)


# ---------------------------------------------------------------------------
# plan (the dry run)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportPlan:
    """What an export would do; writes nothing."""

    input_dir: Path
    output_dir: Path
    images: int
    classes: tuple[str, ...]
    label_mode: str
    samples: int  # to make in this shard, including those already done
    samples_total: int  # over all shards
    already_done: int  # of this shard's samples
    est_bytes: int  # of the samples still to make
    shard: tuple[int, int]
    recipe: Recipe
    options: ExportOptions
    ignored: tuple[tuple[str, str], ...] = ()
    empty_classes: tuple[str, ...] = ()

    def format(self) -> str:
        r = self.recipe
        cls = ", ".join(self.classes[:8]) + (", ..." if len(self.classes) > 8 else "")
        labels = (
            f"{self.label_mode}"
            if self.label_mode != "class folders"
            else f"class folders, {len(self.classes)} classes ({cls})"
        )
        todo = self.samples - self.already_done
        lines = [
            "DiffuseMix export plan (dry run: nothing was written)",
            f"  input:    {self.input_dir}  [{labels}]",
            f"  images:   {self.images}",
            f"  prompts:  {len(r.prompts)} ({', '.join(r.prompts)}) x {r.images_per_prompt} image(s) per prompt",
            f"  shard:    {self.shard[0]}/{self.shard[1]}",
            f"  output:   {self.output_dir}  ({self.options.format.upper()}, {r.size}x{r.size}"
            + (", with stages" if self.options.save_stages else "")
            + ")",
            (
                f"  would make {todo} image(s) ({self.samples} in this shard, {self.already_done} already done; "
                f"{self.samples_total} over all shards), about {_human_bytes(self.est_bytes)} on disk"
            ),
        ]
        if self.ignored:
            lines.append(f"  ignored:  {len(self.ignored)} file(s) that are not images in class folders")
        if self.empty_classes:
            lines.append(f"  empty class folders left out: {', '.join(self.empty_classes)}")
        return "\n".join(lines)

    __str__ = format


def _human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"  # pragma: no cover


def plan_export(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    recipe: Recipe,
    options: ExportOptions = ExportOptions(),
) -> ExportPlan:
    """Scan, validate and count what :func:`export_dataset` would make (the --dry-run).

    Writes nothing. Counts the samples of this shard already finished in
    ``output_dir`` when it holds an earlier run.

    Raises:
        DiffuseMixError: a missing or empty input, an output inside the input,
            an output that cannot be written.
    """
    inp, out = Path(input_dir), Path(output_dir)
    scan = scan_input(inp)
    _check_folders(inp, out)
    _check_reserved(scan, options)
    total = len(scan.entries) * recipe.samples_per_image
    mine = _count_for_shard(total, options.shard)
    done = 0
    if out.is_dir():
        finished = {r["file_name"] for r in manifest.read_journal_rows(out) if isinstance(r.get("file_name"), str)}
        if finished:
            for s in _iter_samples(scan, recipe, None, options):
                done += s.file_name in finished
    return ExportPlan(
        input_dir=inp,
        output_dir=out,
        images=len(scan.entries),
        classes=scan.classes,
        label_mode=scan.label_mode,
        samples=mine,
        samples_total=total,
        already_done=done,
        est_bytes=(mine - done) * _est_bytes_per_sample(recipe.size, options),
        shard=options.shard,
        recipe=recipe,
        options=options,
        ignored=scan.ignored,
        empty_classes=scan.empty_classes,
    )


# ---------------------------------------------------------------------------
# the summary
# ---------------------------------------------------------------------------


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

    @property
    def images_per_second(self) -> float:
        return self.made / self.seconds if self.seconds > 0 else 0.0

    def format(self) -> str:
        head = "DiffuseMix export " + ("cancelled" if self.cancelled else "finished")
        head += f" in {self.seconds:.1f} s"
        if self.shard[1] > 1:
            head += f" (shard {self.shard[0]}/{self.shard[1]})"
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
            lines.append(f"  ignored files:    {len(self.ignored)} (not images in class folders)")
            for src, reason in self.ignored[:5]:
                lines.append(f"    {src}: {reason}")
            if len(self.ignored) > 5:
                lines.append(f"    ... and {len(self.ignored) - 5} more")
        lines.append(f"  degenerate:       {self.degenerate} (blank generated images, not written)")
        if self.failed or self.degenerate or self.ignored:
            lines.append(f"  errors listed in: {self.output_dir / manifest.ERRORS_NAME}")
        lines.append(f"  labels:           {labels}")
        if self.editor:
            lines.append(f"  editor:           {self.editor}")
        lines.append(f"  output:           {self.output_dir}")
        if self.manifest is not None:
            lines.append(f"  manifest:         {self.manifest}")
        elif self.cancelled:
            lines.append("  manifest:         not written; run the same command again to resume")
        else:
            waiting = ", ".join(f"{i}/{n}" for i, n in self.pending_shards)
            lines.append(
                f"  manifest:         written when the other shards finish (waiting for {waiting}), "
                f"or run `python -m diffusemix merge {self.output_dir}`"
            )
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    __str__ = format


# ---------------------------------------------------------------------------
# samples and chunks
# ---------------------------------------------------------------------------


@dataclass
class _Sample:
    entry: ImageEntry
    record: SampleRecord
    file_name: str  # relative to OUTPUT, POSIX
    done: bool = False
    reuse: Path | None = None  # saved Î to read instead of calling the editor


def _iter_samples(
    scan: InputScan, recipe: Recipe, fractal_names: Sequence[str] | None, options: ExportOptions
) -> Iterator[_Sample]:
    """This shard's samples in plan order (records drawn lazily, one image at a time).

    With ``fractal_names=None`` records are not drawn (the record is a placeholder).
    """
    spi = recipe.samples_per_image
    i, n = options.shard
    slugs = prompt_slugs(recipe.prompts)
    ext = options.extension
    placeholder = SampleRecord("", "", 0, "left", recipe.mask, 0, 0.0, "", 0, recipe.size)
    for idx, entry in enumerate(scan.entries):
        first = idx * spi
        js = [j for j in range(spi) if (first + j) % n == i]
        if not js:
            continue
        records = draw(recipe, entry.source, fractal_names) if fractal_names is not None else None
        for j in js:
            prompt = recipe.prompts[j // recipe.images_per_prompt]
            copy = j % recipe.images_per_prompt
            rec = records[j] if records is not None else placeholder
            yield _Sample(entry, rec, f"{entry.out_stem}_{slugs[prompt]}_{copy}{ext}")


def _chunks(samples: Iterator[_Sample], size: int) -> Iterator[list[_Sample]]:
    chunk: list[_Sample] = []
    for s in samples:
        chunk.append(s)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _stage_path(out: Path, stage: str, file_name: str) -> Path:
    return out / "stages" / stage / Path(file_name).with_suffix(".png")


# ---------------------------------------------------------------------------
# encoding
# ---------------------------------------------------------------------------


def _encode(array: np.ndarray, fmt: str, quality: int, pnginfo: Any = None) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    img = Image.fromarray(array)
    if fmt == "jpeg":
        img.save(buf, format="JPEG", quality=int(quality))
    else:
        img.save(buf, format="PNG", pnginfo=pnginfo)
    return buf.getvalue()


def _generated_meta(rec: SampleRecord) -> dict[str, Any]:
    return {"source": rec.source, "prompt": rec.prompt, "copy": rec.copy, "seed": rec.seed, "attempts": rec.attempts}


def _read_reused(path: Path, rec: SampleRecord, size: int) -> tuple[np.ndarray, SampleRecord] | None:
    """A saved Î and the record with its seed, or None if it is not a usable save of this sample."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            meta = json.loads(im.info.get(_GENERATED_META_KEY, "null") or "null")
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError):
        return None
    if not isinstance(meta, dict) or arr.shape != (size, size, 3):
        return None
    if (meta.get("source"), meta.get("prompt"), meta.get("copy")) != (rec.source, rec.prompt, rec.copy):
        return None
    try:
        seed, attempts = int(meta["seed"]), int(meta["attempts"])
    except (KeyError, TypeError, ValueError):
        return None
    return np.ascontiguousarray(arr), dataclasses.replace(rec, seed=seed, attempts=attempts)


# ---------------------------------------------------------------------------
# run settings
# ---------------------------------------------------------------------------


def _editor_settings(editor: "Editor") -> dict[str, Any]:
    d = dict(editor.describe())
    return {k: v for k, v in d.items() if k not in _NON_PIXEL_EDITOR_KEYS}


def _fractal_digest(fractals: "FractalSet") -> str:
    h = hashlib.sha1()
    folder = Path(getattr(fractals, "folder", "") or ".")
    for name in fractals.names:
        try:
            size = (folder / name).stat().st_size
        except OSError:
            size = -1
        h.update(f"{name}\0{size}\n".encode("utf-8"))
    return h.hexdigest()[:16]


def _run_settings(
    scan: InputScan, recipe: Recipe, editor: "Editor", fractals: "FractalSet", options: ExportOptions
) -> dict[str, Any]:
    from . import __version__

    r = recipe.to_dict()
    settings = {
        "diffusemix": __version__,
        "settings_version": _SETTINGS_VERSION,
        "input": str(scan.root.resolve()),
        "labels": scan.label_mode,
        # what makes Î: changing any of it means a new output folder
        "generation": {
            "size": r["size"],
            "resize": r["resize"],
            "prompts": r["prompts"],
            "images_per_prompt": r["images_per_prompt"],
            "seed": r["seed"],
            "editor": _editor_settings(editor),
        },
        # what makes A from Î: may change with --reuse-generated (a remix)
        "mixing": {
            "layouts": r["layouts"],
            "mask": r["mask"],
            "seam": r["seam"],
            "lam": r["lam"],
            "fractals": {"count": len(fractals.names), "digest": _fractal_digest(fractals)},
            "format": options.format,
            "quality": options.quality if options.format == "jpeg" else None,
        },
    }
    return json.loads(json.dumps(settings))  # tuples -> lists, as read back from run.json


def _adopt_settings(out: Path, new: dict[str, Any], options: ExportOptions, tag: str) -> bool:
    """Write run.json, or check it against an earlier run's. Returns True for a remix.

    Raises:
        DiffuseMixError: the folder was made from another input or with other
            settings (and this is not a --reuse-generated remix).
    """
    old = manifest.read_settings(out)
    if old is None:
        manifest.write_settings(out, new, tag=tag)
        return False
    if old.get("input") != new["input"]:
        raise DiffuseMixError(
            f"output folder {out} was made from another input ({old.get('input')}); "
            "use a new output folder for this input"
        )
    same_gen = old.get("generation") == new["generation"]
    same_mix = old.get("mixing") == new["mixing"]
    if same_gen and same_mix:
        return False
    diff = manifest.settings_diff(old, new)
    shown = "; ".join(d for d in diff if not d.startswith(("diffusemix:", "settings_version:")))[:600]
    if same_gen and options.reuse_generated:
        manifest.clear_all_state(out)
        manifest.write_settings(out, new, tag=tag)
        return True
    hint = ""
    if same_gen:
        hint = " To re-mix it with the saved generated images, add --reuse-generated (reuse_generated=True)."
    raise DiffuseMixError(
        f"output folder {out} was made with other settings ({shown}). Use a new output folder, or run "
        f"with the original settings to resume.{hint}"
    )


# ---------------------------------------------------------------------------
# the export
# ---------------------------------------------------------------------------


class _Writer:
    """Mixes, encodes and writes one sample; appends its journal row last."""

    def __init__(
        self,
        out: Path,
        options: ExportOptions,
        fractals: "FractalSet",
        journal: manifest.Journal,
        editor_name: str,
        editor_settings: str,
        tag: str,
        remix: bool,
    ) -> None:
        self.out, self.options, self.fractals, self.journal = out, options, fractals, journal
        self.editor_name, self.editor_settings, self.tag, self.remix = editor_name, editor_settings, tag, remix
        self._made_dirs: set[Path] = set()
        self._lock = threading.Lock()

    def _mkdir(self, folder: Path) -> None:
        if folder in self._made_dirs:
            return
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._made_dirs.add(folder)

    def _put(self, path: Path, data: bytes) -> None:
        self._mkdir(path.parent)
        manifest.atomic_write(path, data, tag=self.tag)

    def row(self, s: _Sample, rec: SampleRecord) -> dict[str, Any]:
        return {
            "file_name": s.file_name,
            "label": s.entry.label,
            "source": s.entry.source,
            "prompt": rec.prompt,
            "copy": rec.copy,
            "layout": rec.layout,
            "mask": rec.mask,
            "seam": rec.seam,
            "lam": rec.lam,
            "fractal": rec.fractal,
            "seed": rec.seed,
            "attempts": rec.attempts,
            "size": rec.size,
            "editor": self.editor_name,
            "editor_settings": self.editor_settings,
        }

    def __call__(
        self, s: _Sample, image: np.ndarray, generated: np.ndarray, rec: SampleRecord, degenerate: str | None
    ) -> str:
        # 1. a blank Î is reported, never written
        if degenerate is not None:
            self.journal.append({**self.row(s, rec), DEGENERATE_KEY: degenerate})
            return "degenerate"
        # 2. mix
        size = rec.size
        st = apply_record(rec, image, generated, self.fractals.load(rec.fractal, size))
        # 3. stages, then A (so that A's presence means its stages are there too)
        if self.options.save_stages:
            from PIL import PngImagePlugin

            for stage in SAVED_STAGES:
                path = _stage_path(self.out, stage, s.file_name)
                if stage == "generated" and s.reuse is not None and path == s.reuse:
                    continue  # read from there; already in place
                info = None
                if stage == "generated":
                    info = PngImagePlugin.PngInfo()
                    info.add_text(_GENERATED_META_KEY, json.dumps(_generated_meta(rec)))
                arr = st.mask_uint8() if stage == "mask" else getattr(st, stage)
                self._put(path, _encode(arr, "png", 0, info))
        path = self.out / s.file_name
        self._put(path, _encode(st.augmented, self.options.format, self.options.quality))
        if self.remix:  # a format change leaves the other format's file behind
            for ext in FORMATS.values():
                if ext != self.options.extension:
                    path.with_suffix(ext).unlink(missing_ok=True)
            if not self.options.save_stages:  # saved M, H, F of the old mix would contradict the new A
                for stage in ("mask", "hybrid", "fractal"):
                    _stage_path(self.out, stage, s.file_name).unlink(missing_ok=True)
        # 4. the row, last
        self.journal.append(self.row(s, rec))
        return "made"


def _decode_chunk(
    chunk: list[_Sample], recipe: Recipe, reuse: bool
) -> tuple[dict[str, np.ndarray | str], dict[str, tuple[np.ndarray, SampleRecord]]]:
    """I for every image of a chunk (or why it failed), and the reusable Î."""
    from .images import load_image, prepare

    images: dict[str, np.ndarray | str] = {}
    for s in chunk:
        src = s.entry.source
        if src in images:
            continue
        try:
            images[src] = prepare(load_image(s.entry.path), recipe.size, resize=recipe.resize)  # type: ignore[arg-type]
        except ImageError as e:
            images[src] = str(e)
        except (OSError, ValueError) as e:  # anything else Pillow or the disk may raise
            images[src] = f"cannot be used: {e}"
    reused: dict[str, tuple[np.ndarray, SampleRecord]] = {}
    if reuse:
        for s in chunk:
            if s.reuse is not None and isinstance(images.get(s.entry.source), np.ndarray):
                got = _read_reused(s.reuse, s.record, recipe.size)
                if got is not None:
                    reused[s.file_name] = got
    return images, reused


def _reason(src: str, message: str) -> str:
    """An ImageError message without its leading "image '<path>'" (the source is shown beside it)."""
    m = re.match(r"^image '.*?' (.*)$", message, flags=re.S)
    return m.group(1) if m else message


def export_dataset(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    recipe: Recipe,
    editor: "Editor",
    fractals: "FractalSet",
    options: ExportOptions = ExportOptions(),
    progress: Callable[[int, int], None] | None = None,
    cancel: "CancelToken | None" = None,
    progress_bar: bool = True,
) -> ExportSummary:
    """Write the augmented dataset (this shard's part of it) to ``output_dir``.

    Resumable: finished samples are skipped; a killed run leaves no partial
    file, and resuming yields the same files and manifest as an uninterrupted
    run. When the last shard finishes, ``metadata.jsonl`` is written.

    Args:
        input_dir: class folders ``INPUT/<class>/<image>`` or a flat folder.
        output_dir: where ``OUTPUT/<class>/<file>`` and ``metadata.jsonl`` go.
        recipe: the method's settings.
        editor: makes Î (``diffusemix.editors.load_editor``).
        fractals: the set F is drawn from.
        options: format, shard, batch size, workers, stages.
        progress: ``progress(done, total)`` over this run's samples.
        cancel: anything with ``is_set()``; the run stops after the current
            chunk and can be resumed.
        progress_bar: show a tqdm bar (on a terminal).

    Raises:
        DiffuseMixError: bad input or output folders, or an output folder made
            with other settings; raised before any work.
    """
    t0 = time.perf_counter()
    inp, out = Path(input_dir), Path(output_dir)
    shard = options.shard
    tag = manifest.temp_tag(shard)

    # 1. check everything before any work
    scan = scan_input(inp)
    _check_folders(inp, out)
    _check_reserved(scan, options)
    if not fractals.names:
        raise DiffuseMixError("the fractal set has no images; pass a folder of fractal images")
    _check_foreign_output(out)
    settings = _run_settings(scan, recipe, editor, fractals, options)
    editor_settings = json.dumps(
        {k: v for k, v in settings["generation"]["editor"].items() if k != "name"}, sort_keys=True, ensure_ascii=False
    )

    # 2. open the output: settings, this shard's leftovers, its journal
    try:
        out.mkdir(parents=True, exist_ok=True)
        remix = _adopt_settings(out, settings, options, tag)
    except PermissionError as e:
        raise DiffuseMixError(f"output folder {out} cannot be written: {e.strerror or e}") from None
    manifest.clean_temp_files(out, shard)
    manifest.clear_shard_state(out, shard)
    whole = dataclasses.replace(options, shard_index=0, shard_count=1)
    planned = [s.file_name for s in _iter_samples(scan, recipe, None, whole)]
    manifest.write_plan(out, planned, tag=tag)
    planned_set = set(planned)
    del planned
    finished: dict[str, bool] = {}  # file name -> True (made) / False (degenerate)
    orphans: set[str] = set()
    for row in manifest.read_journal_rows(out):
        name = row.get("file_name")
        if isinstance(name, str):
            if name not in planned_set:
                orphans.add(name)
                continue
            finished[name] = finished.get(name, False) or DEGENERATE_KEY not in row
    del planned_set
    journal = manifest.Journal(manifest.journal_path(out, shard))

    writer = _Writer(out, options, fractals, journal, editor.name, editor_settings, tag, remix)
    stage_names = SAVED_STAGES if options.save_stages else ()

    def is_done(s: _Sample) -> bool:
        state = finished.get(s.file_name)
        if state is None:
            return False
        if state is False:
            return True  # degenerate: reported, not retried
        if not (out / s.file_name).is_file():
            return False
        return all(_stage_path(out, st, s.file_name).is_file() for st in stage_names)

    total = _count_for_shard(len(scan.entries) * recipe.samples_per_image, shard)
    made = skipped = degenerate = 0
    prior_degenerate = 0
    failed: dict[str, str] = {}
    bar = None
    if progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=total,
            unit="img",
            desc=f"export {shard[0]}/{shard[1]}" if shard[1] > 1 else "export",
            dynamic_ncols=True,
            disable=None,
        )
    handled = 0

    def advance(n: int) -> None:
        nonlocal handled
        handled += n
        if bar is not None:
            bar.update(n)
        if progress is not None:
            progress(handled, total)

    # 3. stream: decode ahead → editor → mix/encode/write behind
    workers = options.workers
    decode_pool = ThreadPoolExecutor(workers, thread_name_prefix="dmx-decode")
    write_pool = ThreadPoolExecutor(workers, thread_name_prefix="dmx-write")
    prefetch = max(2, workers)
    max_chunks_writing = 2
    decoding: deque[tuple[list[_Sample], Future]] = deque()
    writing: deque[list[Future]] = deque()
    chunks = _chunks(_iter_samples(scan, recipe, fractals.names, options), options.batch_size)
    cancelled = False

    def harvest(limit: int) -> None:
        """Collect finished chunks; wait until at most ``limit`` chunks are still being written."""
        nonlocal made, degenerate
        while writing and (len(writing) > limit or all(f.done() for f in writing[0])):
            futs = writing.popleft()
            for f in futs:
                if f.result() == "made":  # re-raises a write error
                    made += 1
                else:
                    degenerate += 1
            advance(len(futs))

    def refill() -> None:
        nonlocal skipped, prior_degenerate
        while len(decoding) < prefetch:
            chunk = next(chunks, None)
            if chunk is None:
                return
            for s in chunk:
                s.done = is_done(s)
                if options.reuse_generated and not s.done:
                    p = _stage_path(out, "generated", s.file_name)
                    s.reuse = p if p.is_file() else None
            if all(s.done for s in chunk):
                n_bad = sum(finished.get(s.file_name) is False for s in chunk)
                prior_degenerate += n_bad
                skipped += len(chunk) - n_bad
                advance(len(chunk))
                continue
            decoding.append((chunk, decode_pool.submit(_decode_chunk, chunk, recipe, options.reuse_generated)))

    try:
        while True:
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            refill()
            if not decoding:
                break
            chunk, fut = decoding.popleft()
            images, reused = fut.result()
            refill()  # keep decoding ahead while the editor works
            # 3a. inputs that cannot be used
            live = []
            for s in chunk:
                got = images[s.entry.source]
                if isinstance(got, str):
                    failed.setdefault(s.entry.source, _reason(s.entry.source, got))
                else:
                    live.append(s)
            n_dead = len(chunk) - len(live)
            # 3b. Î: reused where saved, else one editor call for the chunk
            results: dict[str, tuple[np.ndarray, SampleRecord, str | None]] = {}
            for s in live:
                if s.file_name in reused:
                    arr, rec = reused[s.file_name]
                    results[s.file_name] = (arr, rec, None)
            jobs = [s for s in live if s.file_name not in results]
            if jobs:
                try:
                    made_now = generate(editor, [(s.record, images[s.entry.source]) for s in jobs], cancel=cancel)
                except Cancelled:
                    cancelled = True
                    break
                for s, (rec, res) in zip(jobs, made_now, strict=True):
                    results[s.file_name] = (res.image, rec, res.degenerate)
            # 3c. mix, encode and write on the worker threads
            futs = []
            for s in live:
                if s.done:
                    continue
                arr, rec, why = results[s.file_name]
                futs.append(write_pool.submit(writer, s, images[s.entry.source], arr, rec, why))  # type: ignore[arg-type]
            for s in chunk:
                if s.done:
                    if finished.get(s.file_name) is False:
                        prior_degenerate += 1
                    else:
                        skipped += 1
            advance(n_dead + sum(1 for s in live if s.done))
            del images, reused, results
            writing.append(futs)
            harvest(max_chunks_writing)
        harvest(0)
    except BaseException:
        # Ctrl-C or an error: stop reading ahead, let the writes in progress finish
        # (each is atomic anyway), keep the journal consistent, and re-raise.
        decode_pool.shutdown(wait=True, cancel_futures=True)
        write_pool.shutdown(wait=True, cancel_futures=True)
        journal.close()
        if bar is not None:
            bar.close()
        raise
    decode_pool.shutdown(wait=True, cancel_futures=True)
    write_pool.shutdown(wait=True)
    journal.close()
    if bar is not None:
        bar.close()

    # 4. finish: mark this shard done, merge when every shard is
    failed_list = sorted(failed.items(), key=lambda kv: tuple(kv[0].split("/")))
    manifest_path: Path | None = None
    pending: list[tuple[int, int]] = []
    if not cancelled:
        errors = [{"source": s, "kind": "unreadable", "reason": r} for s, r in failed_list]
        errors += [{"source": s, "kind": "ignored", "reason": r} for s, r in scan.ignored]
        manifest.write_done_marker(out, shard, {"shard": list(shard), "errors": errors, "made": made}, tag=tag)
        rows, errs, pend = manifest.collect(out)
        pending = list(pend or [])
        if not pending:
            manifest_path = manifest.write_manifest(out, rows, errs, tag=tag)
            manifest.clean_temp_files(out)
    return ExportSummary(
        made=made,
        skipped_done=skipped,
        failed=failed_list,
        ignored=list(scan.ignored),
        degenerate=degenerate + prior_degenerate,
        seconds=time.perf_counter() - t0,
        output_dir=out,
        manifest=manifest_path,
        label_mode=scan.label_mode,
        classes=scan.classes,
        shard=shard,
        pending_shards=pending,
        cancelled=cancelled,
        notes=_split_name_note(scan, out)
        + (
            [
                f"{len(orphans)} earlier output file(s) no longer match an input image (inputs removed or renamed,"
                " or names changed by a new file with the same stem); they stay on disk but are left out of"
                f" {manifest.MANIFEST_NAME}"
            ]
            if orphans
            else []
        ),
        editor=str(editor.describe().get("summary") or editor.name),
    )
