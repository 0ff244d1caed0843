"""``TrainConfig``: every setting of a training run, and the shipped experiment configs.

One frozen dataclass owns the settings, each declared once with
:func:`diffusemix.schema.setting` (help, kind, choices, range, flag, label):
``__post_init__`` checks every value (a :class:`~diffusemix.errors.SettingError`
naming the field and the bad value), the ``train`` command's flags are made
from the fields, and ``--set KEY=VALUE`` reaches every field by its name.

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
import difflib
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import schema
from ..errors import DiffuseMixError
from ..limits import MAX_SEED
from ..schema import NO_VALUE, check_fields, fail, is_int, is_number, register, setting

__all__ = [
    "TrainConfig",
    "LoadedConfig",
    "METHODS",
    "BUDGETS",
    "MODEL_NAMES",
    "ATTACKS",
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
#: The named models (``diffusemix.train.models.MODELS`` builds each; a test keeps the two equal). Named here so
#: that the settings import no torch.
MODEL_NAMES = (
    "resnet18", "resnet18-cifar", "resnet50", "vit-s16", "vit-b16", "convnext-tiny",
    "tiny-resnet", "tiny-vit", "tiny-convnext",
)  # fmt: skip
#: Adversarial evaluations of the final model.
ATTACKS = ("fgsm", "pgd")
#: What a shipped config's ``source`` may start with.
SOURCE_KINDS = ("paper", "author #14", "author #17", "author code", "protocol", "assumed", "user")

_CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@register
@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (the data paths included; the output folder is not).

    Each field is one setting, declared once with :func:`~diffusemix.schema.setting`: the
    ``train`` command's flags (the fields with ``cli`` on), ``--list-settings``, the YAML keys,
    ``--set KEY=VALUE`` and the run's ``config.json`` all come from these fields.
    """

    # -- what this is ----------------------------------------------------------------------------------
    name: str = setting(
        "custom", kind="str", cli=False, label="Config",
        help="the config's name (a shipped config's file name; a YAML file's stem)",
    )
    experiment: str = setting(
        "", kind="text", cli=False, label="Experiment",
        help="which experiment of the paper this config reproduces, in words",
    )

    # -- data ------------------------------------------------------------------------------------------
    train: str | None = setting(
        None, kind="str", optional=True, metavar="PATH", label="Training images", default_text="none: a run needs it",
        help="training images: class folders (ImageFolder layout) or hf:NAME[:SPLIT] (🤗 datasets)",
    )
    val: str | None = setting(
        None, kind="str", optional=True, metavar="PATH", label="Evaluation images", default_text="none: a run needs it",
        help="evaluation images: class folders or hf:NAME[:SPLIT], the same classes as the training images",
    )
    hf_config: str | None = setting(
        None, kind="str", optional=True, cli=False, label="🤗 configuration", default_text="the dataset's only one",
        help="🤗 datasets: the configuration name (load_dataset's second argument)",
    )
    image_column: str = setting("image", kind="str", cli=False, label="🤗 image column",
                                help="🤗 datasets: the image column")
    label_column: str = setting("label", kind="str", cli=False, label="🤗 label column",
                                help="🤗 datasets: the label column (a ClassLabel)")
    k_per_class: int | None = setting(
        None, kind="int", low=1, optional=True, metavar="K", label="Images per class (k)",
        default_text="every training image",
        help="data scarcity: train on k images per class, drawn with subset_seed",
    )
    subset_seed: int = setting(0, kind="int", low=0, high=MAX_SEED, cli=False, label="Subset seed",
                               help="the seed of the k-per-class draw (recorded in the run)")

    # -- method ----------------------------------------------------------------------------------------
    method: str = setting("standard", choices=METHODS, label="Method", help="the augmentation trained with")
    cache: str | None = setting(
        None, kind="str", optional=True, metavar="DIR", label="Cache of Î",
        help="method diffusemix: a cache of Î (made by export --cache), re-mixed every epoch",
    )
    export: str | None = setting(
        None, kind="str", optional=True, metavar="DIR", label="Export",
        help="method diffusemix-export: a fixed export, trained on together with the real images",
    )
    p: float = setting(1.0, kind="float", low=0, high=1, cli=False, label="p (A rather than I)",
                       help="method diffusemix: the probability that a cached slot is A rather than its I")
    include_originals: bool = setting(
        True, kind="bool", cli=False, label="Include originals",
        help="method diffusemix: every real image once per epoch too (the paper's union)",
    )
    fractals: str | None = setting(
        None, kind="str", optional=True, cli=False, label="Fractals", default_text="the shipped set",
        help="method diffusemix: the fractal folder",
    )
    mixup_lambda: tuple[float, float] = setting(
        (0.0, 1.0), cli=False, label="MixUp λ range",
        help="mixup: λ drawn uniformly in this range [low, high] (kornia), 0 <= low <= high <= 1",
    )
    cutmix_beta: float = setting(1.0, kind="float", cli=False, label="CutMix β",
                                 help="cutmix: the Beta(β, β) of the cut's area (kornia), β > 0")
    mix_prob: float = setting(1.0, kind="float", low=0, high=1, cli=False, label="Mix probability",
                              help="mixup/cutmix: the probability that a batch is mixed")

    # -- model -----------------------------------------------------------------------------------------
    model: str = setting(
        "resnet50", kind="str", metavar="NAME", label="Model",
        help=f"{', '.join(MODEL_NAMES)} (transformers, from configs), or timm:NAME or torchvision:NAME where they"
        " import",
    )
    pretrained: str | None = setting(
        None, kind="str", optional=True, metavar="ID_OR_DIR", label="Pretrained weights",
        default_text="none (random weights)",
        help="transfer: start from these weights (a hub id, a folder, or a run's OUT/model)",
    )

    # -- input and standard augmentation ---------------------------------------------------------------
    load_size: int = setting(256, kind="int", low=1, cli=False, label="Load size (px)",
                             help="every image is first resized to load_size x load_size (plain resize)")
    image_size: int = setting(224, kind="int", low=1, cli=False, label="Image size (px)",
                              help="the side the network sees (a crop of the loaded image), at most load_size")
    crop: str = setting("random-resized-crop", choices=("random-resized-crop", "random-crop", "none"), cli=False,
                        label="Training crop", help="the training crop")
    crop_padding: int = setting(0, kind="int", low=0, cli=False, label="Crop padding (px)",
                                help="random-crop: zero padding on each side before cropping")
    crop_scale: tuple[float, float] = setting(
        (0.08, 1.0), cli=False, label="Crop area range",
        help="random-resized-crop: the area range [low, high], 0 < low <= high <= 1",
    )
    hflip: bool = setting(True, kind="bool", cli=False, label="Horizontal flip",
                          help="random horizontal flip (p = 0.5)")
    normalize: str = setting("imagenet", choices=("imagenet", "none"), cli=False, label="Normalisation",
                             help="input normalisation")

    # -- optimisation ----------------------------------------------------------------------------------
    epochs: int = setting(300, kind="int", low=1, metavar="N", label="Epochs",
                          help="epochs (the budget says what an epoch is)")
    batch_size: int = setting(64, kind="int", low=1, cli=False, label="Batch size",
                              help="images per optimizer step on one process")
    optimizer: str = setting("sgd", choices=("sgd", "adamw"), cli=False, label="Optimizer", help="the optimizer")
    lr: float = setting(0.1, kind="float", cli=False, label="Learning rate", help="the peak learning rate, > 0")
    momentum: float = setting(0.9, kind="float", low=0, high=1, cli=False, label="Momentum", help="sgd: momentum")
    nesterov: bool = setting(False, kind="bool", cli=False, label="Nesterov", help="sgd: Nesterov momentum")
    weight_decay: float = setting(5e-4, kind="float", low=0, cli=False, label="Weight decay", help="weight decay")
    schedule: str = setting("cosine", choices=("cosine", "step", "constant"), cli=False, label="Schedule",
                            help="the learning-rate schedule, stepped every optimizer step")
    min_lr: float = setting(0.0, kind="float", low=0, cli=False, label="Last learning rate",
                            help="cosine: the last learning rate, at most lr")
    warmup_epochs: int = setting(0, kind="int", low=0, cli=False, label="Warm-up epochs",
                                 help="linear warm-up, in epochs (fewer than epochs)")
    milestones: tuple[int, ...] = setting(
        (), cli=False, label="Milestones",
        help="step: the epochs (increasing, >= 1) at which the learning rate is multiplied by gamma",
    )
    gamma: float = setting(0.1, kind="float", cli=False, label="Step factor γ", help="step: the factor, in (0, 1]")
    label_smoothing: float = setting(0.0, kind="float", low=0, high=1, cli=False, label="Label smoothing",
                                     help="label smoothing of the cross-entropy")
    budget: str = setting(
        "epochs", choices=BUDGETS, label="Budget",
        help="what is held equal across methods: epochs (each method's own passes, as the paper trains), steps"
        " or images (those of epochs passes over the real images, whatever the dataset size)",
    )
    seed: int = setting(0, kind="int", low=0, high=MAX_SEED, metavar="N", label="Seed",
                        help="the run's seed: network initialisation, data order, augmentation draws")

    # -- running ---------------------------------------------------------------------------------------
    mixed_precision: str = setting("no", choices=("no", "fp16", "bf16"), label="Mixed precision",
                                   help="accelerate's mixed precision")
    device: str = setting("auto", choices=("auto", "cpu"), label="Device",
                          help="auto: the accelerator accelerate finds; cpu: force the CPU")
    workers: int = setting(4, kind="int", low=0, metavar="N", label="Workers", help="DataLoader workers per process")
    eval_batch_size: int | None = setting(None, kind="int", low=1, optional=True, cli=False,
                                          label="Evaluation batch size", default_text="batch_size",
                                          help="the evaluation batch")
    checkpoint_every: int = setting(1, kind="int", low=0, cli=False, label="Checkpoint every (epochs)",
                                    help="save a checkpoint every N epochs (0: only at the end)")

    # -- robustness ------------------------------------------------------------------------------------
    attacks: tuple[str, ...] = setting(
        (), cli=False, label="Attacks",
        help=f"adversarial evaluation of the final model: a list of distinct names among {', '.join(ATTACKS)}",
    )
    attack_eps: float = setting(8 / 255, kind="float", low=0, cli=False, label="Attack radius ε",
                                help="the L-inf radius in [0, 1] pixel units")
    pgd_steps: int = setting(10, kind="int", low=1, cli=False, label="PGD steps", help="pgd: iterations")
    pgd_step_size: float = setting(2 / 255, kind="float", low=0, cli=False, label="PGD step",
                                   help="pgd: the step in [0, 1] pixel units")
    robust_samples: int | None = setting(None, kind="int", low=1, optional=True, cli=False,
                                         label="Attacked images", default_text="all",
                                         help="attack only the first N evaluation images")

    def __post_init__(self) -> None:
        # 1. the lists (YAML gives lists, Python callers may too) as tuples, their items numbers where meant
        object.__setattr__(self, "mixup_lambda", _pair(self, "mixup_lambda"))
        object.__setattr__(self, "crop_scale", _pair(self, "crop_scale"))
        object.__setattr__(self, "milestones", _integers(self, "milestones"))
        object.__setattr__(self, "attacks", _names(self, "attacks", among=ATTACKS))
        # 2. each field against its declaration (type, choices, range)
        check_fields(self)
        # 3. what a declaration cannot say: open bounds, pairs, and checks across fields
        for name in ("lr", "cutmix_beta"):
            if not getattr(self, name) > 0:
                raise fail(self, name, "must be a number > 0")
        if not 0 < self.gamma <= 1:
            raise fail(self, "gamma", "must be a number in (0, 1]")
        lo, hi = self.mixup_lambda
        if not 0 <= lo <= hi <= 1:
            raise fail(self, "mixup_lambda", "must be [low, high] with 0 <= low <= high <= 1")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise fail(self, "crop_scale", "must be [low, high] with 0 < low <= high <= 1")
        if list(self.milestones) != sorted(set(self.milestones)) or any(m < 1 for m in self.milestones):
            raise fail(self, "milestones", "must be increasing epochs >= 1")
        arch = self.model.partition(":")[2] if self.model.startswith(("timm:", "torchvision:")) else None
        if self.model not in MODEL_NAMES and not arch:
            raise fail(self, "model", f"must be one of {', '.join(MODEL_NAMES)}, or timm:NAME or torchvision:NAME")
        if any(a not in ATTACKS for a in self.attacks) or len(set(self.attacks)) != len(self.attacks):
            raise fail(self, "attacks", f"must be distinct names among {', '.join(ATTACKS)}")
        if self.min_lr > self.lr:
            raise fail(self, "min_lr", f"must not exceed lr ({self.lr:g})")
        if self.image_size > self.load_size:
            raise fail(self, "image_size", f"must not exceed load_size ({self.load_size})",
                       hint="The network sees a crop of the loaded image")
        if self.warmup_epochs and self.warmup_epochs >= self.epochs:
            raise fail(self, "warmup_epochs", f"must be fewer than epochs ({self.epochs})")
        # inputs that belong to one method only: never silently unused
        if self.cache is not None and self.method != "diffusemix":
            raise fail(self, "cache", f"is read by method diffusemix only; the method is {self.method!r}",
                       value=NO_VALUE, hint="Set the method to diffusemix, or drop the cache")
        if self.export is not None and self.method != "diffusemix-export":
            raise fail(self, "export", f"is read by method diffusemix-export only; the method is {self.method!r}",
                       value=NO_VALUE, hint="Set the method to diffusemix-export, or drop the export")

    # -- derived ---------------------------------------------------------------------------------------

    def missing_inputs(self) -> list[str]:
        """The inputs a run needs and this config lacks, as the flags that give them."""
        flag = functools.partial(schema.flag_for, type(self))
        missing = [flag(name) for name in ("train", "val") if getattr(self, name) is None]
        if self.method == "diffusemix" and self.cache is None:
            missing.append(f"{flag('cache')} (method diffusemix re-mixes a cache of Î)")
        if self.method == "diffusemix-export" and self.export is None:
            missing.append(f"{flag('export')} (method diffusemix-export trains on a fixed export)")
        return missing

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values (tuples as lists)."""
        return schema.to_dict(self)


def _pair(config: TrainConfig, name: str) -> tuple[float, float]:
    """Field ``name`` as a (low, high) tuple of floats (a list of two numbers)."""
    value = getattr(config, name)
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(is_number(v) for v in value):
        raise fail(config, name, "must be a list of two numbers [low, high]")
    return float(value[0]), float(value[1])


def _integers(config: TrainConfig, name: str) -> tuple[int, ...]:
    """Field ``name`` as a tuple of ints (a list of integers)."""
    value = getattr(config, name)
    if not isinstance(value, (list, tuple)) or not all(is_int(v) for v in value):
        raise fail(config, name, "must be a list of integers")
    return tuple(int(v) for v in value)


def _names(config: TrainConfig, name: str, *, among: tuple[str, ...]) -> tuple[str, ...]:
    """Field ``name`` as a tuple of strings (``among``: the names it takes, for the message)."""
    value = getattr(config, name)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise fail(config, name, f"must be a list of names such as [{', '.join(among)}]")
    return tuple(value)


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _coerce(name: Any, value: Any) -> Any:
    """A value read from YAML or ``--set`` for setting ``name``: known names only; lists become tuples and whole
    numbers floats where the setting is a number (the rest is :class:`TrainConfig`'s to check)."""
    if not isinstance(name, str) or name not in _FIELDS:
        close = difflib.get_close_matches(str(name), list(_FIELDS), n=3)
        raise DiffuseMixError(
            f"unknown setting {name!r}" + (f" (did you mean {', '.join(close)}?)" if close else "")
            + "; `python -m diffusemix train --list-settings` lists them"
        )
    if isinstance(value, list):
        return tuple(value)
    if _FIELDS[name].metadata["kind"] == "float" and is_int(value):
        return float(value)
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
    except UnicodeDecodeError:
        raise DiffuseMixError(f"config {path} is not a text file (a config is YAML, UTF-8)") from None
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
    """A shipped config by name, or a YAML file, checked.

    Raises:
        DiffuseMixError: no such config, a file that is not a YAML mapping, an unknown key; a
            :class:`~diffusemix.errors.SettingError` naming the setting for a bad value.
    """
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
