"""Uploaded files: only Gradio's uploads and the bundled assets are opened; images are checked
from their headers (size, kind) and decoded by the library's ``load_image``.

Gradio's ``gr.Image`` would decode an upload itself (16-bit PNGs clipped to
white, a bad file answered with Gradio's internal error and the server's
upload path); ``image_file`` hands the handler the file untouched instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image, UnidentifiedImageError

from diffusemix.errors import DiffuseMixError
from diffusemix.filecheck import open_checked
from diffusemix.images import claimed_size, load_image
from diffusemix.ui.limits import MAX_IMAGE_PIXELS
from diffusemix.ui.shared import ASSETS_DIR, scrub_paths


#: What the page asks for when an upload is not an image it can use.
IMAGE_HINT = "upload a PNG, JPEG, WebP, BMP or TIFF image"


def header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from an image file's header (no pixel is decoded), or None if it is no image.

    A header bomb (more pixels than Pillow opens at all) has its claimed size too, so the page
    says it is over the pixel limit rather than "not an image".
    """
    try:
        with open_checked(path) as f:  # a regular file only (the check every reader makes)
            try:
                with Image.open(f) as im:
                    return im.size
            except Image.DecompressionBombError:
                return claimed_size(f)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        return None


def image_pixels(path: Path, name: str, *, max_pixels: int = MAX_IMAGE_PIXELS) -> int:
    """Width x height of an image file, read from its header only (nothing is decoded).

    Raises gr.Error saying what to do when the file is empty, an SVG drawing,
    not an image, or more than ``max_pixels``.
    """
    size = path.stat().st_size
    if size == 0:
        raise gr.Error(f"{name} is empty (0 bytes): {IMAGE_HINT}.")
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    if path.suffix.lower() == ".svg" or head.startswith((b"<svg", b"<?xml")):
        raise gr.Error(f"{name} is an SVG drawing, which the app does not render: export it as PNG and upload that.")
    size = header_size(path)
    if size is None:
        raise gr.Error(f"{name} is not an image Pillow can read: {IMAGE_HINT}.")
    w, h = size
    if w * h > max_pixels:
        raise gr.Error(
            f"{name} is {w:,} x {h:,} = {w * h:,} pixels; the app takes images up to {max_pixels:,} pixels. "
            "Shrink it and upload it again (the command line, python -m diffusemix export, takes larger ones)."
        )
    return w * h


def open_upload(value: Any, what: str) -> Image.Image:
    """An uploaded image, checked from its header, then decoded by the library's ``load_image``
    (16-bit and float images scaled, not clipped; EXIF orientation; alpha over white)."""
    path = upload_path(value, what)
    image_pixels(path, path.name)
    try:
        return load_image(path, max_pixels=MAX_IMAGE_PIXELS)
    except DiffuseMixError as e:
        reason = e.message(path.name)  # the upload's own name, not the server's path
        raise gr.Error(f"{scrub_paths(reason)}: save it again with an image editor, or {IMAGE_HINT}.") from None


def _file_path(payload: Any) -> str | None:
    """The uploaded file's path, untouched (no decoding)."""
    return None if payload is None else payload.path


def image_file(**kwargs: Any) -> gr.Image:
    """A ``gr.Image`` upload whose handler gets the uploaded file untouched (its path).

    ``gr.Image`` decodes an upload itself before the handler runs: it clips
    16-bit PNGs to white and answers a bad file with Gradio's internal error.
    This one leaves decoding to ``open_upload`` (the library's loader). (Not a
    subclass: Gradio writes a .pyi stub beside any module that defines one.)
    """
    component = gr.Image(type="filepath", **kwargs)
    component.preprocess = _file_path  # type: ignore[method-assign]
    return component


def _allowed_roots() -> list[Path]:
    """Where files a handler opens may live: gradio's upload folder and the bundled assets."""
    from gradio.utils import get_upload_folder

    return [Path(get_upload_folder()).resolve(), ASSETS_DIR.resolve()]


def upload_path(value: Any, what: str) -> Path:
    """The path of an uploaded file, refusing anything but gradio's uploads and the bundled assets."""
    if isinstance(value, dict):  # a FileData dict
        value = value.get("path")
    if isinstance(value, (list, tuple)) and value:  # a (path, caption) gallery item
        value = value[0]
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise gr.Error(f"No {what} was given.")
    path = Path(value).resolve()
    if not any(path.is_relative_to(root) for root in _allowed_roots()):
        raise gr.Error(f"The {what} must be an uploaded file.")
    if not path.is_file():
        raise gr.Error(f"The {what} upload is missing on the server; upload it again.")
    return path


def upscale_note(source_size: tuple[int, int], size: int) -> str | None:
    """A sentence naming an upload that is smaller than the output side (it was upscaled), else None."""
    w, h = source_size
    factor = max(size / max(w, 1), size / max(h, 1))
    if factor <= 1:
        return None
    return (f"The image is {w} × {h} px: upscaled {factor:.1f}× to {size} × {size} px, so it looks blurred and the "
            "editor sees little detail. A larger image (or a smaller output size) avoids it.")
