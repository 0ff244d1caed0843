"""DiffuseMixDataset and DiffuseMixTransform on a cache made with --task detect|segment: (A, target) pairs.

A is re-mixed every epoch; its objects are the cached sample's (the mixing keeps geometry). Targets come in
torchvision's detection format (plain tensors here: torchvision cannot be imported on this machine) or 🤗 DETR's,
and a tiny YOLOS (from a config, random weights) takes a training step on them through a DataLoader.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from test_export_annotations import CATS, export_args, flat_fractal, write_dataset  # noqa: F401  (a fixture)

from diffusemix.cli import main
from diffusemix.data import DiffuseMixDataset, DiffuseMixTransform, to_tensor
from diffusemix.data.cache import CacheError
from diffusemix.export import folder

SIZE = 64


@pytest.fixture(autouse=True)
def _quiet_preview() -> None:
    warnings.filterwarnings("ignore", message=".*preview editor.*")


def _cache(tmp_path: Path, fractals: Path, fmt: str, task: str) -> Path:
    inp = write_dataset(tmp_path / "data", fmt)
    out = tmp_path / "cache"
    assert main(export_args(inp, out, fractals, task=task, size=SIZE, extra=("--cache",))) == 0
    return out


def _boxes(row: dict) -> list[list[float]]:
    return [[x, y, x + w, y + h] for x, y, w, h in row["objects"]["bbox"]]


def test_items_are_a_and_torchvisions_detection_target_re_mixed_every_epoch(tmp_path, flat_fractal):
    cache = _cache(tmp_path, flat_fractal, "coco", "detect")
    rows = {r["file_name"]: r for r in folder.read_rows(cache)}
    ds = DiffuseMixDataset(cache, transform=to_tensor)  # the shipped fractals: A changes with the epoch
    assert len(ds) == len(rows) and "targets:" in ds.summary() and "detect (coco, 3 categories)" in ds.summary()
    for i in range(len(ds)):
        entry, _ = ds.locate(i)
        row = rows[entry.row["file_name"]]
        a0, t0 = ds[i]
        assert a0.shape == (3, SIZE, SIZE) and a0.dtype == torch.float32
        assert set(t0) == {"boxes", "labels", "area", "iscrowd"}  # a detect cache: no masks
        assert t0["boxes"].dtype == torch.float32 and t0["labels"].dtype == torch.int64
        np.testing.assert_allclose(t0["boxes"].numpy(), np.reshape(_boxes(row), (-1, 4)), atol=1e-4)
        assert t0["labels"].tolist() == [c + 1 for c in row["objects"]["category"]]  # 0 is the background
        assert t0["area"].tolist() == pytest.approx(row["objects"]["area"])
        ds.set_epoch(1)
        a1, t1 = ds[i]
        ds.set_epoch(0)
        assert not torch.equal(a0, a1)  # a fresh A ...
        assert all(torch.equal(t0[k], t1[k]) for k in t0)  # ... with the same objects
    # include_originals: an original I carries the same objects too
    orig = DiffuseMixDataset(cache, include_originals=True)
    entry, draw = orig.locate(len(orig) - 1)
    assert draw is None
    np.testing.assert_allclose(orig[len(orig) - 1][1]["boxes"].numpy(), np.reshape(_boxes(entry.row), (-1, 4)),
                               atol=1e-4)


def test_a_tiny_yolos_takes_a_training_step_on_the_datasets_targets(tmp_path, flat_fractal):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("scipy")  # the Hungarian matcher of the DETR loss
    cache = _cache(tmp_path, flat_fractal, "yolo", "detect")
    ds = DiffuseMixDataset(cache, transform=to_tensor, target_format="detr")
    torch.manual_seed(0)
    config = transformers.YolosConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=64, image_size=[SIZE, SIZE], patch_size=16,
                                      num_detection_tokens=10, num_labels=len(CATS["yolo"]))
    model = transformers.YolosForObjectDetection(config)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True, collate_fn=lambda b: tuple(zip(*b)),
                                         generator=torch.Generator().manual_seed(0))
    images, labels = next(iter(loader))
    assert all(set(t) == {"class_labels", "boxes"} for t in labels)
    assert all(((t["boxes"] >= 0) & (t["boxes"] <= 1)).all() for t in labels)  # centre, size: normalised
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    out = model(pixel_values=torch.stack(images), labels=list(labels))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    opt.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_segmentation_targets_carry_the_exports_masks(tmp_path, flat_fractal):
    from pycocotools.coco import COCO

    cache = _cache(tmp_path, flat_fractal, "coco-segment", "segment")
    coco = COCO(str(folder.coco_path(cache)))
    by_name = {img["file_name"]: img["id"] for img in coco.loadImgs(coco.getImgIds())}
    ds = DiffuseMixDataset(cache)
    for i in range(len(ds)):
        entry, _ = ds.locate(i)
        _, target = ds[i]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[by_name[folder.image_relative(entry.row["file_name"])]]))
        want = np.stack([coco.annToMask(a) for a in anns])
        assert target["masks"].dtype == torch.uint8 and np.array_equal(target["masks"].numpy(), want)
        assert target["boxes"].shape == (len(anns), 4)
    # class-id masks: the target is the mask, int64 (H, W)
    masks = _cache(tmp_path / "m", flat_fractal, "masks", "segment")
    ds = DiffuseMixDataset(masks)
    for i in range(len(ds)):
        entry, _ = ds.locate(i)
        _, target = ds[i]
        from PIL import Image

        with Image.open(folder.resolve_in(masks, entry.row["class_mask_file_name"])) as im:
            assert target.dtype == torch.int64 and np.array_equal(target.numpy(), np.asarray(im))
    with pytest.raises(ValueError, match="target_format 'detr' is for objects"):
        DiffuseMixDataset(masks, target_format="detr")


def test_the_hf_transform_gives_an_objects_column(tmp_path, flat_fractal):
    datasets = pytest.importorskip("datasets")
    cache = _cache(tmp_path, flat_fractal, "coco", "detect")
    ds = datasets.load_dataset(str(cache), split="train")
    mix = DiffuseMixTransform(cache, transform=to_tensor)
    ds.set_transform(mix)
    batch = ds[:3]
    rows = folder.read_rows(cache)[:3]
    assert batch["objects"] == [r["objects"] for r in rows] and len(batch["image"]) == 3
    assert batch["image"][0].shape == (3, SIZE, SIZE)


def test_a_damaged_annotated_cache_is_named(tmp_path, flat_fractal):
    cache = _cache(tmp_path, flat_fractal, "coco-segment", "segment")
    folder.coco_path(cache).unlink()
    with pytest.raises(CacheError, match="its annotations cannot be read .* make the cache again"):
        DiffuseMixDataset(cache)
