"""diffusemix.train's pieces: configs and their sources, budgets, kornia mixing, FGSM/PGD, models, schedule."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffusemix.train.augment import BatchAugment, center_crop
from diffusemix.train.budget import batch_positions, epoch_of_step, plan_budget
from diffusemix.train.config import (
    SOURCE_KINDS,
    TrainConfig,
    apply_overrides,
    load_config,
    parse_override,
    shipped_configs,
)
from diffusemix.train.loop import lr_factor
from diffusemix.train.models import MODELS, build_model, save_model
from diffusemix.train.robustness import fgsm, pgd, robust_accuracy

# -- configs -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(shipped_configs()))
def test_every_value_of_every_shipped_config_says_where_it_came_from(name: str) -> None:
    loaded = load_config(name)
    assert loaded.config.name == name and loaded.config.experiment
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("name", "experiment"):
            continue
        source = loaded.sources.get(f.name)
        assert source, f"{name}: {f.name} has no source"
        assert source.startswith(SOURCE_KINDS), f"{name}: {f.name}: {source!r}"


def test_the_author_answers_are_what_the_configs_say() -> None:
    tiny = load_config("tiny-imagenet").config  # issue #14: SGD, lr 0.01, cosine to 1e-9, 300 epochs
    assert (tiny.optimizer, tiny.lr, tiny.schedule, tiny.min_lr, tiny.epochs) == ("sgd", 0.01, "cosine", 1e-9, 300)
    cars = load_config("stanford-cars").config  # the author's Stanford-Cars train.py
    assert (cars.model, cars.epochs, cars.batch_size, cars.lr, cars.weight_decay) == ("resnet50", 128, 64, 0.025, 5e-4)
    assert (cars.load_size, cars.image_size, cars.crop, cars.crop_padding) == (512, 448, "random-crop", 8)
    for name in ("cub-200", "aircraft", "flowers-102"):  # issue #17: the same code for every dataset
        other = load_config(name).config
        assert dataclasses.replace(other, name="x", experiment="") == dataclasses.replace(cars, name="x", experiment="")
    assert load_config("data-scarcity-flowers-102").config.k_per_class is not None
    assert load_config("robustness-cifar-100").config.attacks == ("fgsm", "pgd")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "cutmixx"}, r"TrainConfig.method must be one of none, standard"),
        ({"epochs": 0}, r"TrainConfig.epochs must be >= 1; got 0"),
        ({"lr": True}, r"TrainConfig.lr must be a finite number"),
        ({"image_size": 300, "load_size": 256}, r"image_size \(300\) must not exceed load_size"),
        ({"cache": "c"}, r"cache is read by method diffusemix only"),
        ({"attacks": ("fgsm", "cw")}, r"attacks must be distinct names among fgsm, pgd"),
        ({"mixup_lambda": (0.8, 0.2)}, r"mixup_lambda must be \(low, high\)"),
        ({"milestones": (30, 10)}, r"milestones must be increasing"),
        ({"min_lr": 1.0, "lr": 0.1}, r"min_lr \(1.0\) must not exceed lr"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**change)


def test_overrides_are_read_as_yaml_and_checked(tmp_path: Path) -> None:
    assert parse_override("epochs=3") == ("epochs", 3)
    assert parse_override("lr=1") == ("lr", 1.0)
    assert parse_override("attacks=[fgsm, pgd]") == ("attacks", ("fgsm", "pgd"))
    assert parse_override("k-per-class=null") == ("k_per_class", None)
    with pytest.raises(ValueError, match="unknown setting 'epoch'"):
        parse_override("epoch=3")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_override("epochs")
    loaded = apply_overrides(load_config("cifar-100"), {"epochs": 2}, source="command line")
    assert loaded.config.epochs == 2 and loaded.sources["epochs"] == "command line"
    mine = tmp_path / "mine.yaml"
    mine.write_text("extends: cifar-100\nepochs: 7\nlr: {value: 0.2, source: my notes}\n")
    got = load_config(str(mine))
    assert (got.config.name, got.config.epochs, got.config.lr, got.config.load_size) == ("mine", 7, 0.2, 32)
    assert "epochs" not in got.sources and got.sources["lr"] == "my notes"
    with pytest.raises(ValueError, match="no config 'nope'"):
        load_config("nope")


def test_missing_inputs_name_their_flags() -> None:
    c = TrainConfig(method="diffusemix")
    assert c.missing_inputs() == ["--train", "--val", "--cache (method diffusemix re-mixes a cache of Î)"]


# -- budgets -----------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 20), st.integers(1, 500), st.integers(1, 8), st.integers(1, 64))
def test_budget_modes(epochs: int, real: int, grow: int, batch: int) -> None:
    items = real * grow  # a DiffuseMix set is the real set times (prompts + 1)
    if real < batch:
        with pytest.raises(ValueError, match="smaller than one batch"):
            plan_budget("images", epochs=epochs, real_images=real, dataset_items=items, global_batch=batch)
        real, items = batch, batch * grow
    by = {m: plan_budget(m, epochs=epochs, real_images=real, dataset_items=items, global_batch=batch)
          for m in ("epochs", "steps", "images")}  # fmt: skip
    base = {m: plan_budget(m, epochs=epochs, real_images=real, dataset_items=real, global_batch=batch)
            for m in ("epochs", "steps", "images")}  # fmt: skip
    # steps and images do not depend on the dataset size; epochs grows with it
    assert by["steps"].total_steps == base["steps"].total_steps == base["epochs"].total_steps
    assert by["images"].total_steps == base["images"].total_steps
    assert by["epochs"].total_steps == epochs * -(-items // batch)
    assert epochs * real <= by["images"].images_seen < epochs * real + batch
    for b in by.values():
        assert len(b.epoch_ends) == epochs and b.epoch_ends[-1] == b.total_steps
        assert all(x < y for x, y in zip(b.epoch_ends, b.epoch_ends[1:]))
        assert epoch_of_step(b, 0) == 0 and epoch_of_step(b, b.total_steps - 1) == epochs - 1


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.sampled_from([1, 2, 4]), st.integers(1, 6), st.integers(0, 2**31))
def test_item_stream_is_permutations_split_across_processes(n: int, world: int, share: int, seed: int) -> None:
    gb = world * share
    steps = -(-3 * n // gb)
    stream = []
    for s in range(steps):
        parts = [batch_positions(s, n=n, global_batch=gb, seed=seed, rank=r, world=world) for r in range(world)]
        stream += [key for part in parts for key in part]
        assert parts[0] == batch_positions(s, n=n, global_batch=gb, seed=seed)[:share]  # rank 0 = head of world 1
    for p in range(3):  # every pass is a permutation of the items
        assert sorted(i for q, i in stream if q == p) == list(range(n))


def test_budget_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="budget must be one of"):
        plan_budget("time", epochs=1, real_images=1, dataset_items=1, global_batch=1)
    with pytest.raises(ValueError, match="global_batch must be an integer >= 1"):
        plan_budget("steps", epochs=1, real_images=1, dataset_items=1, global_batch=0)
    with pytest.raises(ValueError, match="does not split into 3"):
        batch_positions(0, n=5, global_batch=4, seed=0, world=3)


# -- kornia mixing -----------------------------------------------------------------------------------------


def _flat_batch(values: list[float], size: int = 16) -> torch.Tensor:
    return torch.tensor(values).view(-1, 1, 1, 1).expand(-1, 3, size, size).contiguous()


@pytest.mark.parametrize("method", ["mixup", "cutmix"])
def test_soft_targets_weigh_each_label_by_its_share_of_the_image(method: str) -> None:
    """Flat images of distinct greys: the soft target of each mixed image says how much of each source is in it."""
    cfg = TrainConfig(method=method, crop="none", hflip=False, load_size=16, image_size=16)
    aug = BatchAugment(cfg, num_classes=4)
    greys = [0.1, 0.4, 0.7, 0.9]
    x, t = aug(_flat_batch(greys), torch.arange(4), seed=5)
    assert t.shape == (4, 4) and torch.allclose(t.sum(1), torch.ones(4))
    g = torch.tensor(greys)
    for i in range(4):
        if method == "mixup":  # every pixel is the same blend: its grey is the targets' weighted grey
            assert torch.allclose(x[i], (t[i] * g).sum().expand_as(x[i]), atol=1e-6)
        else:  # each pixel is one source: the share of pixels from each grey is its target weight
            share = torch.stack([(x[i, 0] - v).abs().lt(1e-6).float().mean() for v in greys])
            assert torch.allclose(share, t[i], atol=1e-6)


def test_augmentation_is_seeded_and_leaves_the_global_generator_alone() -> None:
    cfg = TrainConfig(method="cutmix", crop="random-resized-crop", load_size=24, image_size=16)
    aug = BatchAugment(cfg, num_classes=3)
    x, y = torch.rand(6, 3, 24, 24), torch.tensor([0, 1, 2, 0, 1, 2])
    before = torch.get_rng_state()
    a1, t1 = aug(x, y, seed=11)
    assert torch.equal(torch.get_rng_state(), before)
    a2, t2 = aug(x, y, seed=11)
    a3, _ = aug(x, y, seed=12)
    assert torch.equal(a1, a2) and torch.equal(t1, t2) and not torch.equal(a1, a3)
    assert a1.shape == (6, 3, 16, 16)
    none = BatchAugment(dataclasses.replace(cfg, method="none"), num_classes=3)
    c, yy = none(x, y, seed=1)
    assert torch.equal(c, center_crop(x, 16)) and torch.equal(yy, y)


# -- FGSM / PGD --------------------------------------------------------------------------------------------


def test_fgsm_on_a_linear_model_is_the_closed_form() -> None:
    torch.manual_seed(0)
    lin = torch.nn.Linear(12, 3).double()
    x = torch.rand(5, 12, dtype=torch.float64) * 0.5 + 0.25
    y = torch.tensor([0, 1, 2, 1, 0])
    eps = 0.05
    p = torch.softmax(lin(x), 1)
    grad = (p - torch.nn.functional.one_hot(y, 3).double()) @ lin.weight  # d CE / d x, per sample (up to 1/B)
    expected = (x + eps * grad.sign()).clamp(0, 1)
    assert torch.allclose(fgsm(lin, x, y, eps=eps), expected)


def test_pgd_properties() -> None:
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    x, y = torch.rand(8, 3, 4, 4), torch.randint(0, 4, (8,))
    eps = 4 / 255
    one = pgd(net, x, y, eps=eps, step_size=eps, steps=1, random_start=False)
    assert torch.equal(one, fgsm(net, x, y, eps=eps))  # one full step from x is FGSM
    adv = pgd(net, x, y, eps=eps, step_size=1 / 255, steps=7, generator=torch.Generator().manual_seed(0))
    assert (adv - x).abs().max() <= eps + 1e-7 and adv.min() >= 0 and adv.max() <= 1
    ce = torch.nn.functional.cross_entropy
    assert ce(net(adv), y) >= ce(net(x), y)
    assert torch.equal(fgsm(net, x, y, eps=0.0), x)
    rob = robust_accuracy(net, [(x, y)], attacks=("fgsm", "pgd"), eps=0.0, pgd_steps=2, pgd_step_size=0.0, seed=0)
    assert rob["fgsm"]["accuracy"] == rob["pgd"]["accuracy"] == rob["clean"]["accuracy"]  # ε = 0 changes nothing
    with pytest.raises(ValueError, match="eps must be >= 0"):
        fgsm(net, x, y, eps=-1)


# -- models and schedule -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tiny-resnet", "tiny-vit", "tiny-convnext"])
def test_tiny_models_give_logits_and_are_seeded(name: str) -> None:
    a = build_model(name, num_classes=5, image_size=32, normalize="imagenet", pretrained=None, seed=3)
    b = build_model(name, num_classes=5, image_size=32, normalize="imagenet", pretrained=None, seed=3)
    x = torch.rand(2, 3, 32, 32)
    a.eval(), b.eval()
    assert a(x).shape == (2, 5) and torch.equal(a(x), b(x))


def test_named_architectures_are_the_ones_they_say() -> None:
    r50 = MODELS["resnet50"](1000, 224)
    assert 25.0e6 < sum(p.numel() for p in r50.parameters()) < 26.0e6  # ResNet-50: 25.6 M parameters
    cifar = build_model("resnet18-cifar", num_classes=10, image_size=32, normalize="none", pretrained=None, seed=0)
    cifar.eval()
    assert cifar(torch.rand(1, 3, 32, 32)).shape == (1, 10)
    assert cifar.net.resnet.embedder.embedder.convolution.kernel_size == (3, 3)


def test_pretrained_folder_round_trip_and_new_head(tmp_path: Path) -> None:
    src = build_model("resnet18-cifar", num_classes=4, image_size=32, normalize="none", pretrained=None, seed=0)
    save_model(src, tmp_path / "m", classes=["a", "b", "c", "d"])
    same = build_model("resnet18-cifar", num_classes=4, image_size=32, normalize="none",
                       pretrained=str(tmp_path / "m"), seed=9)  # fmt: skip
    other = build_model("resnet18-cifar", num_classes=7, image_size=32, normalize="none",
                        pretrained=str(tmp_path / "m"), seed=9)  # fmt: skip
    s0, s1, s2 = src.state_dict(), same.state_dict(), other.state_dict()
    assert all(torch.equal(s0[k], s1[k]) for k in s0)
    body = [k for k in s0 if "classifier" not in k]
    assert all(torch.equal(s0[k], s2[k]) for k in body) and s2["net.classifier.1.weight"].shape == (7, 512)
    with pytest.raises(ValueError, match="another architecture"):
        build_model("tiny-resnet", num_classes=4, image_size=32, normalize="none", pretrained=str(tmp_path / "m"),
                    seed=0)  # fmt: skip
    with pytest.raises(ValueError, match="cannot be loaded"):
        build_model("resnet50", num_classes=4, image_size=32, normalize="none", pretrained="nobody/nothing", seed=0)
    with pytest.raises(ValueError, match="unknown model 'resnet5'"):
        build_model("resnet5", num_classes=4, image_size=32, normalize="none", pretrained=None, seed=0)


def test_timm_and_torchvision_models_say_why_they_cannot_load() -> None:
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001  (the CUDA wheel fails in several ways beside a CPU torch)
        with pytest.raises(ValueError, match="needs torchvision"):
            build_model("torchvision:resnet18", num_classes=2, image_size=32, normalize="none", pretrained=None, seed=0)
    else:
        pytest.skip("torchvision imports here")


def test_lr_schedule() -> None:
    cfg = TrainConfig(lr=0.1, min_lr=1e-9, epochs=10, warmup_epochs=2)
    b = plan_budget("epochs", epochs=10, real_images=40, dataset_items=40, global_batch=4)  # 10 steps an epoch
    f = [lr_factor(s, config=cfg, budget=b) for s in range(b.total_steps)]
    assert np.allclose(f[:20], np.arange(1, 21) / 20)  # linear warm-up over 2 epochs
    assert f[20] == pytest.approx(1.0) and f[-1] == pytest.approx(1e-8, abs=1e-3)
    assert all(x >= y for x, y in zip(f[20:], f[21:]))  # cosine decreases
    step = dataclasses.replace(cfg, schedule="step", milestones=(5, 8), warmup_epochs=0)
    g = [lr_factor(s, config=step, budget=b) for s in (0, 49, 50, 79, 80, 99)]
    assert g == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_a_set_smaller_than_one_batch_is_refused_with_what_to_do() -> None:
    """Issue 20: a batch of 64 over 10 images repeats each image six times in one step (old train_cnn.py
    dropped the rest with drop_last instead); each budget now says so and how to fix it."""
    for mode, what in (("epochs", "training set has 10 items"), ("steps", "set of real images has 10 items"),
                       ("images", "epoch of 10 real images")):
        with pytest.raises(ValueError, match=rf"budget {mode}: .*{what}.*one batch of 64"):
            plan_budget(mode, epochs=3, real_images=10, dataset_items=10, global_batch=64)
    b = plan_budget("epochs", epochs=2, real_images=72, dataset_items=72, global_batch=64)
    assert b.total_steps == 4 and b.images_seen == 256 and round(b.passes, 3) == 3.556  # no image dropped
