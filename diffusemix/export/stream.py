"""Step 3, run: stream a shard's chunks through decode → editor → mix/encode/write.

A chunk whose samples are all finished is skipped; the others are decoded
ahead of time on worker threads, sent to the editor in one call, and mixed,
encoded and written by worker threads (:class:`~.writer.Writer`), with a
bounded number of chunks in flight: memory stays constant however large the
dataset.

What happens to one chunk is a handful of plain functions, shared by every
engine: :func:`mark_chunk` (which samples are finished, which Î can be read
back), :func:`decode_chunk` (I), :func:`edit_chunk` (Î in the planned model
call, scored), the :class:`~.writer.Writer` (mix, encode, write) and a
:class:`Tally` (what was made, skipped, dropped). The local :class:`Stream`
runs them on threads; the Ray engine (:mod:`.ray_engine`) runs the same
functions as Ray Data tasks and actors.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from ..engine import generate
from ..errors import Cancelled, ImageError
from ..recipe import Recipe
from ..scoring.base import Score, ScoreRule
from ..scoring.filter import generate_scored
from .folder import SAVED_STAGES, cache_input_name, looks_complete, original_name, stage_path
from .options import ExportOptions
from .plan import Sample
from .scan import input_file_problem
from .writer import Made, Writer, read_reused

if TYPE_CHECKING:  # pragma: no cover
    from ..editors.base import CancelToken, Editor
    from ..scoring.base import Scorer
    from .annotation_writer import AnnotationWriter

#: Chunks whose writes may still be in progress while the editor works on the next.
_MAX_CHUNKS_WRITING = 2


class Progress:
    """``progress(done, total)`` and a tqdm bar (on a terminal), advanced together."""

    def __init__(
        self,
        total: int,
        shard: tuple[int, int],
        callback: Callable[[int, int], None] | None,
        *,
        bar: bool,
    ) -> None:
        self.total, self.callback, self.handled = total, callback, 0
        self.bar = None
        if bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total,
                unit="img",
                desc=f"export {shard[0]}/{shard[1]}" if shard[1] > 1 else "export",
                dynamic_ncols=True,
                disable=None,
            )

    def advance(self, n: int) -> None:
        self.handled += n
        if self.bar is not None:
            self.bar.update(n)
        if self.callback is not None:
            self.callback(self.handled, self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def batch_members(jobs: list[Sample], call: tuple[tuple[int, int], ...]) -> tuple[dict[str, Any], ...]:
    """An :attr:`EditResult.batch` (indices into ``jobs``, seeds) as the row's ``batch`` column."""
    return tuple(
        {"source": jobs[j].record.source, "prompt": jobs[j].record.prompt, "copy": jobs[j].record.copy, "seed": seed}
        for j, seed in call
    )


def decode_chunk(
    chunk: list[Sample], recipe: Recipe, reuse: bool, calls: "dict[str, tuple[dict[str, Any], ...]] | None" = None
) -> tuple[dict[str, np.ndarray | str], dict[str, "Made"]]:
    """I for every image of a chunk (or why it failed), and the reusable Î."""
    from ..images import load_image, prepare

    images: dict[str, np.ndarray | str] = {}
    for s in chunk:
        src = s.entry.source
        if src in images:
            continue
        problem = input_file_problem(s.entry.path)  # again: the file may have changed since the scan
        if problem is not None:
            images[src] = problem
            continue
        try:
            images[src] = prepare(load_image(s.entry.path), recipe.size, resize=recipe.resize)  # type: ignore[arg-type]
        except ImageError as e:
            images[src] = e.reason  # the source is shown beside it
        except (OSError, ValueError) as e:  # anything else Pillow or the disk may raise
            images[src] = f"cannot be used: {e}"
        except MemoryError:  # this image alone: the rest of the chunk goes on
            images[src] = "ran out of memory while decoding it (too large for this machine); skipped"
    reused: dict[str, Made] = {}
    if reuse:
        for s in chunk:
            if s.reuse is not None and isinstance(images.get(s.entry.source), np.ndarray):
                got = read_reused(s.reuse, s.record, recipe.size, (calls or {}).get(s.file_name, ()))
                if got is not None:
                    reused[s.file_name] = got
    return images, reused


def sample_done(
    s: Sample, *, out: Path, options: ExportOptions, finished: dict[str, bool],
    annotations: "AnnotationWriter | None" = None,
) -> bool:
    """Whether an earlier run finished ``s``: made with every file in place, whole (a file cut short is made again)
    and not a link (never written through), or degenerate (reported, not retried). ``annotations``: an annotated
    export's writer (A's annotation file must be in place too)."""
    state = finished.get(s.file_name)
    if state is None:
        return False
    if state is False:
        return True  # degenerate: reported, not retried
    if not looks_complete(out / s.file_name):
        return False
    if options.cache and not looks_complete(out / cache_input_name(s.entry.out_stem, options.extension)):
        return False
    if options.write_originals and not looks_complete(out / original_name(s.entry.out_stem)):
        return False
    if annotations is not None and not annotations.complete(s.file_name):
        return False
    stage_names = SAVED_STAGES if options.save_stages else ()
    return all(looks_complete(stage_path(out, st, s.file_name)) for st in stage_names)


def mark_chunk(
    chunk: list[Sample], *, out: Path, options: ExportOptions, finished: dict[str, bool],
    annotations: "AnnotationWriter | None" = None,
) -> bool:
    """Set each sample's ``done`` (and ``reuse``: a saved Î to read back); True when every sample is done."""
    for s in chunk:
        s.done = sample_done(s, out=out, options=options, finished=finished, annotations=annotations)
        if options.reuse_generated and not s.done:
            p = stage_path(out, "generated", s.file_name)
            s.reuse = p if looks_complete(p) else None
    return all(s.done for s in chunk)


@dataclass
class EditedChunk:
    """A chunk after the editor: I per source, Î of every sample still to write, why unusable sources failed."""

    samples: list[Sample]
    images: dict[str, np.ndarray | str]
    made: dict[str, Made]  # by file name: the samples to write (usable and not done)
    failed: dict[str, str]  # source -> why it cannot be used

    def to_write(self) -> list[Sample]:
        """The samples to mix and write, in plan order."""
        return [s for s in self.samples if s.file_name in self.made]


def edit_chunk(
    chunk: list[Sample],
    images: dict[str, np.ndarray | str],
    reused: dict[str, Made],
    *,
    editor: "Editor",
    scorer: "Scorer | None" = None,
    rule: ScoreRule | None = None,
    cancel: "CancelToken | None" = None,
) -> EditedChunk:
    """Î for a decoded chunk: read back where saved, else the chunk's samples in one editor call (the planned
    model calls: finished samples are in it too, so the others' Î come out the same), scored and retried with a
    scorer. Raises Cancelled."""
    rule = rule if rule is not None else ScoreRule()
    # 1. inputs that cannot be used
    failed: dict[str, str] = {}
    live = []
    for s in chunk:
        got = images[s.entry.source]
        if isinstance(got, str):
            failed.setdefault(s.entry.source, got)
        else:
            live.append(s)
    # 2. Î: reused where saved, else one editor call for the chunk (scored and retried with a scorer)
    results: dict[str, Made] = {s.file_name: reused[s.file_name] for s in live if s.file_name in reused}
    jobs = [s for s in live if s.file_name not in results]
    _generate(jobs, images, results, editor=editor, scorer=scorer, rule=rule, cancel=cancel)
    _score_reused([s for s in live if s.file_name in reused and not s.done], images, results, scorer=scorer,
                  rule=rule)
    made = {s.file_name: results[s.file_name] for s in live if not s.done}
    return EditedChunk(list(chunk), images, made, failed)


def _generate(
    jobs: list[Sample],
    images: dict[str, np.ndarray | str],
    results: dict[str, Made],
    *,
    editor: "Editor",
    scorer: "Scorer | None",
    rule: ScoreRule,
    cancel: "CancelToken | None",
) -> None:
    """One editor call for ``jobs``; with a scorer, scored and rejected Î made again (raises Cancelled)."""
    if not jobs:
        return
    pairs = [(s.record, images[s.entry.source]) for s in jobs]
    if scorer is None:
        made = generate(editor, pairs, cancel=cancel)  # type: ignore[arg-type]
        for s, (rec, res) in zip(jobs, made, strict=True):
            results[s.file_name] = Made(res.image, rec, res.degenerate, batch=batch_members(jobs, res.batch))
        return
    done = generate_scored(
        editor,
        pairs,  # type: ignore[arg-type]
        scorer=scorer,
        rule=rule,
        max_retries=editor.max_retries,
        labels=[s.entry.label for s in jobs],
        cancel=cancel,
    )
    for s, d in zip(jobs, done, strict=True):
        results[s.file_name] = Made(d.result.image, d.record, d.result.degenerate, d.score, d.rejected,
                                    batch=batch_members(jobs, d.result.batch))


def _score_reused(
    reused: list[Sample],
    images: dict[str, np.ndarray | str],
    results: dict[str, Made],
    *,
    scorer: "Scorer | None",
    rule: ScoreRule,
) -> None:
    """A remix's saved Î get their scores again (they passed the same rule when they were made)."""
    if scorer is None or not reused:
        return
    scores = scorer.score(
        [images[s.entry.source] for s in reused],  # type: ignore[misc]
        [results[s.file_name].image for s in reused],
        labels=[s.entry.label for s in reused],
    )
    for s, sc in zip(reused, scores, strict=True):
        results[s.file_name] = dataclasses.replace(results[s.file_name], score=sc, rejected=rule.reject(sc))


class Tally:
    """What a run made, skipped and could not use, counted the same way by every engine.

    ``finished`` maps the file names earlier runs finished to True (made) or
    False (degenerate: reported, not retried).
    """

    def __init__(self, finished: dict[str, bool]) -> None:
        self.finished = finished
        self.made = self.skipped = self.degenerate = self.prior_degenerate = self.rejected = 0
        # prompt -> (scores of this run's final Î, how many were dropped for their score)
        self._scores: dict[str, tuple[list[float], list[int]]] = {}
        self.failed: dict[str, str] = {}  # source -> why it cannot be used
        self.cancelled = False

    def count_done(self, samples: list[Sample]) -> int:
        """Count the samples earlier runs finished (made: skipped; degenerate: reported again); returns how many."""
        n = 0
        for s in samples:
            if s.done:
                n += 1
                if self.finished.get(s.file_name) is False:
                    self.prior_degenerate += 1
                else:
                    self.skipped += 1
        return n

    def count_edited(self, edited: EditedChunk) -> int:
        """Count a chunk after the editor: unusable sources, finished samples, the scores of the Î to write.
        Returns how many samples are handled without a write (for the progress)."""
        for src, why in edited.failed.items():
            self.failed.setdefault(src, why)
        for made in edited.made.values():
            self.count_score(made.record.prompt, made.score, made.rejected)
        self.count_done(edited.samples)
        return sum(1 for s in edited.samples if s.entry.source in edited.failed or s.done)

    def count_written(self, status: str) -> None:
        """Count one sample the writer handled: ``made``, ``rejected`` or ``degenerate``."""
        if status == "made":
            self.made += 1
        elif status == "rejected":
            self.rejected += 1
        else:
            self.degenerate += 1

    def count_score(self, prompt: str, score: Score | None, rejected: str | None) -> None:
        if score is None:
            return
        values, dropped = self._scores.setdefault(prompt, ([], [0]))
        values.append(float(score.value))
        dropped[0] += rejected is not None

    def score_stats(self) -> dict[str, tuple[float, int, int]]:
        """Per prompt, for this run: (mean score, Î scored, Î dropped for their score)."""
        return {p: (float(np.mean(v)), len(v), d[0]) for p, (v, d) in self._scores.items()}


class Stream(Tally):
    """One shard's run over its chunks on this machine's threads (the local engine)."""

    def __init__(
        self,
        chunks: Iterator[list[Sample]],
        *,
        out: Path,
        recipe: Recipe,
        editor: "Editor",
        options: ExportOptions,
        writer: Writer,
        finished: dict[str, bool],
        progress: Progress,
        cancel: "CancelToken | None",
        scorer: "Scorer | None" = None,
        rule: ScoreRule | None = None,
        calls: "dict[str, tuple[dict[str, Any], ...]] | None" = None,
    ) -> None:
        super().__init__(finished)
        self.chunks, self.out, self.recipe, self.editor = chunks, out, recipe, editor
        #: a remix: the model call that made each saved Î (from the rows the folder had), by file name
        self.calls = calls or {}
        self.options, self.writer = options, writer
        self.progress, self.cancel = progress, cancel
        self.scorer, self.rule = scorer, rule if rule is not None else ScoreRule()
        self._decoding: deque[tuple[list[Sample], Future]] = deque()
        self._writing: deque[list[Future]] = deque()
        self._prefetch = max(2, options.workers)

    def run(self) -> None:
        """Go through every chunk (or until cancelled); re-raises a write error or Ctrl-C."""
        workers = self.options.workers
        self._decode_pool = ThreadPoolExecutor(workers, thread_name_prefix="dmx-decode")
        self._write_pool = ThreadPoolExecutor(workers, thread_name_prefix="dmx-write")
        try:
            while True:
                if self.cancel is not None and self.cancel.is_set():
                    self.cancelled = True
                    break
                self._refill()
                if not self._decoding:
                    break
                chunk, fut = self._decoding.popleft()
                images, reused = fut.result()
                self._refill()  # keep decoding ahead while the editor works
                ok = self._edit_and_write(chunk, images, reused)
                del images, reused  # a chunk's decoded images are not kept while the next is decoded
                if not ok:
                    self.cancelled = True
                    break
                self._harvest(_MAX_CHUNKS_WRITING)
            self._harvest(0)
        except BaseException:
            # Ctrl-C or an error: stop reading ahead, let the writes in progress finish
            # (each is atomic anyway) and re-raise; the caller keeps the journal consistent.
            self._decode_pool.shutdown(wait=True, cancel_futures=True)
            self._write_pool.shutdown(wait=True, cancel_futures=True)
            raise
        self._decode_pool.shutdown(wait=True, cancel_futures=True)
        self._write_pool.shutdown(wait=True)

    def _refill(self) -> None:
        """Queue chunks for decoding until ``prefetch`` are; chunks already finished are counted and skipped."""
        while len(self._decoding) < self._prefetch:
            chunk = next(self.chunks, None)
            if chunk is None:
                return
            if mark_chunk(chunk, out=self.out, options=self.options, finished=self.finished,
                          annotations=self.writer.annotations):
                self.progress.advance(self.count_done(chunk))
                continue
            fut = self._decode_pool.submit(decode_chunk, chunk, self.recipe, self.options.reuse_generated, self.calls)
            self._decoding.append((chunk, fut))

    def _edit_and_write(
        self,
        chunk: list[Sample],
        images: dict[str, np.ndarray | str],
        reused: dict[str, Made],
    ) -> bool:
        """Make Î for a decoded chunk and hand its samples to the writers; False when cancelled."""
        try:
            edited = edit_chunk(chunk, images, reused, editor=self.editor, scorer=self.scorer, rule=self.rule,
                                cancel=self.cancel)
        except Cancelled:
            return False
        handled = self.count_edited(edited)
        futs = [self._write_pool.submit(self.writer, s, edited.images[s.entry.source], edited.made[s.file_name])
                for s in edited.to_write()]
        self.progress.advance(handled)
        self._writing.append(futs)
        return True

    def _harvest(self, limit: int) -> None:
        """Collect finished chunks; wait until at most ``limit`` chunks are still being written."""
        writing = self._writing
        while writing and (len(writing) > limit or all(f.done() for f in writing[0])):
            futs = writing.popleft()
            for f in futs:
                self.count_written(f.result())  # re-raises a write error
            self.progress.advance(len(futs))
