"""diffusemix.train's pieces: configs and their sources, budgets, kornia mixing, FGSM/PGD, models, schedule."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffusemix import schema
from diffusemix.cli import build_parser
from diffusemix.cli import main as cli_main
from diffusemix.errors import DiffuseMixError, SettingError
from diffusemix.train.augment import BatchAugment, center_crop
from diffusemix.train.budget import batch_positions, epoch_of_step, plan_budget
from diffusemix.train.config import (
    MODEL_NAMES,
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
    ("change", "field", "message"),
    [
        ({"method": "cutmixx"}, "method", r"^TrainConfig.method must be one of none, standard, .*; got 'cutmixx'$"),
        ({"epochs": 0}, "epochs", r"^TrainConfig.epochs must be an integer >= 1; got 0$"),
        ({"lr": True}, "lr", r"^TrainConfig.lr must be a number; got True$"),
        ({"lr": 0}, "lr", r"^TrainConfig.lr must be a number > 0; got 0.0$"),
        ({"gamma": 0.0}, "gamma", r"must be a number in \(0, 1\]; got 0.0$"),
        ({"momentum": 1.5}, "momentum", r"^TrainConfig.momentum must be a number in \[0, 1\]; got 1.5$"),
        ({"seed": 2**32}, "seed", r"^TrainConfig.seed must be an integer in \[0, 4294967295\]; got 4294967296$"),
        ({"k_per_class": 0}, "k_per_class", r"^TrainConfig.k_per_class must be an integer >= 1; got 0$"),
        ({"name": ""}, "name", r"must be a non-empty string"),
        ({"model": "resnet5"}, "model",
         r"must be one of resnet18, .*, or timm:NAME or torchvision:NAME; got 'resnet5'"),
        ({"image_size": 300, "load_size": 256}, "image_size",
         r"^TrainConfig.image_size must not exceed load_size \(256\); got 300. The network sees a crop"),
        ({"cache": "c"}, "cache", r"^TrainConfig.cache is read by method diffusemix only; the method is 'standard'\."),
        ({"attacks": ("fgsm", "cw")}, "attacks", r"attacks must be distinct names among fgsm, pgd"),
        ({"attacks": "fgsm"}, "attacks", r"attacks must be a list of names such as \[fgsm, pgd\]; got 'fgsm'"),
        ({"mixup_lambda": (0.8, 0.2)}, "mixup_lambda", r"must be \[low, high\] with 0 <= low <= high <= 1"),
        ({"crop_scale": (0.5,)}, "crop_scale", r"must be a list of two numbers \[low, high\]; got \(0.5,\)"),
        ({"milestones": (30, 10)}, "milestones", r"milestones must be increasing"),
        ({"milestones": (3, "x")}, "milestones", r"milestones must be a list of integers"),
        ({"min_lr": 1.0, "lr": 0.1}, "min_lr", r"^TrainConfig.min_lr must not exceed lr \(0.1\); got 1.0$"),
        ({"warmup_epochs": 5, "epochs": 5}, "warmup_epochs", r"must be fewer than epochs \(5\); got 5$"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(change: dict, field: str, message: str) -> None:
    with pytest.raises(SettingError, match=message) as caught:
        TrainConfig(**change)
    assert (caught.value.owner, caught.value.field) == ("TrainConfig", field)


def test_lists_become_tuples_and_whole_numbers_floats() -> None:
    c = TrainConfig(mixup_lambda=[0, 1], crop_scale=[1, 1], milestones=[np.int64(3), 7], attacks=["pgd"], lr=1,
                    seed=np.int64(5))  # fmt: skip
    assert (c.mixup_lambda, c.crop_scale, c.milestones, c.attacks) == ((0.0, 1.0), (1.0, 1.0), (3, 7), ("pgd",))
    assert type(c.mixup_lambda[0]) is float and type(c.milestones[0]) is int and type(c.lr) is float
    assert type(c.seed) is int and hash(c) == hash(TrainConfig(**dataclasses.asdict(c)))


_ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=2),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(f.name for f in dataclasses.fields(TrainConfig))), value=_ANY_VALUE)
def test_any_value_of_any_setting_is_taken_or_refused_as_a_setting_error(name: str, value: object) -> None:
    """What a config file or --set can hold never escapes as another exception (an internal error in the CLI)."""
    try:
        c = TrainConfig(**{name: value})
    except SettingError as e:
        assert e.owner == "TrainConfig" and e.field is not None
    else:
        assert TrainConfig(**c.to_dict()) == c  # what a run records reads back


def test_model_names_are_the_models_built() -> None:
    assert MODEL_NAMES == tuple(MODELS)


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


# -- the command line -------------------------------------------------------------------------------------


def _train_parser() -> argparse.ArgumentParser:
    return next(a for a in build_parser()._subparsers._group_actions[0].choices.values() if a.prog.endswith(" train"))


def test_the_setting_flags_are_the_fields_with_cli_on() -> None:
    actions = {a.dest: a for a in _train_parser()._actions}
    flagged = [f for f in dataclasses.fields(TrainConfig) if f.metadata["cli"]]
    assert {f.name for f in flagged} == {"train", "val", "method", "cache", "export", "budget", "seed", "epochs",
                                        "model", "pretrained", "k_per_class", "device", "mixed_precision", "workers"}
    for f in flagged:
        action = actions[f.name]
        assert action.option_strings == [schema.flag_for(TrainConfig, f.name)]
        assert action.help.startswith(f.metadata["help"].replace("%", "%%")) and action.default is None
        assert tuple(action.choices or ()) == (f.metadata["choices"] or ())
    for f in dataclasses.fields(TrainConfig):
        if not f.metadata["cli"]:
            assert f.name not in actions, f"{f.name} has a flag but is declared without one"


def test_flags_and_set_replace_the_config_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["train", "cifar-100", "--show", "--k-per-class", "3", "--mixed-precision", "bf16",
                     "--seed", "7", "--set", "lr=0.5", "--set", "attacks=[pgd]"])  # fmt: skip
    assert code == 0
    shown = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    for name, value in (("k_per_class", "3"), ("mixed_precision", "'bf16'"), ("seed", "7"), ("lr", "0.5"),
                        ("attacks", "('pgd',)")):  # fmt: skip
        assert shown[name].split()[1:] == [value, "command", "line"], shown[name]
    assert shown["epochs"].split()[1:3] == ["300", "assumed:"]  # not given: the config's, with its source


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--k-per-class", "0"], "error: --k-per-class must be an integer >= 1; got 0"),
        (["--set", "epochs=0"], "error: --epochs must be an integer >= 1; got 0"),
        (["--seed", str(2**40)], "error: --seed must be an integer in [0, 4294967295]; got 1099511627776"),
        (["--model", "resnet5"], "error: --model must be one of resnet18, "),
        (["--cache", "c"], "error: --cache is read by method diffusemix only; the method is 'standard'."),
        # a setting without a flag of its own is named by its key, never by a flag that does not exist
        (["--set", "lr=0"], "error: lr must be a number > 0; got 0.0\n"),
        (["--set", "attacks=fgsm"], "error: attacks must be a list of names such as [fgsm, pgd]; got 'fgsm'"),
        (["--set", "image_size=64"], "error: image_size must not exceed load_size (32); got 64."),
        (["--set", "epoch=3"], ("error: unknown setting 'epoch' (did you mean epochs?); `python -m diffusemix train"
                                " --list-settings` lists them")),
    ],
)
def test_the_command_line_names_a_bad_setting_its_own_way(argv: list[str], message: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["train", "cifar-100", "--show", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and "Traceback" not in err, err


def test_list_settings_lists_every_setting_with_its_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["train", "--list-settings"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert list(lines) == [f.name for f in dataclasses.fields(TrainConfig)]
    assert lines["seed"].endswith("; 0 <= seed <= 4294967295 [--seed]")
    assert "one of sgd, adamw" in lines["optimizer"] and "[--" not in lines["optimizer"]
    assert " batch_size " in lines["eval_batch_size"]  # what None means, not "none"


def test_hostile_files_are_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A config, a result or a run folder that is not what it should be: exit 2 and one line, never a traceback."""
    binary = tmp_path / "model.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    keys = tmp_path / "keys.yaml"
    keys.write_text("extends: cifar-100\n3: 4\n")
    not_json = tmp_path / "result.json"
    not_json.write_text("epochs: 3\n")
    a_list = tmp_path / "list.json"
    a_list.write_text("[1, 2]")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{not json")
    cases = [
        (["train", str(binary), "--show"], "is not a text file"),
        (["train", str(keys), "--show"], "unknown setting 3"),
        (["train-compare", str(not_json)], "is not a training result (diffusemix-train-run/1): not JSON"),
        (["train-compare", str(a_list)], "got format 'list'"),
        (["train", "cifar-100", "--train", str(tmp_path), "--val", str(tmp_path), "--out", str(run), "--resume"],
         "is not a run's settings"),
    ]
    for argv, message in cases:
        assert cli_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)


def test_library_errors_keep_the_owner_and_field() -> None:
    """Outside the command line the message names the setting as the library does (TrainConfig.lr)."""
    with pytest.raises(SettingError, match=r"^TrainConfig.lr must be a number > 0; got -1.0$") as caught:
        apply_overrides(load_config("cifar-100"), {"lr": -1}, source="test")
    assert isinstance(caught.value, DiffuseMixError) and caught.value.field == "lr"


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
