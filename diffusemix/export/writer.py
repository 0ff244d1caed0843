"""Step 4, write: mix one sample, encode it, put its files in place, journal its row.

A sample's files are written atomically (stages first, then A, so that A's
presence means its stages are there too) and its journal row is appended
last: a killed run never leaves a row without its files, nor half a file.
A saved Î carries the seed actually used in a PNG text chunk, so a remix
(``--reuse-generated``) can read it back instead of calling the editor.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import io
import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..engine import apply_record
from ..recipe import SampleRecord
from ..scoring.base import Score
from . import folder
from .folder import (
    DEGENERATE_KEY,
    MIXING_COLUMNS,
    REJECTED_KEY,
    SAVED_STAGES,
    cache_input_name,
    original_name,
    stage_path,
)
from .options import FORMATS, ExportOptions
from .plan import Sample

if TYPE_CHECKING:  # pragma: no cover
    from ..fractals import FractalSet
    from .annotation_writer import AnnotationWriter

#: PNG text key in a saved Î holding the seed actually used (read by reuse_generated).
_GENERATED_META_KEY = "diffusemix"


def _encode(array: np.ndarray, fmt: str, quality: int, pnginfo: Any = None) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    img = Image.fromarray(array)
    if fmt == "jpeg":
        img.save(buf, format="JPEG", quality=int(quality))
    elif fmt == "bmp":
        img.save(buf, format="BMP")
    else:
        img.save(buf, format="PNG", pnginfo=pnginfo)
    return buf.getvalue()


@dataclass(frozen=True)
class Made:
    """What the editor (or a saved stage) gave for one sample: Î, its record, and how it came to be."""

    image: np.ndarray
    record: SampleRecord
    degenerate: str | None = None
    score: Score | None = None
    rejected: str | None = None
    #: the model call that made Î: one {source, prompt, copy, seed} per sample in it, in call order
    batch: tuple[dict[str, Any], ...] = ()


def _generated_meta(made: Made) -> dict[str, Any]:
    """What a saved Î carries in its PNG text chunk: enough for a remix's row (its record and model call)."""
    rec = made.record
    return {"source": rec.source, "prompt": rec.prompt, "copy": rec.copy, "seed": rec.seed, "attempts": rec.attempts,
            "batch": list(made.batch)}


def read_reused(
    path: Path, rec: SampleRecord, size: int, batch: tuple[dict[str, Any], ...] = ()
) -> Made | None:
    """A saved Î with its record (seed, attempts) and model call, or None if it is not a usable save of this sample.
    ``batch``: the model call from the row the folder had for it, for a file saved before Î carried its call."""
    from ..images import open_image

    try:  # the checks every reader makes: a regular file, not a header bomb (then it is made again)
        with open_image(path) as im:
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
    saved = meta.get("batch")
    if isinstance(saved, list) and all(isinstance(m, dict) for m in saved):
        batch = tuple(saved)
    return Made(np.ascontiguousarray(arr), dataclasses.replace(rec, seed=seed, attempts=attempts), batch=batch)


class Writer:
    """Mixes, encodes and writes one sample; appends its journal row last."""

    def __init__(
        self,
        out: Path,
        options: ExportOptions,
        fractals: "FractalSet",
        journal: folder.Journal | None,
        tag: str,
        remix: bool,
        *,
        run_fields: dict[str, Any],
        annotations: "AnnotationWriter | None" = None,
    ) -> None:
        self.out, self.options, self.fractals, self.journal = out, options, fractals, journal
        #: an annotated export's (--task detect|segment): A's annotation file and row fields, per sample
        self.annotations = annotations
        self.tag, self.remix = tag, remix
        self.run_fields = dict(run_fields)
        self._made_dirs: set[Path] = set()
        self._lock = threading.Lock()
        # a cache's I files being written or written in this run: the first sample of an
        # image writes its I, the others wait for it (bounded: samples of an image are adjacent)
        self._inputs: OrderedDict[Path, threading.Event] = OrderedDict()

    def _mkdir(self, path: Path) -> None:
        if path in self._made_dirs:
            return
        folder.make_dirs(self.out, path)  # refuses a folder that leads outside OUTPUT (a planted link)
        with self._lock:
            self._made_dirs.add(path)

    def _put(self, path: Path, data: bytes) -> None:
        self._mkdir(path.parent)
        folder.write_file(self.out, path, data, tag=self.tag)  # never through a link

    def row(self, s: Sample, made: Made) -> dict[str, Any]:
        """The sample's journal row: everything that made its image, enough to replay it alone: its file, its
        class, its record, its plan chunk and model call, and the run's fields (the manifest adds the class index)."""
        return {"file_name": s.file_name, "class_name": s.entry.label, **made.record.to_dict(), "chunk": s.chunk,
                "batch": list(made.batch), **self.run_fields}

    def cache_row(self, s: Sample, made: Made) -> dict[str, Any]:
        """A cache's row: Î is ``file_name``, I is ``input_file_name``; no mixing fields."""
        row = {k: v for k, v in self.row(s, made).items() if k not in MIXING_COLUMNS}
        return {"file_name": row.pop("file_name"), "input_file_name": self.input_name(s), **row}

    def input_name(self, s: Sample) -> str:
        return cache_input_name(s.entry.out_stem, self.options.extension)

    def _put_input_once(self, s: Sample, image: np.ndarray, name: str | None = None, fmt: str | None = None) -> None:
        """Write the I of this sample's image (the cache's, or ``name``: the original written beside an export)
        unless it is there or being written."""
        path = self.out / (name or self.input_name(s))
        with self._lock:
            event = self._inputs.get(path)
            mine = event is None
            if mine:
                event = self._inputs[path] = threading.Event()
                while len(self._inputs) > 4096 and next(iter(self._inputs.values())).is_set():
                    self._inputs.popitem(last=False)  # only finished writes are forgotten
        if not mine:
            event.wait()  # type: ignore[union-attr]
            return
        try:
            if not folder.looks_complete(path):  # missing, cut short, or not a regular file: written again
                self._put(path, _encode(image, fmt or self.options.format, self.options.quality))  # type: ignore[arg-type]
        finally:
            event.set()  # type: ignore[union-attr]

    def _write_cache(self, s: Sample, image: np.ndarray, made: Made, scores: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """A cache keeps I (once per image) and Î, mixes nothing; its row carries any scores."""
        self._put_input_once(s, image)
        fields = self._annotation(s, made)
        data = _encode(made.image, self.options.format, self.options.quality)  # type: ignore[arg-type]
        self._put(self.out / s.file_name, data)
        return "made", {**self.cache_row(s, made), **fields, **scores}

    def _annotation(self, s: Sample, made: Made) -> dict[str, Any]:
        """An annotated export's: A's annotation file, written before A; its row fields ({} otherwise)."""
        if self.annotations is None:
            return {}
        return self.annotations.write(s.entry, s.file_name, made.record, self._put)

    def __call__(self, s: Sample, image: np.ndarray, made: Made) -> str:
        """Write one sample's files, then append its row to the journal; returns ``made``, ``rejected`` or
        ``degenerate``."""
        status, row = self.write(s, image, made)
        self.journal.append(row)  # type: ignore[union-attr]
        return status

    def write(self, s: Sample, image: np.ndarray, made: Made) -> tuple[str, dict[str, Any]]:
        """Write one sample's files (atomically, A last) and return its status and journal row, which the caller
        appends once the files are in place (an engine whose writers run elsewhere passes a ``journal`` of None
        and appends the rows itself)."""
        rec, generated = made.record, made.image
        # 1. a blank Î, or one whose score the rule rejected, is reported, never written
        scores = made.score.to_row() if made.score is not None else {}
        if made.degenerate is not None:
            row = self.cache_row(s, made) if self.options.cache else self.row(s, made)
            return "degenerate", {**row, DEGENERATE_KEY: made.degenerate}
        if made.rejected is not None:
            if self.options.save_stages:  # kept for a look (the report's contact sheet), not part of the dataset
                self._put(stage_path(self.out, "rejected", s.file_name), _encode(generated, "png", 0))
            row = self.cache_row(s, made) if self.options.cache else self.row(s, made)
            return "rejected", {**row, **scores, REJECTED_KEY: made.rejected}
        if self.options.cache:
            return self._write_cache(s, image, made, scores)
        # 2. mix (an annotated export's keep-objects first chooses the layout, recorded in the row)
        if self.annotations is not None:
            made = dataclasses.replace(made, record=self.annotations.choose_layout(s.entry, rec))
            rec = made.record
        size = rec.size
        st = apply_record(rec, image, generated, self.fractals.load(rec.fractal, size))
        # 3. the original at S x S (once per image), the stages, then A (so that A's presence means they are there)
        if self.options.write_originals:
            self._put_input_once(s, image, original_name(s.entry.out_stem), "png")
        if self.options.save_stages:
            from PIL import PngImagePlugin

            for stage in SAVED_STAGES:
                path = stage_path(self.out, stage, s.file_name)
                if stage == "generated" and s.reuse is not None and path == s.reuse:
                    continue  # read from there; already in place
                info = None
                if stage == "generated":
                    info = PngImagePlugin.PngInfo()
                    info.add_text(_GENERATED_META_KEY, json.dumps(_generated_meta(made)))
                arr = st.mask_uint8() if stage == "mask" else getattr(st, stage)
                self._put(path, _encode(arr, "png", 0, info))
        fields = self._annotation(s, made)  # before A, like the stages
        path = self.out / s.file_name
        self._put(path, _encode(st.augmented, self.options.format, self.options.quality))  # type: ignore[arg-type]
        if self.remix:  # a format change leaves the other format's file behind
            for ext in FORMATS.values():
                if ext != self.options.extension:
                    folder.remove_file(self.out, path.with_suffix(ext))
            if not self.options.save_stages:  # saved M, H, F of the old mix would contradict the new A
                for stage in ("mask", "hybrid", "fractal"):
                    folder.remove_file(self.out, stage_path(self.out, stage, s.file_name))
        # 4. the row, last (appended by the caller)
        return "made", {**self.row(s, made), **fields, **scores}
