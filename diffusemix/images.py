"""Opening user images and bringing them to the S x S RGB input I.

Two steps, kept apart so each can be tested on its own:

1. ``load_image`` opens a path, bytes, a file object or a PIL image and returns
   a fully loaded RGB ``PIL.Image.Image`` (the file is closed). It handles every
   Pillow pixel mode, applies the EXIF orientation, takes the first frame of a
   multi-frame file and refuses decompression bombs before decoding. Whatever
   goes wrong becomes an ``ImageError`` whose message names the file.
2. ``prepare`` turns an RGB image (or a uint8 array) into the uint8
   ``(size, size, 3)`` array the rest of the library works on, either by the
   paper's plain resize or by a centre crop that keeps the aspect ratio.

``to_pil`` goes the other way, for saving arrays and masks.

How pixel modes become RGB:

* ``RGB``, ``L``, ``1``, ``P``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``, ``RGBX``:
  Pillow's own conversion.
* Anything with transparency (``RGBA``, ``LA``, ``PA``, ``RGBa``, ``La``, and
  ``P`` / ``L`` / ``RGB`` with a ``transparency`` entry) is composited over
  **white**: a fully transparent pixel becomes (255, 255, 255). White, not
  black, because transparent regions of product photos and icons are meant to
  read as background, and a black background would be a strong false cue.
* 16-bit greyscale (``I;16``, ``I;16L``, ``I;16B``, ``I;16N``) is scaled by the
  real range of the mode, ``value >> 8`` (so 65535 -> 255 and 40000 -> 156).
  Pillow's own ``convert("L")`` clips at 255 instead, which turns most 16-bit
  images white.
* ``I`` (32-bit integers; how some 16-bit TIFF and PNG files arrive) is read as
  16-bit data: values are clipped to 0..65535 and then shifted by 8.
* ``F`` (32-bit float): if every finite value lies in [0, 1] the image is taken
  as a [0, 1] float image and multiplied by 255; otherwise it is on Pillow's
  0..255 scale and is clipped to it. NaN becomes 0. Values are rounded.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO, Callable, Literal, get_args

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DiffuseMixError, ImageError
from .filecheck import MAX_FILE_BYTES, open_checked, read_checked
from .limits import MAX_PIXELS, MAX_SIZE

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "MAX_SIZE",
    "RESIZE_MODES",
    "ResizeMode",
    "load_image",
    "open_image",
    "claimed_size",
    "prepare",
    "source_box",
    "to_pil",
]

#: File name endings treated as images when scanning folders (lower case).
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
)

#: ``resize``: plain resize to size x size, aspect ratio not kept (the paper's
#: and the reference code's way). ``center-crop``: scale the short side to
#: ``size`` and cut the centre square.
ResizeMode = Literal["resize", "center-crop"]
RESIZE_MODES: tuple[str, ...] = get_args(ResizeMode)

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_PREMULTIPLIED_MODES = frozenset({"RGBa", "La"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA"})


# ---------------------------------------------------------------------------
# load_image
# ---------------------------------------------------------------------------


class _What:
    """How an error refers to a source: its path (an :class:`ImageError`'s ``path``), or a phrase."""

    def __init__(self, source: object) -> None:
        self.path: str | None = None
        self.subject = "the image data"
        if isinstance(source, (str, os.PathLike)):
            self.path = os.fspath(source)
        else:
            name = getattr(source, "name", None) or getattr(source, "filename", None)
            if isinstance(name, (str, os.PathLike)) and os.fspath(name):
                self.path = os.fspath(name)
            elif isinstance(source, Image.Image):
                self.subject = "the given image"

    def error(self, reason: str) -> ImageError:
        return ImageError(reason, path=self.path, subject=self.subject)


def _read_source(source: str | os.PathLike | bytes | BinaryIO, what: _What) -> bytes:
    """All bytes of a path, bytes object or binary file object."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        # a regular file of bounded size only (a FIFO would hang, /dev/zero never ends): the exporter's check
        data = read_checked(source, max_bytes=MAX_FILE_BYTES, fail=what.error)
    elif hasattr(source, "read"):
        data = source.read(MAX_FILE_BYTES + 1)
        if isinstance(data, (bytes, bytearray)) and len(data) > MAX_FILE_BYTES:
            raise what.error(f"larger than {MAX_FILE_BYTES >> 20} MiB; not read")
        if not isinstance(data, (bytes, bytearray)):
            raise what.error("must be opened in binary mode ('rb'), not text mode")
        data = bytes(data)
    else:
        raise TypeError(
            "load_image takes a path, bytes, a binary file object or a PIL image; "
            f"got {type(source).__name__}"
        )
    if not data:
        raise what.error("is empty (0 bytes)")
    return data


def _too_many_pixels(size: tuple[int, int], max_pixels: int) -> str | None:
    """Why an image of ``size`` is refused (too large, in the words every reader uses), or None."""
    w, h = size
    if w * h <= max_pixels:
        return None
    return (
        f"is {w}x{h} = {w * h:,} pixels, more than the limit of "
        f"{max_pixels:,} pixels (max_pixels); it may be a decompression bomb. "
        "Shrink the image, or pass a larger max_pixels if you trust it"
    )


def _check_pixels(size: tuple[int, int], max_pixels: int, what: _What) -> None:
    reason = _too_many_pixels(size, max_pixels)
    if reason is not None:
        raise what.error(reason)


def claimed_size(fp: BinaryIO) -> tuple[int, int] | None:
    """The size a file's header claims, read by Pillow's format plugins without its bomb check.

    For a file ``Image.open`` refused as a decompression bomb: the plugins read only the
    header, so the size can be told (``30000x30000``) instead of "too large". None when no
    plugin reads the header.
    """
    Image.init()
    fp.seek(0)
    prefix = fp.read(16)
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        try:
            if accept is not None and not accept(prefix):
                continue
            fp.seek(0)
            im = factory(fp, "")
        except Exception:  # noqa: BLE001 - a plugin that does not read this file
            continue
        return im.size
    return None


def _bomb_reason(fp: BinaryIO, error: Exception, max_pixels: int) -> str:
    size = claimed_size(fp)
    if size is not None:
        return _too_many_pixels(size, max_pixels) or f"is a decompression bomb ({error})"
    return f"is larger than Pillow's hard limit for decompression bombs ({error}); it cannot be loaded"


def open_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_FILE_BYTES,
    fail: "Callable[[str], Exception] | None" = None,
) -> Image.Image:
    """A user's image file opened lazily (only its header read), after the checks every reader shares.

    A regular file of at most ``max_bytes`` (:mod:`diffusemix.filecheck`: a FIFO or a device is
    refused at once), an image Pillow can read, of at most ``max_pixels`` pixels: a header bomb
    is named by its claimed size, never Pillow's ``DecompressionBombError``. The caller decodes
    (``im.load()``) and closes it (``with open_image(...) as im``).

    Raises:
        ``fail(reason)`` (default: an :class:`~diffusemix.errors.ImageError` naming the file).
    """
    make = fail if fail is not None else (lambda reason: ImageError(reason, path=os.fspath(path)))
    f = open_checked(path, max_bytes=max_bytes, fail=make)
    try:
        try:
            img = Image.open(f)
        except Image.DecompressionBombError as e:
            raise make(_bomb_reason(f, e, max_pixels)) from None
        except UnidentifiedImageError:
            raise make("is not an image Pillow can read") from None
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise make(f"is truncated or corrupt ({e})") from None
        reason = _too_many_pixels(img.size, max_pixels)
        if reason is not None:
            img.close()
            raise make(reason)
    except BaseException:
        f.close()
        raise
    img._exclusive_fp = True  # type: ignore[attr-defined]  # closing the image closes the file
    return img


def _composite_over_white(rgba: Image.Image) -> Image.Image:
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert a loaded image of any Pillow mode to RGB (see the module docstring)."""
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img
    if mode in _SIXTEEN_BIT_MODES or mode == "I":
        a = np.asarray(img)
        if mode == "I":
            a = np.clip(a, 0, 65535)
        grey = (a.astype(np.uint32) >> 8).astype(np.uint8)
        return Image.fromarray(np.ascontiguousarray(grey)).convert("RGB")
    if mode == "F":
        a = np.asarray(img, dtype=np.float64)
        finite = a[np.isfinite(a)]
        if finite.size and finite.min() >= 0.0 and finite.max() <= 1.0:
            a = a * 255.0
        a = np.nan_to_num(a, nan=0.0, posinf=255.0, neginf=0.0)
        grey = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode in _PREMULTIPLIED_MODES:
        # Premultiplied colour: "over white" is C_p + (1 - alpha) * 255.
        a = np.asarray(img).astype(np.int32)
        colour, alpha = a[..., :-1], a[..., -1:]
        out = np.clip(colour + (255 - alpha), 0, 255).astype(np.uint8)
        if out.shape[-1] == 1:
            out = np.repeat(out, 3, axis=-1)
        return Image.fromarray(np.ascontiguousarray(out))
    if mode in _ALPHA_MODES or "transparency" in img.info:
        return _composite_over_white(img.convert("RGBA"))
    return img.convert("RGB")


def _normalise(img: Image.Image, what: _What) -> Image.Image:
    """EXIF orientation, then RGB. Always returns a new image."""
    try:
        oriented = ImageOps.exif_transpose(img)
    except Exception as e:  # malformed EXIF blocks raise all sorts of things
        raise what.error(f"has unreadable EXIF orientation data ({e})") from e
    if oriented is None:  # only with in_place=True, but be safe
        oriented = img
    try:
        rgb = _to_rgb(oriented)
    except ValueError as e:
        raise what.error(
            f"has pixel mode {img.mode!r}, which cannot be converted to RGB ({e})"
        ) from e
    if rgb is img:
        rgb = img.copy()
    rgb.info.pop("transparency", None)
    return rgb


def load_image(
    source: str | os.PathLike | bytes | BinaryIO | Image.Image,
    *,
    max_pixels: int = MAX_PIXELS,
) -> Image.Image:
    """Open an image and return it as a fully loaded RGB ``PIL.Image.Image``.

    Args:
        source: a path, the file's bytes, a binary file object (read to its
            end, not closed), or a ``PIL.Image.Image`` (not modified).
        max_pixels: refuse images with more pixels than this, checked from the
            header before any pixel data is decoded.

    Returns:
        A new RGB image with EXIF orientation applied; for multi-frame files
        (GIF, TIFF, APNG) the first frame. Transparent pixels are composited
        over white; 16-bit and float images are scaled as described in the
        module docstring. No file stays open.

    Raises:
        ImageError: the file does not exist, is empty, is not an image Pillow
            can read, is truncated or corrupt, or is larger than ``max_pixels``.
    """
    # 1. check arguments
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise DiffuseMixError(f"max_pixels must be a positive int; got {max_pixels!r}")
    what = _What(source)

    # 2. an in-memory PIL image: no decoding risk beyond its size
    if isinstance(source, Image.Image):
        _check_pixels(source.size, max_pixels, what)
        try:
            source.load()
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise what.error(f"is truncated or corrupt ({e})") from e
        return _normalise(source, what)

    # 3. read the bytes (the file is closed at once), then read only the header
    data = _read_source(source, what)
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as e:
        raise what.error("is not an image Pillow can read") from e
    except Image.DecompressionBombError as e:
        raise what.error(_bomb_reason(io.BytesIO(data), e, max_pixels)) from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise what.error(f"is truncated or corrupt ({e})") from e

    # 4. check the size from the header, then decode the first frame
    with img:
        _check_pixels(img.size, max_pixels, what)
        try:
            img.load()
        except Image.DecompressionBombError as e:
            raise what.error(f"is a decompression bomb ({e})") from e
        except (OSError, SyntaxError, ValueError, EOFError, IndexError) as e:
            raise what.error(f"is truncated or corrupt ({e})") from e
        # 5. orientation and mode
        return _normalise(img, what)


# ---------------------------------------------------------------------------
# prepare / to_pil
# ---------------------------------------------------------------------------


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise DiffuseMixError(f"size must be an int >= 8; got {size!r}")
    if size > MAX_SIZE:
        raise DiffuseMixError(
            f"size must be at most {MAX_SIZE} pixels (MAX_SIZE; one stage of that size is 48 MiB, the paper"
            f" uses 256); got {size!r}"
        )


def prepare(
    image: Image.Image | np.ndarray,
    size: int,
    *,
    resize: ResizeMode = "resize",
) -> np.ndarray:
    """Bring an image to the input I: a uint8 C-contiguous ``(size, size, 3)`` array.

    Args:
        image: a PIL image of any mode (converted to RGB as by ``load_image``;
            EXIF orientation is not applied here, ``load_image`` does that) or
            a uint8 ``(H, W, 3)`` array.
        size: the side S of the square output, an int in [8, ``MAX_SIZE``].
        resize: ``"resize"`` stretches to ``size x size`` (the paper's way,
            aspect ratio not kept); ``"center-crop"`` scales the short side to
            ``size`` and cuts the centre square, in a single resampling pass.
            Both use bicubic resampling, Pillow's default for ``resize``.

    Returns:
        A new uint8 array of shape ``(size, size, 3)``; an input already of
        that size under ``"resize"`` comes back unchanged (as a copy).
    """
    # 1. check arguments
    _check_size(size)
    size = int(size)
    if resize not in RESIZE_MODES:
        raise DiffuseMixError(f"resize must be one of {', '.join(RESIZE_MODES)}; got {resize!r}")

    # 2. to an RGB PIL image
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise DiffuseMixError(
                f"image array must be uint8 of shape (H, W, 3); got {image.dtype} {image.shape}"
            )
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise DiffuseMixError(f"image array is empty: shape {image.shape}")
        img = Image.fromarray(np.ascontiguousarray(image))
    elif isinstance(image, Image.Image):
        try:
            img = _to_rgb(image)
        except ValueError as e:
            raise ImageError(f"has pixel mode {image.mode!r}, which cannot be converted to RGB", subject="the given image") from e
    else:
        raise TypeError(
            f"image must be a PIL image or a uint8 (H, W, 3) array; got {type(image).__name__}"
        )

    # 3. resample the source box (the whole image, or its centre square) to size x size
    out = img.resize((size, size), Image.Resampling.BICUBIC, box=source_box(*img.size, resize=resize))
    return np.array(out, dtype=np.uint8, order="C")


def source_box(width: int, height: int, *, resize: ResizeMode = "resize") -> tuple[float, float, float, float]:
    """The part of a ``width`` x ``height`` image that ``prepare`` maps onto its S x S output.

    Pixel-edge coordinates ``(x0, y0, x1, y1)``, the ``box`` Pillow's resize
    samples: the whole image for ``"resize"``; for ``"center-crop"`` the centre
    square of side ``min(width, height)``, which starts at a half pixel when
    the difference of the sides is odd (nothing is rounded). A point ``(x, y)``
    of the image lands at ``((x - x0) * S / (x1 - x0), (y - y0) * S / (y1 - y0))``
    in the output; annotations follow the image through this box
    (``diffusemix.annotations.geometry``).
    """
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {', '.join(RESIZE_MODES)}; got {resize!r}")
    w, h = int(width), int(height)
    if resize == "resize":
        return (0.0, 0.0, float(w), float(h))
    side = min(w, h)
    return ((w - side) / 2.0, (h - side) / 2.0, (w + side) / 2.0, (h + side) / 2.0)


def to_pil(array: np.ndarray) -> Image.Image:
    """Turn an array into a PIL image for saving or display.

    * uint8 ``(H, W, 3)`` -> ``RGB``
    * uint8 ``(H, W)`` -> ``L``
    * float ``(H, W)`` in [0, 1] (a mask M) -> ``L`` with ``round(255 * m)``
    """
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 3 and a.dtype == np.uint8:
        return Image.fromarray(np.ascontiguousarray(a))
    if a.ndim == 2 and a.dtype == np.uint8:
        return Image.fromarray(np.ascontiguousarray(a))
    if a.ndim == 2 and np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)) or (a.size and (a.min() < 0.0 or a.max() > 1.0)):
            raise DiffuseMixError("a float array for to_pil must be a mask with values in [0, 1]")
        return Image.fromarray(np.rint(a * 255.0).astype(np.uint8))
    raise DiffuseMixError(
        "to_pil takes uint8 (H, W, 3), uint8 (H, W) or float (H, W) in [0, 1]; "
        f"got {a.dtype} {a.shape}"
    )
