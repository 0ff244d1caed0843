"""The paper's training experiments as runnable recipes: ``python -m diffusemix train CONFIG``.

* :mod:`~diffusemix.train.config`: :class:`TrainConfig` and the shipped configs (one per experiment,
  each value with its source);
* :mod:`~diffusemix.train.data`: class folders (torchvision's ImageFolder logic, no torchvision),
  🤗 datasets, DiffuseMix online (a cache) or from an export, k images per class;
* :mod:`~diffusemix.train.models`: transformers' ResNet / ViT / ConvNeXt from configs, pretrained weights;
* :mod:`~diffusemix.train.augment`: kornia's crop, flip, MixUp and CutMix, seeded per step;
* :mod:`~diffusemix.train.budget`: equal steps or equal images across methods;
* :mod:`~diffusemix.train.loop`: :func:`train_run` (accelerate, checkpoints, resume);
* :mod:`~diffusemix.train.robustness`: FGSM and PGD;
* :mod:`~diffusemix.train.results`: result.json, the comparison plot and table.

Loaded lazily: ``import diffusemix.train`` imports neither torch nor kornia.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "TrainConfig": "config",
    "LoadedConfig": "config",
    "load_config": "config",
    "shipped_configs": "config",
    "apply_overrides": "config",
    "METHODS": "config",
    "BUDGETS": "config",
    "Budget": "budget",
    "plan_budget": "budget",
    "train_run": "loop",
    "build_model": "models",
    "fgsm": "robustness",
    "pgd": "robustness",
    "read_result": "results",
    "markdown_table": "results",
    "plot_runs": "results",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals(), __all__)
