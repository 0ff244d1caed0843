"""The one door to an editor: :func:`load_editor` builds every editor from an :class:`EditorSpec`.

The command line, the app, replay from a row, the data cache and the dry run
all call it; :func:`resolve_spec` fills a spec with an editor's defaults and
a speed preset's values, and checks that every setting given is one the
editor has.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import EditorLoadError, SettingError
from .base import Editor
from .flux2_klein import Flux2KleinEditor
from .flux_kontext import FluxKontextEditor
from .img2img import Img2ImgEditor
from .instruct_pix2pix import InstructPix2PixEditor
from .preview import PreviewEditor
from .qwen_image_edit import QwenImageEditEditor
from .spec import EDITOR_NAMES, REGISTERED, EditorSpec

__all__ = ["EDITORS", "resolve_spec", "load_editor", "weights_note", "editor_class", "register_editor"]

logger = logging.getLogger("diffusemix")

#: The editor classes by name (``auto`` is InstructPix2Pix, loaded at once, with a fallback for demos).
EDITORS: dict[str, type] = {
    "instruct-pix2pix": InstructPix2PixEditor,
    "img2img": Img2ImgEditor,
    "flux2-klein": Flux2KleinEditor,
    "qwen-image-edit": QwenImageEditEditor,
    "flux-kontext": FluxKontextEditor,
    "preview": PreviewEditor,
}
assert set(EDITORS) | {"auto"} == set(EDITOR_NAMES)

#: Fields every diffusion editor takes besides its own settings.
_PLACEMENT = ("model", "revision", "device", "dtype")


def register_editor(cls: type) -> type:
    """Make an editor class of your own loadable by name (``load_editor(EditorSpec(name=cls.name))``).

    The class takes an :class:`EditorSpec` in its constructor and has ``name``, ``is_diffusion``,
    ``defaults`` (the spec fields it takes, with their defaults) and ``presets`` (``{}`` for none);
    see :class:`~diffusemix.editors.base.Editor` for the rest. Usable as a class decorator.
    """
    for attr in ("name", "is_diffusion", "defaults", "presets"):
        if not hasattr(cls, attr):
            raise TypeError(f"an editor class needs {attr!r} (see diffusemix.editors.register_editor)")
    if cls.name in EDITOR_NAMES:
        raise ValueError(f"{cls.name!r} is a built-in editor's name; choose another")
    REGISTERED[cls.name] = cls
    return cls


def editor_class(name: str) -> type:
    """The class that ``name`` builds (``auto``: InstructPix2Pix)."""
    if name in REGISTERED:
        return REGISTERED[name]
    if name not in EDITOR_NAMES:
        raise SettingError(f"must be one of {', '.join(EDITOR_NAMES)}", owner="EditorSpec", field="name", value=name)
    return EDITORS["instruct-pix2pix" if name == "auto" else name]


def _settings_of(cls: type) -> list[str]:
    own = list(cls.defaults)
    if getattr(cls, "is_diffusion", True):
        own = [*_PLACEMENT, *(["speed"] if cls.presets else []), *own]
    return own


def resolve_spec(cls: type, spec: EditorSpec | None) -> EditorSpec:
    """``spec`` for editor class ``cls`` with every setting filled: given values, then the speed
    preset's, then the editor's defaults; the device and dtype chosen for this machine.

    Raises:
        SettingError: a setting the editor does not have (named, with the ones it has).
        EditorLoadError: a device or dtype this machine does not have.
    """
    spec = EditorSpec(name=cls.name) if spec is None else spec
    if not isinstance(spec, EditorSpec):
        raise TypeError(f"an editor takes an EditorSpec; got {type(spec).__name__}")
    if spec.name not in (cls.name, "auto"):
        raise SettingError(f"names another editor than {cls.name}", owner="EditorSpec", field="name", value=spec.name)
    given = spec.given()
    own = _settings_of(cls)
    if not cls.is_diffusion and given.get("device") == "cpu":
        given.pop("device")
    foreign = [k for k in given if k not in own]
    if foreign:
        many = len(foreign) > 1
        if not cls.is_diffusion:
            reason = (
                f"{'are settings' if many else 'is a setting'} of the diffusion editors; the preview editor"
                " (weight-free filters on the CPU) has no model, device, precision, steps or speed settings"
            )
            hint = f"Drop {'them' if many else 'it'}, or choose the editor instruct-pix2pix or img2img"
        else:
            reason = (f"{'are not settings' if many else 'is not a setting'} of the {cls.name} editor (its settings:"
                      f" {', '.join(own)})")
            hint = None
        raise SettingError(reason, owner="EditorSpec", field=foreign[0], also=tuple(foreign[1:]), hint=hint)

    defaults_for = getattr(cls, "defaults_for", None)  # defaults that depend on the weights (a model card's)
    values = dict(defaults_for(spec.model or getattr(cls, "_default_model", None)) if defaults_for else cls.defaults)
    preset = dict(cls.presets.get(spec.speed, {})) if spec.speed else {}
    preset_dtype = preset.pop("dtype", None)
    values.update(preset)
    values.update({k: v for k, v in given.items() if k not in _PLACEMENT and k != "speed"})
    if not cls.is_diffusion:
        return EditorSpec(name=cls.name, device="cpu", **values)

    from ._diffusers_common import resolve_device, resolve_dtype
    from .speed import fastest_dtype

    device = resolve_device(spec.device)
    if spec.dtype not in (None, "auto"):
        dtype = resolve_dtype(spec.dtype, device)
    elif preset_dtype == "fastest":
        dtype = fastest_dtype(device)
    elif hasattr(cls, "auto_dtype"):  # an editor whose models want another default (bfloat16 on CUDA)
        dtype = cls.auto_dtype(device)
    else:
        dtype = resolve_dtype(None, device)
    resolved = EditorSpec(
        name=cls.name,
        model=spec.model or getattr(cls, "_default_model", None),
        revision=spec.revision,
        device=device,
        dtype=dtype,
        speed=spec.speed,
        **values,
    )
    if hasattr(cls, "check_spec"):  # checks that depend on the editor (an edit size's multiple)
        cls.check_spec(resolved)
    return resolved


def _as_spec(spec: EditorSpec | str, fields: dict[str, Any]) -> EditorSpec:
    try:
        if isinstance(spec, str):
            return EditorSpec(name=spec, **fields)
        if not isinstance(spec, EditorSpec):
            raise TypeError(f"load_editor takes an EditorSpec or an editor name; got {type(spec).__name__}")
        return spec.replace(**fields) if fields else spec
    except TypeError as e:
        if "unexpected keyword" not in str(e):
            raise
        import dataclasses

        known = [f.name for f in dataclasses.fields(EditorSpec)]
        unknown = sorted(set(fields) - set(known))
        raise SettingError(
            f"has no setting{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; its settings are {', '.join(known)}",
            field="EditorSpec",
        ) from None


def load_editor(
    spec: EditorSpec | str = "auto", *, fallback: bool = False, lazy: bool = False, **fields: Any
) -> Editor:
    """Build the editor a spec asks for: the only way editors are made.

    Args:
        spec: an :class:`EditorSpec`, or an editor name (``"auto"``,
            ``"instruct-pix2pix"``, ``"img2img"``, ``"preview"``) with its
            settings as keywords (``load_editor("instruct-pix2pix", steps=20)``;
            ``None`` means the default). ``"auto"`` loads InstructPix2Pix now;
            if that fails the :class:`EditorLoadError` is raised (it says how to
            get the weights, and that ``"preview"`` makes a weight-free preview
            on purpose).
        fallback: only with ``"auto"``, for demos (the app): when the model
            cannot be loaded, return the preview editor with a ``notice``
            saying why (also logged as a warning), unless a model, device or
            dtype was asked for: a setting asked for by name is never swapped
            for the preview. Never use it where data is made.
        lazy: build ``auto``'s InstructPix2Pix without loading it (the dry run: what would run).
        **fields: :class:`EditorSpec` fields (with a name, or to change a spec).

    Returns:
        An editor whose ``spec`` holds every setting (resolved). Diffusion
        editors named explicitly load lazily (call ``.load()`` to load now);
        ``"auto"`` has already loaded.

    Raises:
        SettingError: an unknown editor or setting, a bad value, a setting the
            editor does not have, or ``fallback`` with an editor other than ``auto``.
        EditorLoadError: ``auto`` whose model cannot be loaded (without
            ``fallback``), or a device or dtype that is not available.
    """
    spec = _as_spec(spec, fields)
    if fallback and spec.name != "auto":
        raise SettingError("applies only to the 'auto' editor (the others never fall back)", field="fallback",
                           value=spec.name)
    cls = editor_class(spec.name)
    if spec.name != "auto" or lazy:
        return cls(spec)

    # "auto": the real model, loaded now. Only a demo that asks for it gets the
    # preview instead, saying so; a model, device or dtype asked for by name is
    # never swapped for the preview.
    try:
        editor = cls(spec)
        editor.load()
        return editor
    except EditorLoadError as exc:
        if not fallback:
            raise
        asked = [f"{k}={getattr(spec, k)!r}" for k in ("model", "device", "dtype") if getattr(spec, k) is not None]
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
        retries = spec.max_retries if spec.max_retries is not None else PreviewEditor.defaults["max_retries"]
        return PreviewEditor(EditorSpec(name="preview", max_retries=retries), notice=notice)


def weights_note(editor: Editor) -> str | None:
    """Where a diffusion editor's weights would come from, without loading them
    (for ``--dry-run``): ``None`` when they are on this machine (a complete
    pipeline folder of a class the editor runs, or a Hub id in the local Hugging
    Face cache), else a sentence that says what the run will do and how to get
    them, or why they cannot be loaded (a folder of another pipeline names the
    editor for it). ``None`` for the preview. One function for every editor:
    each class says what its folders hold (``_parts``) and which pipeline
    classes it runs (``_pipelines``)."""
    model = editor.spec.model
    if not editor.is_diffusion or not isinstance(model, str):
        return None
    from ._instruct_common import check_parts, check_pipeline_class, locate_pipeline, pipeline_class_of

    cls = editor_class(editor.name)
    label = getattr(cls, "_label", editor.name)
    example = getattr(cls, "_default_model", model)
    try:
        source = locate_pipeline(model, label=label, example_id=example)
        check_pipeline_class(source, accepted=cls._pipelines, label=label, editor=editor.name)
        check_parts(source, parts=cls._parts, label=label, example_id=example)
    except EditorLoadError as exc:
        return f"cannot be loaded: {exc}"
    if source.kind == "folder":
        return None
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(source.ref, "model_index.json", revision=editor.spec.revision), str):
        return None
    if pipeline_class_of(source) is not None:
        return None
    return (
        f"'{source.ref}' is not in the local Hugging Face cache: the run downloads it if the Hub can be reached,"
        f" else stops (exit 2). Get it with `hf download {source.ref}`, or pass --model /path/to/folder;"
        " --editor preview makes a weight-free preview dataset on purpose."
    )
