"""Loading a fractal set: :class:`FractalSet`, the set F is drawn from.

A loader for ANY folder of images (the shipped ``assets/fractals``, or the
PixMix / IPMix fractal sets), scanned recursively, with a bounded,
thread-safe cache of resized images. The generator that makes sets lives
apart, in :mod:`.generator`.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import FractalError, ImageError
from ..images import IMAGE_EXTENSIONS, load_image, prepare

__all__ = ["default_fractal_dir", "FractalSet"]

_MAKE_HINT = "python scripts/make_fractals.py --out DIR"


def default_fractal_dir() -> Path:
    """The set shipped with the repository: ``<repo>/assets/fractals``."""
    return Path(__file__).resolve().parents[2] / "assets" / "fractals"


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


def _header_problem(path: Path) -> str | None:
    """Why ``path`` cannot be an image, from its size and header only; None if fine."""
    from PIL import Image, UnidentifiedImageError

    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as img:
            w, h = img.size
    except UnidentifiedImageError:
        return "not an image Pillow can read"
    except Image.DecompressionBombError:
        return "too many pixels (Pillow refuses it as a decompression bomb)"
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    except (SyntaxError, ValueError, EOFError) as e:
        return f"corrupt header ({e})"
    if w < 1 or h < 1:
        return f"has no pixels ({w}x{h})"
    return None


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
    machine. Each file's header is checked when the folder is scanned;
    unreadable files are left out and listed in ``skipped``. Pixels are
    decoded on first use and kept in a bounded, thread-safe LRU cache.

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
        cache_size: int = 256,
    ) -> None:
        """Wrap already-checked ``names`` under ``folder``; prefer :meth:`from_folder`."""
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(f"cache_size must be an integer >= 0; got {cache_size!r}")
        if not names:
            raise FractalError(f"a fractal set needs at least one image; {folder} gave none")
        self._folder = Path(folder).resolve()
        self._names = tuple(names)
        self._index = {name: i for i, name in enumerate(self._names)}
        self._skipped = tuple((str(n), str(r)) for n, r in skipped)
        self._cache_size = cache_size
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    # -- construction -------------------------------------------------------

    @classmethod
    def from_folder(cls, path: str | os.PathLike[str], *, cache_size: int = 256) -> FractalSet:
        """Scan ``path`` recursively for images (see ``images.IMAGE_EXTENSIONS``).

        Args:
            path: a folder of images, possibly in subfolders.
            cache_size: how many resized images to keep in memory (0: none).

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
        # 2. the image files in it
        found = _scan(folder)
        if not found:
            kinds = ", ".join(sorted(IMAGE_EXTENSIONS))
            raise FractalError(
                f"fractal folder {folder} has no image files ({kinds}), subfolders included; "
                f"add fractal images to it, or make some with {_MAKE_HINT}"
            )
        # 3. a cheap header check of each
        names, skipped = [], []
        for name, file in found:
            problem = _header_problem(file)
            if problem is None:
                names.append(name)
            else:
                skipped.append((name, problem))
        if not names:
            raise FractalError(
                f"none of the {len(found)} image files in fractal folder {folder} can be read "
                f"({_list_problems(skipped)}); replace them with working PNG or JPEG files, "
                f"or make a fresh set with {_MAKE_HINT}"
            )
        return cls(folder, names, skipped, cache_size=cache_size)

    @classmethod
    def default(cls, *, cache_size: int = 256) -> FractalSet:
        """The set shipped with the repository (:func:`default_fractal_dir`)."""
        return cls.from_folder(default_fractal_dir(), cache_size=cache_size)

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

    # -- loading ------------------------------------------------------------

    def load(self, name: str, size: int) -> np.ndarray:
        """Fractal ``name`` resized to ``size`` x ``size`` (plain resize, as for I).

        Returns:
            A read-only uint8 array of shape (size, size, 3), shared with the
            cache: copy it before writing.

        Raises:
            FractalError: unknown name, or the file cannot be decoded (it may
                be truncated, or have changed since the folder was scanned).
        """
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
            raise ValueError(f"size must be an integer >= 8; got {size!r}")
        key = (name, int(size))
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        file = self.path(name)
        try:  # decode outside the lock so threads load different files at once
            array = prepare(load_image(file), int(size))
        except ImageError as e:
            raise FractalError(
                f"fractal {name!r} in {self._folder} cannot be loaded: {e}; "
                "remove or replace that file and scan the folder again"
            ) from e
        array.setflags(write=False)
        with self._lock:
            if self._cache_size:
                array = self._cache.setdefault(key, array)  # another thread may have won
                self._cache.move_to_end(key)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return array

    def load_index(self, index: int, size: int) -> np.ndarray:
        """Fractal number ``index`` (into ``names``) resized; see :meth:`load`."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an integer; got {index!r}")
        if not 0 <= index < len(self._names):
            raise IndexError(f"fractal index {index} out of range for a set of {len(self)}")
        return self.load(self._names[int(index)], size)

    # -- pickling (e.g. into DataLoader workers): no lock, an empty cache ---

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_lock"]
        state["_cache"] = OrderedDict()
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
