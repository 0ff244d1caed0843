"""Training with DiffuseMix: re-mix a cache of Î into fresh A every epoch.

* :class:`DiffuseMixDataset` (``dataset``): a torch ``Dataset`` of (A, label).
* :class:`DiffuseMixTransform` (``hf``): the same for 🤗 datasets'
  ``set_transform`` over ``load_dataset("imagefolder", data_dir=CACHE)``.
* :func:`read_cache` (``cache``): what a cache holds; :func:`to_tensor`.

Loaded lazily: ``import diffusemix.data`` imports neither torch nor PIL.
"""

from __future__ import annotations

from .._lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals(), __all__)
