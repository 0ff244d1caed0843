"""Editors make the generated image Î = D(I, prompt, seed).

Three editors share the :class:`Editor` protocol:

- ``instruct-pix2pix``: the paper's model, through diffusers.
- ``img2img``: any Stable Diffusion checkpoint, through diffusers.
- ``preview``: weight-free colour/texture filters (not a diffusion model).

``load_editor("auto")`` tries InstructPix2Pix and falls back to the preview,
with a notice, when its weights cannot be loaded. Importing this package is
cheap: torch and diffusers are imported only when a diffusion editor is built.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from typing import Any

from ..errors import EditorLoadError
from .base import CancelToken, Editor, EditRequest, EditResult, ProgressFn, retry_seed
from .img2img import DEFAULT_IMG2IMG_MODEL, Img2ImgEditor, Img2ImgSettings
from .instruct_pix2pix import DEFAULT_IP2P_MODEL, InstructPix2PixEditor, InstructPix2PixSettings
from .preview import PREVIEW_STYLES, PreviewEditor, apply_preview, preview_style

__all__ = [
    "EDITOR_NAMES",
    "load_editor",
    "Editor",
    "EditRequest",
    "EditResult",
    "ProgressFn",
    "CancelToken",
    "retry_seed",
    "InstructPix2PixEditor",
    "InstructPix2PixSettings",
    "DEFAULT_IP2P_MODEL",
    "Img2ImgEditor",
    "Img2ImgSettings",
    "DEFAULT_IMG2IMG_MODEL",
    "PreviewEditor",
    "PREVIEW_STYLES",
    "preview_style",
    "apply_preview",
]

#: Names accepted by :func:`load_editor` (and ``--editor``).
EDITOR_NAMES: tuple[str, ...] = ("auto", "instruct-pix2pix", "img2img", "preview")

logger = logging.getLogger("diffusemix")


def _settings(cls: type, editor: str, given: dict[str, Any]) -> Any:
    """``cls(**given)``, with a ValueError naming settings ``editor`` does not take."""
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(
            f"the {editor} editor has no setting{'s' if len(unknown) > 1 else ''} {', '.join(unknown)};"
            f" its settings are {', '.join(names)}"
        )
    return cls(**given)


def load_editor(
    name: str = "auto",
    *,
    model: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    **settings: Any,
) -> Editor:
    """Build an editor by name.

    Args:
        name: ``"auto"``, ``"instruct-pix2pix"``, ``"img2img"`` or ``"preview"``.
            ``"auto"`` loads InstructPix2Pix now and, if that fails, returns the
            preview editor with a ``notice`` saying why (also logged as a
            warning on the ``"diffusemix"`` logger) — unless ``model``,
            ``device`` or ``dtype`` was given: then the error is raised.
        model: a Hugging Face Hub id or a local pipeline folder (default: the
            editor's default id). Not used by the preview.
        device, dtype: see :class:`InstructPix2PixEditor`; ``None`` chooses.
        **settings: fields of :class:`InstructPix2PixSettings` or
            :class:`Img2ImgSettings` (e.g. ``steps=50, batch_size=4``); a value
            of ``None`` means the default. The preview uses only ``max_retries``
            and ignores the other diffusion settings.

    Returns:
        An editor. The diffusion editors named explicitly load lazily (call
        ``.load()`` to load now); ``"auto"`` has already loaded.

    Raises:
        ValueError: an unknown editor name or setting, or a bad setting value.
        EditorLoadError: an explicitly named diffusion editor whose device or
            dtype is not available (model loading errors come from ``load()``).
    """
    if name not in EDITOR_NAMES:
        raise ValueError(f"unknown editor {name!r}; choose one of {', '.join(EDITOR_NAMES)}")
    given = {k: v for k, v in settings.items() if v is not None}

    if name == "preview":
        known = {f.name for f in fields(InstructPix2PixSettings)} | {f.name for f in fields(Img2ImgSettings)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ValueError(f"unknown editor setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return PreviewEditor(**({"max_retries": given["max_retries"]} if "max_retries" in given else {}))

    if name == "img2img":
        return Img2ImgEditor(
            model or DEFAULT_IMG2IMG_MODEL,
            settings=_settings(Img2ImgSettings, "img2img", given),
            device=device,
            dtype=dtype,
        )

    ip2p_settings = _settings(InstructPix2PixSettings, "instruct-pix2pix", given)
    if name == "instruct-pix2pix":
        return InstructPix2PixEditor(model or DEFAULT_IP2P_MODEL, settings=ip2p_settings, device=device, dtype=dtype)

    # "auto": the real model if it loads, else the preview, saying so. A model,
    # device or dtype asked for by name must not be swapped for the preview.
    try:
        editor = InstructPix2PixEditor(model or DEFAULT_IP2P_MODEL, settings=ip2p_settings, device=device, dtype=dtype)
        editor.load()
        return editor
    except EditorLoadError as exc:
        asked = [f"{k}={v!r}" for k, v in (("model", model), ("device", device), ("dtype", dtype)) if v is not None]
        if asked:
            raise EditorLoadError(
                f"{exc} (Not falling back to the preview editor, since {', '.join(asked)} was asked for;"
                " use --editor preview to run without a diffusion model.)"
            ) from exc
        notice = (
            "InstructPix2Pix could not be loaded, so the preview editor is used instead; the preview is not a"
            f" diffusion model (weight-free colour/texture filters). Why: {exc}"
        )
        logger.warning(notice)
        return PreviewEditor(max_retries=ip2p_settings.max_retries, notice=notice)
