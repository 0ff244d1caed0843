"""What the transformers scorers share: where the weights are, loading them
with errors that say what to do, lazy thread-safe loading, batched features.

torch and transformers are imported inside the functions, never at module
level, so ``import diffusemix.scoring`` stays cheap and torch-free.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

# (importing _diffusers_common also hides transformers' harmless torchvision notice)
from ..editors._diffusers_common import _first_line, _is_oom, resolve_device, resolve_dtype
from ..errors import EditorLoadError, ScorerLoadError
from .base import Score, check_pairs

__all__ = ["WeightsSource", "locate_weights", "TransformersScorer", "unit_rows", "cosine"]

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


@dataclass(frozen=True)
class WeightsSource:
    """Scorer weights to load: a local folder or a Hugging Face Hub id."""

    kind: Literal["folder", "hub"]
    ref: str


def locate_weights(model: str, *, label: str, example_id: str) -> WeightsSource:
    """Decide whether ``model`` is a local folder or a hub id, and check the folder.

    Raises:
        ScorerLoadError: a missing folder, a file, or a folder without a
            transformers model (config.json and a weights file).
    """
    if not isinstance(model, str) or not model.strip():
        raise ScorerLoadError(f"the {label} scorer model must be a Hugging Face Hub id or a folder; got {model!r}")
    path = Path(model).expanduser()
    if path.is_dir():
        folder = path.resolve()
        missing = [] if (folder / "config.json").is_file() else ["config.json"]
        if not any((folder / f).is_file() for f in _WEIGHT_FILES):
            missing.append("model.safetensors (or pytorch_model.bin)")
        if missing:
            raise ScorerLoadError(
                f"{folder} is not a transformers model folder for the {label} scorer: missing {', '.join(missing)}."
                f" Such a folder is what save_pretrained() writes, or what"
                f" `hf download {example_id} --local-dir DIR` fetches."
            )
        return WeightsSource("folder", str(folder))
    if path.exists():
        raise ScorerLoadError(
            f"{path} is a file; the {label} scorer takes a transformers model folder (config.json, model.safetensors,"
            f" preprocessor_config.json) or a Hugging Face Hub id such as {example_id}"
        )
    if _HUB_ID.fullmatch(model):
        return WeightsSource("hub", model)
    raise ScorerLoadError(
        f"the scorer model folder {path.absolute()} does not exist. Pass an existing folder for the {label} scorer"
        f" (--scorer-model /path/to/folder) or a Hugging Face Hub id such as {example_id}."
    )


def _not_found(label: str, source: WeightsSource, exc: BaseException) -> ScorerLoadError:
    if source.kind == "folder":
        return ScorerLoadError(
            f"could not load the {label} scorer from {source.ref}: {_first_line(exc)}. Check that the folder holds"
            " the complete model and its image processor (what save_pretrained() writes for both)."
        )
    return ScorerLoadError(
        f"{label} scorer weights '{source.ref}' could not be found locally or downloaded: they are not in the"
        " local Hugging Face cache and the Hub could not be reached (or the id is wrong). To fix it, run once where"
        f" the Hugging Face Hub is reachable (`hf download {source.ref}`, the Hugging Face CLI) so the weights are"
        f" cached, or pass a local folder (--scorer-model /path/to/{source.ref.split('/')[-1]}), or export without"
        f" --score. (No local folder {Path(source.ref).absolute()} exists either.) Details: {_first_line(exc, 160)}"
    )


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` (float) scaled to unit length, in float64."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


class TransformersScorer:
    """A scorer whose model is loaded with transformers, once, on first use.

    Subclasses set ``name``, ``label``, ``default_model``, ``model_types``
    (the ``config.model_type`` values they accept) and implement
    ``_load_parts(source, kwargs)`` → dict of loaded parts, ``_features(batch)``
    → (n, d) numpy features of a list of PIL images; ``score`` is the cosine
    similarity of each (I, Î) unless a subclass scores otherwise.
    """

    name: str
    label: str
    default_model: str
    model_types: tuple[str, ...]
    available = True
    needs_labels = False
    notice: str | None = None

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 32,
    ) -> None:
        self.model = model if model is not None else self.default_model
        try:
            self.device = resolve_device(device)
            self.dtype = resolve_dtype(dtype, self.device)
        except EditorLoadError as exc:
            raise ScorerLoadError(f"{self.label} scorer: {exc}") from exc
        self.batch_size = batch_size
        self._parts: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model!r}, device={self.device!r}, dtype={self.dtype!r})"

    @property
    def loaded(self) -> bool:
        return self._parts is not None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "device": self.device,
            "dtype": self.dtype,
            "summary": f"{self.name} ({self.model})",
        }

    # -- loading ------------------------------------------------------------

    def load(self) -> None:
        """Load the model and its processor now (once; thread-safe).

        Raises:
            ScorerLoadError: the weights cannot be found or loaded, or the
                folder holds another kind of model; the message says what to do.
        """
        with self._lock:
            if self._parts is not None:
                return
            import torch
            from transformers import AutoConfig

            source = locate_weights(self.model, label=self.label, example_id=self.default_model)
            kwargs: dict[str, Any] = {"local_files_only": True} if source.kind == "folder" else {}
            # 1. the config says what model this is; refuse another kind before
            #    transformers would fill the missing weights with random values
            try:
                config = AutoConfig.from_pretrained(source.ref, **kwargs)
            except OSError as exc:
                raise _not_found(self.label, source, exc) from exc
            except Exception as exc:
                raise ScorerLoadError(
                    f"could not read the {self.label} scorer's config from {source.ref}: {_first_line(exc)}"
                ) from exc
            kind = getattr(config, "model_type", None)
            if kind not in self.model_types:
                raise ScorerLoadError(
                    f"{source.ref} holds a {kind!r} model, but the {self.label} scorer needs one of"
                    f" {', '.join(self.model_types)} (e.g. {self.default_model}); pass the right --scorer-model"
                )
            # 2. model and processor (subclass), every weight from the checkpoint
            try:
                parts = self._load_parts(source, kwargs)
            except ScorerLoadError:
                raise
            except OSError as exc:
                raise _not_found(self.label, source, exc) from exc
            except Exception as exc:
                raise ScorerLoadError(
                    f"could not load the {self.label} scorer from {source.ref}:"
                    f" {type(exc).__name__}: {_first_line(exc)}"
                ) from exc
            # 3. onto the device, in inference mode
            try:
                parts["model"] = parts["model"].to(self.device, dtype=getattr(torch, self.dtype)).eval()
            except Exception as exc:
                hint = "; free the device or use --device cpu" if _is_oom(exc) else ""
                raise ScorerLoadError(
                    f"could not move the {self.label} scorer to {self.device}: {_first_line(exc)}{hint}"
                ) from exc
            self._parts = parts

    def _load_model(self, cls: Any, source: WeightsSource, kwargs: dict[str, Any], **extra: Any) -> Any:
        """``cls.from_pretrained`` that refuses a checkpoint missing any weight
        (transformers would fill those with random values: a made-up score)."""
        model, info = cls.from_pretrained(source.ref, output_loading_info=True, **kwargs, **extra)
        missing = sorted(info.get("missing_keys") or [])
        if missing:
            shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
            raise ScorerLoadError(
                f"{source.ref} lacks {len(missing)} weight(s) the {self.label} scorer needs ({shown}); a score from"
                " randomly filled weights would mean nothing. Pass a complete checkpoint"
                f" (e.g. `hf download {self.default_model}`)."
            )
        return model

    def _load_parts(self, source: WeightsSource, kwargs: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    @property
    def parts(self) -> dict[str, Any]:
        self.load()
        assert self._parts is not None
        return self._parts

    # -- features -------------------------------------------------------------

    def _pixels(self, images: Sequence[np.ndarray]) -> Any:
        """The model's pixel_values for a batch of uint8 images (PIL processor)."""
        import torch
        from PIL import Image

        proc = self.parts["image_processor"]
        pv = proc(images=[Image.fromarray(im) for im in images], return_tensors="pt")["pixel_values"]
        return pv.to(self.device, dtype=getattr(torch, self.dtype))

    def _image_features(self, pixel_values: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Unit-length features (n, d) float64 of uint8 images, ``batch_size`` at a time."""
        import torch

        out = []
        for k in range(0, len(images), self.batch_size):
            with torch.inference_mode():
                feats = self._image_features(self._pixels(images[k : k + self.batch_size]))
            out.append(feats.float().cpu().numpy())
        return unit_rows(np.concatenate(out)) if out else np.zeros((0, 0))

    def _pair_features(
        self, inputs: Sequence[np.ndarray], generated: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Features of every input (each distinct array once) and every Î."""
        index: dict[int, int] = {}
        unique: list[np.ndarray] = []
        for im in inputs:
            if id(im) not in index:
                index[id(im)] = len(unique)
                unique.append(im)
        feats = self.embed(unique + list(generated))
        fin = feats[: len(unique)][[index[id(im)] for im in inputs]]
        return fin, feats[len(unique) :]

    def score(
        self,
        inputs: Sequence[np.ndarray],
        generated: Sequence[np.ndarray],
        *,
        labels: Sequence[str] | None = None,
    ) -> list[Score]:
        """Cosine similarity of each (I, Î), in [-1, 1]; labels are ignored."""
        check_pairs(inputs, generated, labels, needs_labels=False)
        if not inputs:
            return []
        fin, fgen = self._pair_features(inputs, generated)
        return [Score(value=float(v), scorer=self.name) for v in cosine(fin, fgen)]


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of unit rows, clipped to [-1, 1] against rounding."""
    return np.clip(np.sum(a * b, axis=1), -1.0, 1.0)

