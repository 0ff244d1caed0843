"""Export options: how an export is written, and which shard this process does."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from typing import Any

from .. import schema
from ..errors import SettingError
from ..schema import check_fields, fail, register, setting

__all__ = ["ExportOptions", "FORMATS", "CACHE_FORMATS", "ENGINES", "parse_shard", "detect_shard"]

#: Output formats and their file extensions (BMP: uncompressed, the fastest to read back; a cache's default).
FORMATS: dict[str, str] = {"png": ".png", "jpeg": ".jpg", "bmp": ".bmp"}
#: How the chunks are run: this process's threads, or a Ray cluster (:mod:`diffusemix.export.ray_engine`).
ENGINES: tuple[str, ...] = ("local", "ray")
#: The settings that only the ray engine reads.
_RAY_FIELDS: tuple[str, ...] = ("ray_address", "ray_actors", "ray_gpus_per_actor", "ray_cpus_per_actor")
#: Lossless formats, the only ones a cache of Î may use.
CACHE_FORMATS: tuple[str, ...] = ("bmp", "png")


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` → (I, N) with 0 <= I < N."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if m is None:
        raise SettingError("must look like I/N, e.g. 0/2 for the first of two shards", owner="ExportOptions",
                           field="shard", value=text)
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= i < n:
        raise SettingError("needs N >= 1 and 0 <= I < N (shards count from 0)", owner="ExportOptions",
                           field="shard", value=text)
    return i, n


@register
@dataclass(frozen=True)
class ExportOptions:
    """How an export is written (the method's settings are the :class:`Recipe`, the editor's the ``EditorSpec``)."""

    format: str | None = setting(
        None, choices=tuple(FORMATS), optional=True, stage="mixing", label="Format",
        help="file format: png (an export's default), jpeg, or bmp (uncompressed; a cache's default)",
    )
    quality: int = setting(95, kind="int", low=1, high=100, metavar="Q", stage="mixing", label="JPEG quality",
                           help="JPEG quality 1..100")
    save_stages: bool = setting(
        False, kind="bool", stage="run", label="Also save the stages I, Î, M, H, F",
        help="also write I, Î, M, H, F as PNG beside the dataset (stages/<stage>/<class>/<file>)",
    )
    write_originals: bool = setting(
        False, kind="bool", stage="run", label="Also write the originals",
        help="also write each input at the output size, once, as PNG (originals/<class>/<file>; the authors'"
        " code writes these as original_resized): the real half of a union training set, an ImageFolder of its own",
    )
    reuse_generated: bool = setting(
        False, kind="bool", stage="run", label="Reuse generated",
        help="read Î from the saved stages where saved instead of running the editor (also allows re-mixing with"
        " new mask/λ/fractal settings)",
    )
    cache: bool = setting(
        False, kind="bool", stage="mixing", label="Cache",
        help="make a cache for training instead: only I (once per image) and Î, no mixing;"
        " diffusemix.data.DiffuseMixDataset re-mixes A from it every epoch",
    )
    shard: tuple[int, int] = setting(
        (0, 1), parse=parse_shard, metavar="I/N", stage="run", label="Shard",
        help="do only shard I of N (0-based); shards never write the same file and merge when all finish",
    )
    chunk_size: int | None = setting(
        None, kind="int", low=1, high=4096, optional=True, metavar="N", stage="generation", label="Chunk size",
        default_text="the editor's batch size, or 8",
        help="samples handed to the editor at once: plan positions [k*N, (k+1)*N) form chunk k, shards take whole"
        " chunks, and the editor cuts a chunk into model calls of its batch size (a diffusion model's Î depends on"
        " the call it is in, so this is recorded and fixed for the folder)",
    )
    workers: int = setting(2, kind="int", low=1, high=64, metavar="N", stage="run", label="Workers",
                           help="CPU threads for decoding, and as many for mixing, encoding and writing")
    accept_license: str | None = setting(
        None, choices=("non-commercial",), optional=True, stage="run", label="Accept licence",
        default_text="not accepted: an editor whose weights forbid commercial use (FLUX.1 Kontext [dev], FLUX.2"
        " [klein] 9B) or whose licence is unknown here stops before any work",
        help="accept that the editor's weights may be used for non-commercial purposes only (needed to export"
        " with such weights; the summary and the run's settings file repeat it)",
    )
    engine: str = setting(
        "local", choices=ENGINES, stage="run", label="Engine",
        help="local: this process's threads; ray: a Ray cluster (Ray Data streams the same chunks through decode"
        " tasks, editor actors and write tasks; the same files and rows; needs pip install \"diffusemix[ray]\" and"
        " INPUT/OUTPUT on storage every node sees)",
    )
    ray_address: str | None = setting(
        None, kind="str", optional=True, metavar="ADDRESS", stage="run", label="Ray address",
        default_text="RAY_ADDRESS, a cluster started on this machine with `ray start`, else a new local one",
        help="with --engine ray: the cluster to join (host:6379, auto, or ray://host:10001)",
    )
    ray_actors: int = setting(1, kind="int", low=1, high=4096, metavar="N", stage="run", label="Ray editor actors",
                              help="with --engine ray: editor actors, each loading the model once")
    ray_gpus_per_actor: float = setting(
        0.0, kind="float", low=0.0, high=64.0, metavar="G", stage="run", label="GPUs per editor actor",
        help="with --engine ray: GPUs each editor actor asks for (0: CPU actors; 1: a GPU each; 0.5: two share one)",
    )
    ray_cpus_per_actor: float = setting(
        1.0, kind="float", low=0.0, high=1024.0, metavar="C", stage="run", label="CPUs per editor actor",
        help="with --engine ray: CPUs each editor actor asks for; torch runs on that many threads there (at least 1)",
    )

    def __post_init__(self) -> None:
        fmt = self.format.lower() if isinstance(self.format, str) else self.format
        if fmt is None:
            fmt = "bmp" if self.cache is True else "png"
        object.__setattr__(self, "format", "jpeg" if fmt == "jpg" else fmt)
        if isinstance(self.shard, list):
            object.__setattr__(self, "shard", tuple(self.shard))
        check_fields(self)
        sh = self.shard
        if (
            not isinstance(sh, tuple) or len(sh) != 2 or not all(schema.is_int(v) for v in sh)
            or sh[1] < 1 or not 0 <= sh[0] < sh[1]
        ):
            raise fail(self, "shard", "must be (I, N) with N >= 1 and 0 <= I < N")
        object.__setattr__(self, "shard", (int(sh[0]), int(sh[1])))
        if self.cache and self.format not in CACHE_FORMATS:
            raise fail(self, "format", f"must be one of {', '.join(CACHE_FORMATS)} for a cache (lossless)")
        if self.engine != "ray":
            given = [f for f in _RAY_FIELDS if getattr(self, f) != schema.field_default(ExportOptions, f)]
            if given:
                raise fail(self, given[0], "goes with the ray engine (engine='ray')", value=getattr(self, given[0]))
        if self.cache and (self.save_stages or self.reuse_generated or self.write_originals):
            raise fail(
                self, "cache", "cannot go with save_stages, reuse_generated or write_originals: a cache keeps I (once"
                " per image) and Î and mixes nothing",
            )

    def replace(self, **changes: Any) -> "ExportOptions":
        return dataclasses.replace(self, **changes)

    @property
    def shard_index(self) -> int:
        return self.shard[0]

    @property
    def shard_count(self) -> int:
        return self.shard[1]

    @property
    def extension(self) -> str:
        return FORMATS[self.format]  # type: ignore[index]

    def to_dict(self) -> dict[str, Any]:
        return schema.to_dict(self)


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
