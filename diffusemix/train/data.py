"""The training and evaluation sets of a run, per method, as uint8 tensors at ``load_size``.

Sources: class folders read with torchvision's own ImageFolder logic
(:mod:`diffusemix.imagefolder`, no torchvision needed), or 🤗 datasets
(``hf:NAME[:SPLIT]`` through ``load_dataset``). Per method:

* ``none``, ``standard``, ``mixup``, ``cutmix``: the real training images;
* ``diffusemix``: :class:`diffusemix.data.DiffuseMixDataset` over a cache of Î
  (``p``, ``include_originals``), a fresh A for every (pass, item): pass ``e``
  of the item stream uses the dataset's epoch ``e`` draws;
* ``diffusemix-export``: the real images and a fixed export's A images (the
  authors' ImageFolder over real + augmented).

Data scarcity (``k_per_class``) draws k real images per class with
``subset_seed``; the DiffuseMix sets are then restricted to the A made from
those images (by each row's ``source``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import DiffuseMixError
from ..imagefolder import IMG_EXTENSIONS, ImageFolderDataset, make_dataset
from .config import TrainConfig

__all__ = ["Split", "TrainSet", "open_split", "draw_subset", "build_train_set", "LoadedItems", "checked_loader"]


@dataclass
class Split:
    """Images and labels of one source: ``get(i)`` -> (PIL RGB image, class index).

    Attributes:
        classes: class names in label order.
        targets: the label of every item.
        keys: each item's key (path relative to the folder, or ``hf:<row>``), the DiffuseMix ``source``.
        where: the source, in words.
    """

    classes: list[str]
    targets: list[int]
    keys: list[str]
    where: str
    _get: Any

    def __len__(self) -> int:
        return len(self.targets)

    def get(self, i: int) -> tuple[Any, int]:
        return self._get(i)


def checked_loader(path: str) -> Any:
    """torchvision's ``pil_loader`` (the image as RGB) after the checks every reader makes: a regular
    file of bounded size (never a FIFO or /dev/zero), not a header bomb (named by its size).

    Raises:
        DiffuseMixError: naming the file and what is wrong with it.
    """
    from ..images import open_image

    with open_image(path, fail=lambda reason: DiffuseMixError(f"training image {path} {reason}")) as img:
        try:
            return img.convert("RGB")
        except (OSError, ValueError, SyntaxError) as e:
            raise DiffuseMixError(f"training image {path} is truncated or corrupt ({e})") from None


def _folder_split(root: str, classes: Sequence[str] | None) -> Split:
    ds = ImageFolderDataset(root, classes=classes, loader=checked_loader)
    base = Path(root)
    keys = [Path(p).relative_to(base).as_posix() for p, _ in ds.samples]
    return Split(list(ds.classes), list(ds.targets), keys, f"class folders {root}", ds.__getitem__)


def _hf_split(spec: str, config: TrainConfig, classes: Sequence[str] | None, default_split: str) -> Split:
    name, _, split = spec[len("hf:") :].partition(":")
    try:
        import datasets
    except ImportError:
        raise DiffuseMixError(f"{spec}: 🤗 datasets is not installed (pip install datasets)") from None
    try:
        ds = datasets.load_dataset(name, config.hf_config, split=split or default_split)
    except Exception as e:  # noqa: BLE001  (datasets raises many types for a missing or unreachable dataset)
        raise DiffuseMixError(f"{spec}: load_dataset failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    for col in (config.image_column, config.label_column):
        if col not in ds.column_names:
            raise DiffuseMixError(
                f"{spec} has no column {col!r} (columns: {', '.join(ds.column_names)}); set image_column / label_column"
            )
    feature = ds.features[config.label_column]
    names = list(getattr(feature, "names", None) or [])
    if not names:
        raise DiffuseMixError(f"{spec}: column {config.label_column!r} is not a ClassLabel; class names are unknown")
    if classes is not None and list(classes) != names:
        raise DiffuseMixError(f"{spec}: its classes differ from the training set's")
    targets = [int(t) for t in ds[config.label_column]]
    get = _Rows(ds, config.image_column, config.label_column)
    return Split(names, targets, [f"hf:{i}" for i in range(len(ds))], f"🤗 {spec}", get)


class _Rows:
    """A 🤗 dataset -> get(i) = (PIL RGB image, label) (picklable)."""

    def __init__(self, ds: Any, image_column: str, label_column: str) -> None:
        self.ds, self.image_column, self.label_column = ds, image_column, label_column

    def __call__(self, i: int) -> tuple[Any, int]:
        row = self.ds[int(i)]
        return row[self.image_column].convert("RGB"), int(row[self.label_column])


def open_split(
    spec: str, config: TrainConfig, *, classes: Sequence[str] | None = None, default_split: str = "train"
) -> Split:
    """Class folders or ``hf:NAME[:SPLIT]``; ``classes`` refuses a source whose classes differ."""
    if spec.startswith("hf:"):
        return _hf_split(spec, config, classes, default_split)
    return _folder_split(spec, classes)


def draw_subset(targets: Sequence[int], k: int, *, seed: int, classes: Sequence[str]) -> list[int]:
    """k item indices per class, drawn without replacement from ``seed``; sorted.

    Raises:
        DiffuseMixError: a class with fewer than k items (naming it).
    """
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for i, t in enumerate(targets):
        by_class.setdefault(int(t), []).append(i)
    chosen: list[int] = []
    for c in range(len(classes)):
        items = by_class.get(c, [])
        if len(items) < k:
            raise DiffuseMixError(f"k_per_class={k}, but class {classes[c]!r} has only {len(items)} training image(s)")
        chosen.extend(int(i) for i in rng.choice(np.asarray(items), size=k, replace=False))
    return sorted(chosen)


def _to_uint8(image: Any, size: int) -> torch.Tensor:
    """PIL image or uint8 (H, W, 3) array -> uint8 tensor (3, size, size), plain bilinear resize."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()


class LoadedItems:
    """A map-style dataset over ``(pass, index)`` keys -> (uint8 (3, S, S), label).

    ``items[j]`` is ``(kind, a, b)``: ``("split", split_no, i)`` or ``("mix", dataset_index, _)``.
    A ``mix`` item is drawn from the DiffuseMix dataset at the key's pass (its epoch).
    """

    def __init__(self, splits: list[Split], items: list[tuple[str, int, int]], size: int, mix: Any = None) -> None:
        self.splits, self.items, self.size, self.mix = splits, items, size, mix

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: Any) -> tuple[torch.Tensor, int]:
        p, j = key if isinstance(key, tuple) else (0, key)
        kind, a, b = self.items[j]
        if kind == "mix":
            entry, _ = self.mix.locate(a, epoch=p)
            return _to_uint8(self.mix.image(a, epoch=p), self.size), self.mix.class_to_idx[entry.label]
        image, label = self.splits[a].get(b)
        return _to_uint8(image, self.size), int(label)


@dataclass
class TrainSet:
    """A method's training set and what it is made of.

    Attributes:
        items: the dataset the loop draws from.
        classes: class names.
        real_images: real images used (after a k-per-class draw).
        subset: the drawn item keys when ``k_per_class`` is set, else None.
        summary: what is trained on, in words (printed and recorded).
        stand_in: why this is not DiffuseMix data (a preview-editor cache or export), else None.
    """

    items: LoadedItems
    classes: list[str]
    real_images: int
    subset: list[str] | None
    summary: str
    stand_in: str | None = None


class _Files:
    """(path, label) list -> get(i) (picklable, for DataLoader workers started by spawn)."""

    def __init__(self, samples: list[tuple[str, int]]) -> None:
        self.samples = samples

    def __call__(self, i: int) -> tuple[Any, int]:
        path, label = self.samples[i]
        return checked_loader(path), label


def _export_rows(root: Path) -> dict[str, dict[str, Any]]:
    """An export's manifest rows by file name ({} when it has no manifest)."""
    from ..export import folder

    if not folder.manifest_path(root).is_file():
        return {}
    return {str(row.get("file_name")): row for row in folder.read_rows(root)}


def build_train_set(config: TrainConfig, train: Split) -> TrainSet:
    """The method's training set over the real split (``config.train`` already opened as ``train``)."""
    size = config.load_size
    real = list(range(len(train)))
    subset_keys = None
    if config.k_per_class is not None:
        real = draw_subset(train.targets, config.k_per_class, seed=config.subset_seed, classes=train.classes)
        subset_keys = [train.keys[i] for i in real]
    real_items = [("split", 0, i) for i in real]
    note = f"{len(real)} real images from {train.where} in {len(train.classes)} classes"
    if subset_keys is not None:
        note += f" (k={config.k_per_class} per class, drawn with subset_seed {config.subset_seed})"

    if config.method == "diffusemix":
        from ..data import DiffuseMixDataset

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mix = DiffuseMixDataset(config.cache, p=config.p, include_originals=config.include_originals,
                                    classes=train.classes, fractals=config.fractals, seed=config.seed)  # fmt: skip
        stand_in = next((str(w.message) for w in caught if "preview" in str(w.message)), None)
        keep = set(subset_keys) if subset_keys is not None else None
        idx = list(range(len(mix)))
        if keep is not None:
            idx = [i for i in idx if mix.locate(i, epoch=0)[0].source in keep]
            if not idx:
                raise DiffuseMixError(
                    f"none of the {len(subset_keys or [])} drawn images is in the cache {config.cache} "
                    "(its rows' source must be paths relative to the training folder)"
                )
        items = LoadedItems([train], [("mix", i, 0) for i in idx], size, mix)
        summary = f"{note}; DiffuseMix online: {len(idx)} items per epoch\n{mix.summary()}"
        return TrainSet(items, train.classes, len(real), subset_keys, summary, stand_in)

    if config.method == "diffusemix-export":
        root = Path(config.export)  # type: ignore[arg-type]
        if not root.is_dir():
            raise DiffuseMixError(f"export {root} is not a folder (make one with `python -m diffusemix export`)")
        from ..export import folder

        rows = _export_rows(root)
        images = folder.images_root(root)
        # only the training classes' folders: the export's own folders (its stages and state) are not classes
        present = [c for c in train.classes if (images / c).is_dir()]
        if not present:
            names = ", ".join(train.classes[:5])
            raise DiffuseMixError(f"export {root} has none of the training classes' folders ({names}...)")
        cls_idx = {c: i for i, c in enumerate(train.classes) if c in set(present)}
        samples = make_dataset(str(images), cls_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
        keep = set(subset_keys) if subset_keys is not None else None
        aug: list[tuple[str, int]] = []
        for path, label in samples:
            rel = Path(path).relative_to(root).as_posix()  # a row's file_name is relative to the export folder
            # the one path rule: a link in a class folder that leads outside the export is refused
            folder.resolve_in(images, Path(path).relative_to(images).as_posix(), what="image", source=root)
            if keep is not None:
                if not rows:
                    raise DiffuseMixError("k_per_class with an export needs its manifest (to know each A's source)")
                if str(rows.get(rel, {}).get("source")) not in keep:
                    continue
            aug.append((path, label))
        editors = {str(r.get("editor")) for r in rows.values() if r.get("editor")}
        stand_in = None
        if "preview" in editors:
            stand_in = (f"the export {root} was made with the preview editor (a weight-free stand-in): "
                        "this is not DiffuseMix data")  # fmt: skip
        export_split = Split(train.classes, [lab for _, lab in aug], [p for p, _ in aug], f"export {root}",
                             _Files(aug))  # fmt: skip
        items = LoadedItems([train, export_split], real_items + [("split", 1, i) for i in range(len(aug))], size)
        summary = f"{note}; DiffuseMix export: + {len(aug)} A images from {root} = {len(items)} items per epoch"
        return TrainSet(items, train.classes, len(real), subset_keys, summary, stand_in)

    return TrainSet(LoadedItems([train], real_items, size), train.classes, len(real), subset_keys, note)
