"""Step 3, run: stream a shard's chunks through decode → editor → mix/encode/write.

A chunk whose samples are all finished is skipped; the others are decoded
ahead of time on worker threads, sent to the editor in one call, and mixed,
encoded and written by worker threads (:class:`~.writer.Writer`), with a
bounded number of chunks in flight: memory stays constant however large the
dataset.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from ..engine import generate
from ..errors import Cancelled, ImageError
from ..recipe import Recipe, SampleRecord
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


class Stream:
    """One shard's run over its chunks; counts what it made, skipped and could not use.

    ``finished`` maps the file names earlier runs finished to True (made) or
    False (degenerate: reported, not retried).
    """

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
        self.chunks, self.out, self.recipe, self.editor = chunks, out, recipe, editor
        #: a remix: the model call that made each saved Î (from the rows the folder had), by file name
        self.calls = calls or {}
        self.options, self.writer, self.finished = options, writer, finished
        self.progress, self.cancel = progress, cancel
        self.scorer, self.rule = scorer, rule if rule is not None else ScoreRule()
        self.stage_names = SAVED_STAGES if options.save_stages else ()
        self.made = self.skipped = self.degenerate = self.prior_degenerate = self.rejected = 0
        # prompt -> (scores of this run's final Î, how many were dropped for their score)
        self._scores: dict[str, tuple[list[float], list[int]]] = {}
        self.failed: dict[str, str] = {}  # source -> why it cannot be used
        self.cancelled = False
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

    def is_done(self, s: Sample) -> bool:
        state = self.finished.get(s.file_name)
        if state is None:
            return False
        if state is False:
            return True  # degenerate: reported, not retried
        # each file in place, whole (a file cut short is made again) and not a link (never written through)
        if not looks_complete(self.out / s.file_name):
            return False
        if self.options.cache and not looks_complete(self.out / cache_input_name(s.entry.out_stem,
                                                                                 self.options.extension)):
            return False
        if self.options.write_originals and not looks_complete(self.out / original_name(s.entry.out_stem)):
            return False
        if self.writer.annotations is not None and not self.writer.annotations.complete(s.file_name):
            return False
        return all(looks_complete(stage_path(self.out, st, s.file_name)) for st in self.stage_names)

    def _refill(self) -> None:
        """Queue chunks for decoding until ``prefetch`` are; chunks already finished are counted and skipped."""
        while len(self._decoding) < self._prefetch:
            chunk = next(self.chunks, None)
            if chunk is None:
                return
            for s in chunk:
                s.done = self.is_done(s)
                if self.options.reuse_generated and not s.done:
                    p = stage_path(self.out, "generated", s.file_name)
                    s.reuse = p if looks_complete(p) else None
            if all(s.done for s in chunk):
                n_bad = sum(self.finished.get(s.file_name) is False for s in chunk)
                self.prior_degenerate += n_bad
                self.skipped += len(chunk) - n_bad
                self.progress.advance(len(chunk))
                continue
            fut = self._decode_pool.submit(decode_chunk, chunk, self.recipe, self.options.reuse_generated, self.calls)
            self._decoding.append((chunk, fut))

    def _edit_and_write(
        self,
        chunk: list[Sample],
        images: dict[str, np.ndarray | str],
        reused: dict[str, tuple[np.ndarray, SampleRecord]],
    ) -> bool:
        """Make Î for a decoded chunk and hand its samples to the writers; False when cancelled."""
        # 1. inputs that cannot be used
        live = []
        for s in chunk:
            got = images[s.entry.source]
            if isinstance(got, str):
                self.failed.setdefault(s.entry.source, got)
            else:
                live.append(s)
        n_dead = len(chunk) - len(live)
        # 2. Î: reused where saved, else one editor call for the chunk (scored and retried with a scorer)
        results: dict[str, Made] = {}
        for s in live:
            if s.file_name in reused:
                results[s.file_name] = reused[s.file_name]
        jobs = [s for s in live if s.file_name not in results]
        try:
            self._generate(jobs, images, results)
        except Cancelled:
            return False
        self._score_reused([s for s in live if s.file_name in reused and not s.done], images, results)
        # 3. mix, encode and write on the worker threads
        futs = []
        for s in live:
            if s.done:
                continue
            made = results[s.file_name]
            self._count_score(made.record.prompt, made.score, made.rejected)
            futs.append(self._write_pool.submit(self.writer, s, images[s.entry.source], made))
        for s in chunk:
            if s.done:
                if self.finished.get(s.file_name) is False:
                    self.prior_degenerate += 1
                else:
                    self.skipped += 1
        self.progress.advance(n_dead + sum(1 for s in live if s.done))
        self._writing.append(futs)
        return True

    def _harvest(self, limit: int) -> None:
        """Collect finished chunks; wait until at most ``limit`` chunks are still being written."""
        writing = self._writing
        while writing and (len(writing) > limit or all(f.done() for f in writing[0])):
            futs = writing.popleft()
            for f in futs:
                got = f.result()  # re-raises a write error
                if got == "made":
                    self.made += 1
                elif got == "rejected":
                    self.rejected += 1
                else:
                    self.degenerate += 1
            self.progress.advance(len(futs))

    # -- scores ------------------------------------------------------------------

    def _generate(
        self,
        jobs: list[Sample],
        images: dict[str, np.ndarray | str],
        results: dict[str, Made],
    ) -> None:
        """One editor call for ``jobs``; with a scorer, scored and rejected Î made again (raises Cancelled)."""
        if not jobs:
            return
        pairs = [(s.record, images[s.entry.source]) for s in jobs]
        if self.scorer is None:
            made = generate(self.editor, pairs, cancel=self.cancel)  # type: ignore[arg-type]
            for s, (rec, res) in zip(jobs, made, strict=True):
                results[s.file_name] = Made(res.image, rec, res.degenerate, batch=batch_members(jobs, res.batch))
            return
        done = generate_scored(
            self.editor,
            pairs,  # type: ignore[arg-type]
            scorer=self.scorer,
            rule=self.rule,
            max_retries=self.editor.max_retries,
            labels=[s.entry.label for s in jobs],
            cancel=self.cancel,
        )
        for s, d in zip(jobs, done, strict=True):
            results[s.file_name] = Made(d.result.image, d.record, d.result.degenerate, d.score, d.rejected,
                                        batch=batch_members(jobs, d.result.batch))

    def _score_reused(
        self,
        reused: list[Sample],
        images: dict[str, np.ndarray | str],
        results: dict[str, Made],
    ) -> None:
        """A remix's saved Î get their scores again (they passed the same rule when they were made)."""
        if self.scorer is None or not reused:
            return
        scores = self.scorer.score(
            [images[s.entry.source] for s in reused],  # type: ignore[misc]
            [results[s.file_name].image for s in reused],
            labels=[s.entry.label for s in reused],
        )
        for s, sc in zip(reused, scores, strict=True):
            results[s.file_name] = dataclasses.replace(results[s.file_name], score=sc, rejected=self.rule.reject(sc))

    def _count_score(self, prompt: str, score: Score | None, rejected: str | None) -> None:
        if score is None:
            return
        values, dropped = self._scores.setdefault(prompt, ([], [0]))
        values.append(float(score.value))
        dropped[0] += rejected is not None

    def score_stats(self) -> dict[str, tuple[float, int, int]]:
        """Per prompt, for this run: (mean score, Î scored, Î dropped for their score)."""
        return {p: (float(np.mean(v)), len(v), d[0]) for p, (v, d) in self._scores.items()}
