"""Loading a fractal set: :class:`FractalSet`, the set F is drawn from.

A loader for ANY folder of images (the shipped ``assets/fractals``, or the
PixMix / IPMix fractal sets), scanned recursively. Every file is decoded in
full once, when the set is loaded: a file that cannot be (empty, not an
image, truncated after a valid header, corrupt) is left out and listed in
``skipped``, so it can never stop a run later. The decoded pixels stay in
memory; each fractal is resized once per size into a bounded, thread-safe
cache. The generator that makes sets lives apart, in :mod:`.generator`.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DiffuseMixError, FractalError, ImageError
from ..filecheck import file_problem
from ..images import IMAGE_EXTENSIONS, load_image, prepare

__all__ = ["default_fractal_dir", "FractalSet"]

_MAKE_HINT = "python scripts/make_fractals.py --out DIR"

#: Decoded pixels a set keeps in memory by default (bytes); past it, fractals
#: are decoded again from disk when first resized.
DEFAULT_MEMORY_LIMIT = 2 * 1024**3

_MAX_FILE_BYTES = 256 * 1024**2  # a fractal file larger than this is not read


def default_fractal_dir() -> Path:
    """The set shipped with the repository: ``<repo>/assets/fractals`` (inside an
    installed wheel, its packaged copy: see :mod:`diffusemix.resources`)."""
    from ..resources import shipped_path

    return shipped_path("assets/fractals")


def _scan(folder: Path) -> list[tuple[str, Path]]:
    """Image files under ``folder`` as (POSIX name relative to folder, path), sorted.

    Hidden files and folders (names starting with ``.``, e.g. macOS ``._x.png``
    or a half-written ``.x.png.tmp``) are ignored.
    """
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for f in files:
            if f.startswith(".") or os.path.splitext(f)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            path = Path(root) / f
            found.append((path.relative_to(folder).as_posix(), path))
    found.sort(key=lambda item: item[0])
    return found


def _problem_text(error: ImageError, path: Path) -> str:
    """An ImageError message without its leading "image '<path>' is" (the name is shown beside it)."""
    text = str(error)
    prefix = f"image '{os.fspath(path)}' "
    if text.startswith(prefix):
        text = text[len(prefix):]
        text = text[3:] if text.startswith("is ") else text
    return text


def _decode(path: Path) -> tuple[np.ndarray | None, str | None]:
    """The pixels of ``path`` decoded in full, or why it cannot be a fractal.

    Returns:
        ``(array, None)``, a read-only uint8 (H, W, 3) RGB array as
        :func:`~diffusemix.images.load_image` makes it, or ``(None, reason)``.
    """
    # 1. only regular files of a sane size (never a FIFO, a device, a huge blob): the check every reader makes
    problem = file_problem(path, max_bytes=_MAX_FILE_BYTES)
    if problem is not None:
        return None, problem.removeprefix("is ")
    if os.path.getsize(path) == 0:
        return None, "empty file (0 bytes)"
    # 2. decode every pixel, the way the set will use it
    try:
        array = np.asarray(load_image(path))
    except ImageError as e:
        return None, _problem_text(e, path)
    except Exception as e:  # a file crafted to trip a Pillow plugin must not stop the loading
        return None, f"cannot be decoded ({type(e).__name__}: {e})"
    array.setflags(write=False)
    return array, None


def _decode_all(
    files: Sequence[Path], memory_limit: int, workers: int | None
) -> list[tuple[np.ndarray | None, str | None]]:
    """:func:`_decode` each file, in order, on threads (Pillow decodes without the GIL).

    Returns ``(array, None)`` for a good file, ``(None, reason)`` for a bad
    one, and ``(None, None)`` for a good file past ``memory_limit`` bytes of
    kept pixels (verified now, decoded again when first used).
    """
    n = workers if workers is not None else min(8, os.cpu_count() or 1)
    kept = 0
    out: list[tuple[np.ndarray | None, str | None]] = []
    with ThreadPoolExecutor(max_workers=max(1, n)) as pool:
        for array, problem in pool.map(_decode, files):
            if array is not None and kept + array.nbytes > memory_limit:
                array = None
            elif array is not None:
                kept += array.nbytes
            out.append((array, problem))
    return out


def _list_problems(skipped: Sequence[tuple[str, str]], limit: int = 3) -> str:
    text = "; ".join(f"{name}: {why}" for name, why in skipped[:limit])
    if len(skipped) > limit:
        text += f"; and {len(skipped) - limit} more"
    return text




class FractalSet:
    """A folder of fractal images, the set F is drawn from.

    Any folder of images works: the shipped ``assets/fractals``, the PixMix or
    IPMix fractal sets, your own. Files are found recursively; a fractal's
    name is its POSIX path relative to the folder (``"sub/a.png"``), and
    ``names`` is sorted, so an index or a name means the same file on every
    machine.

    Every file is decoded in full once, when the folder is loaded: files
    that cannot be (empty, not an image, truncated after a valid header,
    corrupt, not a regular file) are left out and listed in ``skipped``, so a
    bad fractal never stops an export half way. The decoded pixels are kept
    in memory (up to ``memory_limit`` bytes: the shipped 128 at 256 px take
    25 MB, 1,000 at 512 px 786 MB); :meth:`array` resizes a fractal once per
    size and keeps the result in a thread-safe LRU cache of ``cache_size``
    images (``None``: keep every one, so each fractal is resized exactly once
    per size, e.g. for a per-worker in-memory set in a training loop).

    Build one with :meth:`from_folder` or :meth:`default`.

    Attributes:
        folder: the folder scanned (absolute).
        names: the usable images, sorted relative POSIX paths.
        skipped: ``(name, reason)`` for each image file that could not be read.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        names: Sequence[str],
        skipped: Sequence[tuple[str, str]] = (),
        *,
        cache_size: int | None = 256,
        decoded: Sequence[np.ndarray | None] | None = None,
    ) -> None:
        """Wrap already-checked ``names`` under ``folder``; prefer :meth:`from_folder`.

        ``decoded`` holds each name's pixels as :func:`~diffusemix.images.load_image`
        gives them (uint8 RGB), or None where they are read from disk on first use.
        """
        if cache_size is not None and (
            isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0
        ):
            raise DiffuseMixError(f"cache_size must be an integer >= 0 or None (no bound); got {cache_size!r}")
        if not names:
            raise FractalError(f"a fractal set needs at least one image; {folder} gave none")
        if decoded is not None and len(decoded) != len(names):
            raise DiffuseMixError(f"decoded must hold one entry per name ({len(names)}); got {len(decoded)}")
        self._folder = Path(folder).resolve()
        self._names = tuple(names)
        self._index = {name: i for i, name in enumerate(self._names)}
        self._skipped = tuple((str(n), str(r)) for n, r in skipped)
        self._decoded: list[np.ndarray | None] = list(decoded) if decoded is not None else [None] * len(names)
        self._cache_size = cache_size
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    # -- construction -------------------------------------------------------

    @classmethod
    def from_folder(
        cls,
        path: str | os.PathLike[str],
        *,
        cache_size: int | None = 256,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        workers: int | None = None,
    ) -> FractalSet:
        """Scan ``path`` recursively for images (see ``images.IMAGE_EXTENSIONS``) and decode each.

        Args:
            path: a folder of images, possibly in subfolders.
            cache_size: how many resized images to keep in memory (0: none;
                None: all, each fractal resized once per size).
            memory_limit: bytes of decoded pixels to keep in memory; files
                past it are still checked now, and decoded again when first
                used.
            workers: threads that decode (default: the CPU count, at most 8).

        Raises:
            FractalError: the folder does not exist, is not a folder, holds no
                image files, or none of them can be read.
        """
        # 1. the folder itself
        folder = Path(path).expanduser()
        if not folder.exists():
            raise FractalError(
                f"fractal folder {folder} does not exist; pass a folder of fractal images, "
                f"e.g. assets/fractals, or make one with {_MAKE_HINT}"
            )
        if not folder.is_dir():
            raise FractalError(
                f"fractal folder {folder} is a file, not a folder; pass the folder that holds "
                "the fractal images"
            )
        if isinstance(memory_limit, bool) or not isinstance(memory_limit, int) or memory_limit < 0:
            raise DiffuseMixError(f"memory_limit must be a number of bytes >= 0; got {memory_limit!r}")
        # 2. the image files in it
        found = _scan(folder)
        if not found:
            kinds = ", ".join(sorted(IMAGE_EXTENSIONS))
            raise FractalError(
                f"fractal folder {folder} has no image files ({kinds}), subfolders included; "
                f"add fractal images to it, or make some with {_MAKE_HINT}"
            )
        # 3. decode each in full; keep the good ones, list the others
        names, decoded, skipped = [], [], []
        for (name, _), (array, problem) in zip(found, _decode_all([f for _, f in found], memory_limit, workers)):
            if problem is None:
                names.append(name)
                decoded.append(array)
            else:
                skipped.append((name, problem))
        if not names:
            raise FractalError(
                f"none of the {len(found)} image files in fractal folder {folder} can be read "
                f"({_list_problems(skipped)}); replace them with working PNG or JPEG files, "
                f"or make a fresh set with {_MAKE_HINT}"
            )
        return cls(folder, names, skipped, cache_size=cache_size, decoded=decoded)

    @classmethod
    def default(cls, *, cache_size: int | None = 256, memory_limit: int = DEFAULT_MEMORY_LIMIT) -> FractalSet:
        """The set shipped with the repository (:func:`default_fractal_dir`)."""
        return cls.from_folder(default_fractal_dir(), cache_size=cache_size, memory_limit=memory_limit)

    # -- description --------------------------------------------------------

    @property
    def folder(self) -> Path:
        return self._folder

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @property
    def skipped(self) -> tuple[tuple[str, str], ...]:
        return self._skipped

    @property
    def nbytes(self) -> int:
        """Bytes of decoded pixels the set keeps in memory (the resize cache not counted)."""
        return sum(a.nbytes for a in self._decoded if a is not None)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __repr__(self) -> str:
        return f"FractalSet({str(self._folder)!r}, {len(self)} images, {len(self._skipped)} skipped)"

    def summary(self) -> str:
        """One line for logs and the app, e.g. ``"64 fractals from /x (1 unreadable skipped: a.png: ...)"``."""
        text = f"{len(self)} fractal{'s' if len(self) != 1 else ''} from {self._folder}"
        if self._skipped:
            text += f" ({len(self._skipped)} unreadable skipped: {_list_problems(self._skipped)})"
        return text

    describe = summary

    def path(self, name: str) -> Path:
        """The file behind ``name``; FractalError if the set has no such name."""
        if name not in self._index:
            example = f", e.g. {self._names[0]!r}"
            raise FractalError(
                f"no fractal named {name!r} in {self._folder}; names are paths relative to "
                f"that folder{example} (see FractalSet.names)"
            )
        return self._folder / name

    # -- pixels -------------------------------------------------------------

    def array(self, fractal: int | str, size: int) -> np.ndarray:
        """One fractal, by index into :attr:`names` or by name, resized to ``size`` x ``size``.

        The pixels were decoded when the set was loaded; they are resized
        (bicubic, plain resize as for I) once per size and kept in the cache,
        so repeated calls return the same array without decoding or resizing
        again. With ``cache_size=None`` every fractal stays resized at every
        size asked for: a per-worker in-memory set for training.

        Args:
            fractal: an index ``0 <= i < len(self)`` or a name from :attr:`names`.
            size: the side S, an integer >= 8.

        Returns:
            A read-only uint8 array of shape (size, size, 3), shared with the
            cache: copy it before writing.

        Raises:
            FractalError: unknown name, or a fractal kept on disk (past
                ``memory_limit``) that can no longer be decoded.
            IndexError: an index out of range.
        """
        if isinstance(fractal, str):
            return self.load(fractal, size)
        if isinstance(fractal, bool) or not isinstance(fractal, (int, np.integer)):
            raise TypeError(f"fractal must be an index into names or a name; got {fractal!r}")
        return self.load_index(fractal, size)

    def load(self, name: str, size: int) -> np.ndarray:
        """Fractal ``name`` resized to ``size`` x ``size``; see :meth:`array`."""
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
            raise DiffuseMixError(f"size must be an integer >= 8; got {size!r}")
        key = (name, int(size))
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        # resize outside the lock so threads work on different fractals at once
        array = prepare(self._pixels(name), int(size))
        array.setflags(write=False)
        with self._lock:
            if self._cache_size is None or self._cache_size > 0:
                array = self._cache.setdefault(key, array)  # another thread may have won
                self._cache.move_to_end(key)
                while self._cache_size is not None and len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return array

    def load_index(self, index: int, size: int) -> np.ndarray:
        """Fractal number ``index`` (into ``names``) resized; see :meth:`array`."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an integer; got {index!r}")
        if not 0 <= index < len(self._names):
            raise IndexError(f"fractal index {index} out of range for a set of {len(self)}")
        return self.load(self._names[int(index)], size)

    def _pixels(self, name: str) -> np.ndarray:
        """The decoded pixels of ``name``: from memory, or from disk past the memory limit."""
        file = self.path(name)
        kept = self._decoded[self._index[name]]
        if kept is not None:
            return kept
        try:
            return np.asarray(load_image(file))
        except ImageError as e:
            raise FractalError(
                f"fractal {name!r} in {self._folder} cannot be loaded: {e}; it was readable when the "
                "set was loaded, so it changed since: remove or replace that file and load the folder again"
            ) from e

    # -- pickling (e.g. into DataLoader workers): no lock, an empty cache ---

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_lock"]
        state["_cache"] = OrderedDict()
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        for array in self._decoded:
            if array is not None and array.flags.writeable:
                array.setflags(write=False)
        self._lock = threading.Lock()
