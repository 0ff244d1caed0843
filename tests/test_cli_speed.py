"""``python -m diffusemix export``: the speed flags (--speed, --cache-interval,
--vae, --tiny-vae, --compile, --batch-size auto), the dry run's time and memory
estimate, and the allocator setting the CLI applies."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from diffusemix import cli, cost
from diffusemix.fractals import write_fractal_set

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_helpers import make_dataset


@pytest.fixture(scope="module")
def fractal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fractals")
    write_fractal_set(folder, count=4, size=64, seed=5)
    return folder


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data", classes=("cat", "dog"), per_class=2)


def run(capsys, inp, out, fractal_dir, *extra):
    args = ["export", str(inp), str(out), "--prompts", "sunset,snowy", "--size", "32", "--seam", "4",
            "--fractals", str(fractal_dir), "--no-progress", *extra]
    code = cli.main(args)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_fast_preset_in_a_dry_run_with_its_estimate(dataset, tmp_path, fractal_dir, capsys, tiny_ip2p_dir):
    code, out, _ = run(capsys, dataset, tmp_path / "out", fractal_dir, "--model", str(tiny_ip2p_dir),
                       "--speed", "fast", "--dry-run")
    assert code == 0, out
    from diffusemix.editors.speed import fastest_dtype

    assert f"in {fastest_dtype('cpu')}, 20 steps" in out and "DeepCache interval 3, tiny VAE" in out
    assert "cost:     10 (image, prompt) pair(s) x 20 steps" in out and "stored full-size measurement" in out
    # explicit flags win over the preset
    code, out, _ = run(capsys, dataset, tmp_path / "out", fractal_dir, "--model", str(tiny_ip2p_dir),
                       "--speed", "fast", "--steps", "7", "--cache-interval", "2", "--dtype", "float32", "--dry-run")
    assert code == 0 and "in float32, 7 steps" in out and "DeepCache interval 2" in out
    code, out, _ = run(capsys, dataset, tmp_path / "out", fractal_dir, "--model", str(tiny_ip2p_dir),
                       "--speed", "paper", "--dry-run")
    assert code == 0 and "in float32, 100 steps" in out and "approximate" not in out
    assert not (tmp_path / "out").exists()


def test_dry_run_calibrates_on_request(dataset, tmp_path, fractal_dir, capsys, tiny_ip2p_dir, monkeypatch):
    seen = []

    def fake_calibrate(editor, *, size):
        seen.append((editor.spec.steps, size))
        return cost.StepCosts(per_step_s=2.0, fixed_s=10.0, peak_gb=3.0, per_extra_sample_gb=0.5, source="calibrated")

    monkeypatch.setattr(cost, "calibrate", fake_calibrate)
    code, out, _ = run(capsys, dataset, tmp_path / "out", fractal_dir, "--model", str(tiny_ip2p_dir),
                       "--steps", "50", "--batch-size", "3", "--dry-run", "--calibrate")
    assert code == 0 and seen == [(50, 32)]
    # 10 pairs x (10 s + 50 x 2 s) = 1100 s; 3 GB + 2 x 0.5 GB at batch 3
    assert "10 (image, prompt) pair(s) x 50 steps ~ 18.3 min, about 4.0 GB of memory at batch 3 (calibrated)" in out
    code, _, err = run(capsys, dataset, tmp_path / "out", fractal_dir, "--calibrate")
    assert code == 2 and "--calibrate goes with --dry-run" in err


def test_real_calibration_on_the_tiny_model(tiny_ip2p_dir):
    from diffusemix.editors import load_editor

    ed = load_editor("instruct-pix2pix", model=str(tiny_ip2p_dir), steps=30, dtype="float32")
    c = cost.calibrate(ed, size=32)
    assert c.per_step_s > 0 and c.fixed_s >= 0 and c.peak_gb > 0 and "calibrated on this machine" in c.source
    e = cost.estimate(4, steps=30, costs=c)
    assert e.seconds == pytest.approx(4 * (c.fixed_s + 30 * c.per_step_s))


def test_stored_costs_scale_and_refuse_what_was_not_measured():
    paper = cost.stored_costs(dtype="float32")
    fast = cost.stored_costs(dtype="bfloat16", vae="tiny", cache_interval=3)
    ratio = cost.estimate(1, steps=100, costs=paper).seconds / cost.estimate(1, steps=20, costs=fast).seconds
    assert ratio > 20
    assert cost.stored_costs(dtype="float32", size=512).per_step_s == pytest.approx(4 * paper.per_step_s)
    with pytest.raises(ValueError, match="no stored CPU measurement for dtype 'float16'"):
        cost.stored_costs(dtype="float16")


def test_lever_flags_are_refused_where_they_cannot_apply(dataset, tmp_path, fractal_dir, capsys, tiny_img2img_dir):
    code, _, err = run(capsys, dataset, tmp_path / "out", fractal_dir, "--editor", "preview", "--vae", "tiny")
    assert code == 2 and "--vae is a setting of the diffusion editors" in err
    code, _, err = run(capsys, dataset, tmp_path / "out", fractal_dir, "--editor", "img2img", "--model",
                       str(tiny_img2img_dir), "--cache-interval", "2", "--dry-run")
    assert code == 2 and "--cache-interval is not a setting of the img2img editor" in err
    code, _, err = run(capsys, dataset, tmp_path / "out", fractal_dir, "--editor", "img2img", "--speed", "fast")
    assert code == 2 and "--speed is not a setting of the img2img editor" in err
    code, _, err = run(capsys, dataset, tmp_path / "out", fractal_dir, "--cache-interval", "0", "--dry-run")
    assert code == 2 and "--cache-interval must be an integer in [1, 1000]; got 0" in err
    code, _, err = run(capsys, dataset, tmp_path / "o", fractal_dir, "--batch-size", "many")
    assert code == 2 and "--batch-size must be an integer or auto; got 'many'" in err


def test_export_applies_the_allocator_setting_unless_turned_off(dataset, tmp_path, fractal_dir, capsys, monkeypatch):
    from diffusemix import runtime

    calls = []
    monkeypatch.setattr(runtime, "setup_process", lambda tune_memory=None: calls.append(tune_memory) or "ok")
    code, _, _ = run(capsys, dataset, tmp_path / "a", fractal_dir, "--editor", "preview")
    code2, _, _ = run(capsys, dataset, tmp_path / "b", fractal_dir, "--editor", "preview", "--no-tune-allocator")
    assert code == code2 == 0 and calls == [None, False]
    run(capsys, dataset, tmp_path / "c", fractal_dir, "--editor", "preview", "--dry-run")
    assert calls == [None, False]  # a dry run changes nothing in the process


def test_every_manifest_row_says_which_levers_made_it(dataset, tmp_path, fractal_dir, capsys, tiny_ip2p_dir):
    import json

    out = tmp_path / "out"
    code, _, err = run(capsys, dataset, out, fractal_dir, "--model", str(tiny_ip2p_dir), "--steps", "2",
                       "--dtype", "bfloat16", "--cache-interval", "2", "--batch-size", "auto")
    assert code == 0, err
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 10
    for row in rows:
        settings = json.loads(row["editor_settings"])
        assert settings["dtype"] == "bfloat16" and settings["cache_interval"] == 2 and settings["vae"] == "full"
        assert settings["compile"] is False and "approximate" not in settings  # what made Î, not a description
        assert "device" not in settings  # it does not change a pixel
        # the batch does (a diffusion model's Î depends on its batch): auto is fixed to a number and recorded
        assert isinstance(settings["batch_size"], int) and settings["batch_size"] >= 1
