"""DiffuseMix: label-preserving data augmentation with diffusion models (CVPR 2024).

An image I is edited by a text-guided diffusion model under a filter-like
prompt (Î); half of I is kept and half of Î joined to it through a mask M
(the hybrid H); a fractal F is blended over it: A = (1 − λ) H + λ F.
A keeps the label of I.

The public API is loaded lazily: importing ``diffusemix`` loads no model,
touches no network and imports neither torch nor diffusers.
"""

from __future__ import annotations

from ._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # maths
    "make_mask": "functional",
    "hybrid": "functional",
    "blend": "functional",
    "mix": "functional",
    "degenerate_reason": "functional",
    "LAYOUTS": "functional",
    "MASK_KINDS": "functional",
    "ARITHMETICS": "functional",
    "mix_reference": "functional",
    # settings and draws
    "Recipe": "recipe",
    "SampleRecord": "recipe",
    "PRESETS": "recipe",
    "get_preset": "recipe",
    "draw": "recipe",
    "draw_prompts": "recipe",
    # running
    "Stages": "engine",
    "STAGE_NAMES": "engine",
    "apply_record": "engine",
    "augment": "engine",
    "replay": "engine",
    "compare_editors": "compare",
    # inputs
    "load_image": "images",
    "prepare": "images",
    "FractalSet": "fractals",
    "load_prompts": "prompts",
    "PromptBook": "prompts",
    # batch export
    "ExportOptions": "export",
    "ExportPlan": "export",
    "ExportSummary": "export",
    "export_dataset": "export",
    "plan_export": "export",
    "merge_manifests": "export",
    # training (re-mix a cache of Î every epoch)
    "DiffuseMixDataset": "data",
    "DiffuseMixTransform": "data",
    "read_cache": "data",
    # editors
    "load_editor": "editors",
    "EditorSpec": "editors.spec",
    "register_editor": "editors.loading",
    "Editor": "editors.base",
    "EditRequest": "editors.base",
    "EditResult": "editors.base",
    # scoring (does Î keep the label?)
    "load_scorer": "scoring",
    "ScorerSpec": "scoring.spec",
    "Scorer": "scoring",
    "ScoreRule": "scoring",
    # errors
    "DiffuseMixError": "errors",
    "SettingError": "errors",
    "RecordError": "errors",
    "ImageError": "errors",
    "PromptFileError": "errors",
    "FractalError": "errors",
    "EditorLoadError": "errors",
    "Cancelled": "errors",
    "ScorerLoadError": "errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals(), __all__)
