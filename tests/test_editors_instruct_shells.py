"""The instruction editors through every shell, on their tiny random pipelines (tests/tiny_editors.py).

For each of FLUX.2 [klein], Qwen-Image-Edit and FLUX.1 Kontext: the command
line's export (with ``--save-stages``, ``--cache``, ``--score`` by a tiny
DINOv2), replay of a row, ``DiffuseMixDataset`` over a cache, the dry run
(model, licence, steps, edit size, cost), the licence gate (exit 2 with the
reason, before any work), errors for another architecture and for missing
weights. The size the pipeline saw (the edit size) and the size of Î written
(S) are checked on the pipeline's own call. Random weights make noise, not
edits: these tests check the plumbing, never the look of an image.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffusemix import cli
from diffusemix.editors import load_editor
from diffusemix.export import folder, replay_row
from diffusemix.fractals import FractalSet, write_fractal_set

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_helpers import make_dataset  # noqa: E402

NAMES = ("flux2-klein", "qwen-image-edit", "flux-kontext")
PIPELINE_CLASSES = {
    "flux2-klein": "Flux2KleinPipeline",
    "qwen-image-edit": "QwenImageEditPlusPipeline",
    "flux-kontext": "FluxKontextPipeline",
}
SIZE, EDIT, STEPS = 32, 64, 2


@pytest.fixture(scope="module")
def fractal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("fractals")
    write_fractal_set(d, count=4, size=64, seed=5)
    return d


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two classes, one image each (plus the odd-sized JPEG of the first)."""
    return make_dataset(tmp_path_factory.mktemp("data") / "in", classes=("cat", "dog"), per_class=1)


def folder_of(request: pytest.FixtureRequest, name: str) -> Path:
    return request.getfixturevalue(f"tiny_{name.replace('-', '_')}_dir")


def export_args(name: str, model: Path, data: Path, out: Path, fractal_dir: Path, *extra: str) -> list[str]:
    return ["export", str(data), str(out), "--editor", name, "--model", str(model), "--device", "cpu", "--dtype",
            "float32", "--steps", str(STEPS), "--edit-size", str(EDIT), "--prompts", "snowy", "--size", str(SIZE),
            "--seam", "4", "--fractals", str(fractal_dir), "--no-progress", *extra]


class CallSpy:
    """Records the size of the images a pipeline class is called with, and the height/width asked."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, class_name: str) -> None:
        import diffusers

        cls = getattr(diffusers, class_name)
        real = cls.__call__
        self.image_sizes: list[tuple[int, int]] = []
        self.asked: list[tuple[int, int]] = []

        def spy(pipe, *args, **kwargs):
            images = kwargs.get("image")
            for im in images if isinstance(images, list) else [images]:
                if isinstance(im, Image.Image):
                    self.image_sizes.append(im.size)
            self.asked.append((kwargs.get("height"), kwargs.get("width")))
            return real(pipe, *args, **kwargs)

        monkeypatch.setattr(cls, "__call__", spy)


# ---------------------------------------------------------------------------
# export, stages, scores, replay


@pytest.mark.parametrize("name", NAMES)
def test_cli_export_with_stages_and_scores_then_replay_a_row(
    name, request, data, fractal_dir, tiny_dino_dir, tmp_path, capsys, monkeypatch
):
    model = folder_of(request, name)
    out = tmp_path / "out"
    spy = CallSpy(monkeypatch, PIPELINE_CLASSES[name])
    code = cli.main(export_args(name, model, data, out, fractal_dir, "--save-stages", "--score", "dino",
                                "--scorer-model", str(tiny_dino_dir), "--accept-license", "non-commercial"))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    # the summary names the editor, its edit size and its weights' licence (unknown for toy weights: accepted)
    assert f"edit size {EDIT} px" in captured.out and "licence unknown" in captured.out
    assert "licence:" in captured.out and "accepted: non-commercial use of the weights" in captured.out
    rows = folder.read_rows(out)
    assert len(rows) == 3  # 3 images x 1 prompt
    for row in rows:
        assert row["editor"] == name
        settings = json.loads(row["editor_settings"])
        assert settings["edit_size"] == EDIT and settings["steps"] == STEPS and settings["model"] == str(model)
        assert "{prompt}" in settings["prompt_template"] and settings["dtype"] == "float32"
        assert isinstance(row["score"], float) and row["scorer"] == "dino"
        # the size of Î written is S, the size the pipeline saw is the edit size
        with Image.open(folder.stage_path(out, "generated", row["file_name"])) as im:
            assert im.size == (SIZE, SIZE)
        with Image.open(folder.resolve_in(out, row["file_name"])) as im:
            assert im.size == (SIZE, SIZE)
    assert spy.image_sizes and set(spy.image_sizes) == {(EDIT, EDIT)}
    assert set(spy.asked) == {(EDIT, EDIT)}
    # run.json: the editor's settings and the licence with its acceptance
    run = folder.read_settings(out)
    assert run["editor"]["name"] == name and run["editor"]["edit_size"] == EDIT
    assert run["licence"] == {"model": None, "name": None, "url": None, "commercial_use": None,
                              "accepted": "non-commercial"}
    # replay of a row: the editor rebuilt from the row alone gives the same Î and A (1 grey level: a sample
    # alone vs. in a batch)
    row = rows[0]
    stages = replay_row(row, data, FractalSet.from_folder(fractal_dir))
    with Image.open(folder.stage_path(out, "generated", row["file_name"])) as im:
        assert np.abs(np.asarray(im).astype(int) - stages.generated.astype(int)).max() <= 1
    with Image.open(folder.resolve_in(out, row["file_name"])) as im:
        assert np.abs(np.asarray(im).astype(int) - stages.augmented.astype(int)).max() <= 1
    # the same command again resumes: nothing is made twice
    code = cli.main(export_args(name, model, data, out, fractal_dir, "--save-stages", "--score", "dino",
                                "--scorer-model", str(tiny_dino_dir), "--accept-license", "non-commercial"))
    assert code == 0 and "made:             0 image(s)" in capsys.readouterr().out


@pytest.mark.parametrize("name", NAMES)
def test_cli_cache_then_a_training_dataset_over_it(name, request, data, fractal_dir, tmp_path, capsys):
    from diffusemix.data import DiffuseMixDataset

    model = folder_of(request, name)
    out = tmp_path / "cache"
    code = cli.main(export_args(name, model, data, out, fractal_dir, "--cache", "--accept-license", "non-commercial"))
    assert code == 0, capsys.readouterr().err
    rows = folder.read_rows(out)
    assert len(rows) == 3 and all(r["editor"] == name for r in rows)
    ds = DiffuseMixDataset(out, fractals=fractal_dir, seed=1)
    assert len(ds) >= 3
    image, label = ds[0][:2]
    assert np.asarray(image).shape[:2] == (SIZE, SIZE) and label in (0, 1)


# ---------------------------------------------------------------------------
# the dry run, the licence gate, the errors


def test_dry_run_names_model_licence_steps_edit_size_and_cost(data, fractal_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["export", str(data), str(out), "--editor", "qwen-image-edit", "--device", "cpu", "--prompts",
                     "snowy", "--size", "32", "--fractals", str(fractal_dir), "--dry-run"])
    text = capsys.readouterr().out
    assert code == 0 and not out.exists()
    editor = next(line for line in text.splitlines() if line.strip().startswith("editor:"))
    assert "Qwen/Qwen-Image-Edit-2511" in editor and "40 steps" in editor and "edit size 1024 px" in editor
    licence = next(line for line in text.splitlines() if line.strip().startswith("licence:"))
    assert "Qwen-Image-Edit-2511" in licence and "Apache-2.0, commercial use allowed" in licence
    cost = next(line for line in text.splitlines() if line.strip().startswith("cost:"))
    assert "3 (image, prompt) pair(s) x 40 steps" in cost and "TFLOP" in cost and "edit size 1024 px" in cost
    assert "weights:" in text and "hf download Qwen/Qwen-Image-Edit-2511" in text
    # a non-commercial editor: the dry run says the run would be refused, and why
    code = cli.main(["export", str(data), str(out), "--editor", "flux-kontext", "--device", "cpu", "--prompts",
                     "snowy", "--fractals", str(fractal_dir), "--dry-run"])
    text = capsys.readouterr().out
    assert code == 0 and "FLUX.1 [dev] Non-Commercial License, commercial use NOT allowed" in text
    assert "refused:  the run would stop (exit 2) without --accept-license non-commercial" in text


def test_a_non_commercial_editor_without_the_flag_exits_2_with_the_reason_before_any_work(
    data, fractal_dir, tmp_path, capsys, tiny_flux_kontext_dir
):
    out = tmp_path / "out"
    # the known checkpoint: refused for its licence before its weights are looked for (there are none here)
    code = cli.main(["export", str(data), str(out), "--editor", "flux-kontext", "--device", "cpu", "--prompts",
                     "snowy", "--fractals", str(fractal_dir), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --accept-license is needed: the weights of FLUX.1 Kontext [dev]")
    assert "FLUX.1 [dev] Non-Commercial License" in err and "--accept-license non-commercial" in err
    assert "Traceback" not in err and not out.exists()
    # FLUX.2 [klein] 9B: the same family's non-commercial weights
    code = cli.main(["export", str(data), str(out), "--editor", "flux2-klein", "--model",
                     "black-forest-labs/FLUX.2-klein-9B", "--device", "cpu", "--prompts", "snowy", "--fractals",
                     str(fractal_dir), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "FLUX Non-Commercial License" in err and not out.exists()
    # weights not known here (a toy folder): their licence is unknown, so the same flag is needed
    code = cli.main(export_args("flux-kontext", tiny_flux_kontext_dir, data, out, fractal_dir))
    err = capsys.readouterr().err
    assert code == 2 and "is not known here" in err and not out.exists()
    # the library refuses the same way (a SettingError naming accept_license)
    from diffusemix.errors import SettingError
    from diffusemix.export import ExportOptions, export_dataset
    from diffusemix.recipe import Recipe

    with pytest.raises(SettingError, match="ExportOptions.accept_license is needed"):
        export_dataset(data, out, recipe=Recipe(prompts=("snowy",), size=32),
                       editor=load_editor("flux-kontext", model=str(tiny_flux_kontext_dir), device="cpu"),
                       fractals=FractalSet.from_folder(fractal_dir), options=ExportOptions(), progress_bar=False)
    assert not out.exists()


def test_an_apache_editor_needs_no_flag_and_missing_weights_exit_2_with_how_to_get_them(
    data, fractal_dir, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    out = tmp_path / "out"
    for name, hub_id in (("flux2-klein", "black-forest-labs/FLUX.2-klein-4B"),
                         ("qwen-image-edit", "Qwen/Qwen-Image-Edit-2511")):
        code = cli.main(["export", str(data), str(out), "--editor", name, "--device", "cpu", "--prompts", "snowy",
                         "--fractals", str(fractal_dir), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2, err
        assert f"hf download {hub_id}" in err and "--model /path/to/" in err and "--editor preview" in err
        assert "accept-license" not in err and not out.exists()


def test_an_unknown_architecture_folder_is_a_clear_error_naming_the_editors(data, fractal_dir, tmp_path, capsys):
    wan = tmp_path / "wan"
    wan.mkdir()
    (wan / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    out = tmp_path / "out"
    for name in ("flux2-klein", "instruct-pix2pix", "auto"):
        code = cli.main(["export", str(data), str(out), "--editor", name, "--model", str(wan), "--device", "cpu",
                         "--prompts", "snowy", "--fractals", str(fractal_dir), "--no-progress", "--accept-license",
                         "non-commercial"])
        err = capsys.readouterr().err
        assert code == 2, err
        assert "holds a WanPipeline" in err and "flux2-klein" in err and "qwen-image-edit" in err, err
        assert "instruct-pix2pix" in err and not out.exists()


def test_export_help_lists_the_new_editors_and_their_settings(capsys):
    with pytest.raises(SystemExit):
        cli.main(["export", "--help"])
    text = capsys.readouterr().out
    assert "flux2-klein" in text and "qwen-image-edit" in text and "flux-kontext" in text
    for flag in ("--edit-size", "--prompt-template", "--true-cfg-scale", "--negative-prompt", "--accept-license"):
        assert flag in text


# ---------------------------------------------------------------------------
# the report: one export names its weights; two exports compare their editors


def test_report_compares_the_editors_of_two_exports(
    data, fractal_dir, tiny_flux2_klein_dir, tiny_dino_dir, tmp_path, capsys
):
    common = ["--save-stages", "--score", "dino", "--scorer-model", str(tiny_dino_dir)]
    klein, preview = tmp_path / "klein", tmp_path / "preview"
    assert cli.main(export_args("flux2-klein", tiny_flux2_klein_dir, data, klein, fractal_dir, *common,
                                "--accept-license", "non-commercial")) == 0
    assert cli.main(["export", str(data), str(preview), "--editor", "preview", "--prompts", "snowy", "--size",
                     str(SIZE), "--seam", "4", "--fractals", str(fractal_dir), "--no-progress", *common]) == 0
    capsys.readouterr()
    # one export: the report names the model and its weights' licence
    assert cli.main(["report", str(klein), "--lowest", "2"]) == 0
    out = capsys.readouterr().out
    assert "weights: flux2-klein (pipeline): licence unknown here; accepted: non-commercial use" in out
    # two: their editors side by side
    assert cli.main(["report", str(klein), str(preview), "--out", str(tmp_path / "cmp.png")]) == 0
    out = capsys.readouterr().out
    assert "2 exports compared" in out and "Î by flux2-klein (pipeline); steps 2, edit_size 64" in out
    assert "Î by preview (not a diffusion model)" in out and "NOT a diffusion model's" in out
    lines = [ln for ln in out.splitlines() if ln.startswith("snowy")]
    assert len(lines) == 2 and all(" 3 " in ln for ln in lines)  # 3 Î each, one line per export
    assert all(ln.split()[-1] != "-" for ln in lines)  # both scored
    with Image.open(tmp_path / "cmp.png") as im:
        assert im.size[0] > 500
    assert (tmp_path / "cmp.txt").read_text(encoding="utf-8") == out.split("wrote ")[0]
    # a folder that is not an export: exit 2, saying what to give
    assert cli.main(["report", str(klein), str(tmp_path / "nowhere")]) == 2
    assert "has no manifest" in capsys.readouterr().err
