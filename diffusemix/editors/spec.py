"""``EditorSpec``: which editor makes Î and how, every setting declared once.

A spec is a request: fields left ``None`` take the editor's defaults (each
editor class states its own in ``defaults``), then a speed preset's
(``speed``) values, then the ones given. :func:`diffusemix.editors.load_editor`
resolves it (:func:`resolve_spec`) into a spec with every setting of that
editor filled in, which the editor keeps as ``editor.spec`` and which its rows
record (``editor_settings``). The command line's editor flags, the app's
editor controls and replay from a row all go through this one class.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import schema
from ..errors import SettingError
from ..schema import NO_VALUE, check_fields, fail, register, setting

__all__ = [
    "EditorSpec",
    "EDITOR_NAMES",
    "DTYPE_CHOICES",
    "DTYPE_ALIASES",
    "SPEED_CHOICES",
    "VAE_CHOICES",
    "DEFAULT_TINY_VAE",
    "PIXEL_FIELDS",
    "parse_batch_size",
]

#: Names accepted by ``load_editor`` and ``--editor``: ``auto`` is InstructPix2Pix when its weights load.
EDITOR_NAMES: tuple[str, ...] = (
    "auto", "instruct-pix2pix", "img2img", "flux2-klein", "qwen-image-edit", "flux-kontext", "preview",
)
#: Editors registered by code (``diffusemix.editors.register_editor``), by name.
REGISTERED: dict[str, type] = {}
#: Precisions by name (``auto``: float16 on CUDA (bfloat16 for the instruction editors where the GPU has it),
#: float32 elsewhere: exact).
DTYPE_CHOICES: tuple[str, ...] = ("auto", "float16", "bfloat16", "float32")
#: Other spellings accepted for a dtype.
DTYPE_ALIASES: dict[str, str] = {"fp16": "float16", "half": "float16", "bf16": "bfloat16", "fp32": "float32",
                                 "float": "float32"}
#: Speed presets (``--speed``); each editor that has them says what they set.
SPEED_CHOICES: tuple[str, ...] = ("paper", "fast")
#: ``vae``: the pipeline's own VAE, or AutoencoderTiny (TAESD).
VAE_CHOICES: tuple[str, ...] = ("full", "tiny")
#: The tiny VAE for Stable Diffusion 1.x latents (what InstructPix2Pix uses).
DEFAULT_TINY_VAE = "madebyollin/taesd"


def parse_batch_size(text: str) -> int | str:
    """``"8"`` → 8, ``"auto"`` → ``"auto"``."""
    text = str(text).strip()
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise SettingError("must be an integer or auto", owner="EditorSpec", field="batch_size", value=text) from None


@register
@dataclass(frozen=True)
class EditorSpec:
    """Which editor makes Î and how (``None``: the editor's default; see the module docstring)."""

    name: str = setting(
        "auto", choices=EDITOR_NAMES, open_choices=True, flag="--editor", stage="generation", label="Editor",
        help="what makes Î: auto (InstructPix2Pix, the paper's model; stops with how to get it when its weights are"
        " missing), instruct-pix2pix, img2img (any Stable Diffusion checkpoint), the instruction editors"
        " flux2-klein (FLUX.2 [klein] 4B, Apache-2.0), qwen-image-edit (Qwen-Image-Edit-2511, Apache-2.0) and"
        " flux-kontext (FLUX.1 Kontext [dev], non-commercial licence), or preview (weight-free colour"
        " filters, not a diffusion model: a preview, on purpose)",
    )
    model: str | None = setting(
        None, kind="str", optional=True, metavar="ID_OR_FOLDER", stage="generation", label="Model",
        default_text="the editor's model", help="Hugging Face Hub id or local pipeline folder",
    )
    revision: str | None = setting(
        None, kind="str", optional=True, metavar="REV", stage="generation", label="Model revision",
        default_text="main", help="Hub branch, tag or commit of a model id (the commit used is recorded in every row)",
    )
    device: str | None = setting(
        None, kind="str", optional=True, metavar="DEV", stage="run", label="Device",
        default_text="the best available: CUDA, then mps, then the CPU", help="cuda, cuda:N, mps or cpu",
    )
    dtype: str | None = setting(
        None, choices=DTYPE_CHOICES, optional=True, stage="generation", label="Precision",
        help="model precision: auto is float16 on CUDA (the authors' choice; bfloat16 for the instruction editors,"
        " as their cards load them) and float32 elsewhere (exact); bfloat16 is about 2x faster on CPUs with bf16"
        " support but approximate",
    )
    speed: str | None = setting(
        None, choices=SPEED_CHOICES, optional=True, stage="generation", label="Speed preset",
        help="InstructPix2Pix speed preset: paper (100 steps, float16 on CUDA / float32 elsewhere, exact) or fast"
        " (20 steps, bf16/fp16, DeepCache interval 3, tiny VAE: about 24x faster on CPU; its images differ);"
        " settings given explicitly win",
    )
    steps: int | None = setting(
        None, kind="int", low=1, high=10_000, optional=True, metavar="N", stage="generation", label="Denoising steps",
        help="denoising steps",
    )
    guidance_scale: float | None = setting(
        None, kind="float", low=0.0, high=100.0, optional=True, metavar="G", stage="generation",
        label="Text guidance",
        help="text guidance: how strongly the prompt is followed (FLUX.1 Kontext: the distilled guidance"
        " input; FLUX.2 [klein]: ignored by the distilled checkpoints)",
    )
    true_cfg_scale: float | None = setting(
        None, kind="float", low=0.0, high=100.0, optional=True, metavar="G", stage="generation",
        label="True CFG scale",
        help="Qwen-Image-Edit's true classifier-free guidance (two transformer passes a step; <= 1 turns it off)",
    )
    negative_prompt: str | None = setting(
        None, kind="text", optional=True, metavar="TEXT", stage="generation", label="Negative prompt",
        help="Qwen-Image-Edit's negative prompt for true CFG (its card's is one space)",
    )
    edit_size: int | None = setting(
        None, kind="int", low=64, high=2048, optional=True, metavar="PX", stage="generation", label="Edit size",
        help="instruction editors: the side of the square the model edits at (a multiple of 16, of 32 for"
        " Qwen-Image-Edit); I is resized to it and Î back to the recipe's size",
    )
    prompt_template: str | None = setting(
        None, kind="str", optional=True, metavar="TEXT", stage="generation", label="Prompt template",
        help="instruction editors: the instruction each prompt is put in, with {prompt} where the prompt goes"
        " (once)",
    )
    image_guidance_scale: float | None = setting(
        None, kind="float", low=0.0, high=100.0, optional=True, metavar="G", stage="generation",
        label="Image guidance", help="InstructPix2Pix image guidance: how strongly the input image is kept",
    )
    strength: float | None = setting(
        None, kind="float", low=0.0, high=1.0, optional=True, metavar="S", stage="generation", label="Strength",
        help="img2img noising strength in (0, 1]: 0 keeps the input, 1 ignores it",
    )
    batch_size: int | str | None = setting(
        None, kind="union", optional=True, parse=parse_batch_size, metavar="N|auto", stage="generation",
        label="Batch size",
        help="images per model call, or auto (from free memory, fixed when an export starts; a batch that runs out of"
        " memory is retried in halves). A diffusion model's Î depends on the call it is in: an export records it",
    )
    max_retries: int | None = setting(
        None, kind="int", low=0, high=100, optional=True, metavar="N", stage="generation", label="Retries",
        help="times a blank generated image (or one a score rule rejects) is remade with a new recorded seed",
    )
    cache_interval: int | None = setting(
        None, kind="int", low=1, high=1000, optional=True, metavar="N", stage="generation",
        label="DeepCache interval",
        help="DeepCache: recompute the UNet's deep features every N steps (1 = off; approximate)",
    )
    vae: str | None = setting(
        None, choices=VAE_CHOICES, optional=True, stage="generation", label="VAE",
        help="full (the pipeline's VAE) or tiny (AutoencoderTiny, TAESD: about 10x faster, approximate)",
    )
    tiny_vae_model: str | None = setting(
        None, kind="str", optional=True, flag="--tiny-vae", metavar="ID_OR_FOLDER", stage="generation",
        label="Tiny VAE", help="the tiny VAE's Hub id or folder (used with --vae tiny)",
    )
    compile: bool | None = setting(
        None, kind="bool", optional=True, stage="generation", label="Compile",
        help="torch.compile the UNet (minutes of compiling and more memory; pays only for long exports)",
    )

    def __post_init__(self) -> None:
        if isinstance(self.dtype, str) and self.dtype in DTYPE_ALIASES:
            object.__setattr__(self, "dtype", DTYPE_ALIASES[self.dtype])
        if self.name not in EDITOR_NAMES and self.name not in REGISTERED:
            raise fail(self, "name", f"must be one of {', '.join([*EDITOR_NAMES, *REGISTERED])}")
        check_fields(self)
        bs = self.batch_size
        if bs is not None and bs != "auto" and (not schema.is_int(bs) or not 1 <= bs <= 4096):
            raise fail(self, "batch_size", "must be an integer in [1, 4096] or auto")
        if bs is not None and bs != "auto":
            object.__setattr__(self, "batch_size", int(bs))
        template = self.prompt_template
        if template is not None and template.count("{prompt}") != 1:
            raise fail(self, "prompt_template", "must contain {prompt} exactly once (where the prompt goes)")
        if self.strength is not None and self.strength <= 0.0:
            raise fail(self, "strength", "must be above 0 (0 would keep the input unchanged)")
        if self.compile and (self.cache_interval or 1) > 1:
            raise fail(
                self, "compile",
                "cannot go with cache_interval > 1 (DeepCache replaces the UNet's forward at every call); choose one",
                value=NO_VALUE,
            )

    # -- what callers use -----------------------------------------------------

    def replace(self, **changes: Any) -> "EditorSpec":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def given(self) -> dict[str, Any]:
        """The fields that are set (not ``None``), but the name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "name" and getattr(self, f.name) is not None}

    @property
    def approximate(self) -> list[str]:
        """The settings that make numbers differ from float32 beyond rounding."""
        out = []
        if self.dtype in ("float16", "bfloat16"):
            out.append(self.dtype)
        if (self.cache_interval or 1) > 1:
            out.append(f"DeepCache interval {self.cache_interval}")
        if self.vae == "tiny":
            out.append("tiny VAE")
        return out

    @property
    def denoising_steps(self) -> int | None:
        """The steps that actually run: img2img runs ``min(int(steps * strength), steps)``."""
        if self.steps is None:
            return None
        if self.strength is None:
            return self.steps
        return min(int(self.steps * self.strength), self.steps)

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-able."""
        return schema.to_dict(self)

    def pixel_settings(self) -> dict[str, Any]:
        """What changes Î (the fields of stage ``generation`` that are set): a row's ``editor_settings``."""
        names = PIXEL_FIELDS if type(self) is EditorSpec else _pixel_fields(type(self))
        out = {k: getattr(self, k) for k in names if getattr(self, k) is not None}
        if out.get("vae") != "tiny":
            out.pop("tiny_vae_model", None)  # not used: recording it would claim what made no pixel
        return out

    def settings_text(self) -> str:
        """:meth:`pixel_settings` as the JSON text of a row's ``editor_settings`` column."""
        return json.dumps(self.pixel_settings(), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EditorSpec":
        """The spec of :meth:`to_dict` (unknown fields are refused, naming the known ones)."""
        return schema.from_dict(cls, data)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "EditorSpec":
        """The spec a manifest row records (``editor`` and ``editor_settings``).

        Rows written before the spec existed also hold description keys
        (``scheduler``, ``approximate``, ...): they are left out, and so is a
        ``device`` (the machine that replays chooses its own).
        """
        try:
            described = json.loads(row.get("editor_settings") or "{}")
        except (TypeError, ValueError):
            described = None
        if not isinstance(described, dict):
            raise SettingError("is not a JSON object; was the row written by diffusemix?", field="editor_settings",
                               value=row.get("editor_settings"))
        names = {f.name for f in dataclasses.fields(cls)} - {"device"}
        known = {k: (None if v is None else v) for k, v in described.items() if k in names}
        name = row.get("editor")
        return cls(name=str(name) if name else "auto", **{k: v for k, v in known.items() if k != "name"})


def _pixel_fields(cls: type) -> tuple[str, ...]:
    return tuple(n for n in schema.fields_by_stage(cls, "generation") if n not in ("name", "speed"))


#: The fields that change Î (every one but the name and the device: the name is recorded in its own column;
#: a speed preset is recorded as the settings it set).
PIXEL_FIELDS: tuple[str, ...] = _pixel_fields(EditorSpec)
