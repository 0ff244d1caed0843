"""diffusemix as a real package.

- pyproject declares version ranges and extras; requirements.txt pins the
  versions the project is tested with, and every pin lies in its range;
- the shipped files (prompts.yaml, assets/) are found the same way in a
  checkout and in an installed wheel (``diffusemix.resources.shipped_path``);
- a built wheel, installed into a fresh venv outside the checkout, runs
  ``diffusemix export --help``, ``python -m diffusemix``, an export with the
  shipped fractals and prompts, and the README's library snippet.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffusemix import resources
from diffusemix.errors import DiffuseMixError

REPO = Path(__file__).resolve().parents[1]


def _pins(name: str) -> dict[str, str]:
    """``package -> version`` of a requirements file's ``==`` pins (``-r`` lines are followed)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    out: dict[str, str] = {}
    for line in (REPO / name).read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            out.update(_pins(line[3:].strip()))
        elif line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            out[canonicalize_name(req.name)] = spec.version
    return out


def test_the_package_declares_ranges_and_every_pin_lies_in_them() -> None:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = _pins("requirements-dev.txt")
    core = [Requirement(r) for r in project["dependencies"]]
    extras = {k: [Requirement(r) for r in v] for k, v in project["optional-dependencies"].items()}
    # the library needs no web app: gradio and matplotlib are extras, never core
    assert not {canonicalize_name(r.name) for r in core} & {"gradio", "gradio-client", "matplotlib"}
    assert {"gradio", "gradio-client", "matplotlib"} <= {canonicalize_name(r.name) for r in extras["app"]}
    for req in core + [r for reqs in extras.values() for r in reqs if r.name != "diffusemix"]:
        name = canonicalize_name(req.name)
        assert str(req.specifier), f"{req.name} has no version range"
        assert name in pins, f"{req.name} is declared but pinned nowhere: CI would not test a known version"
        assert req.specifier.contains(pins[name], prereleases=True), f"{req.name}=={pins[name]} is outside {req}"
    assert pins["torch"] == "2.13.0" and project["scripts"]["diffusemix"] == "diffusemix.cli:main"


def test_the_build_hook_ships_what_the_package_looks_for() -> None:
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    shipped = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "SHIPPED" for t in node.targets)
    )
    assert tuple(shipped) == resources.SHIPPED
    manifest = (REPO / "MANIFEST.in").read_text(encoding="utf-8")  # the sdist carries them too
    for name in resources.SHIPPED:
        assert name in manifest


def test_shipped_path_prefers_the_packaged_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "site" / "diffusemix"
    (package / "_data").mkdir(parents=True)
    monkeypatch.setattr(resources, "_PACKAGE", package)
    with pytest.raises(DiffuseMixError, match=r"prompts.yaml is missing: looked in .*_data.*Reinstall"):
        resources.shipped_path("prompts.yaml")
    (tmp_path / "site" / "prompts.yaml").write_text("beside the package (a checkout)")
    assert resources.shipped_path("prompts.yaml") == tmp_path / "site" / "prompts.yaml"
    (package / "_data" / "prompts.yaml").write_text("inside the package (a wheel)")
    assert resources.shipped_path("prompts.yaml") == package / "_data" / "prompts.yaml"
    with pytest.raises(ValueError, match="not shipped"):
        resources.shipped_path("setup.py")


def test_defaults_come_from_the_shipped_files() -> None:
    from diffusemix.fractals import FractalSet, default_fractal_dir
    from diffusemix.prompts import default_prompts_path, load_prompts

    assert default_prompts_path() == resources.shipped_path("prompts.yaml") == REPO / "prompts.yaml"
    assert default_fractal_dir() == resources.shipped_path("assets/fractals") == REPO / "assets" / "fractals"
    assert len(FractalSet.default()) >= 100 and "paper" in load_prompts().names


def _copy_checkout(dst: Path) -> Path:
    """The repository's files without git, build or cache folders (the build must not write into the checkout)."""
    skip = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                  ".hypothesis", ".venv", "_data", "artifacts")
    shutil.copytree(REPO, dst, ignore=skip)
    return dst


def _readme_snippet() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    library = text[text.index("## The library"):]
    return re.search(r"```python\n(.*?)```", library, re.S).group(1)


@pytest.mark.slow
def test_the_wheel_works_from_a_fresh_venv_outside_the_checkout(tmp_path: Path) -> None:
    # 1. build the wheel (no build isolation: setuptools is already here, no download)
    src = _copy_checkout(tmp_path / "src")
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheels), str(src)], check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = wheels.glob("diffusemix-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "diffusemix/_data/prompts.yaml" in names
    assert sum(n.startswith("diffusemix/_data/assets/fractals/") and n.endswith(".png") for n in names) >= 100
    assert not any(n.startswith(("tests/", "app.py", "assets/")) for n in names)
    assert "diffusemix/train/configs/stanford-cars.yaml" in names  # the training recipes

    # 2. a fresh venv that sees this environment's torch & co. (no reinstall) but not the checkout
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    py, script = venv / "bin" / "python", venv / "bin" / "diffusemix"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300)
    work = tmp_path / "elsewhere"
    work.mkdir()

    # the core install has no app extra: gradio and matplotlib cannot be imported there
    no_app = tmp_path / "no_app"
    no_app.mkdir()
    (no_app / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoApp:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('gradio', 'gradio_client', 'matplotlib'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r} (the app extra is not installed)')\n"
        "sys.meta_path.insert(0, _NoApp())\n"
    )

    def run(*cmd: str, app: bool = True) -> subprocess.CompletedProcess:
        env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1",
               "HF_HOME": str(tmp_path / "hf"), "MPLBACKEND": "Agg", **({} if app else {"PYTHONPATH": str(no_app)})}
        return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300)

    # 3. the console script and the module, from the installed package
    where = run(str(py), "-c", "import diffusemix; print(diffusemix.__file__)")
    assert where.returncode == 0 and where.stdout.startswith(str(venv)), where.stdout + where.stderr
    # without the app extra: the library imports, the preview exports, and `diffusemix app` says what to install
    assert run(str(py), "-c", "import gradio", app=False).returncode != 0  # the block works
    proc = run(str(py), "-c", "import diffusemix, diffusemix.export, diffusemix.data, diffusemix.editors", app=False)
    assert proc.returncode == 0, proc.stderr
    for cls in ("cat", "dog"):
        (work / "core" / cls).mkdir(parents=True)
        Image.fromarray(np.full((20, 30, 3), 60 if cls == "cat" else 220, np.uint8)).save(work / "core" / cls / "a.png")
    proc = run(str(script), "export", "core", "core-out", "--editor", "preview", "--prompt-set", "quick", "--size", "32",
               "--no-progress", app=False)
    assert proc.returncode == 0 and len(list((work / "core-out").glob("images/*/*.png"))) == 4, proc.stderr
    proc = run(str(script), "app", "--help", app=False)
    assert proc.returncode == 2 and "pip install 'diffusemix[app]'" in proc.stderr, proc.stderr
    # with it (pip install 'diffusemix[app]'): the app runs from the installed package
    proc = run(str(script), "app", "--help")
    assert proc.returncode == 0 and "usage: diffusemix app" in proc.stdout, proc.stderr
    proc = run(str(script), "export", "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: diffusemix export"), proc.stderr
    assert run(str(py), "-m", "diffusemix", "--help").returncode == 0
    proc = run(str(script), "train", "--list")  # the recipes, read from the installed package
    assert proc.returncode == 0 and "tiny-imagenet" in proc.stdout, proc.stderr

    # 4. an export that needs the shipped fractals and prompts.yaml
    for cls in ("cat", "dog"):
        (work / "data" / cls).mkdir(parents=True)
        Image.fromarray(np.full((20, 30, 3), 90 if cls == "cat" else 200, np.uint8)).save(work / "data" / cls / "a.png")
    proc = run(str(script), "export", "data", "out", "--editor", "preview", "--prompt-set", "quick", "--size", "32",
               "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert len(list((work / "out").glob("images/*/*.png"))) == 4 and (work / "out" / "metadata.jsonl").is_file()

    # 5. the README's library snippet (with the preview: no weights here) and its figure
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(work / "cat.jpg")
    snippet = _readme_snippet()
    assert 'load_editor("auto")' in snippet
    proc = run(str(py), "-c", snippet.replace('load_editor("auto")', 'load_editor("preview")'))
    assert proc.returncode == 0, proc.stderr
    assert (work / "figure.pdf").stat().st_size > 0 and len(list(work.glob("A_*.png"))) == 2
