"""Editors make the generated image Î = D(I, prompt, seed).

Three editors share the :class:`Editor` protocol:

- ``instruct-pix2pix``: the paper's model, through diffusers.
- ``img2img``: any Stable Diffusion checkpoint, through diffusers.
- ``preview``: weight-free colour/texture filters (not a diffusion model).

Every editor is built by :func:`load_editor` from an :class:`EditorSpec`
(the one place its settings are declared). ``load_editor("auto")`` loads
InstructPix2Pix now and raises
:class:`EditorLoadError` (saying how to get the weights) when it cannot: a
dataset is never made with the preview by accident. A demo may ask for the
preview as a visible fallback with ``load_editor("auto", fallback=True)``.
Importing this package is cheap: torch and diffusers are imported only when a
diffusion editor is built.
"""

from __future__ import annotations

from .base import CancelToken, Editor, EditRequest, EditResult, ProgressFn, retry_seed
from .img2img import DEFAULT_IMG2IMG_MODEL, Img2ImgEditor
from .instruct_pix2pix import DEFAULT_IP2P_MODEL, InstructPix2PixEditor
from .loading import EDITORS, editor_class, load_editor, register_editor, resolve_spec, weights_note
from .preview import PREVIEW_STYLES, PreviewEditor, apply_preview, preview_style
from .spec import EDITOR_NAMES, EditorSpec

__all__ = [
    "EDITOR_NAMES",
    "EDITORS",
    "EditorSpec",
    "load_editor",
    "register_editor",
    "resolve_spec",
    "editor_class",
    "weights_note",
    "Editor",
    "EditRequest",
    "EditResult",
    "ProgressFn",
    "CancelToken",
    "retry_seed",
    "InstructPix2PixEditor",
    "DEFAULT_IP2P_MODEL",
    "Img2ImgEditor",
    "DEFAULT_IMG2IMG_MODEL",
    "PreviewEditor",
    "PREVIEW_STYLES",
    "preview_style",
    "apply_preview",
]
