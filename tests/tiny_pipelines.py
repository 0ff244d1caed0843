"""Tiny random-weight diffusion pipelines for tests and benches: built by the package (``diffusemix.tiny_models``,
also ``python -m diffusemix tiny-models DIR``); this module keeps the tests' and benches' imports working.

Used by ``tests/conftest.py`` and ``bench/bench_generation.py``.
"""

from __future__ import annotations

from diffusemix.tiny_models import (
    MAX_TOKENS,
    _bytes_to_unicode,
    build_tiny_img2img,
    build_tiny_ip2p,
    write_byte_clip_tokenizer,
)

__all__ = ["MAX_TOKENS", "build_tiny_ip2p", "build_tiny_img2img", "write_byte_clip_tokenizer", "_bytes_to_unicode"]
