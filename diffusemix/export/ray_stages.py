"""What runs on the Ray nodes for ``--engine ray``: the storage check, the chunk payloads, and the three stages.

Each stage is the local engine's function (:mod:`.stream`, :mod:`.writer`) around one chunk: ``_prepare``
(decode_chunk, a CPU task), :class:`EditorActor` (edit_chunk, one model load per actor) and ``_write``
(Writer.write, a CPU task). What a stage hands the next is the chunk pickled (protocol 5); a user's error raised
on a node (a folder it cannot see, weights it cannot load, a full disk) travels on as data (:class:`_Failed`) and
the driver (:mod:`.ray_engine`) raises it as it was. Module-level, so Ray pickles them by reference.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DiffuseMixError
from ..recipe import Recipe
from ..scoring.base import ScoreRule
from .folder import temp_tag
from .options import ExportOptions
from .plan import Sample
from .stream import EditedChunk, decode_chunk, edit_chunk
from .writer import Writer

if TYPE_CHECKING:  # pragma: no cover
    from ..scoring.base import Scorer

__all__ = ["EditorActor", "check_storage", "node_name", "pack", "scorer_recipe", "unpack"]


# ---------------------------------------------------------------------------
# what each node checks first
# ---------------------------------------------------------------------------


def node_name() -> str:
    """This node as a person can find it: host name and IP address."""
    try:
        import ray.util

        ip = ray.util.get_node_ip_address()
    except Exception:  # not in a Ray worker
        ip = "?"
    return f"{socket.gethostname()} ({ip})"


def check_storage(*, read: dict[str, str], write: dict[str, str] | None = None) -> None:
    """Fail, naming this node and the path, unless each ``read`` folder is here and each ``write`` folder is writable.

    ``read`` / ``write`` map a name for people ("input folder") to a path. Writability is tried with a temporary
    file (permissions alone do not tell on a read-only mount), gone once closed.

    Raises:
        DiffuseMixError: a folder this node cannot see or write.
    """
    hint = ("INPUT and OUTPUT must be on storage every Ray node sees at the same path (NFS, Lustre, a mounted"
            " bucket): mount it there on every node, or run with the local engine")
    for what, path in {**read, **(write or {})}.items():
        if not os.path.isdir(path) or not os.access(path, os.R_OK | os.X_OK):
            raise DiffuseMixError(f"Ray node {node_name()} cannot see the {what} {path}", path=path, hint=hint)
    for what, path in (write or {}).items():
        if path in _WRITABLE:
            continue
        try:
            with tempfile.TemporaryFile(dir=path):  # removed when closed (unnamed where the file system allows)
                pass
        except OSError as e:
            raise DiffuseMixError(f"Ray node {node_name()} cannot write to the {what} {path}: {e.strerror or e}",
                                  path=path, hint=hint) from None
        _WRITABLE.add(path)


_WRITABLE: set[str] = set()  # folders this process has written to (tried once per process)


# ---------------------------------------------------------------------------
# what travels between the stages: one chunk, pickled (protocol 5)
# ---------------------------------------------------------------------------


def pack(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=5)


def unpack(data: Any) -> Any:
    return pickle.loads(bytes(data) if not isinstance(data, bytes) else data)


@dataclasses.dataclass
class _Failed:
    """A user's error raised on a node (storage, weights, a full disk), carried to the driver as data: Ray reports
    errors in stages by their text (wrapped, or as a dead actor), and the driver raises this one as it was."""

    cls: type
    fields: dict[str, Any]
    message: str

    @classmethod
    def of(cls, e: DiffuseMixError) -> "_Failed":
        try:
            pack(e.__dict__)
            return cls(type(e), dict(e.__dict__), str(e))
        except Exception:  # a field that cannot travel: the message, the path and the hint do
            return cls(DiffuseMixError, dict(DiffuseMixError(e.reason, path=str(e.path), hint=e.hint).__dict__), str(e))

    def error(self) -> DiffuseMixError:
        err = self.cls.__new__(self.cls)
        BaseException.__init__(err, self.message)
        err.__dict__.update(self.fields)
        return err


def _failed(row: dict[str, Any], e: DiffuseMixError) -> dict[str, Any]:
    return {"chunk": row["chunk"], "work": pack(_Failed.of(e))}


@dataclasses.dataclass
class _Todo:
    """A chunk still to do, as the driver sends it."""

    samples: list[Sample]
    calls: dict[str, tuple[dict[str, Any], ...]]  # a remix: the model call of each saved Î, by file name


@dataclasses.dataclass
class _Decoded:
    samples: list[Sample]
    images: dict[str, np.ndarray | str]
    reused: dict[str, Any]


@dataclasses.dataclass
class _Written:
    """What the driver needs of a written chunk: the chunk without its pixels, and each sample's status and row."""

    edited: EditedChunk
    written: list[tuple[str, dict[str, Any]]]
    editor_pid: int  # the editor actor's process
    editor_summary: str  # its editor, described where it runs (device and dtype)


# ---------------------------------------------------------------------------
# the stages (module-level: Ray pickles them by reference)
# ---------------------------------------------------------------------------


def _prepare(row: dict[str, Any], *, recipe: Recipe, reuse: bool, read: dict[str, str]) -> dict[str, Any]:
    """CPU task: I for every image of the chunk (or why it failed), and any saved Î to reuse."""
    try:
        check_storage(read=read)
        todo: _Todo = unpack(row["work"])
        images, reused = decode_chunk(todo.samples, recipe, reuse, todo.calls)
    except DiffuseMixError as e:
        return _failed(row, e)
    return {"chunk": row["chunk"], "work": pack(_Decoded(todo.samples, images, reused))}


class EditorActor:
    """An editor actor: checks the storage, loads the editor (and scorer) once, then edits one chunk per call.

    It rebuilds the driver's editor from its class and resolved spec with this actor's device, and refuses to run
    if the settings that make pixels came out different (they are the folder's, recorded in run.json).
    """

    def __init__(
        self,
        *,
        editor_cls: type,
        spec: Any,
        device: str,
        threads: int,
        scorer: Any,
        rule: ScoreRule,
        read: dict[str, str],
    ) -> None:
        # A user's error here (storage, weights, settings) is kept and handed on by each call (as data, to the
        # driver): Ray would report an actor that dies in its constructor by the text of its error only.
        self.problem: DiffuseMixError | None = None
        try:
            self._start(editor_cls=editor_cls, spec=spec, device=device, threads=threads, scorer=scorer, rule=rule,
                        read=read)
        except DiffuseMixError as e:
            self.problem = e

    def _start(self, *, editor_cls: type, spec: Any, device: str, threads: int, scorer: Any, rule: ScoreRule,
               read: dict[str, str]) -> None:
        # 1. storage first: a node that cannot see the data fails before loading a model
        check_storage(read=read)
        # 2. this process's speed settings (as the command line sets them), torch on the CPUs it asked for
        from ..runtime import tune_allocator

        tune_allocator()
        diffusion = getattr(editor_cls, "is_diffusion", True)
        if diffusion or scorer is not None:  # a model's numbers move in their last bits with the thread count
            import torch

            torch.set_num_threads(threads)
        if diffusion:
            spec = spec.replace(device=device)
        # 3. the editor, checked against the driver's settings, and loaded once
        self.editor = editor_cls(spec)
        want, got = spec.pixel_settings(), self.editor.spec.pixel_settings()
        if got != want:
            raise DiffuseMixError(f"Ray node {node_name()} resolved the editor's settings to {got}, not the run's"
                                  f" {want}", field="editor")
        self.editor.load()
        self.summary = str(self.editor.describe().get("summary") or self.editor.name)
        self.scorer = _build_scorer(scorer, device)
        self.rule = rule

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        chunks, works = [], []
        for k, data in zip(batch["chunk"], batch["work"]):
            chunks.append(int(k))
            got: _Decoded | _Failed = unpack(data)
            if isinstance(got, _Failed):
                works.append(data)
                continue
            try:
                if self.problem is not None:
                    raise self.problem
                edited = edit_chunk(got.samples, got.images, got.reused, editor=self.editor, scorer=self.scorer,
                                    rule=self.rule)
            except DiffuseMixError as e:
                works.append(pack(_Failed.of(e)))
                continue
            works.append(pack((edited, os.getpid(), self.summary)))
        return {"chunk": np.asarray(chunks, dtype=np.int64), "work": np.asarray(works, dtype=object)}


def _build_scorer(recipe: Any, device: str) -> "Scorer | None":
    """The actor's scorer: rebuilt by name from the driver's (on this actor's device), or the object sent as is."""
    if recipe is None:
        return None
    kind, value = recipe
    if kind == "object":
        return value
    from ..scoring import ScorerSpec, load_scorer

    spec, class_names = value
    scorer = load_scorer(ScorerSpec(**{**spec, "device": device}), class_names=class_names)
    scorer.load()
    return scorer


def scorer_recipe(scorer: "Scorer | None") -> Any:
    """How an actor gets the driver's scorer: a built-in one is rebuilt from its settings (no weights travel),
    any other is sent pickled."""
    if scorer is None:
        return None
    from ..scoring.spec import SCORER_NAMES

    if scorer.name in SCORER_NAMES and all(hasattr(scorer, a) for a in ("model", "dtype", "batch_size")) \
            and hasattr(scorer, "load") and type(scorer).__module__.startswith("diffusemix."):
        spec = {"name": scorer.name, "model": scorer.model, "dtype": scorer.dtype, "batch_size": scorer.batch_size}
        if scorer.name == "clip-label":
            spec["template"] = scorer.template  # type: ignore[attr-defined]
        return ("spec", (spec, tuple(getattr(scorer, "class_names", ()) or ()) or None))
    try:
        pack(scorer)
    except Exception as e:
        raise DiffuseMixError(f"cannot be sent to the Ray actors ({type(e).__name__}: {e})", field="scorer",
                              hint="use a built-in scorer (load_scorer), or the local engine") from None
    return ("object", scorer)


_WRITERS: dict[str, Writer] = {}  # per worker process and run: made folders, cache inputs being written


def _write(row: dict[str, Any], *, run: str, out: str, options: ExportOptions, fractals_ref: Any,
           annotations_ref: Any, remix: bool, run_fields: dict[str, Any], write: dict[str, str]) -> dict[str, Any]:
    """CPU task: mix, encode and write each sample of an edited chunk (atomically, never through a link; an
    annotated export's annotation files too); return the rows, not journaled."""
    got = unpack(row["work"])
    if isinstance(got, _Failed):
        return row
    try:
        check_storage(read={}, write=write)
        writer = _WRITERS.get(run)
        if writer is None:
            import ray

            fractals, annotations = (ref if not isinstance(ref, ray.ObjectRef) else ray.get(ref)
                                     for ref in (fractals_ref, annotations_ref))
            _WRITERS.clear()  # one run at a time per process
            writer = _WRITERS[run] = Writer(Path(out), options, fractals, None, temp_tag(options.shard), remix,
                                            run_fields=run_fields, annotations=annotations)
        edited, pid, summary = got
        written = [writer.write(s, edited.images[s.entry.source], edited.made[s.file_name])
                   for s in edited.to_write()]
    except DiffuseMixError as e:  # a full disk (named), OUTPUT gone
        return _failed(row, e)
    light = dataclasses.replace(
        edited, images={},
        made={k: dataclasses.replace(m, image=np.empty(0, np.uint8)) for k, m in edited.made.items()},
    )
    return {"chunk": row["chunk"], "work": pack(_Written(light, written, pid, summary))}
