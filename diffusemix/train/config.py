"""``TrainConfig``: every setting of a training run, and the shipped experiment configs.

One frozen dataclass owns the settings: field metadata carries the help text
and the choices, ``__post_init__`` checks every value (``ValueError`` naming
the field and the bad value), and the command line's ``--set KEY=VALUE`` maps
one-to-one onto the fields.

A config file is YAML whose keys are the fields. A value may be written plain
(``epochs: 300``) or with where it came from (``epochs: {value: 300, source:
"author #14: ..."}``); ``extends: NAME`` starts from another config. The
shipped configs (``diffusemix/train/configs/<name>.yaml``, in the wheel too)
give a source for every value, one of:

* ``paper``: the DiffuseMix paper (CVPR 2024, arXiv 2405.14881);
* ``author #14`` / ``author #17``: the first author's answers in the issues of
  the authors' repository (#14: Tiny-ImageNet with SGD, lr 0.01, a cosine
  schedule down to 1e-9, 300 epochs; #17: the Stanford-Cars training code is
  the one to use for every dataset, changing the dataset path);
* ``author code``: that Stanford-Cars training script (``train.py`` of the
  author's ``Stanford-Cars`` repository, which #7 and #17 point to);
* ``protocol``: a library's or a cited method's standard value;
* ``assumed``: no verified source says it; the value is this project's choice
  and is marked so;
* ``user``: an input the user gives when running (data paths, a cache).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from ..errors import DiffuseMixError

__all__ = [
    "TrainConfig",
    "LoadedConfig",
    "METHODS",
    "BUDGETS",
    "SOURCE_KINDS",
    "shipped_configs",
    "load_config",
    "apply_overrides",
    "parse_override",
]

#: Training methods, all run by the same loop (``none``: no augmentation at all).
METHODS = ("none", "standard", "mixup", "cutmix", "diffusemix", "diffusemix-export")
#: Budget modes: ``epochs`` (passes over each method's own training set, as the paper trains),
#: ``steps`` (the optimizer steps of ``epochs`` passes over the real images, whatever the dataset size),
#: ``images`` (the images seen in ``epochs`` passes over the real images, whatever the batch).
BUDGETS = ("epochs", "steps", "images")
#: What a shipped config's ``source`` may start with.
SOURCE_KINDS = ("paper", "author #14", "author #17", "author code", "protocol", "assumed", "user")

_CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def _f(default: Any, help: str, choices: tuple[Any, ...] | None = None) -> Any:
    meta: dict[str, Any] = {"help": help}
    if choices is not None:
        meta["choices"] = choices
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple default")
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (the data paths included; the output folder is not)."""

    # -- what this is ----------------------------------------------------------------------------------
    name: str = _f("custom", "the config's name (a shipped config's file name)")
    experiment: str = _f("", "which experiment of the paper this config reproduces, in words")

    # -- data ------------------------------------------------------------------------------------------
    train: str | None = _f(
        None, "training images: class folders (ImageFolder layout) or hf:NAME[:SPLIT] (🤗 datasets)"
    )
    val: str | None = _f(None, "evaluation images: class folders or hf:NAME[:SPLIT], the same classes")
    hf_config: str | None = _f(None, "🤗 datasets configuration name (load_dataset's second argument)")
    image_column: str = _f("image", "🤗 datasets: the image column")
    label_column: str = _f("label", "🤗 datasets: the label column (a ClassLabel)")
    k_per_class: int | None = _f(None, "data scarcity: train on k images per class, drawn with subset_seed")
    subset_seed: int = _f(0, "the seed of the k-per-class draw (recorded in the run)")

    # -- method ----------------------------------------------------------------------------------------
    method: str = _f("standard", "the augmentation trained with", METHODS)
    cache: str | None = _f(None, "diffusemix: a cache of Î (export --cache) re-mixed every epoch")
    export: str | None = _f(None, "diffusemix-export: a fixed export, trained on with the real images")
    p: float = _f(1.0, "diffusemix: probability that a cached slot is A rather than its I")
    include_originals: bool = _f(True, "diffusemix: every real image once per epoch too (the paper's union)")
    fractals: str | None = _f(None, "diffusemix: fractal folder (default: the shipped set)")
    mixup_lambda: tuple[float, float] = _f((0.0, 1.0), "mixup: λ drawn uniformly in this range (kornia)")
    cutmix_beta: float = _f(1.0, "cutmix: the Beta(β, β) of the cut's area (kornia)")
    mix_prob: float = _f(1.0, "mixup/cutmix: probability that a batch is mixed")

    # -- model -----------------------------------------------------------------------------------------
    model: str = _f(
        "resnet50",
        "resnet18, resnet18-cifar, resnet50, vit-s16, vit-b16, convnext-tiny, tiny-resnet, tiny-vit, "
        "tiny-convnext (transformers, from configs), timm:NAME or torchvision:NAME where they import",
    )
    pretrained: str | None = _f(
        None, "transfer: start from these weights (a hub id, a folder, or a run's OUT/model); never required"
    )

    # -- input and standard augmentation ---------------------------------------------------------------
    load_size: int = _f(256, "every image is first resized to load_size x load_size (plain resize)")
    image_size: int = _f(224, "the side the network sees (crop of the loaded image)")
    crop: str = _f(
        "random-resized-crop", "training crop", ("random-resized-crop", "random-crop", "none")
    )
    crop_padding: int = _f(0, "random-crop: zero padding on each side before cropping")
    crop_scale: tuple[float, float] = _f((0.08, 1.0), "random-resized-crop: area range")
    hflip: bool = _f(True, "random horizontal flip (p = 0.5)")
    normalize: str = _f("imagenet", "input normalisation", ("imagenet", "none"))

    # -- optimisation ----------------------------------------------------------------------------------
    epochs: int = _f(300, "epochs (see budget for what an epoch is)")
    batch_size: int = _f(64, "images per optimizer step on one process")
    optimizer: str = _f("sgd", "optimizer", ("sgd", "adamw"))
    lr: float = _f(0.1, "peak learning rate")
    momentum: float = _f(0.9, "sgd: momentum")
    nesterov: bool = _f(False, "sgd: Nesterov momentum")
    weight_decay: float = _f(5e-4, "weight decay")
    schedule: str = _f("cosine", "learning-rate schedule, stepped every optimizer step", ("cosine", "step", "constant"))
    min_lr: float = _f(0.0, "cosine: the last learning rate")
    warmup_epochs: int = _f(0, "linear warm-up, in epochs")
    milestones: tuple[int, ...] = _f((), "step: epochs at which the learning rate is multiplied by gamma")
    gamma: float = _f(0.1, "step: the factor")
    label_smoothing: float = _f(0.0, "label smoothing of the cross-entropy")
    budget: str = _f("epochs", "what is held equal across methods", BUDGETS)
    seed: int = _f(0, "the run's seed: network initialisation, data order, augmentation draws")

    # -- running ---------------------------------------------------------------------------------------
    mixed_precision: str = _f("no", "accelerate's mixed precision", ("no", "fp16", "bf16"))
    device: str = _f("auto", "auto: the accelerator accelerate finds; cpu: force the CPU", ("auto", "cpu"))
    workers: int = _f(4, "DataLoader workers per process")
    eval_batch_size: int | None = _f(None, "evaluation batch (default: batch_size)")
    checkpoint_every: int = _f(1, "save a checkpoint every N epochs (0: only at the end)")

    # -- robustness ------------------------------------------------------------------------------------
    attacks: tuple[str, ...] = _f((), "adversarial evaluation of the final model: fgsm, pgd")
    attack_eps: float = _f(8 / 255, "L-inf radius in [0, 1] pixel units")
    pgd_steps: int = _f(10, "pgd: iterations")
    pgd_step_size: float = _f(2 / 255, "pgd: step in [0, 1] pixel units")
    robust_samples: int | None = _f(None, "attack only the first N evaluation images (default: all)")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_type(f, getattr(self, f.name))
            choices = f.metadata.get("choices")
            if choices is not None and getattr(self, f.name) not in choices:
                raise DiffuseMixError(
                    f"TrainConfig.{f.name} must be one of {', '.join(choices)}; got {getattr(self, f.name)!r}"
                )
        # ranges
        for name in ("load_size", "image_size", "epochs", "batch_size", "pgd_steps"):
            if getattr(self, name) < 1:
                raise DiffuseMixError(f"TrainConfig.{name} must be >= 1; got {getattr(self, name)!r}")
        for name in ("crop_padding", "warmup_epochs", "workers", "checkpoint_every", "subset_seed", "seed"):
            if getattr(self, name) < 0:
                raise DiffuseMixError(f"TrainConfig.{name} must be >= 0; got {getattr(self, name)!r}")
        for name in ("k_per_class", "eval_batch_size", "robust_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise DiffuseMixError(f"TrainConfig.{name} must be None or >= 1; got {getattr(self, name)!r}")
        for name in ("p", "mix_prob", "label_smoothing", "momentum"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise DiffuseMixError(f"TrainConfig.{name} must be in [0, 1]; got {getattr(self, name)!r}")
        for name in ("lr", "cutmix_beta"):
            if not getattr(self, name) > 0:
                raise DiffuseMixError(f"TrainConfig.{name} must be > 0; got {getattr(self, name)!r}")
        for name in ("min_lr", "weight_decay", "attack_eps", "pgd_step_size"):
            if getattr(self, name) < 0:
                raise DiffuseMixError(f"TrainConfig.{name} must be >= 0; got {getattr(self, name)!r}")
        if not 0 < self.gamma <= 1:
            raise DiffuseMixError(f"TrainConfig.gamma must be in (0, 1]; got {self.gamma!r}")
        if self.min_lr > self.lr:
            raise DiffuseMixError(f"TrainConfig.min_lr ({self.min_lr}) must not exceed lr ({self.lr})")
        if self.image_size > self.load_size:
            raise DiffuseMixError(
                f"TrainConfig.image_size ({self.image_size}) must not exceed load_size ({self.load_size}): "
                "the network sees a crop of the loaded image"
            )
        lo, hi = self.mixup_lambda
        if not 0 <= lo <= hi <= 1:
            raise DiffuseMixError(f"TrainConfig.mixup_lambda must be (low, high) with 0 <= low <= high <= 1; got {lo, hi}")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise DiffuseMixError(f"TrainConfig.crop_scale must be (low, high) with 0 < low <= high <= 1; got {lo, hi}")
        if self.warmup_epochs >= self.epochs and self.warmup_epochs:
            raise DiffuseMixError(
                f"TrainConfig.warmup_epochs ({self.warmup_epochs}) must be fewer than epochs ({self.epochs})"
            )
        if list(self.milestones) != sorted(set(self.milestones)) or any(m < 1 for m in self.milestones):
            raise DiffuseMixError(f"TrainConfig.milestones must be increasing epochs >= 1; got {self.milestones!r}")
        bad = [a for a in self.attacks if a not in ("fgsm", "pgd")]
        if bad or len(set(self.attacks)) != len(self.attacks):
            raise DiffuseMixError(f"TrainConfig.attacks must be distinct names among fgsm, pgd; got {self.attacks!r}")
        # inputs that belong to one method only: never silently unused
        if self.cache is not None and self.method != "diffusemix":
            raise DiffuseMixError(
                f"TrainConfig.cache is read by method diffusemix only; the method is {self.method!r} "
                "(set method=diffusemix, or drop cache)"
            )
        if self.export is not None and self.method != "diffusemix-export":
            raise DiffuseMixError(
                f"TrainConfig.export is read by method diffusemix-export only; the method is {self.method!r} "
                "(set method=diffusemix-export, or drop export)"
            )

    # -- derived ---------------------------------------------------------------------------------------

    def missing_inputs(self) -> list[str]:
        """The inputs a run needs and this config lacks, as the flags that give them."""
        missing = [flag for flag, v in (("--train", self.train), ("--val", self.val)) if v is None]
        if self.method == "diffusemix" and self.cache is None:
            missing.append("--cache (method diffusemix re-mixes a cache of Î)")
        if self.method == "diffusemix-export" and self.export is None:
            missing.append("--export (method diffusemix-export trains on a fixed export)")
        return missing

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def _check_type(f: dataclasses.Field, value: Any) -> None:
    """A value of the field's annotated type (ints for floats are accepted, bools never for numbers)."""
    t = str(f.type)
    optional = "None" in t
    if value is None:
        if not optional:
            raise DiffuseMixError(f"TrainConfig.{f.name} must be given; got None")
        return

    def bad(what: str) -> DiffuseMixError:
        return DiffuseMixError(f"TrainConfig.{f.name} must be {what}; got {value!r}")

    if t.startswith("tuple"):
        if not isinstance(value, tuple):
            raise bad("a list")
        inner = t[len("tuple[") : -1].split(",")[0].strip()
        for v in value:
            if inner == "float" and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise bad("a list of numbers")
            if inner == "int" and (isinstance(v, bool) or not isinstance(v, int)):
                raise bad("a list of integers")
            if inner == "str" and not isinstance(v, str):
                raise bad("a list of names")
        if "..." not in t and len(value) != t.count(",") + 1:
            raise bad(f"a list of {t.count(',') + 1} numbers")
        return
    base = t.replace(" | None", "")
    if base == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
    elif base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
    elif base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad("a finite number")
    elif base == "str":
        if not isinstance(value, str) or (not value and f.name not in ("experiment",)):
            raise bad("a non-empty string")


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _coerce(name: str, value: Any) -> Any:
    """YAML values to the field's Python form: lists to tuples, ints to floats where a float is meant."""
    if name not in _FIELDS:
        close = [n for n in _FIELDS if n.startswith(name[:3])]
        raise DiffuseMixError(
            f"unknown setting {name!r}" + (f" (did you mean {', '.join(close)}?)" if close else "")
            + "; `python -m diffusemix train --list-settings` lists them"
        )
    t = str(_FIELDS[name].type)
    if isinstance(value, list):
        value = tuple(float(v) if "float" in t and isinstance(v, int) and not isinstance(v, bool) else v for v in value)
    elif t.replace(" | None", "") == "float" and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return value


@dataclass(frozen=True)
class LoadedConfig:
    """A config as read: the settings, where each value came from, and the file."""

    config: TrainConfig
    sources: Mapping[str, str]
    path: str | None


def shipped_configs() -> dict[str, Path]:
    """Name -> file of every config shipped with the package."""
    return {p.stem: p for p in sorted(_CONFIG_DIR.glob("*.yaml"))}


def _read_yaml(path: Path, chain: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, str]]:
    import yaml

    if path.stem in chain:
        raise DiffuseMixError(f"config {path} extends itself through {' -> '.join(chain)}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise DiffuseMixError(f"config {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise DiffuseMixError(f"config {path} must be a mapping of settings (KEY: VALUE); got {type(data).__name__}")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    base = data.pop("extends", None)
    if base is not None:
        values, sources = _read_yaml(_resolve(str(base)), chain + (path.stem,))
        values.pop("name", None)
        values.pop("experiment", None)
    for key, raw in data.items():
        if isinstance(raw, dict) and "value" in raw:
            extra = set(raw) - {"value", "source"}
            if extra:
                raise DiffuseMixError(f"config {path}: {key} has keys {sorted(extra)}; only value and source")
            values[key] = _coerce(key, raw["value"])
            if raw.get("source") is not None:
                sources[key] = str(raw["source"])
            else:
                sources.pop(key, None)
        else:
            values[key] = _coerce(key, raw)
            sources.pop(key, None)
    return values, sources


def _resolve(spec: str) -> Path:
    shipped = shipped_configs()
    if spec in shipped:
        return shipped[spec]
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    raise DiffuseMixError(
        f"no config {spec!r}: give a YAML file or one of the shipped configs: {', '.join(shipped) or '(none)'}"
    )


def load_config(spec: str) -> LoadedConfig:
    """A shipped config by name, or a YAML file; checked (``ValueError`` naming the setting)."""
    path = _resolve(spec)
    values, sources = _read_yaml(path)
    values.setdefault("name", path.stem)
    return LoadedConfig(TrainConfig(**values), dict(sources), str(path))


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` (VALUE read as YAML: ``3``, ``0.1``, ``[0.2, 1.0]``, ``null``, ``true``)."""
    import yaml

    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise DiffuseMixError(f"--set takes KEY=VALUE (e.g. epochs=10); got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, _coerce(key, value)


def apply_overrides(loaded: LoadedConfig, overrides: Mapping[str, Any], *, source: str) -> LoadedConfig:
    """The config with these settings replaced (checked again); their source becomes ``source``."""
    if not overrides:
        return loaded
    values = {k: _coerce(k, v) for k, v in overrides.items()}
    config = dataclasses.replace(loaded.config, **values)
    sources = dict(loaded.sources)
    for k in values:
        sources[k] = source
    return LoadedConfig(config, sources, loaded.path)
