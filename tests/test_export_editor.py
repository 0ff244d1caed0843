"""The exporter and its editor (issue 8, section 1): the model loads before
anything is written, and a preview export says so in its summary."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from diffusemix.editors import EditorSpec, load_editor, register_editor
from diffusemix.editors.base import EditResult
from diffusemix.errors import EditorLoadError
from diffusemix.export import ExportOptions, export_dataset
from diffusemix.fractals import FractalSet, write_fractal_set
from diffusemix.recipe import Recipe

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_helpers import make_dataset

RECIPE = Recipe(size=32, seam=4, prompts=("sunset", "snowy"))


@pytest.fixture(scope="module")
def fractals(tmp_path_factory: pytest.TempPathFactory) -> FractalSet:
    folder = tmp_path_factory.mktemp("fractals")
    write_fractal_set(folder, count=3, size=32, seed=2)
    return FractalSet.from_folder(folder)


@register_editor
class FakeDiffusion:
    """A test double that claims to be a diffusion editor (Î = inverted I): an editor of one's own."""

    name = "fake-diffusion"
    is_diffusion = True
    defaults: dict = {"max_retries": 0}
    presets: dict = {}
    notice = None
    device = "cpu"
    max_retries = 0

    def __init__(self, spec: EditorSpec | None = None) -> None:
        self.spec = spec or EditorSpec(name=self.name, max_retries=0)

    def load(self) -> None:
        pass

    def with_settings(self, **changes):
        return self

    def describe(self) -> dict:
        return {"name": self.name, "summary": "fake diffusion"}

    def edit(self, requests, *, progress=None, cancel=None):
        return [EditResult(255 - r.image, seed=r.seed) for r in requests]


def test_a_model_that_cannot_load_leaves_no_run_json(tmp_path: Path, fractals: FractalSet, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data, out = make_dataset(tmp_path / "data", classes=("cat",), per_class=1), tmp_path / "out"
    editor = load_editor("instruct-pix2pix", model="timbrooks/instruct-pix2pix")  # lazy: loads inside the export
    with pytest.raises(EditorLoadError, match="hf download timbrooks/instruct-pix2pix"):
        export_dataset(data, out, recipe=RECIPE, editor=editor, fractals=fractals, progress_bar=False)
    assert not (out / ".diffusemix" / "run.json").exists() and not out.exists()
    # a later run into the same folder is not refused "made with other settings"
    summary = export_dataset(data, out, recipe=RECIPE, editor=load_editor("preview"), fractals=fractals,
                             progress_bar=False)
    assert summary.made == 4


def test_a_preview_export_says_so_in_its_summary_head(tmp_path: Path, fractals: FractalSet) -> None:
    data = make_dataset(tmp_path / "data", classes=("cat",), per_class=1)
    summary = export_dataset(data, tmp_path / "out", recipe=RECIPE, editor=load_editor("preview"),
                             fractals=fractals, options=ExportOptions(workers=1), progress_bar=False)
    head = str(summary).splitlines()[0]
    assert "PREVIEW editor" in head and "not a diffusion model" in head
    rows = [json.loads(r) for r in (tmp_path / "out" / "metadata.jsonl").read_text().splitlines()]
    assert rows and all(r["editor"] == "preview" for r in rows)  # and every row says which editor made it
    summary = export_dataset(data, tmp_path / "out2", recipe=RECIPE, editor=FakeDiffusion(), fractals=fractals,
                             progress_bar=False)
    assert summary.made == 4 and "PREVIEW" not in str(summary) and "not a diffusion model" not in str(summary)
