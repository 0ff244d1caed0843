"""An independent port of the authors' mixing arithmetic, for the tests only.

Written from the description in METHOD.md and issue 9 (the reference code,
khawar-islam/diffuseMix, ``augment/utils.py``), deliberately the slow,
literal way and sharing no code with ``diffusemix.functional``:

* ``combine_images``: a float64 mask of the GENERATED image's weight, zeros
  for the first ``W//2 - w//2`` columns, ``np.linspace(0, 1, w)`` over ``w``
  columns, then ones ("horizontal": input on the left; "vertical": the same
  over rows, input on top), tiled to 3 channels; I and Î as float32 / 255;
  ``H = uint8(clip(((1 - mask) * I + mask * Î) * 255, 0, 255))``.
* ``blend_images_with_resize``: H and F as float32 arrays;
  ``A = uint8(clip((1 - alpha) * H + alpha * F, 0, 255))`` with alpha a
  Python float (numpy keeps float32).

Where the authors' code crashes (odd sizes: their zeros, ramp and ones do not
add up to the side), the port fills the rest with ones, the behaviour the
project defines; at their sizes (even sides, w = 20) that is their code.
"""

from __future__ import annotations

import numpy as np


def authors_mask(height: int, width: int, orientation: str, blend_width: int = 20) -> np.ndarray:
    """The float64 (height, width, 3) weight of the generated image."""
    n = width if orientation == "horizontal" else height
    zeros = n // 2 - blend_width // 2
    ones = n - zeros - blend_width  # the authors: n // 2 - w // 2 + w % 2, which equals this at their sizes
    profile = np.concatenate([np.zeros(zeros), np.linspace(0, 1, blend_width), np.ones(ones)])
    if orientation == "horizontal":
        mask = np.tile(profile.reshape(1, -1), (height, 1))
    elif orientation == "vertical":
        mask = np.tile(profile.reshape(-1, 1), (1, width))
    else:
        raise ValueError(orientation)
    return np.tile(mask[:, :, np.newaxis], (1, 1, 3))


def authors_combine(original: np.ndarray, generated: np.ndarray, orientation: str, blend_width: int = 20) -> np.ndarray:
    """H, as the authors' combine_images makes it (from uint8 RGB arrays)."""
    height, width = original.shape[:2]
    mask = authors_mask(height, width, orientation, blend_width)
    original_array = np.array(original, dtype=np.float32) / 255.0
    augmented_array = np.array(generated, dtype=np.float32) / 255.0
    blended = (1 - mask) * original_array + mask * augmented_array
    return np.clip(blended * 255, 0, 255).astype(np.uint8)


def authors_blend(base: np.ndarray, overlay: np.ndarray, alpha: float = 0.20) -> np.ndarray:
    """A, as the authors' blend_images_with_resize makes it (overlay already at the base's size)."""
    base_array = np.array(base, dtype=np.float32)
    overlay_array = np.array(overlay, dtype=np.float32)
    blended = (1 - alpha) * base_array + alpha * overlay_array
    return np.clip(blended, 0, 255).astype(np.uint8)


#: The project's layout name for each of the authors' orientations.
ORIENTATION_OF_LAYOUT = {"left": "horizontal", "top": "vertical"}
