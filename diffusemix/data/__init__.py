"""Training with DiffuseMix: re-mix a cache of Î into fresh A every epoch.

* :class:`DiffuseMixDataset` (``dataset``): a torch ``Dataset`` of (A, label).
* :class:`DiffuseMixTransform` (``hf``): the same for 🤗 datasets'
  ``set_transform`` over ``load_dataset("imagefolder", data_dir=CACHE)``.
* :func:`read_cache` (``cache``): what a cache holds; :func:`to_tensor`.

Loaded lazily: ``import diffusemix.data`` imports neither torch nor PIL.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "DiffuseMixDataset": "dataset",
    "PREVIEW_WARNING": "dataset",
    "DiffuseMixTransform": "hf",
    "Cache": "cache",
    "CacheEntry": "cache",
    "CacheError": "cache",
    "read_cache": "cache",
    "draw_mix": "draws",
    "to_tensor": "tensors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'diffusemix.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
