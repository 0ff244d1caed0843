"""CLIP scorers: image–image similarity and zero-shot label consistency.

- ``clip``: the cosine similarity of the CLIP image embeddings of I and Î, in
  [-1, 1] (the kind DiffCoRe-Mix filters with: ViT-B/32, kept when > 0.6).
- ``clip-label``: does Î still look like its class? Each class name is put in
  a text template ("a photo of a {}"); the score of Î is CLIP's zero-shot
  probability of its true class among all class names, in [0, 1], with the
  true class's rank; the same two numbers for I are recorded beside them, so
  a drop from I to Î is visible.

Default checkpoint: ``openai/clip-vit-base-patch32``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ScorerLoadError, SettingError
from ._hf import TransformersScorer, WeightsSource, unit_rows
from .base import Score, check_pairs
from .spec import DEFAULT_TEMPLATE, template_problem

__all__ = ["ClipScorer", "ClipLabelScorer", "DEFAULT_CLIP_MODEL", "DEFAULT_TEMPLATE", "class_phrase"]

#: The default CLIP checkpoint (ViT-B/32, the one DiffCoRe-Mix uses).
DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"


def class_phrase(name: str) -> str:
    """A class folder name as words: ``golden_retriever`` -> ``golden retriever``."""
    return " ".join(name.replace("_", " ").replace("-", " ").split())


def _check_spelling(tokenizer: Any, texts: Sequence[str], ref: str) -> None:
    """Refuse a tokenizer that cannot write the class texts back (transformers
    builds an empty one, every word unknown, from a folder without tokenizer
    files: the text features would mean nothing)."""
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        back = tokenizer.decode(ids, skip_special_tokens=True)
        if "".join(back.lower().split()) != "".join(text.lower().split()):  # CLIP's decode spaces out punctuation
            raise ScorerLoadError(
                f"{ref} has no usable CLIP tokenizer (vocab.json + merges.txt, or tokenizer.json), which the"
                f" clip-label scorer needs for the class names: it turns {text!r} into {back!r}. Pass a complete"
                f" CLIP folder (e.g. `hf download {DEFAULT_CLIP_MODEL}`)."
            )


class ClipScorer(TransformersScorer):
    """Cosine similarity of the CLIP image embeddings of I and Î.

    Args:
        model: a Hugging Face Hub id or a local folder (model, image
            processor and, for ``clip-label``, tokenizer).
        device, dtype: as for the editors; ``None`` picks (float16 on CUDA).
        batch_size: images per forward pass.
    """

    name = "clip"
    label = "CLIP"
    default_model = DEFAULT_CLIP_MODEL
    model_types = ("clip",)

    def _load_parts(self, source: WeightsSource, kwargs: dict[str, Any]) -> dict[str, Any]:
        from transformers import AutoImageProcessor, CLIPModel

        model = self._load_model(CLIPModel, source, kwargs)
        return {"model": model, "image_processor": AutoImageProcessor.from_pretrained(source.ref, **kwargs)}

    def _image_features(self, pixel_values: Any) -> Any:
        return self.parts["model"].get_image_features(pixel_values=pixel_values).pooler_output



class ClipLabelScorer(ClipScorer):
    """CLIP zero-shot probability (and rank) of the true class, for Î and for I.

    Args:
        class_names: every class of the dataset (at least two), as the labels
            passed to :meth:`score` spell them (class folder names).
        template: the text each class name is put in; must contain ``{}``.
        model, device, dtype, batch_size: as for :class:`ClipScorer`.
    """

    name = "clip-label"
    needs_labels = True

    def __init__(
        self,
        model: str | None = None,
        *,
        class_names: Sequence[str],
        template: str = DEFAULT_TEMPLATE,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 32,
    ) -> None:
        names = list(class_names) if class_names is not None else []
        if len(names) < 2 or not all(isinstance(n, str) and n.strip() for n in names):
            raise SettingError(
                "needs at least two non-empty class names (the zero-shot choice is among them). A flat folder of"
                " images has one class: use --score dino or clip there", field="the clip-label scorer", value=names,
            )
        if len(set(names)) != len(names):
            raise SettingError("must be distinct", field="class names", value=names)
        problem = template_problem(template)
        if problem is not None:
            raise SettingError(problem, owner="ScorerSpec", field="template", value=template)
        super().__init__(model, device=device, dtype=dtype, batch_size=batch_size)
        self.class_names = tuple(names)
        self.template = template

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "template": self.template, "classes": len(self.class_names)}

    def _load_parts(self, source: WeightsSource, kwargs: dict[str, Any]) -> dict[str, Any]:
        import torch
        from transformers import AutoTokenizer

        parts = super()._load_parts(source, kwargs)
        try:
            tokenizer = AutoTokenizer.from_pretrained(source.ref, **kwargs)
        except (OSError, ValueError) as exc:
            raise ScorerLoadError(
                f"{source.ref} has no usable CLIP tokenizer (vocab/merges or tokenizer.json), which the clip-label"
                f" scorer needs for the class names: {exc}"
            ) from exc
        texts = [self.template.format(class_phrase(n)) for n in self.class_names]
        _check_spelling(tokenizer, texts, source.ref)
        tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        model = parts["model"]
        with torch.inference_mode():
            feats = model.get_text_features(**tokens).pooler_output
            parts["text_features"] = unit_rows(feats.float().numpy())
            parts["logit_scale"] = float(model.logit_scale.exp().float())
        return parts

    def _probabilities(self, feats: np.ndarray) -> np.ndarray:
        logits = self.parts["logit_scale"] * (feats @ self.parts["text_features"].T)
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def score(
        self,
        inputs: Sequence[np.ndarray],
        generated: Sequence[np.ndarray],
        *,
        labels: Sequence[str] | None = None,
    ) -> list[Score]:
        """For each (I, Î, class): the probability and rank of the class for Î
        (``value``, ``rank``) and for I (``input_value``, ``input_rank``)."""
        check_pairs(inputs, generated, labels, needs_labels=True, class_names=self.class_names)
        if not inputs:
            return []
        fin, fgen = self._pair_features(inputs, generated)
        p_in, p_gen = self._probabilities(fin), self._probabilities(fgen)
        true = np.array([self.class_names.index(lab) for lab in labels or ()])
        rows = np.arange(len(true))

        def rank(p: np.ndarray) -> np.ndarray:
            return 1 + np.sum(p > p[rows, true][:, None], axis=1)

        r_in, r_gen = rank(p_in), rank(p_gen)
        return [
            Score(
                value=float(p_gen[i, true[i]]),
                scorer=self.name,
                rank=int(r_gen[i]),
                input_value=float(p_in[i, true[i]]),
                input_rank=int(r_in[i]),
            )
            for i in range(len(true))
        ]
