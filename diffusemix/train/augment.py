"""Batch augmentation on the training device: kornia's crops, flip, MixUp and CutMix, seeded per step.

kornia draws its parameters from torch's global generator. Each call here
draws them inside ``torch.random.fork_rng`` seeded from (run seed, step,
process), so the draws of a step are the same on a resumed run and the
caller's global random state is left as it was (draw first, apply second:
kornia's ``forward_parameters`` then ``forward(..., params=...)``).

MixUp and CutMix come from kornia (``RandomMixUpV2``, ``RandomCutMixV2``),
not written by hand. Their label outputs follow different conventions
(MixUp's λ weights the *paired* image, CutMix's corrected λ weights the
*original*); :func:`soft_targets` turns both into the class distribution
each mixed image carries.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch

from ..errors import DiffuseMixError
from .config import TrainConfig

__all__ = ["BatchAugment", "soft_targets", "soft_cross_entropy", "center_crop", "step_seed"]


def step_seed(seed: int, step: int, rank: int, salt: int) -> int:
    """A 63-bit seed for one (run seed, step, process, purpose)."""
    return int(np.random.SeedSequence([seed, step, rank, salt]).generate_state(1, np.uint64)[0] >> np.uint64(1))


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size`` x ``size`` window of a (B, C, H, W) batch (as torchvision's CenterCrop rounds)."""
    h, w = x.shape[-2:]
    if size > h or size > w:
        raise DiffuseMixError(f"cannot center-crop {size} px from {h}x{w} images")
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return x[..., top : top + size, left : left + size]


def soft_targets(labels: torch.Tensor, kind: str, num_classes: int) -> torch.Tensor:
    """kornia's mixed-label output -> (B, num_classes) class distribution per image.

    Args:
        labels: ``RandomMixUpV2``'s (B, 3) or ``RandomCutMixV2``'s (num_mix, B, 3) rows of
            (label, paired label, λ).
        kind: ``mixup`` (λ is the paired image's weight: ``x (1 - λ) + x_pair λ``) or ``cutmix``
            (with ``use_correct_lambda=True`` λ = 1 - cut area, the original's weight; one mix).
    """
    if kind == "mixup":
        y_a, y_b, lam = labels[:, 0].long(), labels[:, 1].long(), labels[:, 2].float()
        w_a = 1.0 - lam
    elif kind == "cutmix":
        if labels.dim() != 3 or labels.shape[0] != 1:
            raise DiffuseMixError(f"cutmix labels must be (1, B, 3) (one mix); got {tuple(labels.shape)}")
        row = labels[0]
        y_a, y_b, w_a = row[:, 0].long(), row[:, 1].long(), row[:, 2].float()
    else:
        raise DiffuseMixError(f"kind must be mixup or cutmix; got {kind!r}")
    eye = torch.eye(num_classes, device=labels.device, dtype=torch.float32)
    return w_a[:, None] * eye[y_a] + (1.0 - w_a)[:, None] * eye[y_b]


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, *, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy against class indices (B,) or distributions (B, K), with label smoothing."""
    return torch.nn.functional.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)


class BatchAugment(torch.nn.Module):
    """The training transform of a method, on a float batch in [0, 1] (B, 3, load_size, load_size).

    ``standard``, ``mixup``, ``cutmix``, ``diffusemix`` and ``diffusemix-export`` get the
    config's crop and flip (DiffuseMix's A is an image like any other); ``mixup`` and
    ``cutmix`` then mix the batch. ``none`` only center-crops to ``image_size``.
    """

    def __init__(self, config: TrainConfig, num_classes: int) -> None:
        super().__init__()
        import kornia.augmentation as K

        self.method, self.num_classes, self.size = config.method, num_classes, config.image_size
        geometric = config.method != "none"
        self.crop: torch.nn.Module | None = None
        if geometric and config.crop == "random-resized-crop":
            self.crop = K.RandomResizedCrop((config.image_size,) * 2, scale=tuple(config.crop_scale))
        elif geometric and config.crop == "random-crop":
            self.crop = K.RandomCrop((config.image_size,) * 2, padding=config.crop_padding or None)
        self.flip = K.RandomHorizontalFlip(p=0.5) if geometric and config.hflip else None
        self.mix: torch.nn.Module | None = None
        if config.method == "mixup":
            self.mix = K.RandomMixUpV2(lambda_val=tuple(config.mixup_lambda), p=config.mix_prob,
                                       data_keys=["input", "class"])  # fmt: skip
        elif config.method == "cutmix":
            self.mix = K.RandomCutMixV2(beta=config.cutmix_beta, p=config.mix_prob, num_mix=1,
                                        use_correct_lambda=True, data_keys=["input", "class"])  # fmt: skip

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, y: torch.Tensor, *, seed: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, targets): targets are class indices, or (B, K) distributions after MixUp/CutMix."""
        with _seeded(seed):
            if self.crop is not None:
                x = self.crop(x)
            elif x.shape[-1] != self.size or x.shape[-2] != self.size:
                x = center_crop(x, self.size)
            if self.flip is not None:
                x = self.flip(x)
            if self.mix is not None:
                x, labels = self.mix(x, y)
                return x, soft_targets(labels, self.method, self.num_classes)
        return x, y
