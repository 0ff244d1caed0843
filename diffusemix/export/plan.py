"""Step 2, plan: every (image, prompt, copy) in a fixed order, cut into chunks, and the dry run.

The plan is images by (class, path), then the recipe's prompts, then copies.
Which samples are generated together is part of the plan: chunk ``k`` is the
plan positions ``[k * c, (k + 1) * c)`` of the whole plan (``c`` the chunk
size, recorded in run.json), handed to the editor in one call, which cuts it
into model calls of its batch size. Shard ``i`` of ``N`` takes the chunks
``k`` with ``k % N == i``. So the same settings make the same model calls
however the work is split (shards, resumed runs, other engines), and a
diffusion model's Î, which depends on the batch a sample is in, comes out the
same bit for bit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..prompt_content import content_note, content_warnings
from ..recipe import Recipe, SampleRecord, draw, draw_prompts
from . import folder
from .checks import check_folders, check_reserved
from .naming import prompt_slugs
from .options import ExportOptions
from .scan import ImageEntry, InputScan, scan_input


@dataclass
class Sample:
    entry: ImageEntry
    record: SampleRecord
    file_name: str  # relative to OUTPUT, POSIX: images/<class>/... (folder.image_file_name)
    position: int = 0  # in the whole plan
    chunk: int = 0  # position // chunk size
    done: bool = False
    reuse: Path | None = None  # saved Î to read instead of calling the editor


#: Samples per chunk when neither the options nor the editor say (the preview has no batch).
DEFAULT_CHUNK = 8


def chunk_size(options: ExportOptions, batch_size: int | str | None) -> int:
    """Samples per chunk: ``options.chunk_size``, else the editor's batch size (a number), else 8."""
    if options.chunk_size is not None:
        return int(options.chunk_size)
    return int(batch_size) if isinstance(batch_size, int) else DEFAULT_CHUNK


def in_shard(position: int, chunk: int, shard: tuple[int, int]) -> bool:
    """Whether plan position ``position`` belongs to ``shard``: its chunk's index modulo the shard count."""
    return (position // chunk) % shard[1] == shard[0]


def iter_samples(
    scan: InputScan, recipe: Recipe, fractal_names: Sequence[str] | None, options: ExportOptions
) -> Iterator[Sample]:
    """This shard's samples in plan order (records drawn lazily, one image at a time).

    An image's samples are its prompts (all, or the ones drawn for it:
    ``recipe.draw_prompts``) times the copies. With ``fractal_names=None``
    records are not drawn (the record is a placeholder; file names are exact).
    The chunk size is ``options.chunk_size`` (resolved by the run; 8 when unset).
    """
    spi = recipe.samples_per_image
    i, n = options.shard
    chunk = int(options.chunk_size or DEFAULT_CHUNK)
    slugs = prompt_slugs(recipe.prompts)
    ext = options.extension
    placeholder = SampleRecord(
        source="", prompt="", copy=0, layout="left", mask=recipe.mask, seam=0, lam=0.0, fractal="", seed=0, attempts=1,
        size=recipe.size, resize=recipe.resize, arithmetic=recipe.arithmetic,
    )
    for idx, entry in enumerate(scan.entries):
        first = idx * spi
        js = [j for j in range(spi) if in_shard(first + j, chunk, (i, n))]
        if not js:
            continue
        records = draw(recipe, entry.source, fractal_names) if fractal_names is not None else None
        prompts = draw_prompts(recipe, entry.source)
        for j in js:
            prompt = prompts[j // recipe.images_per_prompt]
            copy = j % recipe.images_per_prompt
            rec = records[j] if records is not None else placeholder
            pos = first + j
            name = folder.image_file_name(f"{entry.out_stem}_{slugs[prompt]}_{copy}{ext}")
            yield Sample(entry, rec, name, position=pos, chunk=pos // chunk)


def chunks(samples: Iterator[Sample]) -> Iterator[list[Sample]]:
    """The samples grouped by their plan chunk (a shard's samples come chunk by chunk)."""
    chunk: list[Sample] = []
    for s in samples:
        if chunk and s.chunk != chunk[0].chunk:
            yield chunk
            chunk = []
        chunk.append(s)
    if chunk:
        yield chunk


def count_for_shard(total: int, shard: tuple[int, int], chunk: int) -> int:
    """How many of ``total`` plan positions belong to ``shard`` (whole chunks of ``chunk``)."""
    i, n = shard
    full, rest = divmod(total, chunk)  # full chunks, and the last one's size
    mine = full // n + (1 if full % n > i else 0)
    return mine * chunk + (rest if full % n == i else 0)


def est_bytes_per_sample(size: int, options: ExportOptions) -> int:
    px = size * size * 3
    if options.format == "bmp":
        a = px * (1.5 if options.cache else 1.0)  # a cache also keeps I, once per image
    elif options.cache:
        a = px * 0.55 * 1.5
    else:
        a = px * 0.55 if options.format == "png" else px * (0.06 + 0.25 * options.quality / 100)
    stages = px * 0.55 * 4 + size * size * 0.02 if options.save_stages else 0
    return int(a + stages)


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
    annotations: Any = None  # an annotated input's (.annotated.AnnotatedInput)

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
            f"  prompts:  {len(r.prompts)} ({', '.join(r.prompts)})"
            + ("" if r.prompts_per_image == "all" else f", {r.prompts_per_image} drawn per image from the seed")
            + f" x {r.images_per_prompt} image(s) per prompt",
            f"  shard:    {self.shard[0]}/{self.shard[1]}",
            f"  output:   {self.output_dir}  ({self.options.format.upper()}, {r.size}x{r.size}"
            + (", with stages" if self.options.save_stages else "")
            + (", a cache: I and Î, no mixing" if self.options.cache else "")
            + ")",
            (
                f"  would make {todo} image(s) ({self.samples} in this shard, {self.already_done} already done; "
                f"{self.samples_total} over all shards), about {human_bytes(self.est_bytes)} on disk"
            ),
        ]
        chunk = int(self.options.chunk_size or DEFAULT_CHUNK)
        n_chunks = -(-self.samples_total // chunk)
        if self.samples == 0 and self.samples_total and self.shard[1] > 1:
            lines.append(f"  note:     this shard has no work: the plan is {n_chunks} chunk(s) of {chunk} sample(s) and"
                         f" shards take whole chunks; use at most {n_chunks} shard(s), or a smaller --chunk-size")
        if self.ignored:
            lines.append(f"  ignored:  {len(self.ignored)} file(s) not usable as inputs (listed in {folder.ERRORS_NAME}"
                         " by the run)")
        if self.empty_classes:
            lines.append(f"  empty class folders left out: {', '.join(self.empty_classes)}")
        a = self.annotations
        if a is not None:
            what = f"{a.objects} objects" if not a.semantic else f"classes {', '.join(a.classes or ())}"
            from .annotated import written_as

            lines.append(f"  annotations: {a.format} ({a.annotation_file}), task {a.task}, {what}; A's written to"
                         f" {written_as(a.format)}")
            if a.errors:
                lines.append(f"  annotations: {len(a.errors)} image(s) or file(s) left out for their annotations"
                             f" (listed in {folder.ERRORS_NAME} by the run)")
        lines += [f"  warning:  {content_note(p, why)}" for p, why in content_warnings(r.prompts)]
        return "\n".join(lines)

    __str__ = format


def human_bytes(n: float) -> str:
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
    annotations: Any = None,
) -> ExportPlan:
    """Scan, validate and count what :func:`export_dataset` would make (the --dry-run).

    ``annotations``: an ``AnnotationOptions`` (task detect or segment): INPUT is an annotated dataset,
    read and checked here as the run reads it.

    Writes nothing. Counts the samples of this shard already finished in
    ``output_dir`` when it holds an earlier run.

    Raises:
        DiffuseMixError: a missing or empty input, an output inside the input,
            an output that cannot be written.
    """
    inp, out = Path(input_dir), Path(output_dir)
    scan = scan_input(inp, annotations=annotations)
    check_folders(inp, out)
    check_reserved(scan, cache=options.cache, originals=options.write_originals)
    if options.chunk_size is None:  # a folder's recorded chunk size is what a run into it will use
        from .settings import recorded_batches

        recorded = recorded_batches(out)[1] if out.is_dir() else None
        if recorded is not None:
            options = options.replace(chunk_size=recorded)
    total = len(scan.entries) * recipe.samples_per_image
    mine = count_for_shard(total, options.shard, int(options.chunk_size or DEFAULT_CHUNK))
    done = 0
    if out.is_dir():
        flat_label = scan.classes[0] if scan.flat else None
        if folder.needs_layout_move(out):  # a folder made before version 4: its rows as they will read once moved
            finished = {n for r in folder.read_journal_rows(out)
                        if (n := folder.moved_file_name(r, flat_label=flat_label))}
        else:
            finished = {r["file_name"] for r in folder.read_journal_rows(out) if isinstance(r.get("file_name"), str)}
        if finished:
            for s in iter_samples(scan, recipe, None, options):
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
        est_bytes=(mine - done) * est_bytes_per_sample(recipe.size, options),
        shard=options.shard,
        recipe=recipe,
        options=options,
        ignored=scan.ignored,
        empty_classes=scan.empty_classes,
        annotations=scan.annotations,
    )
