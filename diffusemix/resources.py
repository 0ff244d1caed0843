"""Files shipped with diffusemix: ``prompts.yaml`` and ``assets/`` (the fractal
set and the app's example images).

They live at the top of the repository (a layout the project keeps), not
inside the package. So that a checkout and an installed wheel find them the
same way, the build (``setup.py``'s ``build_py`` hook) copies them into the
wheel as package data under ``diffusemix/_data/``, and :func:`shipped_path`
looks in two places, in this order:

1. ``<package>/_data/<name>``: an installed wheel (``pip install .``);
2. ``<package>/../<name>``: a checkout, or an editable install
   (``pip install -e .``), where the package folder sits beside them.

The packaged copy is looked up first because in a wheel install the folder
above the package is ``site-packages``, where another project's ``assets/``
could lie; in a checkout ``_data/`` does not exist (it is git-ignored and
only ever made inside a build folder).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import DiffuseMixError

__all__ = ["SHIPPED", "shipped_path"]

#: What the build copies into the wheel, relative to the repository root.
SHIPPED: tuple[str, ...] = ("prompts.yaml", "assets/fractals", "assets/examples")

_PACKAGE = Path(str(resources.files("diffusemix")))


def shipped_path(name: str) -> Path:
    """The path of a shipped file or folder, e.g. ``shipped_path("prompts.yaml")``.

    Raises:
        DiffuseMixError: it is in neither place (a broken install); the
            message names both places and says how to reinstall.
    """
    if name not in SHIPPED:
        raise DiffuseMixError(f"{name!r} is not shipped with diffusemix; shipped: {', '.join(SHIPPED)}")
    places = (_PACKAGE / "_data" / name, _PACKAGE.parent / name)
    for place in places:
        if place.exists():
            return place
    raise DiffuseMixError(
        f"diffusemix's {name} is missing: looked in {places[0]} (an installed wheel) and {places[1]} (a"
        " checkout). Reinstall the package (pip install . from the repository), or pass the file or folder"
        " explicitly."
    )
