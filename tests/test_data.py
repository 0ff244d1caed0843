"""Training data: DiffuseMixDataset and the 🤗 datasets transform over a cache of Î."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler

from diffusemix.data import CacheError, DiffuseMixDataset, DiffuseMixTransform, read_cache, to_tensor
from diffusemix.editors import load_editor
from diffusemix.export import ExportOptions, export_dataset
from diffusemix.fractals import FractalSet, write_fractal_set
from diffusemix.recipe import Recipe
from export_helpers import make_dataset

RECIPE = Recipe(size=32, prompts=("sunset", "snowy", "aurora"), seam=4, lam=(0.1, 0.4))
CLASSES = ("Zebra", "ant", "Bee")  # ImageFolder's order is sorted(): Bee, Zebra, ant


@pytest.fixture(scope="module")
def fractals(tmp_path_factory: pytest.TempPathFactory) -> FractalSet:
    folder = tmp_path_factory.mktemp("fractals")
    write_fractal_set(folder, count=6, size=48, seed=5)
    return FractalSet.from_folder(folder)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("in") / "data", classes=CLASSES, per_class=2)


def _export(inp: Path, out: Path, fractals: FractalSet, **opts: Any) -> Path:
    export_dataset(
        inp,
        out,
        recipe=RECIPE,
        editor=load_editor("preview"),
        fractals=fractals,
        options=ExportOptions(**opts),
        progress_bar=False,
    )
    return out


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory, data_dir: Path, fractals: FractalSet) -> Path:
    """An export made with --save-stages: readable as a cache."""
    return _export(data_dir, tmp_path_factory.mktemp("out") / "export", fractals, save_stages=True)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory, data_dir: Path, fractals: FractalSet) -> Path:
    """A cache (export --cache): I once per image and Î, as BMP; no A."""
    return _export(data_dir, tmp_path_factory.mktemp("out") / "cache", fractals, cache=True)


@pytest.fixture(params=["cache", "export"])
def any_cache(request: pytest.FixtureRequest) -> Path:
    """Both layouts a dataset reads: a cache, and an export made with --save-stages."""
    return request.getfixturevalue(f"{request.param}_dir")


def dataset(cache: Path, fractals: FractalSet, **kw: Any) -> DiffuseMixDataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the preview warning: tested on its own
        return DiffuseMixDataset(cache, fractals=fractals.folder, **kw)


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _batches(ds: DiffuseMixDataset, **kw: Any) -> torch.Tensor:
    return torch.cat([a for a, _ in DataLoader(ds, batch_size=4, shuffle=False, **kw)])


# ---------------------------------------------------------------------------
# determinism, epochs, workers, ranks
# ---------------------------------------------------------------------------


def test_same_epoch_gives_the_same_a_with_0_or_2_workers(any_cache: Path, fractals: FractalSet) -> None:
    ds = dataset(any_cache, fractals, transform=to_tensor, include_originals=True)
    ds.set_epoch(3)
    one = _batches(ds, num_workers=0)
    two = _batches(ds, num_workers=2)
    assert one.shape == (len(ds), 3, 32, 32)
    assert torch.equal(one, two)


def test_set_epoch_reaches_persistent_workers(export_dir: Path, fractals: FractalSet) -> None:
    ds = dataset(export_dir, fractals, transform=to_tensor)
    loader = DataLoader(ds, batch_size=4, num_workers=2, persistent_workers=True)
    seen = []
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        seen.append(torch.cat([a for a, _ in loader]))
    ref = dataset(export_dir, fractals, transform=to_tensor, epoch=1)
    assert torch.equal(seen[1], _batches(ref, num_workers=0))
    assert not torch.equal(seen[0], seen[1])


def test_epochs_draw_differently(export_dir: Path, fractals: FractalSet) -> None:
    ds = dataset(export_dir, fractals)
    rec0 = [ds.locate(i, epoch=0)[1].record for i in range(len(ds))]  # type: ignore[union-attr]
    rec1 = [ds.locate(i, epoch=1)[1].record for i in range(len(ds))]  # type: ignore[union-attr]
    changed = sum((a.layout, a.fractal, a.lam) != (b.layout, b.fractal, b.lam) for a, b in zip(rec0, rec1))
    assert changed == len(ds)  # λ is drawn from a range: every record changes
    differ = sum(not np.array_equal(ds.image(i, 0), ds.image(i, 1)) for i in range(len(ds)))
    assert differ == len(ds)
    # the prompt, copy and editor seed stay those of the cached Î
    assert [(r.source, r.prompt, r.copy, r.seed) for r in rec0] == [(r.source, r.prompt, r.copy, r.seed) for r in rec1]


def test_seed_changes_the_draws_and_recipe_settings_are_obeyed(export_dir: Path, fractals: FractalSet) -> None:
    a = dataset(export_dir, fractals, seed=1)
    b = dataset(export_dir, fractals, seed=2)
    assert [a.locate(i)[1].record for i in range(len(a))] != [b.locate(i)[1].record for i in range(len(b))]
    c = dataset(export_dir, fractals, recipe=RECIPE.replace(layouts=("bottom",), mask="binary", seam=0, lam=0.5))
    recs = [c.locate(i)[1].record for i in range(len(c))]  # type: ignore[union-attr]
    assert {(r.layout, r.mask, r.seam, r.lam) for r in recs} == {("bottom", "binary", 0, 0.5)}


def test_distributed_ranks_see_what_one_process_sees(export_dir: Path, fractals: FractalSet) -> None:
    single = dataset(export_dir, fractals, transform=to_tensor, include_originals=True)
    for epoch in (0, 2):
        single.set_epoch(epoch)
        covered = set()
        for rank in range(2):
            ds = dataset(export_dir, fractals, transform=to_tensor, include_originals=True)
            sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
            sampler.set_epoch(epoch)
            ds.set_epoch(epoch)
            order = list(sampler)
            got = torch.cat([a for a, _ in DataLoader(ds, batch_size=3, sampler=sampler, num_workers=0)])
            want = torch.stack([single[i][0] for i in order])
            assert torch.equal(got, want)
            covered |= set(order)
        assert covered == set(range(len(single)))


# ---------------------------------------------------------------------------
# what an item is
# ---------------------------------------------------------------------------


def test_p0_gives_the_originals(any_cache: Path, fractals: FractalSet) -> None:
    ds = dataset(any_cache, fractals, p=0.0)
    for i in range(len(ds)):
        entry, draw = ds.locate(i)
        assert draw is not None and not draw.augmented
        assert np.array_equal(np.asarray(ds[i][0]), _png(entry.input_path))


def test_p_between_mixes_some(export_dir: Path, fractals: FractalSet) -> None:
    ds = dataset(export_dir, fractals, p=0.5)
    flags = [ds.locate(i, epoch=e)[1].augmented for e in range(4) for i in range(len(ds))]  # type: ignore[union-attr]
    assert 0.25 < np.mean(flags) < 0.75


def test_bit_identical_with_the_exporter(export_dir: Path, fractals: FractalSet) -> None:
    ds = dataset(export_dir, fractals)
    for entry in ds.cache.entries:  # the exporter's own record → its A file, bit for bit
        assert np.array_equal(ds.mix_with(entry, entry.record), _png(export_dir / entry.row["file_name"]))
    for i in range(len(ds)):  # an item is apply_record of its drawn record
        entry, draw = ds.locate(i)
        assert np.array_equal(np.asarray(ds[i][0]), ds.mix_with(entry, draw.record))  # type: ignore[union-attr]


def test_labels_follow_imagefolder_order(any_cache: Path, data_dir: Path, fractals: FractalSet) -> None:
    ds = dataset(any_cache, fractals, include_originals=True)
    folders = sorted(d.name for d in data_dir.iterdir() if d.is_dir())  # torchvision's find_classes
    assert ds.classes == folders == ["Bee", "Zebra", "ant"]
    assert ds.class_to_idx == {c: i for i, c in enumerate(folders)}
    for i in range(len(ds)):
        entry, _ = ds.locate(i)
        assert ds[i][1] == folders.index(entry.source.split("/")[0])


def test_originals_prompts_and_cap_shape_the_epoch(export_dir: Path, fractals: FractalSet) -> None:
    n_img, n_prompts = 3 * 2 + 1, 3  # 2 pictures per class + 1 odd JPEG in the first
    assert len(dataset(export_dir, fractals)) == n_img * n_prompts
    assert len(dataset(export_dir, fractals, include_originals=True)) == n_img * (n_prompts + 1)
    sub = dataset(export_dir, fractals, prompts=["snowy", "sunset"])
    assert len(sub) == n_img * 2 and sub.prompts == ("sunset", "snowy")
    assert {sub.locate(i)[0].prompt for i in range(len(sub))} == {"sunset", "snowy"}
    capped = dataset(export_dir, fractals, max_per_image=1, include_originals=True)
    assert len(capped) == n_img * 2
    picks = [[capped.locate(i, epoch=e)[0].prompt for i in range(n_img)] for e in range(6)]
    assert len({tuple(p) for p in picks}) > 1  # which Î fills the slot is drawn per epoch
    last = capped.locate(len(capped) - 1)
    assert last[1] is None  # the originals come last
    with pytest.raises(ValueError, match=r"prompt\(s\) 'rain' not in the cache; cached prompts: 'sunset'"):
        dataset(export_dir, fractals, prompts=["rain"])
    with pytest.raises(ValueError, match="max_per_image must be None or an integer >= 1"):
        dataset(export_dir, fractals, max_per_image=0)
    with pytest.raises(ValueError, match=r"p \(the probability that an item is augmented\) must be in \[0, 1\]"):
        dataset(export_dir, fractals, p=1.5)


def test_fractals_are_decoded_once_per_process(export_dir: Path, fractals: FractalSet) -> None:
    import pickle

    ds = dataset(export_dir, fractals)
    name = ds.remixer.fractal_names[0]
    assert ds.remixer.fractal(name) is ds.remixer.fractal(name)  # kept, not decoded again
    worker = pickle.loads(pickle.dumps(ds))  # what a spawned DataLoader worker receives
    assert worker.remixer._memory == {} and worker.remixer._set is None  # built there, on first use
    assert np.array_equal(np.asarray(worker[0][0]), np.asarray(ds[0][0]))
    with pytest.raises(ValueError, match="epoch must be an integer >= 0; got -1"):
        dataset(export_dir, fractals, epoch=-1)


def test_transforms_apply(export_dir: Path, fractals: FractalSet) -> None:
    ds = dataset(export_dir, fractals, transform=lambda im: im.size, target_transform=lambda y: f"class {y}")
    assert ds[0] == ((32, 32), "class 0")


def test_recipe_of_another_size_is_refused(export_dir: Path, fractals: FractalSet) -> None:
    with pytest.raises(ValueError, match=r"Recipe.size does not match the cache's 32 px images; got 64"):
        dataset(export_dir, fractals, recipe=RECIPE.replace(size=64))


def test_default_mixing_settings_come_from_the_export(export_dir: Path, fractals: FractalSet) -> None:
    ds = dataset(export_dir, fractals)
    assert (ds.recipe.layouts, ds.recipe.mask, ds.recipe.seam, ds.recipe.lam) == (
        RECIPE.layouts,
        RECIPE.mask,
        RECIPE.seam,
        RECIPE.lam,
    )


# ---------------------------------------------------------------------------
# telling the user
# ---------------------------------------------------------------------------


def test_preview_cache_warns_plainly(export_dir: Path, fractals: FractalSet) -> None:
    with pytest.warns(UserWarning, match="preview editor.*not DiffuseMix data"):
        ds = DiffuseMixDataset(export_dir, fractals=fractals.folder, p=0.5, include_originals=True)
    text = ds.summary()
    for fact in ("7 in 3 classes", "Bee, Zebra, ant", "3 of 3 cached", "3..3 cached", "p:", "0.5", "28 = 21 slots + 7"):
        assert fact in text
    assert "WARNING" in text and "not DiffuseMix data" in text
    r = repr(ds)
    assert "images=7" in r and "len=28" in r and "p=0.5" in r and "NOT DiffuseMix data" in r


def test_diffusion_cache_has_no_warning(export_dir: Path, fractals: FractalSet, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(export_dir, copy)
    rows = [json.loads(line) for line in (copy / "metadata.jsonl").read_text().splitlines()]
    (copy / "metadata.jsonl").write_text("".join(json.dumps({**r, "editor": "instruct-pix2pix"}) + "\n" for r in rows))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = DiffuseMixDataset(copy, fractals=fractals.folder)
    assert "WARNING" not in ds.summary() and "instruct-pix2pix" in ds.summary()


# ---------------------------------------------------------------------------
# clear errors
# ---------------------------------------------------------------------------


def test_a_folder_that_is_not_a_cache_says_what_is_missing(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CacheError, match=r"is not a DiffuseMix cache: missing its manifest and its settings"):
        read_cache(data_dir)
    with pytest.raises(CacheError, match="does not exist"):
        read_cache(tmp_path / "nope")


def test_an_export_without_stages_says_which_files_are_missing(
    data_dir: Path, fractals: FractalSet, tmp_path: Path
) -> None:
    out = _export(data_dir, tmp_path / "plain", fractals)
    missing = r"file\(s\) missing: stages/input/Bee/00_sunset_0.png, .*without --save-stages"
    with pytest.raises(CacheError, match=missing):
        read_cache(out)


def test_mismatched_classes_are_refused(export_dir: Path, fractals: FractalSet) -> None:
    with pytest.raises(CacheError, match=r"not in the cache: cow; only in the cache: ant"):
        dataset(export_dir, fractals, classes=["Bee", "Zebra", "cow"])
    with pytest.raises(CacheError, match="another order"):
        dataset(export_dir, fractals, classes=["ant", "Bee", "Zebra"])
    assert dataset(export_dir, fractals, classes=["Bee", "Zebra", "ant"]).classes == ["Bee", "Zebra", "ant"]


def test_extra_manifest_columns_are_tolerated(export_dir: Path, fractals: FractalSet, tmp_path: Path) -> None:
    copy = tmp_path / "scored"
    shutil.copytree(export_dir, copy)
    rows = [json.loads(line) for line in (copy / "metadata.jsonl").read_text().splitlines()]
    (copy / "metadata.jsonl").write_text("".join(json.dumps({**r, "score_clip": 0.7}) + "\n" for r in rows))
    ds = dataset(copy, fractals)
    assert ds.cache.entries[0].row["score_clip"] == 0.7
    assert np.array_equal(np.asarray(ds[0][0]), np.asarray(dataset(export_dir, fractals)[0][0]))


# ---------------------------------------------------------------------------
# 🤗 datasets
# ---------------------------------------------------------------------------


def test_set_transform_on_an_export_gives_the_datasets_a(export_dir: Path, fractals: FractalSet) -> None:
    from datasets import load_dataset

    hf = load_dataset("imagefolder", data_dir=str(export_dir), split="train")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        mix = DiffuseMixTransform(export_dir, fractals=fractals.folder, transform=to_tensor)
    mix.set_epoch(2)
    hf.set_transform(mix, columns=["source", "prompt", "copy", "label"])
    batch = hf[0:5]
    ds = dataset(export_dir, fractals, transform=to_tensor, epoch=2)
    by_key = {ds.locate(i)[0].key: i for i in range(len(ds))}
    for k in range(5):
        entry = ds.cache.entries[k]
        a, y = ds[by_key[entry.key]]
        assert torch.equal(batch["image"][k], a) and batch["label"][k] == y


def test_diffusemix_import_stays_light() -> None:
    code = "import sys, diffusemix, diffusemix.data; assert 'torch' not in sys.modules and 'PIL' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_ddp_processes_see_what_one_process_sees(export_dir: Path, fractals: FractalSet, tmp_path: Path) -> None:
    """torchrun, gloo, a DistributedSampler from the process group: nothing configured for the data."""
    import hashlib
    import os

    worker = Path(__file__).with_name("ddp_data_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
           str(_free_port()), str(worker), str(export_dir), str(fractals.folder), str(tmp_path), "1"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in range(2)]
    single = dataset(export_dir, fractals, transform=to_tensor, include_originals=True, epoch=1)
    assert set(ranks[0]) | set(ranks[1]) == {str(i) for i in range(len(single))}
    for got in ranks:
        for i, digest in got.items():
            assert digest == hashlib.sha1(single[int(i)][0].numpy().tobytes()).hexdigest()


def test_a_cache_and_an_export_with_stages_give_the_same_a(
    cache_dir: Path, export_dir: Path, fractals: FractalSet
) -> None:
    """Same input, recipe and seed: the cache's BMP and the export's PNG stages hold the same I and Î."""
    a = dataset(cache_dir, fractals, include_originals=True)
    b = dataset(export_dir, fractals, include_originals=True)
    assert a.cache.layout == "cache" and b.cache.layout == "export" and len(a) == len(b)
    for epoch in (0, 5):
        for i in range(len(a)):
            assert np.array_equal(a.image(i, epoch), b.image(i, epoch))
    for e, f in zip(a.cache.entries, b.cache.entries):  # and the exporter's own A, from the cache
        assert np.array_equal(a.mix_with(e, f.record), _png(export_dir / f.row["file_name"]))


def test_set_transform_on_a_cache_gives_the_datasets_a(cache_dir: Path, fractals: FractalSet) -> None:
    from datasets import load_dataset

    hf = load_dataset("imagefolder", data_dir=str(cache_dir), split="train")
    assert {"image", "input", "label", "source", "prompt", "copy"} <= set(hf.column_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        mix = DiffuseMixTransform(cache_dir, fractals=fractals.folder, p=0.7, transform=to_tensor)
    ds = dataset(cache_dir, fractals, p=0.7, transform=to_tensor)
    hf.set_transform(mix)
    by_key = {ds.locate(i)[0].key: i for i in range(len(ds))}
    for epoch in (0, 1):
        mix.set_epoch(epoch)
        ds.set_epoch(epoch)
        batch = hf[:]
        assert len(batch["image"]) == len(ds)
        for k, entry in enumerate(ds.cache.entries):
            a, y = ds[by_key[entry.key]]
            assert torch.equal(batch["image"][k], a) and batch["label"][k] == y
    assert "rows=21" in repr(mix) and "NOT DiffuseMix data" in repr(mix)


@pytest.mark.slow
def test_a_cache_made_by_a_diffusion_model_trains_without_warning(
    tiny_ip2p_dir: Path, fractals: FractalSet, tmp_path: Path
) -> None:
    """A real (tiny, random-weight) InstructPix2Pix pipeline makes the cache: no preview warning."""
    data = make_dataset(tmp_path / "data", classes=("a", "b"), per_class=1)
    out = tmp_path / "cache"
    export_dataset(
        data,
        out,
        recipe=Recipe(size=32, prompts=("snowy",), seam=4),
        editor=load_editor("instruct-pix2pix", model=str(tiny_ip2p_dir), device="cpu", steps=2),
        fractals=fractals,
        options=ExportOptions(cache=True),
        progress_bar=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no preview warning
        ds = DiffuseMixDataset(out, fractals=fractals.folder, include_originals=True, transform=to_tensor)
    assert ds.cache.editors == ("instruct-pix2pix",) and not ds.cache.from_preview
    assert "instruct-pix2pix" in ds.summary() and "WARNING" not in ds.summary() and "NOT" not in repr(ds)
    a, y = ds[0]
    assert a.shape == (3, 32, 32) and y == 0 and len(ds) == 3 + 3
