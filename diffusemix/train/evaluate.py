"""Evaluation of a run's model: top-1/top-5 accuracy (sharded over processes) and the adversarial figures."""

from __future__ import annotations

from typing import Any, Iterator

import torch

from .augment import center_crop
from .data import LoadedItems
from .robustness import robust_accuracy

__all__ = ["eval_batches", "accuracy", "robustness"]


def eval_batches(
    items: LoadedItems, *, batch_size: int, image_size: int, device: Any, rank: int = 0, world: int = 1,
    limit: int | None = None, workers: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:  # fmt: skip
    """(images in [0, 1] center-cropped to image_size, labels) for this process's share (items rank::world)."""
    n = len(items) if limit is None else min(limit, len(items))
    mine = list(range(rank, n, world))
    batches = [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
    loader = torch.utils.data.DataLoader(items, batch_sampler=batches, num_workers=workers)
    for x, y in loader:
        x = center_crop(x.to(device).float().div_(255.0), image_size)
        yield x, y.to(device)


@torch.no_grad()
def accuracy(model: torch.nn.Module, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], *,
             autocast: Any) -> tuple[int, int, int, float]:  # fmt: skip
    """(top-1 correct, top-5 correct, total, summed loss) of this process's share."""
    model.eval()
    top1 = top5 = total = 0
    loss = 0.0
    for x, y in batches:
        with autocast():
            logits = model(x)
        logits = logits.float()
        loss += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
        k = min(5, logits.shape[1])
        best = logits.topk(k, dim=1).indices
        top1 += int((best[:, 0] == y).sum())
        top5 += int((best == y[:, None]).any(dim=1).sum())
        total += len(y)
    return top1, top5, total, loss


def robustness(model: torch.nn.Module, items: LoadedItems, *, config: Any, device: Any) -> dict[str, Any]:
    """FGSM / PGD figures of the config on the first ``robust_samples`` evaluation images (one process)."""
    batches = eval_batches(items, batch_size=config.eval_batch_size or config.batch_size,
                           image_size=config.image_size, device=device, limit=config.robust_samples)  # fmt: skip
    return robust_accuracy(model, batches, attacks=tuple(config.attacks), eps=config.attack_eps,
                           pgd_steps=config.pgd_steps, pgd_step_size=config.pgd_step_size,
                           seed=config.seed)  # fmt: skip
