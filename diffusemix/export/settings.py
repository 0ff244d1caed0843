"""The run's settings (``.diffusemix/run.json``): what an output folder was made with.

Settings are split into what makes Î (``generation``: changing any of it
means a new output folder) and what makes A from Î (``mixing``: may change
with ``--reuse-generated``, a remix).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DiffuseMixError
from ..recipe import Recipe
from . import manifest
from .options import ExportOptions
from .scan import InputScan

if TYPE_CHECKING:  # pragma: no cover
    from ..editors.base import Editor
    from ..fractals import FractalSet

#: Editor description keys that do not change pixels (left out of run.json and the manifest).
_NON_PIXEL_EDITOR_KEYS = frozenset({"device", "batch_size", "notice", "summary"})
_SETTINGS_VERSION = 1


def _editor_settings(editor: "Editor") -> dict[str, Any]:
    d = dict(editor.describe())
    return {k: v for k, v in d.items() if k not in _NON_PIXEL_EDITOR_KEYS}


def _fractal_digest(fractals: "FractalSet") -> str:
    h = hashlib.sha1()
    folder = Path(getattr(fractals, "folder", "") or ".")
    for name in fractals.names:
        try:
            size = (folder / name).stat().st_size
        except OSError:
            size = -1
        h.update(f"{name}\0{size}\n".encode("utf-8"))
    return h.hexdigest()[:16]


def run_settings(
    scan: InputScan, recipe: Recipe, editor: "Editor", fractals: "FractalSet", options: ExportOptions
) -> dict[str, Any]:
    from .. import __version__

    r = recipe.to_dict()
    settings = {
        "diffusemix": __version__,
        "settings_version": _SETTINGS_VERSION,
        "input": str(scan.root.resolve()),
        "labels": scan.label_mode,
        # what makes Î: changing any of it means a new output folder
        "generation": {
            "size": r["size"],
            "resize": r["resize"],
            "prompts": r["prompts"],
            "images_per_prompt": r["images_per_prompt"],
            "seed": r["seed"],
            "editor": _editor_settings(editor),
        },
        # what makes A from Î: may change with --reuse-generated (a remix); a cache mixes
        # nothing, and its layouts, mask, seam and λ are the training defaults (diffusemix.data)
        "mixing": {
            "cache": True,
            "format": options.format,
            **{k: r[k] for k in ("layouts", "mask", "seam", "lam")},
        }
        if options.cache
        else {
            "layouts": r["layouts"],
            "mask": r["mask"],
            "seam": r["seam"],
            "lam": r["lam"],
            "fractals": {"count": len(fractals.names), "digest": _fractal_digest(fractals)},
            "format": options.format,
            "quality": options.quality if options.format == "jpeg" else None,
        },
    }
    return json.loads(json.dumps(settings))  # tuples -> lists, as read back from run.json


def adopt_settings(out: Path, new: dict[str, Any], options: ExportOptions, tag: str) -> bool:
    """Write run.json, or check it against an earlier run's. Returns True for a remix.

    Raises:
        DiffuseMixError: the folder was made from another input or with other
            settings (and this is not a --reuse-generated remix).
    """
    old = manifest.read_settings(out)
    if old is None:
        manifest.write_settings(out, new, tag=tag)
        return False
    if old.get("input") != new["input"]:
        raise DiffuseMixError(
            f"output folder {out} was made from another input ({old.get('input')}); "
            "use a new output folder for this input"
        )
    same_gen = old.get("generation") == new["generation"]
    same_mix = old.get("mixing") == new["mixing"]
    if same_gen and same_mix:
        return False
    diff = manifest.settings_diff(old, new)
    shown = "; ".join(d for d in diff if not d.startswith(("diffusemix:", "settings_version:")))[:600]
    if same_gen and options.reuse_generated:
        manifest.clear_all_state(out)
        manifest.write_settings(out, new, tag=tag)
        return True
    hint = ""
    if same_gen:
        hint = " To re-mix it with the saved generated images, add --reuse-generated (reuse_generated=True)."
    raise DiffuseMixError(
        f"output folder {out} was made with other settings ({shown}). Use a new output folder, or run "
        f"with the original settings to resume.{hint}"
    )


def editor_settings_text(settings: dict[str, Any]) -> str:
    """The editor's pixel-relevant settings as the JSON text of a manifest row's ``editor_settings``."""
    editor = settings["generation"]["editor"]
    return json.dumps({k: v for k, v in editor.items() if k != "name"}, sort_keys=True, ensure_ascii=False)
