"""Image–image similarity with DINOv2 features (the kind GenMix filters with).

The score of a pair (I, Î) is the cosine similarity of the class-token
features of the two images, in [-1, 1]. GenMix keeps Î when DINO ViT-B/16
features give >= 0.7. The default here is ``facebook/dinov2-small`` (22 M
parameters); any DINOv2 checkpoint, or DINO v1 (``facebook/dino-vitb16``, a
plain ViT), loads the same way.
"""

from __future__ import annotations

from typing import Any

from ._hf import TransformersScorer, WeightsSource

__all__ = ["DinoScorer", "DEFAULT_DINO_MODEL"]

#: The default DINOv2 checkpoint (small: 22 M parameters, 224 px crops).
DEFAULT_DINO_MODEL = "facebook/dinov2-small"


class DinoScorer(TransformersScorer):
    """Cosine similarity of DINOv2 class-token features of I and Î.

    Args:
        model: a Hugging Face Hub id or a local folder (what
            ``save_pretrained`` writes for the model and its image processor).
        device, dtype: as for the editors; ``None`` picks (float16 on CUDA).
        batch_size: images per forward pass.

    Raises:
        ScorerLoadError: from :meth:`load` (or the first :meth:`score`).
    """

    name = "dino"
    label = "DINOv2"
    default_model = DEFAULT_DINO_MODEL
    model_types = ("dinov2", "dinov2_with_registers", "vit")

    def _load_parts(self, source: WeightsSource, kwargs: dict[str, Any]) -> dict[str, Any]:
        from transformers import AutoConfig, AutoImageProcessor, AutoModel

        kind = AutoConfig.from_pretrained(source.ref, **kwargs).model_type
        extra = {"add_pooling_layer": False} if kind == "vit" else {}
        model = self._load_model(AutoModel, source, kwargs, **extra)
        processor = AutoImageProcessor.from_pretrained(source.ref, **kwargs)
        return {"model": model, "image_processor": processor}

    def _image_features(self, pixel_values: Any) -> Any:
        # The class token after the final layer norm (DINOv2's pooler output).
        return self.parts["model"](pixel_values=pixel_values).last_hidden_state[:, 0]

