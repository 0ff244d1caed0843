"""Read a cache of Î: the folder training re-mixes A from, every epoch.

Two layouts are read, both made by ``python -m diffusemix export`` (the
folder's files are :mod:`diffusemix.export.folder`'s):

* a **cache** (``--cache``): only what is costly is kept, no A: Î, one per
  (image, prompt, copy), in the class folders; I at the output size, once per
  image; one manifest row per Î: ``file_name`` (Î), ``input_file_name`` (I),
  ``label``, ``class_name``, ``source``, ``prompt``, ``copy``, ``seed``,
  ``editor``, ... ``load_dataset("imagefolder", data_dir=CACHE)`` reads it as
  rows with an ``image`` (Î) and an ``input`` (I) column.

* an **export with stages** (``--save-stages``): the manifest lists the fixed
  A images; I and Î of each row are read from the saved stages ``input`` and
  ``generated``. So any export made with ``--save-stages`` can be read back as
  a cache.

Every path read from a row must stay inside the folder
(:func:`diffusemix.export.folder.resolve_in`); a row that names a file
outside it is refused with its line number and field.

Rows are read tolerantly: columns other than those used here (scores,
future fields) are kept in :attr:`CacheEntry.row` and otherwise ignored.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import DiffuseMixError, RecordError
from ..export import folder
from ..recipe import SampleRecord

__all__ = ["CacheError", "CacheEntry", "Cache", "read_cache", "PREVIEW_EDITOR"]

#: The editor name of the weight-free stand-in (its Î is not DiffuseMix data).
PREVIEW_EDITOR = "preview"
_MAKE_HINT = (
    "make one with `python -m diffusemix export INPUT CACHE --cache` "
    "(or an export with --save-stages)"
)


class CacheError(DiffuseMixError):
    """A folder that is not a readable cache of Î, or one that does not fit the request."""


@dataclass(frozen=True)
class CacheEntry:
    """One cached Î and the I it was made from.

    Attributes:
        label: class name of the source image.
        source: the source image's key (its path relative to the input dataset).
        prompt: the prompt Î was made with.
        copy: index among the prompt's copies.
        input_path: the file of I (S x S).
        generated_path: the file of Î (S x S).
        record: the exporter's record of this sample (its layout, fractal and
            λ are those of the exporter's fixed A, if one was made).
        editor: the editor that made Î (``"preview"`` for the stand-in).
        row: the manifest row as read (extra columns included).
    """

    label: str
    source: str
    prompt: str
    copy: int
    input_path: Path
    generated_path: Path
    record: SampleRecord
    editor: str
    row: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def key(self) -> str:
        """A stable identity for the sample (random draws are keyed by it)."""
        return f"{self.source}\0{self.prompt}\0{self.copy}"


@dataclass(frozen=True)
class Cache:
    """What :func:`read_cache` found.

    Attributes:
        root: the folder.
        layout: ``"cache"`` or ``"export"`` (an export with ``--save-stages``).
        entries: one per cached Î, in plan order (class, source, prompt, copy).
        classes: class names in ImageFolder's order (sorted).
        prompts: the cached prompts, in the order they were made.
        size: the side S of I and Î in pixels.
        editors: the editors that made Î (usually one).
        settings: the export's ``run.json`` (empty if absent).
    """

    root: Path
    layout: str
    entries: tuple[CacheEntry, ...]
    classes: tuple[str, ...]
    prompts: tuple[str, ...]
    size: int
    editors: tuple[str, ...]
    settings: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    @property
    def annotated(self) -> bool:
        """Whether the cache was made with ``--task detect|segment`` (its rows carry objects or masks)."""
        return isinstance(self.settings.get("annotations"), Mapping)

    @property
    def from_preview(self) -> bool:
        """Whether any Î came from the preview editor (not a diffusion model)."""
        return PREVIEW_EDITOR in self.editors

    def lookup(self) -> dict[tuple[str, str, int], CacheEntry]:
        """Entries by (source, prompt, copy)."""
        return {(e.source, e.prompt, e.copy): e for e in self.entries}


def _missing_list(root: Path, paths: Sequence[Path], total: int) -> str:
    shown = ", ".join(p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p) for p in paths[:3])
    more = f" (and {total - 3} more)" if total > 3 else ""
    return f"{shown}{more}"


def _read_rows(root: Path) -> list[dict[str, Any]]:
    try:
        return folder.read_rows(root, hint="make the cache again")
    except RecordError as e:
        raise CacheError(f"cache {root}: {e}") from None


def _check_folder(root: Path) -> None:
    if not root.exists():
        raise CacheError(f"cache folder {root} does not exist; {_MAKE_HINT}")
    if not root.is_dir():
        raise CacheError(f"cache {root} is a file, not a folder; pass the folder a cache export wrote")
    missing = [what for what, ok in (("its manifest", folder.manifest_path(root).is_file()),
                                     ("its settings", folder.has_settings(root))) if not ok]
    if missing:
        extra = ""
        if not folder.manifest_path(root).is_file() and folder.has_settings(root):
            extra = (
                " (an export still running or split in shards: let every shard finish, "
                f"or run `python -m diffusemix merge {root}`)"
            )
        raise CacheError(f"{root} is not a DiffuseMix cache: missing {' and '.join(missing)}{extra}; {_MAKE_HINT}")


_NEEDED = ("file_name", "source", "prompt")
_NO_MIX = folder.CACHE_MIX_PLACEHOLDERS


def _entry(root: Path, row: Mapping[str, Any], n: int) -> CacheEntry:
    manifest = folder.manifest_path(root)
    absent = [k for k in _NEEDED if not isinstance(row.get(k), str)]
    if folder.row_class(row) is None:
        absent.append("class_name")
    if absent:
        raise CacheError(f"cache {root}: {manifest} row {n} lacks {', '.join(absent)}; it was not written by"
                         " diffusemix export")
    name = str(row["file_name"])
    try:
        if isinstance(row.get("input_file_name"), str):  # a cache: file_name is Î
            inp = folder.resolve_in(root, row["input_file_name"], what="input_file_name", source=manifest, row=n)
            gen = folder.resolve_in(root, name, source=manifest, row=n)
        else:  # an export with --save-stages: file_name is A
            folder.resolve_in(root, name, source=manifest, row=n)
            inp = folder.resolve_in(root, folder.stage_name("input", name), source=manifest, row=n)
            gen = folder.resolve_in(root, folder.stage_name("generated", name), source=manifest, row=n)
    except RecordError as e:
        raise CacheError(f"cache {root}: {e}") from None
    try:  # a cache's rows have no mixing fields (it mixed nothing): placeholders, redrawn every epoch
        record = SampleRecord.from_dict({**_NO_MIX, **row})
    except DiffuseMixError as e:
        raise CacheError(f"cache {root}: {manifest} row {n} ({name}) is not a sample's record ({e});"
                         " make the cache again") from None
    return CacheEntry(
        label=str(folder.row_class(row)),
        source=str(row["source"]),
        prompt=str(row["prompt"]),
        copy=int(row.get("copy", 0)),
        input_path=inp,
        generated_path=gen,
        record=record,
        editor=str(row.get("editor") or "unknown"),
        row=row,
    )


def read_cache(
    path: str | os.PathLike[str], *, classes: Sequence[str] | None = None, check_files: bool = True
) -> Cache:
    """Read a cache folder (or an export made with ``--save-stages``).

    Args:
        path: the folder.
        classes: the class names training expects (e.g. your validation
            set's ``classes``); a cache with other classes is refused.
        check_files: check that every I and Î file exists (one ``stat`` each).

    Raises:
        CacheError: the folder is not a cache (says which files are missing),
            its rows are unreadable, its files are missing, or its classes
            differ from ``classes``.
    """
    # 1. the folder and its manifest
    root = Path(path).expanduser()
    _check_folder(root)
    from ..export.settings import readable_settings

    settings, why = readable_settings(root)  # only hints (the prompts' order, the mixing settings)
    if why is not None:
        warnings.warn(f"cache {root}: {why}; its prompts' order and mixing settings are not used (the paper's"
                      " mixing settings are, unless you give a recipe)", UserWarning, stacklevel=2)
    rows = _read_rows(root)
    if not rows:
        raise CacheError(f"cache {root} lists no samples in its manifest (every Î was degenerate, or none was made)")
    entries = [_entry(root, row, n) for n, row in enumerate(rows, 1)]
    layout = "cache" if isinstance(rows[0].get("input_file_name"), str) else "export"

    # 2. every file in place
    if check_files:
        missing = [p for e in entries for p in (e.input_path, e.generated_path) if not p.is_file()]
        if missing:
            hint = (
                " This export was made without --save-stages, so its I and Î were not kept: export again with "
                "--cache (or --save-stages)."
                if layout == "export" and not (root / folder.STAGES_DIR).is_dir()
                else " The cache is incomplete: run the same export command again to finish it."
            )
            raise CacheError(
                f"{root} is not a complete cache: {len(missing)} file(s) missing: "
                f"{_missing_list(root, missing, len(missing))}.{hint}"
            )

    # 3. classes, prompts, size, editors
    found = tuple(sorted({e.label for e in entries}))
    if classes is not None:
        want = tuple(str(c) for c in classes)
        if tuple(want) != found:
            lack = [c for c in want if c not in found]
            extra = [c for c in found if c not in want]
            detail = []
            if lack:
                detail.append(f"not in the cache: {', '.join(lack[:5])}{', ...' if len(lack) > 5 else ''}")
            if extra:
                detail.append(f"only in the cache: {', '.join(extra[:5])}{', ...' if len(extra) > 5 else ''}")
            if not detail:
                detail.append("same names in another order (classes are sorted, as ImageFolder sorts them)")
            raise CacheError(
                f"cache {root} has classes that do not match the ones given ({'; '.join(detail)}); "
                f"the cache has {len(found)} class(es), {len(want)} were expected. Make the cache from the "
                "same class folders as your evaluation set"
            )
    order = [p for p in (settings.get("recipe") or {}).get("prompts", []) if isinstance(p, str)]
    seen = set(order)
    for e in entries:
        if e.prompt not in seen:
            order.append(e.prompt)
            seen.add(e.prompt)
    cached = {e.prompt for e in entries}
    sizes = {int(e.record.size) for e in entries}
    if len(sizes) != 1:
        raise CacheError(f"cache {root} mixes image sizes {sorted(sizes)}; make it again with one --size")
    return Cache(
        root=root,
        layout=layout,
        entries=tuple(entries),
        classes=found,
        prompts=tuple(p for p in order if p in cached),
        size=sizes.pop(),
        editors=tuple(sorted({e.editor for e in entries})),
        settings=settings if isinstance(settings, dict) else {},
    )
