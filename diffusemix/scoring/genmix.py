"""GenMix's filter: DINO (v1) ViT-B/16 class-token cosine of I and Î, at the features its 0.7 was set on.

GenMix (Islam et al., a later work of the DiffuseMix authors) keeps a generated
image when the cosine similarity of the DINO ViT-B/16 features of the input
and the generated image is at least 0.7. Its features are the class token
after the final layer norm of DINO v1 ViT-B/16 (timm ``vit_base_patch16_224.dino``;
in transformers ``facebook/dino-vitb16``), of images resized to 224 x 224
with no crop (torchvision's ``Resize((224, 224))`` on a PIL image: bilinear),
scaled to [0, 1] and normalised with ImageNet's mean and std. Here I is the
input at the export's size (256 px in the paper preset) and Î the generated
image, each resized so.

A threshold belongs to the features it was set on: 0.7 is this scorer's
(``--score genmix --min-similarity 0.7``). The ``dino`` scorer (DINOv2, resize
and centre crop) gives other numbers, and no published threshold belongs to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._hf import WeightsSource
from .dino import DinoScorer

__all__ = ["GenMixScorer", "DEFAULT_GENMIX_MODEL", "GENMIX_THRESHOLD", "IMAGENET_MEAN", "IMAGENET_STD"]

#: DINO v1 ViT-B/16 in transformers (the weights of timm's ``vit_base_patch16_224.dino``).
DEFAULT_GENMIX_MODEL = "facebook/dino-vitb16"
#: GenMix's threshold on these features: keep Î when the cosine is at least this.
GENMIX_THRESHOLD = 0.7
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class GenMixScorer(DinoScorer):
    """Cosine of the DINO ViT-B/16 class tokens of I and Î, with GenMix's preprocessing (see the module docstring).

    Args:
        model: a Hugging Face Hub id or a local folder of a ViT (default ``facebook/dino-vitb16``).
        device, dtype, batch_size: as for the other scorers.
    """

    name = "genmix"
    label = "GenMix (DINO ViT-B/16)"
    default_model = DEFAULT_GENMIX_MODEL
    model_types = ("vit",)

    def _load_parts(self, source: WeightsSource, kwargs: dict[str, Any]) -> dict[str, Any]:
        from transformers import AutoModel

        # the class token after the final layer norm: ViTModel's last_hidden_state (no pooler)
        return {"model": self._load_model(AutoModel, source, kwargs, add_pooling_layer=False)}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "preprocessing": "resize to 224 x 224 (bilinear, no crop), ImageNet mean/std",
                "threshold": GENMIX_THRESHOLD}

    def _pixels(self, images: Sequence[np.ndarray]) -> Any:
        """GenMix's preprocessing: a plain bilinear resize of the PIL image to the model's size, [0, 1], ImageNet
        mean and std (torchvision's ``Resize((s, s))``, ``ToTensor()``, ``Normalize``)."""
        import torch
        from PIL import Image

        side = int(self.parts["model"].config.image_size)
        mean = np.asarray(IMAGENET_MEAN, np.float32)
        std = np.asarray(IMAGENET_STD, np.float32)
        batch = []
        for im in images:
            small = Image.fromarray(im).resize((side, side), Image.Resampling.BILINEAR)
            x = (np.asarray(small, np.float32) / 255.0 - mean) / std
            batch.append(x.transpose(2, 0, 1))
        return torch.from_numpy(np.stack(batch)).to(self.device, dtype=getattr(torch, self.dtype))
