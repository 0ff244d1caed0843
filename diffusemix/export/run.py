"""The export itself: :func:`export_dataset` runs the steps, one module each.

scan (:mod:`.scan`) → plan (:mod:`.plan`) → run (:mod:`.stream`) → write
(:mod:`.writer`) → collect (:mod:`.manifest`) → report (:mod:`.summary`).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..editors.licences import acceptance_reason, check_licence, licence_line
from ..errors import DiffuseMixError
from ..prompt_content import content_note, content_warnings
from ..recipe import Recipe
from ..scoring.base import NoScorer, ScoreRule
from . import folder, manifest
from .checks import check_folders, check_foreign_output, check_reserved
from .folder import DEGENERATE_KEY, REJECTED_KEY
from .lock import OutputLock
from .options import ExportOptions
from .plan import chunk_size, chunks, count_for_shard, iter_samples
from .scan import InputScan, scan_input
from .settings import adopt_settings, run_fields, run_settings
from .stream import Progress, Stream
from .summary import ExportSummary, fractals_note, has_split_word, orphans_note, split_name_note
from .writer import Writer
from .annotation_writer import write_collected

if TYPE_CHECKING:  # pragma: no cover
    from ..annotations.export_step import AnnotationOptions
    from ..editors.base import CancelToken, Editor
    from .ray_engine import RayStream
    from ..scoring.base import Scorer
    from ..fractals import FractalSet


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
    scorer: "Scorer | None" = None,
    score_rule: "ScoreRule | None" = None,
    annotations: "AnnotationOptions | None" = None,
) -> ExportSummary:
    """Write the augmented dataset (this shard's part of it) to ``output_dir``.

    Resumable: finished samples are skipped; a killed run leaves no partial
    file, and resuming yields the same files and manifest as an uninterrupted
    run. When the last shard finishes, ``metadata.jsonl`` is written.

    Args:
        input_dir: class folders ``INPUT/<class>/<image>`` or a flat folder.
        output_dir: where ``OUTPUT/images/<class>/<file>``, ``metadata.jsonl`` and the card go.
        recipe: the method's settings.
        editor: makes Î (``diffusemix.editors.load_editor``).
        fractals: the set F is drawn from.
        options: format, shard, chunk size, workers, stages, and the engine: ``engine="ray"`` runs the same
            chunks on a Ray cluster (:mod:`.ray_engine`; INPUT and OUTPUT on storage every node sees).
        progress: ``progress(done, total)`` over this run's samples.
        cancel: anything with ``is_set()``; the run stops after the current
            chunk and can be resumed.
        progress_bar: show a tqdm bar (on a terminal).
        scorer: scores each Î against its I (``diffusemix.scoring.load_scorer``);
            the scores go into every manifest row. ``None`` (or a NoScorer):
            no scores.
        score_rule: which scored Î are kept (``ScoreRule(min_score=0.7)``);
            a rejected Î is made again with a new recorded seed, up to the
            editor's ``max_retries``, then dropped and listed in errors.jsonl
            with its score.
        annotations: ``AnnotationOptions(task="detect"|"segment", ...)``: INPUT is a COCO, YOLO or
            image/mask-pairs dataset; its boxes, polygons and masks ride along with every image and are
            written in its format beside A (:mod:`.annotation_writer`), each row carrying A's objects.

    Raises:
        DiffuseMixError: bad input or output folders, an output folder made
            with other settings or in use by another run (raised before any
            work); a full disk (the message names the file; a rerun resumes);
            the ray engine without Ray installed, or a Ray node that cannot
            see INPUT or OUTPUT (named).
        EditorLoadError: the editor's model cannot be loaded (it is loaded
            before anything is written, so a failed load leaves no run.json).
        ValueError: a score rule without a scorer that can apply it.
    """
    t0 = time.perf_counter()
    _check_arguments(recipe, editor, fractals, options)
    check_licence(editor, options.accept_license)  # weights for non-commercial use: only if accepted, before any work
    inp, out = Path(input_dir), Path(output_dir)
    auto_batch = None
    if options.engine == "ray":  # every Ray node reads and writes these paths: not relative to this process's folder
        from . import ray_engine

        ray_engine.import_ray()
        inp, out = inp.absolute(), out.absolute()
        auto_batch = lambda: ray_engine.auto_batch_size(options, editor, recipe.size)  # noqa: E731
    shard = options.shard
    tag = folder.temp_tag(shard)

    # 1. scan and check everything before any work
    scan = scan_input(inp, annotations=annotations)
    check_folders(inp, out)
    check_reserved(scan, cache=options.cache, originals=options.write_originals)
    if not fractals.names:
        raise DiffuseMixError("has no images; pass a folder of fractal images", field="the fractal set")
    check_foreign_output(out)
    if auto_batch is None:  # the Ray engine's actors load (and check) the model on their nodes instead
        editor.load()  # a model that cannot be loaded stops the run here, before run.json or any file is written
    # the model calls are part of the plan: a fixed batch size (auto: the folder's, or chosen now) and chunk size
    editor, options = fix_batches(out, editor, options, recipe.size, auto_batch=auto_batch)
    rule = score_rule if score_rule is not None else ScoreRule()
    if scorer is not None and not scorer.available:
        scorer = None
    if scorer is None:
        rule.check_scorer(NoScorer("no scorer was given"))
    else:
        rule.check_scorer(scorer)
    settings = run_settings(scan, recipe, editor, fractals, options, scorer=scorer, rule=rule)

    # 2. take the folder (a lock), adopt its settings, clear this shard's leftovers, record the plan
    lock = OutputLock(out, shard)
    try:
        flat_label = scan.classes[0] if scan.flat else None
        calls = _saved_calls(out, flat_label) if options.reuse_generated else {}  # before a remix forgets the rows
        remix = _open_output(out, settings, options, tag, lock, flat_label=flat_label)
        finished, orphans, split_words = _record_plan(out, scan, recipe, options, tag)
        journal = folder.Journal(folder.journal_path(out, shard))
        annotation_writer = None
        if scan.annotations is not None:  # --task detect|segment: each A's annotation beside it, in its row
            from .annotation_writer import AnnotationWriter

            annotation_writer = AnnotationWriter(out, scan.annotations, recipe, cache=options.cache)
        writer = Writer(out, options, fractals, journal, tag, remix, run_fields=run_fields(settings),
                        annotations=annotation_writer)

        # 3. run and 4. write: decode ahead → editor → mix, encode and write behind on worker threads
        total = count_for_shard(len(scan.entries) * recipe.samples_per_image, shard, options.chunk_size)
        bar = Progress(total, shard, progress, bar=progress_bar)
        plan_chunks = chunks(iter_samples(scan, recipe, fractals.names, options))
        stream: "Stream | RayStream"
        if options.engine == "ray":  # the same chunks through the same functions, on a Ray cluster
            stream = ray_engine.RayStream(
                plan_chunks, inp=inp, out=out, recipe=recipe, editor=editor, options=options, fractals=fractals,
                journal=journal, remix=remix, run_fields=run_fields(settings), finished=finished, progress=bar,
                cancel=cancel, scorer=scorer, rule=rule, calls=calls, annotations=annotation_writer,
            )
        else:
            stream = Stream(
                plan_chunks,
                out=out,
                recipe=recipe,
                editor=editor,
                options=options,
                writer=writer,
                finished=finished,
                progress=bar,
                cancel=cancel,
                scorer=scorer,
                rule=rule,
                calls=calls,
            )
        try:
            stream.run()
        except BaseException:  # Ctrl-C or an error: keep the journal consistent, report the first error
            bar.close()
            with contextlib.suppress(Exception):
                journal.close()
            raise
        bar.close()
        journal.close()

        # 5. collect: mark this shard done, write the manifest when every shard is
        failed = sorted(stream.failed.items(), key=lambda kv: tuple(kv[0].split("/")))
        manifest_path: Path | None = None
        pending: list[tuple[int, int]] = []
        if not stream.cancelled:
            manifest_path, pending = _collect(out, shard, failed, scan, stream.made, tag)
    finally:
        lock.release()

    # 6. report
    return ExportSummary(
        made=stream.made,
        skipped_done=stream.skipped,
        failed=failed,
        ignored=list(scan.ignored),
        empty_classes=scan.empty_classes,
        degenerate=stream.degenerate + stream.prior_degenerate,
        rejected=stream.rejected,
        scores=stream.score_stats(),
        scorer=_scorer_text(scorer, rule),
        seconds=time.perf_counter() - t0,
        output_dir=out,
        manifest=manifest_path,
        label_mode=scan.label_mode,
        classes=scan.classes,
        shard=shard,
        pending_shards=pending,
        cancelled=stream.cancelled,
        notes=split_name_note(split_words, out)
        + [content_note(p, why) for p, why in content_warnings(recipe.prompts)]
        + orphans_note(orphans)
        + fractals_note(fractals)
        + (_CACHE_NOTE if options.cache else [])
        + (_annotation_notes(scan, writer) if scan.annotations is not None else []),
        editor=getattr(stream, "editor_summary", None) or str(editor.describe().get("summary") or editor.name),
        licence=_licence_text(editor, options),
        preview=not editor.is_diffusion,
    )


def _annotation_notes(scan: InputScan, writer: Writer) -> list[str]:
    from .annotation_writer import summary_note

    return summary_note(scan.annotations, writer.annotations)


def _licence_text(editor: "Editor", options: ExportOptions) -> str:
    """The summary's licence line: the weights' licence, and the acceptance it needed ("" for the preview)."""
    if not editor.is_diffusion:
        return ""
    text = licence_line(editor)
    if acceptance_reason(editor) is not None:
        text += f"; accepted: {options.accept_license} use of the weights (--accept-license)"
    return text


_CACHE_NOTE = [
    f"a cache: I ({folder.INPUTS_DIR}/) and the generated images, nothing mixed; train on it with "
    "diffusemix.data.DiffuseMixDataset(OUTPUT), which re-mixes A every epoch"
]


def fix_batches(
    out: Path, editor: "Editor", options: ExportOptions, size: int, *, auto_batch: Callable[[], int] | None = None
) -> tuple["Editor", ExportOptions]:
    """The editor with a fixed batch size and the options with a fixed chunk size: what makes the model calls.

    ``batch_size="auto"`` becomes the number the folder was made with (a resumed run, a shard) or, for a new
    folder, the one chosen now from free memory; the chunk size defaults to the batch size. Both are recorded
    in run.json, so every later run (and every other engine) makes the same calls. ``auto_batch`` chooses it where
    the model runs elsewhere (the Ray engine's actors).
    """
    from .settings import recorded_batches

    batch = editor.spec.batch_size
    recorded_batch, recorded_chunk = recorded_batches(out)
    if batch == "auto":
        if recorded_batch is not None:
            batch = recorded_batch
        elif auto_batch is not None:
            batch = auto_batch()
        else:
            from ..editors.batching import resolve_batch_size

            batch = resolve_batch_size("auto", device=editor.device, dtype=str(editor.spec.dtype), height=size,
                                       width=size)
        editor = editor.with_settings(batch_size=int(batch))
    if options.chunk_size is None:
        options = options.replace(chunk_size=recorded_chunk or chunk_size(options, editor.spec.batch_size))
    return editor, options


def _saved_calls(out: Path, flat_label: str | None) -> dict[str, tuple[dict[str, Any], ...]]:
    """The model call that made each Î the folder's rows list (what a remix's rows carry over), by the file
    name the row will have once a folder made before version 4 is moved under images/."""
    moving = folder.needs_layout_move(out)
    calls = {}
    for row in folder.read_journal_rows(out):
        name = folder.moved_file_name(row, flat_label=flat_label) if moving else row.get("file_name")
        if isinstance(name, str) and isinstance(row.get("batch"), list):
            calls[name] = tuple(m for m in row["batch"] if isinstance(m, dict))
    return calls


def _check_arguments(recipe: Any, editor: Any, fractals: Any, options: Any) -> None:
    """The library's arguments, named when they are not what they must be (before any work)."""
    from ..editors.base import Editor

    for name, value, cls in (("recipe", recipe, Recipe), ("options", options, ExportOptions)):
        if not isinstance(value, cls):
            raise DiffuseMixError(f"must be a {cls.__name__}", field=name, value=type(value).__name__)
    if not isinstance(editor, Editor):
        raise DiffuseMixError("must be an editor (diffusemix.load_editor(...))", field="editor",
                              value=type(editor).__name__)
    if not hasattr(fractals, "names") or not hasattr(fractals, "load"):
        raise DiffuseMixError("must be a FractalSet", field="fractals", value=type(fractals).__name__)


def _scorer_text(scorer: "Scorer | None", rule: "ScoreRule") -> str:
    if scorer is None:
        return ""
    text = str(scorer.describe().get("summary") or scorer.name)
    parts = []
    if rule.min_score is not None:
        parts.append(f"min {rule.min_score:g}")
    if rule.max_rank is not None:
        parts.append(f"true class in the top {rule.max_rank}")
    return text + (f", keeps {' and '.join(parts)}" if parts else ", no threshold")


def _open_output(
    out: Path, settings: dict[str, Any], options: ExportOptions, tag: str, lock: OutputLock, *,
    flat_label: str | None = None,
) -> bool:
    """Create the folder, take its lock, adopt (or check) its settings, clear this shard's leftovers.
    True for a remix."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        folder.check_state(out)  # a planted link or FIFO among the state files stops the run here
        lock.acquire()
        remix = adopt_settings(out, settings, options, tag, lock, flat_label=flat_label)
    except PermissionError as e:
        raise DiffuseMixError(f"cannot be written: {e.strerror or e}", field=f"output folder {out}") from None
    folder.clean_temp_files(out, options.shard)
    folder.clear_shard_state(out, options.shard)
    return remix


def _record_plan(
    out: Path, scan: InputScan, recipe: Recipe, options: ExportOptions, tag: str
) -> tuple[dict[str, bool], int, list[str]]:
    """Write the whole plan's file names; return the planned samples earlier runs finished
    (file name -> True made / False degenerate), how many journal rows are no longer planned,
    and up to three planned names that hold a split word (see summary.split_name_note)."""
    whole = options.replace(shard=(0, 1))
    planned = [s.file_name for s in iter_samples(scan, recipe, None, whole)]
    folder.write_plan(out, planned, tag=tag)
    split_words = [n for n in planned if has_split_word(n)][:3]
    planned_set = set(planned)
    del planned
    finished: dict[str, bool] = {}
    orphans: set[str] = set()
    for row in folder.read_journal_rows(out):
        name = row.get("file_name")
        if isinstance(name, str):
            if name not in planned_set:
                orphans.add(name)
                continue
            finished[name] = finished.get(name, False) or (DEGENERATE_KEY not in row and REJECTED_KEY not in row)
    return finished, len(orphans), split_words


def _collect(
    out: Path, shard: tuple[int, int], failed: list[tuple[str, str]], scan: InputScan, made: int, tag: str
) -> tuple[Path | None, list[tuple[int, int]]]:
    """Mark this shard done; when no shard is pending, write metadata.jsonl and errors.jsonl."""
    errors = [{"source": s, "kind": "unreadable", "reason": r} for s, r in failed]
    errors += [{"source": s, "kind": "ignored", "reason": r} for s, r in scan.ignored]
    if scan.annotations is not None:  # inputs left out for their annotations (kind "annotation")
        errors += [dict(e) for e in scan.annotations.errors]
    folder.write_done_marker(out, shard, {"shard": list(shard), "errors": errors, "made": made}, tag=tag)
    rows, errs, pend = manifest.collect(out)
    pending = list(pend or [])
    if pending:
        return None, pending
    path = folder.write_manifest(out, rows, errs, tag=tag)
    write_collected(out, rows, tag=tag)  # an annotated export's COCO JSON, data.yaml or classes.txt
    folder.clean_temp_files(out)
    return path, pending
