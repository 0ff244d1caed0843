"""``python -m diffusemix train``: every shipped config end to end on a tiny synthetic dataset and a tiny model.

Also: every method, equal budgets across dataset sizes, resume = an uninterrupted run, transfer from a
run's weights, the comparison plot and table, and two CPU processes under ``accelerate launch``.
Numbers here say nothing about accuracy: the data are synthetic and the models tiny (the runs say so).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from export_helpers import make_dataset
from safetensors.torch import load_file

from diffusemix.cli import main as cli_main
from diffusemix.editors import load_editor
from diffusemix.export import ExportOptions, export_dataset
from diffusemix.fractals import FractalSet, write_fractal_set
from diffusemix.recipe import Recipe
from diffusemix.train.config import apply_overrides, load_config, shipped_configs
from diffusemix.train.loop import train_run
from diffusemix.train.results import markdown_table, plot_runs, read_result

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("ant", "bee", "cow")
SMOKE = "smoke run on synthetic data"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Train/val class folders, a fractal set, a preview-editor cache and a preview-editor export of train."""
    root = tmp_path_factory.mktemp("train-world")
    train = make_dataset(root / "train", classes=CLASSES, per_class=3)  # 3 per class + one odd jpg: 10 images
    val = make_dataset(root / "val", classes=CLASSES, per_class=2)
    write_fractal_set(root / "fractals", count=3, size=32, seed=1)
    fractals = FractalSet.from_folder(root / "fractals")
    recipe = Recipe(size=32, prompts=("sunset", "snowy"), seam=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, opts in (("cache", ExportOptions(cache=True)), ("export", ExportOptions())):
            export_dataset(train, root / name, recipe=recipe, editor=load_editor("preview"), fractals=fractals,
                           options=opts, progress_bar=False)  # fmt: skip
    return {"root": root, "train": train, "val": val, "fractals": root / "fractals", "cache": root / "cache",
            "export": root / "export"}  # fmt: skip


def _tiny(world: dict[str, Path], config: str, **extra: Any) -> Any:
    """A shipped config made tiny: a tiny model, 32 px, one epoch of batches of 4, one process, no workers."""
    values = dict(train=str(world["train"]), val=str(world["val"]), model="tiny-resnet", load_size=40, image_size=32,
                  epochs=1, batch_size=4, workers=0, mixed_precision="no", device="cpu")  # fmt: skip
    values.update(extra)
    if values.get("method") == "diffusemix":
        values.setdefault("cache", str(world["cache"]))
        values.setdefault("fractals", str(world["fractals"]))
    if values.get("method") == "diffusemix-export":
        values.setdefault("export", str(world["export"]))
    return apply_overrides(load_config(config), values, source="test")


def _run(loaded: Any, out: Path, **kw: Any) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the preview cache's warning is recorded in the result instead
        return train_run(loaded, out, notes=(SMOKE,), log=lambda _s: None, **kw)


#: Each shipped config runs with one of the methods, so that every method runs too.
METHOD_OF = {
    "stanford-cars": "diffusemix-export",
    "cub-200": "diffusemix",
    "aircraft": "mixup",
    "flowers-102": "cutmix",
    "cifar-100": "none",
    "tiny-imagenet": "standard",
    "data-scarcity-flowers-102": "diffusemix",
    "transfer-stanford-cars": "standard",
    "robustness-cifar-100": "standard",
}


@pytest.fixture(scope="module")
def pretrained(world: dict[str, Path]) -> Path:
    """A tiny model trained one epoch: what the transfer config fine-tunes from."""
    out = world["root"] / "runs" / "source-model"
    _run(_tiny(world, "cifar-100", model="tiny-resnet"), out)
    return out / "model"


def test_every_shipped_config_has_a_smoke_test() -> None:
    assert set(METHOD_OF) == set(shipped_configs())
    assert set(METHOD_OF.values()) == {"none", "standard", "mixup", "cutmix", "diffusemix", "diffusemix-export"}


@pytest.mark.parametrize("config", sorted(METHOD_OF))
def test_smoke_per_config(config: str, world: dict[str, Path], pretrained: Path) -> None:
    extra: dict[str, Any] = {"method": METHOD_OF[config]}
    if config.startswith("data-scarcity"):
        extra["k_per_class"] = 2
    if config.startswith("transfer"):
        extra["pretrained"] = str(pretrained)
    if config.startswith("robustness"):
        extra.update(robust_samples=4, pgd_steps=2)
    out = world["root"] / "runs" / config
    result = _run(_tiny(world, config, **extra), out)
    # the run folder and its JSON
    assert (out / "result.json").is_file() and (out / "model" / "config.json").is_file()
    assert read_result(out)["method"] == METHOD_OF[config] == result["method"]
    assert result["complete"] and result["steps_taken"] == result["budget"]["total_steps"] > 0
    assert len(result["epochs"]) == 1 and 0 <= result["final"]["val_acc"] <= 1
    assert result["sources"]["model"] == "test" and result["sources"]["epochs"] == "test"
    assert result["sources"]["optimizer"].startswith(("author", "assumed", "paper"))
    assert SMOKE in result["not_paper_numbers"]
    assert any("tiny test model" in r for r in result["not_paper_numbers"])
    data = result["data"]
    if METHOD_OF[config] == "diffusemix":
        assert any("preview" in r for r in result["not_paper_numbers"])  # the stand-in Î is said
        if config.startswith("data-scarcity"):  # 2 images x 3 classes, each with 2 Î and its original
            assert data["real_images"] == 6 and data["items_per_epoch"] == 18
            assert data["subset"]["k_per_class"] == 2 and len(data["subset"]["keys"]) == 6
        else:  # 10 images: 20 Î slots + 10 originals
            assert data["real_images"] == 10 and data["items_per_epoch"] == 30
    elif METHOD_OF[config] == "diffusemix-export":
        assert data["items_per_epoch"] == 10 + 20 and any("preview" in r for r in result["not_paper_numbers"])
    else:
        assert data["items_per_epoch"] == 10
    if config.startswith("robustness"):
        rob = result["robustness"]
        assert set(rob) == {"clean", "fgsm", "pgd"} and rob["pgd"]["total"] == 4
        assert rob["pgd"]["eps"] == pytest.approx(8 / 255) and rob["pgd"]["steps"] == 2
    if config.startswith("transfer"):
        assert result["model"]["pretrained"] == str(pretrained)


def test_equal_steps_whatever_the_dataset_size(world: dict[str, Path]) -> None:
    """Budget steps: a method on the real 10 images and DiffuseMix on 30 items take the same optimizer steps."""
    runs = {}
    for method in ("cutmix", "diffusemix"):
        cfg = _tiny(world, "cifar-100", method=method, budget="steps", epochs=2)
        runs[method] = _run(cfg, world["root"] / "runs" / f"budget-{method}")
    a, b = runs["cutmix"], runs["diffusemix"]
    assert a["data"]["items_per_epoch"] == 10 and b["data"]["items_per_epoch"] == 30
    assert a["steps_taken"] == b["steps_taken"] == 2 * 3  # 2 epochs x ceil(10 real / 4)
    assert a["images_seen"] == b["images_seen"] == 24
    assert a["budget"]["mode"] == b["budget"]["mode"] == "steps"
    assert b["budget"]["passes_over_dataset"] < a["budget"]["passes_over_dataset"]
    same_epochs = _tiny(world, "cifar-100", method="diffusemix", budget="epochs", epochs=2)
    assert _run(same_epochs, world["root"] / "runs" / "budget-epochs")["steps_taken"] == 2 * 8  # ceil(30 / 4)


def test_resume_gives_the_uninterrupted_run(world: dict[str, Path]) -> None:
    cfg = _tiny(world, "flowers-102", method="mixup", epochs=3)
    whole = _run(cfg, world["root"] / "runs" / "whole")
    part = world["root"] / "runs" / "parts"
    first = _run(cfg, part, stop_at_epoch=1)
    assert not first["complete"] and len(first["epochs"]) == 1 and not (part / "model").exists()
    with pytest.raises(ValueError, match="already holds a run"):
        _run(cfg, part)
    with pytest.raises(ValueError, match=r"the settings differ from the run .* \(lr\)"):
        _run(apply_overrides(cfg, {"lr": 0.5}, source="t"), part, resume=True)
    done = _run(apply_overrides(cfg, {"checkpoint_every": 2}, source="t"), part, resume=True)  # run-only: allowed
    assert done["complete"] and done["resumed_at"] == [first["steps_taken"]]
    assert [e["val_acc"] for e in done["epochs"]] == [e["val_acc"] for e in whole["epochs"]]
    assert [e["train_loss"] for e in done["epochs"]] == pytest.approx([e["train_loss"] for e in whole["epochs"]],
                                                                      rel=1e-6)  # fmt: skip
    w1 = load_file(str(world["root"] / "runs" / "whole" / "model" / "model.safetensors"))
    w2 = load_file(str(part / "model" / "model.safetensors"))
    assert w1.keys() == w2.keys()
    assert all(torch.allclose(w1[k], w2[k], atol=1e-6) for k in w1)


def test_k_per_class_keeps_only_the_drawn_images_of_an_export(world: dict[str, Path]) -> None:
    result = _run(_tiny(world, "stanford-cars", method="diffusemix-export", k_per_class=1),
                  world["root"] / "runs" / "export-k1")  # fmt: skip
    keys = set(result["data"]["subset"]["keys"])
    assert len(keys) == 3 and result["data"]["items_per_epoch"] == 3 + 3 * 2  # each drawn image's 2 A
    rows = [json.loads(x) for x in (world["export"] / "metadata.jsonl").read_text().splitlines() if x.strip()]
    assert {r["source"] for r in rows} >= keys  # the keys are the export rows' sources


def test_hf_datasets_source(world: dict[str, Path]) -> None:
    """hf:NAME[:SPLIT] goes through 🤗 load_dataset (here a local folder, read by its imagefolder builder)."""
    cfg = _tiny(world, "tiny-imagenet", train=f"hf:{world['train']}:train", val=f"hf:{world['val']}:train",
                k_per_class=2)  # fmt: skip
    result = _run(cfg, world["root"] / "runs" / "hf")
    assert result["data"]["classes"] == 3 and result["data"]["real_images"] == 6
    assert all(k.startswith("hf:") for k in result["data"]["subset"]["keys"])
    bad = _tiny(world, "tiny-imagenet", train=f"hf:{world['train']}:train", val=f"hf:{world['val']}:train",
                label_column="fine_label")  # fmt: skip
    with pytest.raises(ValueError, match="has no column 'fine_label'"):
        _run(bad, world["root"] / "runs" / "hf-bad")


def test_compare_draws_the_plot_and_the_table(world: dict[str, Path], tmp_path: Path, capsys) -> None:
    runs = []
    for method in ("standard", "mixup", "cutmix"):
        out = tmp_path / method
        _run(_tiny(world, "cifar-100", method=method, epochs=2), out)
        runs.append(str(out))
    code = cli_main(["train-compare", *runs, "--out", str(tmp_path / "cmp.png"), "--table", str(tmp_path / "t.md")])
    assert code == 0
    printed = capsys.readouterr().out
    table = (tmp_path / "t.md").read_text()
    assert printed.strip() == table.strip()
    assert table.startswith("| run | method | budget |") and table.count("\n| ") == len(runs)
    assert "Not paper numbers: " + SMOKE in table and "tiny test model" in table
    png = tmp_path / "cmp.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    results = [read_result(r) for r in runs]
    assert "| cutmix |" in markdown_table(results)
    assert plot_runs(results, tmp_path / "again.png").is_file()


def test_cli_says_what_is_missing(world: dict[str, Path], capsys) -> None:
    assert cli_main(["train", "cifar-100", "--method", "diffusemix", "--out", str(world["root"] / "x")]) == 2
    assert "the run needs --train, --val, --cache" in capsys.readouterr().err
    assert cli_main(["train", "cifar-100", "--set", "epochs=0"]) == 2
    assert "error: --epochs must be an integer >= 1; got 0" in capsys.readouterr().err
    assert cli_main(["train-compare", str(world["root"])]) == 2
    assert "no result.json" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(world: dict[str, Path], tmp_path: Path) -> None:
    """`accelerate launch --multi_gpu --num_processes 2` on a machine without a GPU: two gloo CPU processes.

    (`accelerate launch --cpu --num_processes 2` starts ONE process in accelerate 1.15: its multi-CPU mode
    needs MPI. The run records the processes it had, so the difference is visible.)
    """
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", "diffusemix", "train", "cifar-100",
           "--train", str(world["train"]), "--val", str(world["val"]), "--out", str(out), "--model", "tiny-resnet",
           "--epochs", "2", "--workers", "0", "--set", "batch_size=2", "--set", "load_size=32",
           "--method", "cutmix", "--budget", "steps", "--note", SMOKE]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["environment"]["processes"] == 2
    assert result["budget"]["global_batch"] == 4  # 2 per process
    assert result["steps_taken"] == 2 * 3  # ceil(10 / 4) per epoch
    assert done.stdout.count("[cutmix] epoch 2/2") == 1  # one process speaks
