"""Process-wide speed settings for the command line and the app (never applied
at library import: they change the whole process, so the program that owns the
process chooses them).

- :func:`tune_allocator`: glibc's ``malloc`` hands freed big buffers back to
  the OS, so every UNet call faults hundreds of thousands of fresh pages in
  again. Keeping freed memory in the process (``mallopt``: mmap threshold
  32 MB, trim threshold 2 GB, top pad 1 GB) made the full-size InstructPix2Pix
  1.15-1.25x faster on CPU with bit-identical numbers (bench/bench_fullsize.py).
  The cost: up to about 2 GB of freed memory stays with the process instead of
  going back to the OS. Linux with glibc only; turn it off with
  ``DIFFUSEMIX_MALLOPT=0`` (or ``--no-tune-allocator`` on the command line).
- :func:`use_all_cores`: torch's intra-op threads = the CPUs this process may run on.
- :func:`quiet_pillow_bomb_warning`: no raw ``DecompressionBombWarning`` (a line with a
  site-packages path) before the program's own message about the same image.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import warnings

__all__ = ["ALLOCATOR_SETTINGS", "ALLOCATOR_ENV", "tune_allocator", "use_all_cores", "setup_process",
           "quiet_pillow_bomb_warning"]

#: glibc mallopt parameter numbers (malloc.h) and the values chosen.
ALLOCATOR_SETTINGS: dict[str, tuple[int, int]] = {
    "M_MMAP_THRESHOLD": (-3, 32 * 1024**2),
    "M_TRIM_THRESHOLD": (-1, 2**31 - 1),  # 2 GB (mallopt takes a C int)
    "M_TOP_PAD": (-2, 1024**3),
}

#: Set to 0 / false / off / no to leave glibc's allocator as it is.
ALLOCATOR_ENV = "DIFFUSEMIX_MALLOPT"

_applied: str | None = None


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
        return None  # not glibc (e.g. musl): its allocator has no such knobs
    return libc


def tune_allocator(enable: bool | None = None) -> str:
    """Keep freed memory in the process (glibc ``mallopt``); returns what was done.

    Args:
        enable: ``False`` does nothing; ``None`` reads ``DIFFUSEMIX_MALLOPT``
            (on unless it is 0/false/off/no).

    Returns:
        A short line for logs: ``"applied (...)"``, ``"off (...)"`` or
        ``"not available (...)"``. Calling it again returns the first result.
    """
    global _applied
    if _applied is not None:
        return _applied
    if enable is None:
        enable = os.environ.get(ALLOCATOR_ENV, "1").strip().lower() not in ("0", "false", "off", "no")
    if not enable:
        return f"off ({ALLOCATOR_ENV}=0 or --no-tune-allocator)"
    libc = _libc()
    if libc is None:
        return "not available (needs Linux with glibc)"
    for name, (param, value) in ALLOCATOR_SETTINGS.items():
        if libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) != 1:
            return f"not available (mallopt {name} was refused)"
    _applied = "applied (glibc mallopt: mmap threshold 32 MB, trim threshold 2 GB, top pad 1 GB)"
    return _applied


def use_all_cores() -> int:
    """Give torch one intra-op thread per CPU this process may use; returns the count."""
    import torch

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    if torch.get_num_threads() != cores:
        torch.set_num_threads(cores)
    return cores


def setup_process(*, tune_memory: bool | None = None) -> str:
    """What the CLI and the app call once at start: the allocator setting (see
    :func:`tune_allocator`), every core for torch, and no raw Pillow bomb warning
    (:func:`quiet_pillow_bomb_warning`); returns a line for logs."""
    allocator = tune_allocator(tune_memory)
    threads = use_all_cores()
    quiet_pillow_bomb_warning()
    return f"allocator: {allocator}; torch threads: {threads}"


def quiet_pillow_bomb_warning() -> None:
    """Leave out Pillow's ``DecompressionBombWarning`` in this process (the CLI's and the app's).

    Every image it warns about (more than Pillow's ``MAX_IMAGE_PIXELS``) is refused by
    ``load_image`` and ``open_image`` themselves, whose pixel limit (:data:`diffusemix.limits.MAX_PIXELS`)
    is that threshold: the program says so in its own words (the export lists the file with its
    size), so Pillow's raw line with a site-packages path before it only confuses. A library user's
    process keeps Pillow's warnings as they are: only the program that owns the process sets filters.
    """
    from PIL import Image

    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
