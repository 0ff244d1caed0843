"""Classifiers for the recipes: transformers' vision models built from their configs (torch only).

Named models (``MODELS``) are built from transformers configs with random
weights; ``pretrained`` loads weights the user has into them: a folder (a
run's ``OUT/model``, or any ``save_pretrained`` folder of that architecture)
is loaded into the named architecture; a hub id goes through
``AutoModelForImageClassification``. The classification head is replaced
when the classes differ; any other part left unloaded is an error.
``timm:NAME`` and ``torchvision:NAME`` are accepted where
those libraries import (they need torchvision, whose PyPI wheel is a CUDA
build that cannot be imported beside a CPU-only torch).

Every model is wrapped in :class:`Classifier`: images in [0, 1] go in (the
normalisation is inside, so adversarial attacks work in pixel units), logits
come out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch
from ..errors import DiffuseMixError

__all__ = ["MODELS", "Classifier", "build_model", "save_model", "MEANS"]

#: Normalisation constants per ``TrainConfig.normalize``.
MEANS = {"imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))}


def _resnet(depths: list[int], hidden: list[int], layer: str, embedding: int = 64) -> Callable[..., Any]:
    def build(num_classes: int, image_size: int) -> Any:
        from transformers import ResNetConfig, ResNetForImageClassification

        cfg = ResNetConfig(embedding_size=embedding, hidden_sizes=hidden, depths=depths, layer_type=layer,
                           num_labels=num_classes)  # fmt: skip
        return ResNetForImageClassification(cfg)

    return build


def _resnet_cifar(num_classes: int, image_size: int) -> Any:
    """ResNet-18 with the small-image stem (3x3 convolution, stride 1, no max-pool) of the CIFAR ResNets."""
    from transformers.models.resnet.modeling_resnet import ResNetConvLayer

    model = _resnet([2, 2, 2, 2], [64, 128, 256, 512], "basic")(num_classes, image_size)
    emb = model.resnet.embedder
    emb.embedder = ResNetConvLayer(3, 64, kernel_size=3, stride=1, activation=model.config.hidden_act)
    emb.pooler = torch.nn.Identity()
    return model


def _vit(hidden: int, layers: int, heads: int, mlp: int, patch: int) -> Callable[..., Any]:
    def build(num_classes: int, image_size: int) -> Any:
        from transformers import ViTConfig, ViTForImageClassification

        if image_size % patch:
            raise DiffuseMixError(f"a ViT with {patch} px patches needs image_size divisible by {patch}; got {image_size}")
        cfg = ViTConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=mlp, patch_size=patch, image_size=image_size,
                        num_labels=num_classes)  # fmt: skip
        return ViTForImageClassification(cfg)

    return build


def _convnext(depths: list[int], hidden: list[int]) -> Callable[..., Any]:
    def build(num_classes: int, image_size: int) -> Any:
        from transformers import ConvNextConfig, ConvNextForImageClassification

        cfg = ConvNextConfig(depths=depths, hidden_sizes=hidden, num_stages=len(depths), num_labels=num_classes)
        return ConvNextForImageClassification(cfg)

    return build


#: name -> builder(num_classes, image_size); the tiny ones are for tests and smoke runs. The names are
#: ``config.MODEL_NAMES`` (what TrainConfig.model accepts; a test keeps the two equal).
MODELS: dict[str, Callable[..., Any]] = {
    "resnet18": _resnet([2, 2, 2, 2], [64, 128, 256, 512], "basic"),
    "resnet18-cifar": _resnet_cifar,
    "resnet50": _resnet([3, 4, 6, 3], [256, 512, 1024, 2048], "bottleneck"),
    "vit-s16": _vit(384, 12, 6, 1536, 16),
    "vit-b16": _vit(768, 12, 12, 3072, 16),
    "convnext-tiny": _convnext([3, 3, 9, 3], [96, 192, 384, 768]),
    "tiny-resnet": _resnet([1, 1], [8, 16], "basic", embedding=8),
    "tiny-vit": _vit(32, 2, 2, 64, 8),
    "tiny-convnext": _convnext([1, 1], [8, 16]),
}


class Classifier(torch.nn.Module):
    """Images in [0, 1] (B, 3, H, W) -> logits (B, classes); normalisation inside.

    Attributes:
        net: the wrapped model (a transformers ``*ForImageClassification`` or a timm/torchvision module).
        kind: ``transformers``, ``timm`` or ``torchvision``.
    """

    def __init__(self, net: torch.nn.Module, *, kind: str, normalize: str) -> None:
        super().__init__()
        self.net, self.kind = net, kind
        mean, std = MEANS[normalize]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        if self.kind == "transformers":
            return self.net(pixel_values=x).logits
        return self.net(x)


def _head_key(key: str) -> bool:
    return key.startswith("classifier") or ".classifier." in key


def _load_folder(net: torch.nn.Module, folder: Path) -> None:
    """Weights saved by :func:`save_model` (or any save_pretrained folder of the same architecture) into ``net``;
    the classification head is kept fresh when its shape differs (transfer to other classes)."""
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise DiffuseMixError(f"pretrained folder {folder} has no *.safetensors weights (save_pretrained writes them)")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    own = net.state_dict()
    dropped = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if any(not _head_key(k) for k in dropped):
        raise DiffuseMixError(
            f"pretrained folder {folder} holds another architecture (shapes differ at "
            f"{', '.join(k for k in dropped if not _head_key(k))[:200]}); set model to the one it was trained as"
        )
    for k in dropped:
        state.pop(k)
    missing, unexpected = net.load_state_dict(state, strict=False)
    body_missing = [k for k in missing if not _head_key(k)]
    if body_missing or unexpected:
        raise DiffuseMixError(
            f"pretrained folder {folder} does not fit model: missing {body_missing[:5]}, unexpected {unexpected[:5]}"
        )


def _from_hub(source: str, num_classes: int) -> Any:
    """A hub id (or cached one): transformers' AutoModelForImageClassification, the head replaced if needed."""
    from transformers import AutoModelForImageClassification

    try:
        net, info = AutoModelForImageClassification.from_pretrained(
            source, num_labels=num_classes, ignore_mismatched_sizes=True, output_loading_info=True
        )
    except OSError as e:
        raise DiffuseMixError(
            f"pretrained weights {source!r} cannot be loaded ({str(e).splitlines()[0][:200]}): give a folder saved "
            "with save_pretrained (e.g. a run's OUT/model), or a hub id on a machine that reaches the hub "
            "or has it cached"
        ) from None
    bad = [k for k in info.get("missing_keys", []) if not _head_key(k)]
    bad += [str(m[0] if isinstance(m, tuple) else m) for m in info.get("mismatched_keys", [])]
    bad = [k for k in bad if not _head_key(k)]
    if bad:
        raise DiffuseMixError(f"pretrained weights {source!r} leave part of the network untrained: {bad[:5]}")
    return net


def build_model(name: str, *, num_classes: int, image_size: int, normalize: str, pretrained: str | None,
                seed: int) -> Classifier:  # fmt: skip
    """The classifier a config names, initialised from ``seed`` (the global random state is left alone).

    Raises:
        DiffuseMixError: an unknown name, a library that cannot be imported, weights that cannot be loaded.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name.startswith(("timm:", "torchvision:")):
            lib, _, arch = name.partition(":")
            try:
                if lib == "timm":
                    import timm

                    net = timm.create_model(arch, pretrained=pretrained == "timm", num_classes=num_classes)
                else:
                    import torchvision

                    net = torchvision.models.get_model(arch, num_classes=num_classes)
            except (ImportError, RuntimeError) as e:
                raise DiffuseMixError(
                    f"model {name!r} needs {lib}, which cannot be imported here ({str(e).splitlines()[0][:160]}); "
                    f"use a transformers model: {', '.join(MODELS)}"
                ) from None
            if pretrained not in (None, "timm"):
                raise DiffuseMixError(f"pretrained {pretrained!r}: a {lib} model takes pretrained=timm (timm's) only")
            return Classifier(net, kind=lib, normalize=normalize)
        if name not in MODELS:
            known = ", ".join(MODELS)
            raise DiffuseMixError(f"unknown model {name!r}; choose one of {known}, timm:NAME or torchvision:NAME")
        if pretrained is not None and not Path(pretrained).expanduser().is_dir():
            return Classifier(_from_hub(pretrained, num_classes), kind="transformers", normalize=normalize)
        net = MODELS[name](num_classes, image_size)
        if pretrained is not None:
            _load_folder(net, Path(pretrained).expanduser())
        return Classifier(net, kind="transformers", normalize=normalize)


def save_model(model: Classifier, folder: str | os.PathLike[str], *, classes: list[str]) -> Path:
    """Save the weights where ``pretrained`` can read them back (transformers: ``save_pretrained``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if model.kind == "transformers":
        net = model.net
        net.config.id2label = dict(enumerate(classes))
        net.config.label2id = {c: i for i, c in enumerate(classes)}
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            net.save_pretrained(folder)
        finally:
            if bars:
                hf_logging.enable_progress_bar()
    else:
        torch.save(model.net.state_dict(), folder / "model.pt")
    return folder
