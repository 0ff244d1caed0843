"""FGSM and PGD (L-inf) evaluation of a trained classifier, in plain torch.

Written here rather than taken from a library: torchattacks and
adversarial-robustness-toolbox pull in torchvision (torchattacks) or a large
stack of other frameworks, and torchvision cannot be imported beside a
CPU-only torch here. Both attacks are a few lines and are tested against
properties that pin them down: the perturbation stays in the ε-ball and the
image in [0, 1]; FGSM on a linear model equals the closed form
x + ε·sign(Wᵀ(softmax − onehot)); PGD with one step of size ε and no random
start equals FGSM; ε = 0 changes nothing.

Images are in [0, 1] (the :class:`~diffusemix.train.models.Classifier`
normalises inside), ε in the same units (8/255 is 8 grey levels).
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from ..errors import DiffuseMixError

__all__ = ["fgsm", "pgd", "robust_accuracy"]


def _grad_sign(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(x).float(), y)
        (grad,) = torch.autograd.grad(loss, x)
    return grad.sign()


def fgsm(
    model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, *, eps: float
) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015): x + ε·sign(∇ₓ CE), clipped to [0, 1]."""
    if eps < 0:
        raise DiffuseMixError(f"eps must be >= 0; got {eps}")
    return (x + eps * _grad_sign(model, x, y)).clamp(0.0, 1.0).detach()


def pgd(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected gradient descent on the L-inf ball (Madry et al. 2018).

    Starts at x (or a uniform point of the ball when ``random_start``, drawn from
    ``generator`` on the CPU), then ``steps`` times: a signed-gradient step of
    ``step_size``, projection onto the ε-ball around x and onto [0, 1].
    """
    if eps < 0 or step_size < 0 or steps < 1:
        raise DiffuseMixError(f"need eps >= 0, step_size >= 0, steps >= 1; got {eps}, {step_size}, {steps}")
    x0 = x.detach()
    adv = x0.clone()
    if random_start and eps > 0:
        noise = torch.rand(x0.shape, generator=generator, dtype=torch.float32) * 2 - 1
        adv = (x0 + eps * noise.to(x0.device, x0.dtype)).clamp(0.0, 1.0)
    for _ in range(steps):
        adv = adv + step_size * _grad_sign(model, adv, y)
        adv = torch.min(torch.max(adv, x0 - eps), x0 + eps).clamp(0.0, 1.0).detach()
    return adv


@torch.no_grad()
def robust_accuracy(
    model: torch.nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    attacks: tuple[str, ...],
    eps: float,
    pgd_steps: int,
    pgd_step_size: float,
    seed: int,
) -> dict[str, dict[str, float]]:
    """Clean and adversarial top-1 accuracy over (images in [0, 1], labels) batches; counts included.

    Returns ``{"clean": {...}, "fgsm": {...}, "pgd": {...}}`` with ``accuracy``, ``correct``, ``total``
    and the attack's settings. The model is put in eval mode.
    """
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    counts = {name: 0 for name in ("clean", *attacks)}
    total = 0
    for x, y in batches:
        counts["clean"] += int((model(x).argmax(1) == y).sum())
        for name in attacks:
            if name == "fgsm":
                adv = fgsm(model, x, y, eps=eps)
            elif name == "pgd":
                adv = pgd(model, x, y, eps=eps, step_size=pgd_step_size, steps=pgd_steps, generator=gen)
            else:
                raise DiffuseMixError(f"unknown attack {name!r}; fgsm or pgd")
            counts[name] += int((model(adv).argmax(1) == y).sum())
        total += len(y)
    out: dict[str, dict[str, float]] = {}
    for name, right in counts.items():
        entry: dict[str, float] = {"accuracy": right / max(total, 1), "correct": right, "total": total}
        if name != "clean":
            entry["eps"] = eps
        if name == "pgd":
            entry.update(steps=pgd_steps, step_size=pgd_step_size, random_start=True)
        out[name] = entry
    return out
