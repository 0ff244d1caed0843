"""``to_tensor``: a PIL image or uint8 array as a float CHW tensor in [0, 1].

The plain-PyTorch stand-in for ``torchvision.transforms.ToTensor`` (torchvision
has no CPU build here), so the dataset and the examples need nothing else.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ..errors import DiffuseMixError

__all__ = ["to_tensor"]


def to_tensor(image: Any) -> Any:
    """(H, W, 3) uint8 (a PIL RGB image or an array) → float32 torch tensor (3, H, W) in [0, 1]."""
    import torch

    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise DiffuseMixError(f"to_tensor expects an RGB uint8 image (H, W, 3); got {arr.dtype} {arr.shape}")
    if not arr.flags.writeable:
        arr = arr.copy()
    return torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0)
