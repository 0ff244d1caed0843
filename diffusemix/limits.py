"""The library's limits, each stated once (shells import them, never restate them).

The app has tighter limits of its own for a shared server (``diffusemix.ui.limits``).
"""

from __future__ import annotations

__all__ = ["MAX_SEED", "MAX_SIZE", "MAX_PIXELS"]

#: Largest seed anywhere: the master seed of a recipe, a sample's editor seed, the app's seed box.
#: 32 bits: what every per-sample seed is drawn in, what a browser's number box holds exactly, and
#: what PyTorch Lightning's ``seed_everything`` takes.
MAX_SEED: int = 2**32 - 1

#: Largest output side S, in pixels, for ``prepare`` and ``Recipe.size``: one S x S x 3 stage is
#: 48 MiB at 4096 (the paper uses 256), and a run holds six stages per sample; a larger S is far
#: more likely a typo than a wish.
MAX_SIZE: int = 4096

#: Largest image, in pixels, that ``load_image`` decodes by default: Pillow's own
#: decompression-bomb threshold (89,478,485 px, about 9459 x 9459; a 24-bit image of that size is
#: ~256 MiB decoded). Pillow refuses outright anything above twice its threshold, so raising
#: ``max_pixels`` beyond that has no effect.
MAX_PIXELS: int = 89_478_485
