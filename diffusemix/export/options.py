"""Export options: how an export is written, and which shard this process does."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Output formats and their file extensions (BMP: uncompressed, the fastest to read back; a cache's default).
FORMATS: dict[str, str] = {"png": ".png", "jpeg": ".jpg", "bmp": ".bmp"}
#: Lossless formats, the only ones a cache of Î may use.
CACHE_FORMATS: tuple[str, ...] = ("bmp", "png")


def _opt_err(name: str, value: Any, what: str) -> ValueError:
    return ValueError(f"ExportOptions.{name} {what}; got {value!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


@dataclass(frozen=True)
class ExportOptions:
    """How an export is written (the method's settings are the :class:`Recipe`)."""

    # Output file format: "png" (lossless, an export's default), "jpeg", or "bmp"
    # (uncompressed, a cache's default: decoding it costs a tenth of a PNG's).
    format: str | None = None
    # JPEG quality, 1..100 (ignored for PNG).
    quality: int = 95
    # Also write I, Î, M, H, F as PNG under OUTPUT/stages/<stage>/<same path>.
    save_stages: bool = False
    # Read Î from OUTPUT/stages/generated/... where saved instead of calling the editor.
    reuse_generated: bool = False
    # This process's share of the work: samples k with k % shard_count == shard_index.
    shard_index: int = 0
    shard_count: int = 1
    # Samples per editor call.
    batch_size: int = 8
    # CPU threads for decoding, and as many again for mixing, encoding and writing.
    workers: int = 2
    # Make a cache for training instead of an export: only what is costly, I
    # (once per image, under OUTPUT/inputs/) and Î, no mixing; diffusemix.data
    # re-mixes A from it every epoch.
    cache: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.cache, bool):
            raise _opt_err("cache", self.cache, "must be True or False")
        fmt = self.format.lower() if isinstance(self.format, str) else self.format
        if fmt is None:
            fmt = "bmp" if self.cache else "png"
        if fmt == "jpg":
            fmt = "jpeg"
        if fmt not in FORMATS:
            raise _opt_err("format", self.format, f"must be one of {', '.join(FORMATS)}")
        object.__setattr__(self, "format", fmt)
        if not _is_int(self.quality) or not 1 <= self.quality <= 100:
            raise _opt_err("quality", self.quality, "must be an integer in [1, 100]")
        for name in ("save_stages", "reuse_generated"):
            if not isinstance(getattr(self, name), bool):
                raise _opt_err(name, getattr(self, name), "must be True or False")
        if self.cache and fmt not in CACHE_FORMATS:
            raise _opt_err("format", self.format, f"must be one of {', '.join(CACHE_FORMATS)} for a cache (lossless)")
        if self.cache and (self.save_stages or self.reuse_generated):
            raise _opt_err(
                "cache",
                self.cache,
                "cannot go with save_stages or reuse_generated: a cache keeps I and Î and mixes nothing",
            )
        if not _is_int(self.shard_count) or self.shard_count < 1:
            raise _opt_err("shard_count", self.shard_count, "must be an integer >= 1")
        if not _is_int(self.shard_index) or not 0 <= self.shard_index < self.shard_count:
            raise _opt_err("shard_index", self.shard_index, f"must be an integer in [0, {self.shard_count - 1}]")
        if not _is_int(self.batch_size) or not 1 <= self.batch_size <= 4096:
            raise _opt_err("batch_size", self.batch_size, "must be an integer in [1, 4096]")
        if not _is_int(self.workers) or not 1 <= self.workers <= 64:
            raise _opt_err("workers", self.workers, "must be an integer in [1, 64]")

    @property
    def shard(self) -> tuple[int, int]:
        return (int(self.shard_index), int(self.shard_count))

    @property
    def extension(self) -> str:
        return FORMATS[self.format]  # type: ignore[index]


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` → (I, N) with 0 <= I < N; a ValueError that says the syntax otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if m is None:
        raise ValueError(f"--shard must look like I/N, e.g. 0/2 for the first of two shards; got {text!r}")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard I/N needs N >= 1 and 0 <= I < N (shards count from 0); got {text!r}")
    return i, n


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
