"""Step 3 on a Ray cluster (``--engine ray``): the same chunks through the same functions, scheduled by Ray Data.

The plan is the contract (:mod:`.plan`): chunk k is plan positions ``[k*c, (k+1)*c)``, and a chunk's Î depends only
on its members and the editor's settings. So one Ray work item is one whole chunk, and each stage runs the very
functions the local engine (:class:`~.stream.Stream`) runs::

    driver: mark_chunk (finished samples, saved Î)        one item per chunk still to do
      → map(_prepare)        CPU tasks     decode_chunk: I (and saved Î to reuse)
      → map_batches(EditorActor, batch_size=1 chunk, ActorPoolStrategy(size=ray_actors), num_gpus=...)
                             actors        edit_chunk: the chunk's model calls, scored and retried as locally
      → map(_write)          CPU tasks     Writer.write: mix, encode, atomic writes → rows
    driver: appends the rows to the shard's journal (the only journal writer), counts them (Tally), shows progress

Everything before and after (scan, checks, lock, plan, run.json, the manifest, the summary) is the local run's.
An editor actor killed mid-chunk is restarted by Ray (``max_restarts``) and the chunk is done again
(``max_task_retries``): the same Î, since the chunk fixes the model calls; its files are written atomically and
its rows reach the journal once, so the export ends identical. A killed driver leaves the journal; the same command
resumes. Two drivers on one OUTPUT are refused by the folder's lock.

INPUT and OUTPUT travel as paths: every node must see them at the same path (NFS, Lustre, a mounted bucket). Each
actor and task checks that before any work and fails the run naming its node and the path. The fractal set travels
through Ray's object store (its decoded pixels; a set past its memory limit is read from its folder, which the nodes
must then see too).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import socket
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from ..errors import DiffuseMixError
from ..recipe import Recipe
from ..scoring.base import ScoreRule
from .folder import temp_tag
from .options import ExportOptions
from .plan import Sample
from .stream import EditedChunk, Progress, Tally, decode_chunk, edit_chunk, mark_chunk
from .writer import Writer

if TYPE_CHECKING:  # pragma: no cover
    from ..editors.base import CancelToken, Editor
    from ..fractals import FractalSet
    from ..scoring.base import Scorer
    from .folder import Journal

__all__ = ["INSTALL_HINT", "import_ray", "session", "actor_device", "driver_spec", "check_storage", "RayStream", "auto_batch_size",
           "dry_run_lines"]

#: How to get Ray (the ``ray`` extra pins ``ray[data]``).
INSTALL_HINT = 'pip install "diffusemix[ray]"'
#: Times one chunk is tried again on a restarted editor actor before the run fails (a chunk that kills its actor
#: every time, e.g. out of memory, must not loop forever).
ACTOR_TASK_RETRIES = 3
#: Most Ray Data blocks the plan's chunks are spread over (one chunk per block up to this many).
MAX_BLOCKS = 4096


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or a DiffuseMixError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise DiffuseMixError(
            f"ray needs Ray Data, which cannot be imported here ({e})", owner="ExportOptions", field="engine",
            hint=f"install it with {INSTALL_HINT}, or run with the local engine",
        ) from None
    return ray


def actor_device(options: ExportOptions) -> str:
    """Where an editor actor runs the model: ``cuda`` (the GPU Ray gave it) with GPUs per actor, else ``cpu``."""
    return "cuda" if options.ray_gpus_per_actor > 0 else "cpu"


def driver_spec(spec: Any, options: ExportOptions) -> Any:
    """The editor spec as the driver holds it for a Ray run: the model runs on the actors, so the driver's copy is
    never loaded and takes the CPU; a dtype left to the default becomes the actors' device's default (float16 with
    GPUs per actor, float32 without), so the settings recorded in run.json are the ones the actors run.

    Raises:
        SettingError: a ``device`` of another kind than the actors' (their device follows the GPUs per actor).
    """
    from ..editors import editor_class
    from ..errors import SettingError

    if not getattr(editor_class(spec.name), "is_diffusion", True):
        return spec
    device = actor_device(options)
    if spec.device not in (None, "auto") and not str(spec.device).startswith(device):
        raise SettingError(
            f"cannot be used with the ray engine's {device} actors: their device follows the GPUs per actor",
            owner="EditorSpec", field="device", value=spec.device,
            hint="leave --device unset; set --ray-gpus-per-actor (0: CPU actors)",
        )
    changes: dict[str, Any] = {"device": "cpu"}
    if spec.dtype in (None, "auto") and device == "cuda":
        from ..editors.speed import default_dtype

        changes["dtype"] = default_dtype(device)
    return spec.replace(**changes)


def actor_threads(options: ExportOptions) -> int:
    """Torch threads in an editor actor: the CPUs it asks for, at least one."""
    return max(1, int(options.ray_cpus_per_actor))


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

    ``read`` / ``write`` map a name for people ("input folder") to a path. Writability is tried with a small file
    (permissions alone do not tell on a read-only mount), removed at once.

    Raises:
        DiffuseMixError: a folder this node cannot see or write.
    """
    hint = ("INPUT and OUTPUT must be on storage every Ray node sees at the same path (NFS, Lustre, a mounted"
            " bucket): mount it there on every node, or run with the local engine")
    for what, path in {**read, **(write or {})}.items():
        if not os.path.isdir(path) or not os.access(path, os.R_OK | os.X_OK):
            raise DiffuseMixError(f"Ray node {node_name()} cannot see the {what} {path}", path=path, hint=hint)
    for what, path in (write or {}).items():
        probe = os.path.join(path, f".dmx-ray-probe-{socket.gethostname()}-{os.getpid()}.tmp")
        try:
            with open(probe, "wb") as f:
                f.write(b"")
            os.unlink(probe)
        except OSError as e:
            raise DiffuseMixError(f"Ray node {node_name()} cannot write to the {what} {path}: {e.strerror or e}",
                                  path=path, hint=hint) from None


# ---------------------------------------------------------------------------
# what travels between the stages: one chunk, pickled (its arrays as out-of-band buffers)
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
        if getattr(editor_cls, "is_diffusion", True):
            import torch

            torch.set_num_threads(threads)
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


def _write(row: dict[str, Any], *, run: str, out: str, options: ExportOptions, fractals_ref: Any, remix: bool,
           run_fields: dict[str, Any], write: dict[str, str]) -> dict[str, Any]:
    """CPU task: mix, encode and write each sample of an edited chunk (atomically); return the rows, not journaled."""
    got = unpack(row["work"])
    if isinstance(got, _Failed):
        return row
    try:
        check_storage(read={}, write=write)
        writer = _WRITERS.get(run)
        if writer is None:
            import ray

            fractals = fractals_ref if not isinstance(fractals_ref, ray.ObjectRef) else ray.get(fractals_ref)
            _WRITERS.clear()  # one run at a time per process
            writer = _WRITERS[run] = Writer(Path(out), options, fractals, None, temp_tag(options.shard), remix,
                                            run_fields=run_fields)
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


# ---------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def session(options: ExportOptions) -> Iterator[Any]:
    """Ray, joined to the cluster the options name (or a new local one) for the ``with`` block.

    A Ray that is already initialised (a notebook, a test, a program of one's own) is used as it is and left
    running; one this call started is shut down at the end.
    """
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=options.ray_address, include_dashboard=False)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise DiffuseMixError(f"cannot join the Ray cluster: {e}", owner="ExportOptions", field="ray_address",
                                  value=options.ray_address,
                                  hint="start one with `ray start --head`, or leave the address unset for a local one"
                                  ) from None
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


class RayStream(Tally):
    """One shard's run over its chunks on a Ray cluster: the local :class:`~.stream.Stream`'s counterpart."""

    def __init__(
        self,
        chunks: Iterator[list[Sample]],
        *,
        inp: Path,
        out: Path,
        recipe: Recipe,
        editor: "Editor",
        options: ExportOptions,
        fractals: "FractalSet",
        journal: "Journal",
        remix: bool,
        run_fields: dict[str, Any],
        finished: dict[str, bool],
        progress: Progress,
        cancel: "CancelToken | None",
        scorer: "Scorer | None" = None,
        rule: ScoreRule | None = None,
        calls: "dict[str, tuple[dict[str, Any], ...]] | None" = None,
    ) -> None:
        super().__init__(finished)
        self.chunks, self.inp, self.out, self.recipe, self.editor = chunks, inp, out, recipe, editor
        self.options, self.fractals, self.journal, self.remix = options, fractals, journal, remix
        self.run_fields, self.progress, self.cancel = run_fields, progress, cancel
        self.scorer, self.rule = scorer, rule if rule is not None else ScoreRule()
        self.calls = calls or {}
        #: the editor actors' process ids seen in results (a restarted actor adds one)
        self.editor_pids: set[int] = set()
        #: the editor as an actor describes it (its device, not the driver's), once a chunk came back
        self.editor_summary: str | None = None

    def _todo(self) -> list[dict[str, Any]]:
        """The chunks still to do, packed; chunks already finished are counted and skipped here."""
        items = []
        for chunk in self.chunks:
            if mark_chunk(chunk, out=self.out, options=self.options, finished=self.finished):
                self.progress.advance(self.count_done(chunk))
                continue
            calls = {s.file_name: self.calls[s.file_name] for s in chunk if s.file_name in self.calls}
            items.append({"chunk": chunk[0].chunk, "work": pack(_Todo(chunk, calls))})
        return items

    def run(self) -> None:
        """Run every chunk still to do through the Ray pipeline; re-raises the first error as a DiffuseMixError
        where it is one (a node that cannot see the data, a full disk), else as Ray raised it."""
        items = self._todo()
        if not items:
            return
        with session(self.options) as ray:
            self._run(ray, items)

    def _run(self, ray: Any, items: list[dict[str, Any]]) -> None:
        read = {"input folder": str(self.inp)}
        if self.options.reuse_generated or self.remix:
            read["output folder"] = str(self.out)
        write = {"output folder": str(self.out)}
        o = self.options
        ctx = ray.data.DataContext.get_current()
        saved = (ctx.enable_progress_bars, ctx.execution_options.preserve_order)
        ctx.enable_progress_bars = False  # the exporter's own bar counts images
        ctx.execution_options.preserve_order = False
        fractals_ref = ray.put(self.fractals)
        try:
            ds = ray.data.from_items(items, override_num_blocks=min(len(items), MAX_BLOCKS))
            ds = ds.map(_prepare, fn_kwargs={"recipe": self.recipe, "reuse": o.reuse_generated, "read": read})
            with warnings.catch_warnings():
                # Ray Data 2.60 deprecates max_restarts / max_task_retries here (gone in 2.64, no named parameter
                # replaces them); they bound how often one chunk is retried on a restarted actor
                warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
                ds = _editor_stage(ds, ray, o, fn_constructor_kwargs={
                    "editor_cls": type(self.editor), "spec": self.editor.spec, "device": actor_device(o),
                    "threads": actor_threads(o), "scorer": scorer_recipe(self.scorer), "rule": self.rule,
                    "read": read,
                })
            ds = ds.map(_write, fn_kwargs={
                "run": uuid.uuid4().hex, "out": str(self.out), "options": o, "fractals_ref": fractals_ref,
                "remix": self.remix, "run_fields": self.run_fields, "write": write,
            })
            self._drain(ds)
        except DiffuseMixError:
            raise
        except Exception as e:
            raise _user_error(e) from e
        finally:
            ctx.enable_progress_bars, ctx.execution_options.preserve_order = saved

    def _drain(self, ds: Any) -> None:
        """The driver's loop: each written chunk's rows into the journal (once each), counted, shown."""
        journaled: set[str] = set()
        rows = ds.iter_rows()
        try:
            for item in rows:
                got: _Written | _Failed = unpack(item["work"])
                if isinstance(got, _Failed):
                    raise got.error()  # the first user error on a node stops the run (the rows so far are kept)
                self.editor_pids.add(got.editor_pid)
                self.editor_summary = got.editor_summary
                handled = self.count_edited(got.edited)
                for status, row in got.written:
                    if row["file_name"] in journaled:
                        continue  # a chunk done twice (a lost result made again) is journaled once
                    journaled.add(row["file_name"])
                    self.journal.append(row)
                    self.count_written(status)
                    handled += 1
                self.progress.advance(handled)
                if self.cancel is not None and self.cancel.is_set():
                    self.cancelled = True
                    break
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()


def _editor_stage(ds: Any, ray: Any, o: ExportOptions, *, fn_constructor_kwargs: dict[str, Any]) -> Any:
    """The editor actors: one chunk per call, ``ray_actors`` of them, each with its GPUs and CPUs; a killed actor
    is restarted (without end) and its chunk done again (up to :data:`ACTOR_TASK_RETRIES` times)."""
    return ds.map_batches(
        EditorActor,
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=o.ray_actors),
        num_gpus=o.ray_gpus_per_actor or None,
        num_cpus=o.ray_cpus_per_actor,
        fn_constructor_kwargs=fn_constructor_kwargs,
        max_restarts=-1,
        max_task_retries=ACTOR_TASK_RETRIES,
    )


def _user_error(e: BaseException) -> BaseException:
    """A DiffuseMixError for a Ray error that is a user's problem: an editor actor that kept dying on one chunk
    (killed by the system: out of memory?), or a DiffuseMixError raised by a plain Ray task; else ``e`` itself.
    (The stages hand their own DiffuseMixErrors to the driver as data: :class:`_Failed`.)"""
    if isinstance(e, DiffuseMixError):
        return e
    cause = getattr(e, "cause", None)
    if isinstance(cause, DiffuseMixError):
        return _Failed.of(cause).error()
    import ray.exceptions as rex

    if isinstance(e, rex.RayActorError) and not e.actor_init_failed:
        return DiffuseMixError(
            f"a Ray editor actor died {ACTOR_TASK_RETRIES + 1} times on the same chunk ({e})",
            hint="see the Ray logs (out of memory?); the rows made so far are kept: run the same command again to"
            " resume",
        )
    return e


# ---------------------------------------------------------------------------
# before the run: the batch size, the dry run
# ---------------------------------------------------------------------------


def auto_batch_size(options: ExportOptions, editor: "Editor", size: int) -> int:
    """``batch_size="auto"`` for the actors: chosen by a task with an actor's resources, on its device."""
    from ..editors.batching import resolve_batch_size

    with session(options) as ray:
        task = ray.remote(num_gpus=options.ray_gpus_per_actor or None, num_cpus=options.ray_cpus_per_actor)(
            resolve_batch_size)
        device = actor_device(options)
        return int(ray.get(task.remote("auto", device=device, dtype=str(editor.spec.dtype), height=size,
                                       width=size)))


def dry_run_lines(options: ExportOptions, seconds: float | None) -> list[str]:
    """What a Ray run would ask for, and the planner's time (``seconds`` on one device, from
    :func:`diffusemix.cost.plan_cost`) divided evenly across the editor actors."""
    n, g, c = options.ray_actors, options.ray_gpus_per_actor, options.ray_cpus_per_actor
    where = options.ray_address or "RAY_ADDRESS, a cluster started here, or a new local one"
    lines = [
        f"  engine:   ray ({where}): {n} editor actor(s), each {g:g} GPU and {c:g} CPU"
        f" ({g * n:g} GPU and {c * n:g} CPU in all), plus CPU tasks that decode and write",
        "  storage:  every Ray node must see INPUT and OUTPUT at the same paths (shared storage), and have the"
        " model's weights (or a shared Hugging Face cache)",
    ]
    if seconds is not None:
        lines.append(f"  ray time: about {_duration(seconds / n)} with {n} actor(s) (the cost above, {_duration(seconds)}"
                     f" on one, divided across them)")
    else:
        lines.append("  ray time: no estimate (see cost)")
    try:
        import_ray()
    except DiffuseMixError as e:
        lines.append(f"  note:     {e.reason}; {e.hint}")
    return lines


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"
