"""Tiny random-weight scorer models (DINOv2, CLIP) for tests and benches: built by the package
(``diffusemix.tiny_models``, also ``python -m diffusemix tiny-models DIR``); this module keeps the tests' and
benches' imports working.

Used by ``tests/conftest.py`` and ``bench/bench_scoring.py``.
"""

from __future__ import annotations

from diffusemix.tiny_models import CROP, build_tiny_clip, build_tiny_dino, build_tiny_dino_v1

__all__ = ["CROP", "build_tiny_dino", "build_tiny_clip", "build_tiny_dino_v1"]
