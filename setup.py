"""Build hook: ship the top-level ``prompts.yaml`` and ``assets/`` inside the wheel.

Everything else about the package is in pyproject.toml. The repository keeps
these files at its top level (the app, a Hugging Face Space and the scripts
use them there); this hook copies them into the built package as
``diffusemix/_data/...``, where ``diffusemix.resources.shipped_path`` finds
them in an installed wheel. In a checkout or an editable install
(``pip install -e .``) the same function finds them at the top level.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: Kept in step with diffusemix.resources.SHIPPED (a test checks it).
SHIPPED = ("prompts.yaml", "assets/fractals", "assets/examples")


def _files(name: str) -> list[Path]:
    """The files a shipped name stands for (a folder's visible files, recursively)."""
    src = ROOT / name
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise FileNotFoundError(f"{src} is missing: the package ships it (see setup.py)")
    return sorted(
        p for p in src.rglob("*")
        if p.is_file() and not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(src).parts)
    )


class BuildPyWithData(build_py):
    """``build_py`` that also copies the shipped files into ``<build_lib>/diffusemix/_data``."""

    def _data_files(self) -> list[tuple[Path, Path]]:
        target = Path(self.build_lib) / "diffusemix" / "_data"
        return [(p, target / p.relative_to(ROOT)) for name in SHIPPED for p in _files(name)]

    def run(self) -> None:
        super().run()
        for src, dst in self._data_files():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return list(super().get_outputs(include_bytecode)) + [str(dst) for _, dst in self._data_files()]


setup(cmdclass={"build_py": BuildPyWithData})
