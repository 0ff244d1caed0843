"""The one schema (issue 17): settings declared once, the export folder owned by one module, errors with fields.

- the same seed gives byte-identical files before and after the change (files made by commit a4f87bf);
- a folder made by the previous version resumes (its images moved under images/), and one made with other
  settings is refused clearly;
- a new setting is one field: it reaches --help, the app's defaults, the rows and run.json by itself;
- a user's mistake is a one-line error (exit 2), a bug an internal error (exit 1 with the traceback;
  in the app a short message with a log id, the traceback in the server log);
- no module but the folder's owner names the manifest or the state folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from diffusemix import schema
from diffusemix.cli import main
from diffusemix.editors import EditorSpec, load_editor, register_editor
from diffusemix.errors import DiffuseMixError, SettingError
from diffusemix.export import ExportOptions, export_dataset, folder
from diffusemix.export.settings import read_run, run_settings
from diffusemix.fractals import FractalSet, write_fractal_set
from diffusemix.recipe import Recipe
from diffusemix.schema import setting

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from export_helpers import make_dataset  # noqa: E402

PRE = json.loads((HERE / "fixtures" / "pre_schema.json").read_text(encoding="utf-8"))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FractalSet]:
    """The data and fractals tests/fixtures/make_pre_schema.py used (both deterministic)."""
    root = tmp_path_factory.mktemp("pre")
    data = make_dataset(root / "data")
    write_fractal_set(root / "fractals", count=5, size=64, seed=3)
    return data, FractalSet.from_folder(root / "fractals")


# ---------------------------------------------------------------------------
# byte-identical to the previous version


@pytest.mark.parametrize("case", sorted(PRE["cases"]))
def test_the_same_seed_gives_the_files_the_previous_version_made(case, inputs, tmp_path):
    data, fractals = inputs
    spec = PRE["cases"][case]
    recipe = Recipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec["recipe"].items()})
    out = tmp_path / case
    export_dataset(data, out, recipe=recipe, editor=load_editor("preview"), fractals=fractals,
                   options=ExportOptions(**spec["options"]), progress_bar=False)
    rows = folder.read_rows(out)
    assert len(rows) == len(spec["files"])
    for row in rows:
        want = spec["files"][f"{row['source']}|{row['prompt']}|{row['copy']}"]
        got = {"output": _sha(folder.resolve_in(out, row["file_name"]))}
        if "input_file_name" in row:
            got["input"] = _sha(folder.resolve_in(out, row["input_file_name"]))
        for stage in folder.SAVED_STAGES if "input" in want and "input_file_name" not in row else ():
            got[stage] = _sha(folder.stage_path(out, stage, row["file_name"]))
        if "generated" in got:  # the saved Î's PNG text chunk now also carries its model call: same pixels
            got["generated"] = want["generated"] if _same_saved_generated(
                folder.stage_path(out, "generated", row["file_name"]), row) else got["generated"]
        assert got == want, row["file_name"]
    # the rows say what they said, field for field (the editor's settings are now only what changes Î, and the
    # row records its plan chunk and model call since batches are part of the plan; the files now lie under the
    # images root: images/<class>/..., the rest of each name as before)
    old = {r["file_name"]: r for r in spec["rows"]}
    for row in rows:
        assert row["file_name"].startswith("images/")
        before = old[folder.image_relative(row["file_name"])]
        assert {k: v for k, v in row.items() if k not in ("editor_settings", "file_name", "chunk", "batch")} == {
            k: v for k, v in before.items() if k not in ("editor_settings", "file_name")
        }
        assert json.loads(row["editor_settings"]) == {"batch_size": 8, "max_retries": 2}
        assert row["batch"] == [{k: row[k] for k in ("source", "prompt", "copy", "seed")}]  # the preview: one at a time


def _same_saved_generated(path: Path, row: dict) -> bool:
    """The saved Î as the previous version wrote it, but for the model call added to its text chunk: re-encoded
    without the call, it must be the previous file byte for byte (checked against the fixture's hash by the caller,
    which takes this only when it holds)."""
    import io

    from PIL import Image, PngImagePlugin

    with Image.open(path) as im:
        meta = json.loads(im.info["diffusemix"])
        pixels = im.copy()
    assert meta.pop("batch") == row["batch"]
    info = PngImagePlugin.PngInfo()
    info.add_text("diffusemix", json.dumps(meta))
    buf = io.BytesIO()
    pixels.save(buf, format="PNG", pnginfo=info)
    spec = next(c for c in PRE["cases"].values() if f"{row['source']}|{row['prompt']}|{row['copy']}" in c["files"])
    return hashlib.sha256(buf.getvalue()).hexdigest() == spec["files"][f"{row['source']}|{row['prompt']}|{row['copy']}"][
        "generated"]


# ---------------------------------------------------------------------------
# a folder made by the previous version


def _v2_folder(tmp_path: Path, data: Path, fractals: FractalSet) -> Path:
    """A finished export as version 2 left it: its images (made now: the test above holds them equal), in
    that version's layout (class folders at the top of OUTPUT), and its state files as that version wrote
    them (tests/fixtures/v2_state, made by commit a4f87bf)."""
    two = make_dataset(tmp_path / "v2data", classes=("cat", "dog"), per_class=2)
    out = tmp_path / "v2"
    export_dataset(two, out, recipe=Recipe(size=32, prompts=("sunset", "snowy"), seam=4), editor=load_editor("preview"),
                   fractals=fractals, options=ExportOptions(save_stages=True), progress_bar=False)
    for cls in ("cat", "dog"):
        (out / "images" / cls).rename(out / cls)
    (out / "images").rmdir()
    folder.card_path(out).unlink()
    shutil.rmtree(out / folder.STATE_DIR)
    (out / folder.STATE_DIR).mkdir()
    state = HERE / "fixtures" / "v2_state"
    run = json.loads((state / "run.json").read_text(encoding="utf-8"))
    run["input"] = str(two.resolve())
    folder.settings_path(out).write_text(json.dumps(run), encoding="utf-8")
    for name in ("rows-0-of-1.jsonl", "done-0-of-1.json", "plan.jsonl"):
        shutil.copy(state / name, out / folder.STATE_DIR / name)
    shutil.copy(state / "metadata.jsonl", folder.manifest_path(out))
    return out


def test_a_folder_made_by_the_previous_version_resumes_and_is_read(inputs, tmp_path):
    data, fractals = inputs
    out = _v2_folder(tmp_path, data, fractals)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.png")}
    old_manifest = folder.manifest_path(out).read_text(encoding="utf-8")
    run = read_run(out)  # version 2 read into the dataclasses
    assert run.recipe == Recipe(size=32, prompts=("sunset", "snowy"), seam=4)
    assert run.editor == EditorSpec(name="preview", max_retries=2) and run.scorer is None
    assert folder.images_root(out) == out  # read where it is: class folders at the top
    summary = export_dataset(tmp_path / "v2data", out, recipe=run.recipe, editor=load_editor("preview"),
                             fractals=fractals, options=ExportOptions(save_stages=True), progress_bar=False)
    assert summary.made == 0 and summary.skipped_done == 10  # resumed: nothing made again
    # the class folders moved under images/ (stages stay where they were), every byte kept
    moved = {(Path("images") / k if k.parts[0] != "stages" else k): v for k, v in before.items()}
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*.png")} == moved
    assert folder.images_root(out) == out / "images" and folder.card_path(out).is_file()
    new_rows = folder.read_rows(out)
    old_rows = [json.loads(line) for line in old_manifest.splitlines()]
    assert [r["file_name"] for r in new_rows] == ["images/" + r["file_name"] for r in old_rows]
    assert [(r["label"], r["class_name"]) for r in new_rows] == [(r["label"], r["class_name"]) for r in old_rows]
    assert json.loads(folder.settings_path(out).read_text())["settings_version"] == 4  # rewritten in this version's words


def test_a_previous_version_folder_made_with_other_settings_is_refused_naming_them(inputs, tmp_path):
    data, fractals = inputs
    out = _v2_folder(tmp_path, data, fractals)
    with pytest.raises(DiffuseMixError, match=r"made with other settings \(recipe.seed: 0 -> 5\).*new output folder"):
        export_dataset(tmp_path / "v2data", out, recipe=Recipe(size=32, prompts=("sunset", "snowy"), seam=4, seed=5),
                       editor=load_editor("preview"), fractals=fractals, options=ExportOptions(save_stages=True),
                       progress_bar=False)


# ---------------------------------------------------------------------------
# a new setting is one field


@dataclasses.dataclass(frozen=True)
class SharperRecipe(Recipe):
    """The recipe with one more setting, declared once."""

    sharpness: float = setting(0.5, kind="float", low=0.0, high=1.0, stage="mixing", label="Sharpness",
                               help="how sharp the seam looks (a setting added in one place)")


@dataclasses.dataclass(frozen=True)
class GlossySpec(EditorSpec):
    """An editor spec with one more setting that changes Î."""

    gloss: float | None = setting(None, kind="float", low=0.0, high=2.0, optional=True, stage="generation",
                                  label="Gloss", help="how glossy Î is (a setting added in one place)")


@register_editor
class GlossyEditor:
    """An editor whose settings include the new field (the preview's look, recorded with its gloss)."""

    name = "glossy"
    is_diffusion = False
    defaults: dict = {"max_retries": 2, "gloss": 1.0}
    presets: dict = {}
    notice = None
    device = "cpu"
    max_retries = 2

    def __init__(self, spec: GlossySpec) -> None:
        self.spec = spec
        self._inner = load_editor("preview")

    def load(self) -> None:
        pass

    def with_settings(self, **changes):
        return GlossyEditor(self.spec.replace(**changes))

    def describe(self) -> dict:
        return {"name": self.name, "summary": f"glossy preview, gloss {self.spec.gloss}"}

    def edit(self, requests, *, progress=None, cancel=None):
        return self._inner.edit(requests, progress=progress, cancel=cancel)


def test_a_new_setting_is_one_field(inputs, tmp_path):
    data, fractals = inputs
    # 1. --help: the flag, its help text and its default, from the field alone
    parser = argparse.ArgumentParser()
    schema.add_flags(parser, SharperRecipe)
    schema.add_flags(parser, GlossySpec, only=("gloss",))
    text = parser.format_help()
    assert "--sharpness" in text and "how sharp the seam looks" in text and "(default: 0.5)" in text
    assert "--gloss" in text
    assert schema.flag_values(SharperRecipe, parser.parse_args(["--sharpness", "0.25"]))["sharpness"] == 0.25
    # 2. validation, with the field named the way each shell names it
    with pytest.raises(SettingError, match=r"SharperRecipe.sharpness must be a number in \[0, 1\]; got 3"):
        SharperRecipe(sharpness=3)
    err = pytest.raises(SettingError, SharperRecipe, sharpness=3).value
    assert err.message(namer=schema.flag_for).startswith("--sharpness must be")
    assert err.message(namer=schema.label_for).startswith("Sharpness must be")
    # 3. the app's defaults and labels
    assert schema.field_default(SharperRecipe, "sharpness") == 0.5 and schema.label_for(GlossySpec, "gloss") == "Gloss"
    # 4. run.json and the rows of an export
    recipe = SharperRecipe(size=32, prompts=("sunset",), seam=4, sharpness=0.75)
    editor = GlossyEditor(GlossySpec(name="glossy", max_retries=2, gloss=1.5))
    out = tmp_path / "out"
    export_dataset(data, out, recipe=recipe, editor=editor, fractals=fractals, progress_bar=False)
    run = json.loads(folder.settings_path(out).read_text(encoding="utf-8"))
    assert run["recipe"]["sharpness"] == 0.75 and run["editor"]["gloss"] == 1.5
    rows = folder.read_rows(out)
    assert rows and all(json.loads(r["editor_settings"]) == {"gloss": 1.5, "max_retries": 2} for r in rows)
    # 5. and what a field changes comes from its stage: a new Î setting makes a new folder, as any other
    scan = __import__("diffusemix.export.scan", fromlist=["scan_input"]).scan_input(data)
    changed = run_settings(scan, recipe, editor.with_settings(gloss=0.5), fractals, ExportOptions())
    with pytest.raises(DiffuseMixError, match=r"editor.gloss: 1.5 -> 0.5"):
        from diffusemix.export.settings import adopt_settings

        adopt_settings(out, changed, ExportOptions(), "t")


# ---------------------------------------------------------------------------
# errors: the user's mistakes and the bugs


def test_a_bug_deep_inside_is_an_internal_error_and_a_mistake_a_clear_line(inputs, tmp_path, capsys, monkeypatch):
    data, fractals = inputs
    args = ["export", str(data), str(tmp_path / "out"), "--editor", "preview", "--prompts", "sunset", "--size", "32",
            "--fractals", str(fractals.folder), "--no-progress"]
    # a user's mistake: exit 2, one line naming the flag, no traceback
    assert main([*args, "--seam", "-3"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --seam must be an integer >= 0; got -3\n"
    # a bug (a numpy shape error deep in the mixing): exit 1, the traceback, and it says it is a bug
    import diffusemix.export.writer as writer

    def broken(*a, **k):
        raise ValueError("operands could not be broadcast together with shapes (32,32,3) (31,32,3)")

    monkeypatch.setattr(writer, "apply_record", broken)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "could not be broadcast" in err
    assert "internal error: this is a bug in diffusemix" in err and "error: operands" not in err


def test_the_app_shows_a_bug_as_an_internal_error_with_a_log_id(caplog):
    import gradio as gr

    from diffusemix.ui.shared import user_errors

    @user_errors
    def handler(kind: str):
        if kind == "user":
            raise SettingError("must be in [0, 1]", owner="Recipe", field="lam", value=5.0)
        raise ValueError("index 7 is out of bounds for axis 0 with size 3")

    with pytest.raises(gr.Error) as exc:
        handler("user")
    assert exc.value.message == "λ (fractal weight) must be in [0, 1]; got 5.0"  # the control's label
    with caplog.at_level("ERROR", logger="diffusemix.app"), pytest.raises(gr.Error) as exc:
        handler("bug")
    message = exc.value.message
    log_id = re.search(r"log id ([0-9a-f]{8})", message).group(1)
    assert message.startswith("Internal error (ValueError") and "out of bounds" not in message
    record = next(r for r in caplog.records if log_id in r.getMessage())
    assert record.exc_info is not None and "out of bounds" in str(record.exc_info[1])


# ---------------------------------------------------------------------------
# one owner of the export folder


def _code_strings(tree: "ast.AST") -> list[tuple[int, str]]:
    """Every string constant of a module's code (docstrings left out: prose may name the files)."""
    import ast

    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


def test_only_the_folder_module_names_the_manifest_and_the_state_folder():
    import ast

    root = HERE.parent / "diffusemix"
    names = re.compile(r"metadata\.jsonl|\.diffusemix\b|run\.json|errors\.jsonl")
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "export" / "folder.py":
            continue
        for line, text in _code_strings(ast.parse(path.read_text(encoding="utf-8"))):
            if names.search(text):
                offenders.append(f"{path.relative_to(root)}:{line}: {text[:80]!r}")
    assert offenders == []
