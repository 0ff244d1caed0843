"""Editors make the generated image Î = D(I, prompt, seed).

Three editors share the :class:`Editor` protocol:

- ``instruct-pix2pix``: the paper's model, through diffusers.
- ``img2img``: any Stable Diffusion checkpoint, through diffusers.
- ``preview``: weight-free colour/texture filters (not a diffusion model).

``load_editor("auto")`` loads InstructPix2Pix now and raises
:class:`EditorLoadError` (saying how to get the weights) when it cannot: a
dataset is never made with the preview by accident. A demo may ask for the
preview as a visible fallback with ``load_editor("auto", fallback=True)``.
Importing this package is cheap: torch and diffusers are imported only when a
diffusion editor is built.
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
    "weights_note",
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

#: InstructPix2Pix's speed levers and their "off" values (the preview refuses the others).
_SPEED_LEVERS_OFF: dict[str, Any] = {"cache_interval": 1, "vae": "full", "compile": False}


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
    fallback: bool = False,
    **settings: Any,
) -> Editor:
    """Build an editor by name.

    Args:
        name: ``"auto"``, ``"instruct-pix2pix"``, ``"img2img"`` or ``"preview"``.
            ``"auto"`` loads InstructPix2Pix now; if that fails the
            :class:`EditorLoadError` is raised (it says how to get the weights,
            and that ``"preview"`` makes a weight-free preview on purpose).
        model: a Hugging Face Hub id or a local pipeline folder (default: the
            editor's default id). The preview takes none.
        device, dtype: see :class:`InstructPix2PixEditor`; ``None`` chooses.
            The preview takes no dtype and runs on the CPU (``device`` may
            only be ``None`` or ``"cpu"``).
        fallback: only with ``"auto"``, for demos (the app): when the model
            cannot be loaded, return the preview editor with a ``notice``
            saying why (also logged as a warning on the ``"diffusemix"``
            logger), unless ``model``, ``device`` or ``dtype`` was given: a
            setting asked for by name is never swapped for the preview. Never
            use it where data is made.
        **settings: fields of :class:`InstructPix2PixSettings` or
            :class:`Img2ImgSettings` (e.g. ``steps=50, batch_size=4``); a value
            of ``None`` means the default. The preview uses only ``max_retries``
            and ignores the other diffusion settings.

    Returns:
        An editor. The diffusion editors named explicitly load lazily (call
        ``.load()`` to load now); ``"auto"`` has already loaded.

    Raises:
        ValueError: an unknown editor name or setting, a bad setting value, a
            model, dtype or non-CPU device for the preview, or ``fallback``
            with an editor other than ``"auto"``.
        EditorLoadError: ``"auto"`` whose model cannot be loaded (without
            ``fallback``), or an explicitly named diffusion editor whose
            device or dtype is not available (its model loading errors come
            from ``load()``).
    """
    if name not in EDITOR_NAMES:
        raise ValueError(f"unknown editor {name!r}; choose one of {', '.join(EDITOR_NAMES)}")
    if fallback and name != "auto":
        raise ValueError(f"fallback=True applies only to the 'auto' editor; got {name!r}")
    given = {k: v for k, v in settings.items() if v is not None}

    if name == "preview":
        _check_preview_placement(model=model, device=device, dtype=dtype)
        known = {f.name for f in fields(InstructPix2PixSettings)} | {f.name for f in fields(Img2ImgSettings)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ValueError(f"unknown editor setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        levers = [k for k, off in _SPEED_LEVERS_OFF.items() if k in given and given[k] != off]
        if levers:
            raise ValueError(
                f"{', '.join(levers)} {'is a speed setting' if len(levers) == 1 else 'are speed settings'} of the"
                " diffusion editors; the preview editor (weight-free filters) has no UNet or VAE to speed up."
                " Drop them, or choose instruct-pix2pix."
            )
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

    # "auto": the real model, loaded now. Only a demo that asks for it gets the
    # preview instead, saying so; a model, device or dtype asked for by name is
    # never swapped for the preview.
    try:
        editor = InstructPix2PixEditor(model or DEFAULT_IP2P_MODEL, settings=ip2p_settings, device=device, dtype=dtype)
        editor.load()
        return editor
    except EditorLoadError as exc:
        if not fallback:
            raise
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


def _check_preview_placement(*, model: str | None, device: str | None, dtype: str | None) -> None:
    """The preview has no model or precision and runs on the CPU: asking for
    them is an error (as diffusion settings such as ``steps`` are in the CLI)."""
    asked = [f"{k}={v!r}" for k, v in (("model", model), ("dtype", dtype)) if v is not None]
    if device is not None and device != "cpu":
        asked.append(f"device={device!r}")
    if asked:
        raise ValueError(
            f"{', '.join(asked)}: the preview editor (weight-free filters on the CPU) has no model, device or dtype"
            " to choose. Drop them, or choose the editor instruct-pix2pix or img2img."
        )


def weights_note(editor: Editor) -> str | None:
    """Where a diffusion editor's weights would come from, without loading them
    (for ``--dry-run``): ``None`` when they are on this machine (a pipeline
    folder, or a Hub id in the local Hugging Face cache), else a sentence that
    says what the run will do and how to get them. ``None`` for the preview."""
    model = getattr(editor, "model", None)
    if not getattr(editor, "is_diffusion", False) or not isinstance(model, str):
        return None
    from ._diffusers_common import locate_model

    try:
        example = DEFAULT_IMG2IMG_MODEL if editor.name == "img2img" else DEFAULT_IP2P_MODEL
        source = locate_model(model, label=editor.name, example_id=example)
    except EditorLoadError as exc:
        return f"cannot be loaded: {exc}"
    if source.kind == "folder":
        return None
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(source.ref, "model_index.json"), str):
        return None
    return (
        f"'{source.ref}' is not in the local Hugging Face cache: the run downloads it if the Hub can be reached,"
        f" else stops (exit 2). Get it with `hf download {source.ref}`, or pass --model /path/to/folder;"
        " --editor preview makes a weight-free preview dataset on purpose."
    )
