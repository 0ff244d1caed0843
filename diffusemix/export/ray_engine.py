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

Everything before and after (scan, checks, lock, plan, run.json, the manifest, the summary) is the local run's; the
stages themselves live in :mod:`.ray_stages`.
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
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import DiffuseMixError
from ..recipe import Recipe
from ..scoring.base import ScoreRule
from .options import ExportOptions
from .plan import Sample
from .ray_stages import EditorActor, _Failed, _prepare, _Todo, _write, _Written, pack, scorer_recipe, unpack
from .stream import Progress, Tally, mark_chunk

if TYPE_CHECKING:  # pragma: no cover
    from ..editors.base import CancelToken, Editor
    from ..fractals import FractalSet
    from ..scoring.base import Scorer
    from .annotation_writer import AnnotationWriter
    from .folder import Journal

__all__ = ["INSTALL_HINT", "RayStream", "actor_auto_dtype", "actor_device", "auto_batch_size", "check_resources",
           "driver_spec", "dry_run_lines",
           "import_ray", "session"]

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
    never loaded and takes the CPU; a dtype left to the default becomes the editor's default on the actors' device
    (:func:`actor_auto_dtype` with GPUs per actor, float32 without), so the settings recorded in run.json are the
    ones the actors run.

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
        changes["dtype"] = actor_auto_dtype(editor_class(spec.name))
    return spec.replace(**changes)


def actor_auto_dtype(editor_cls: type) -> str:
    """The dtype ``auto`` stands for on GPU actors, fixed by the driver, which may have no GPU to ask: an editor
    with a default of its own (``auto_dtype``: the instruction editors) runs in bfloat16, as their model cards load
    them (float16 can overflow in their transformers; every data-centre GPU since the A100 has bfloat16; on an
    older one pass ``--dtype float16``); any other, the library's CUDA default (float16)."""
    from ..editors.speed import default_dtype

    return "bfloat16" if hasattr(editor_cls, "auto_dtype") else default_dtype("cuda")


def actor_threads(options: ExportOptions) -> int:
    """Torch threads in an editor actor: the CPUs it asks for, at least one."""
    return max(1, int(options.ray_cpus_per_actor))


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
        annotations: "AnnotationWriter | None" = None,
    ) -> None:
        super().__init__(finished)
        self.chunks, self.inp, self.out, self.recipe, self.editor = chunks, inp, out, recipe, editor
        #: an annotated export's (--task detect|segment) annotation writer: a copy runs in each write task; this
        #: one checks finished samples' files and counts the objects of the rows the driver journals
        self.annotations = annotations
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
            if mark_chunk(chunk, out=self.out, options=self.options, finished=self.finished,
                          annotations=self.annotations):
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
            check_resources(ray, self.options)
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
        # ... so Ray Data's warning that its bars are off (and how to turn them on) would only mislead: mark it
        # as already said (ray.util.debug.log_once, the key of ray 2.60's ray.data._internal.progress).
        from ray.util.debug import log_once

        log_once("ray_data_progress_manager_disabled")
        ctx.execution_options.preserve_order = False
        fractals_ref = ray.put(self.fractals)
        annotations_ref = ray.put(self.annotations) if self.annotations is not None else None
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
                "annotations_ref": annotations_ref, "remix": self.remix, "run_fields": self.run_fields,
                "write": write,
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
                    self._count_objects(row)
                    handled += 1
                self.progress.advance(handled)
                if self.cancel is not None and self.cancel.is_set():
                    self.cancelled = True
                    break
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()


    def _count_objects(self, row: dict[str, Any]) -> None:
        """An annotated export's object counts (kept / clipped / dropped by the crop), from a journaled row's
        ``object_outcomes``: the counts the local engine's annotation writer keeps as it writes."""
        outcomes = row.get("object_outcomes")
        if self.annotations is None or not isinstance(outcomes, list):
            return
        for o in outcomes:
            self.annotations.counts[o["status"]] += 1


def check_resources(ray: Any, options: ExportOptions) -> None:
    """Refuse a run the cluster cannot schedule: the editor actors' CPUs and GPUs, and a CPU beside them for the
    decode and write tasks (Ray Data would wait for them without end, saying nothing).

    Raises:
        DiffuseMixError: the cluster has fewer CPUs or GPUs than that (the numbers, and what to change).
    """
    total = ray.cluster_resources()
    cpus, gpus = float(total.get("CPU", 0.0)), float(total.get("GPU", 0.0))
    n, c, g = options.ray_actors, options.ray_cpus_per_actor, options.ray_gpus_per_actor
    need_cpus, need_gpus = n * c + 1.0, n * g
    if cpus + 1e-9 >= need_cpus and gpus + 1e-9 >= need_gpus:
        return
    raise DiffuseMixError(
        f"asks for more than the Ray cluster has ({cpus:g} CPU and {gpus:g} GPU): {n} editor actor(s) of {c:g} CPU"
        f" and {g:g} GPU each, and 1 CPU for the decode and write tasks, need {need_cpus:g} CPU and {need_gpus:g}"
        " GPU", owner="ExportOptions", field="ray_actors",
        hint="lower --ray-actors, --ray-cpus-per-actor (a fraction such as 0.5 is fine) or --ray-gpus-per-actor,"
        " or add nodes (an autoscaling cluster: start it with the nodes the run needs)",
    )


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
        lines.append(f"  ray time: about {_duration(seconds / n)} with {n} actor(s) (the cost above,"
                     f" {_duration(seconds)} on one, divided across them)")
    else:
        lines.append("  ray time: no estimate (no measured cost for this editor on these devices)")
    try:
        import_ray()
    except DiffuseMixError as e:
        lines.append(f"  note:     {e.reason}; {e.hint}")
    return lines


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"
