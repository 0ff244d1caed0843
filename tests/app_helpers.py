"""What the app's tests share: the inputs they send, uploads, zips, and the app's context.

Imported by tests/test_app.py and tests/test_ui_*.py (one per module of
diffusemix/ui). The fixtures ``ctx``, ``demo`` and ``clean_uploads`` are
imported by name into each test module.
"""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DIFFUSEMIX_EDITOR", "preview")  # importing app must not load a diffusion model
os.environ.setdefault("DIFFUSEMIX_SCORE", "none")  # nor try scorer weights (tests that score build their own)

from diffusemix.ui.shared import make_context  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "assets" / "examples"
CAR = str(EXAMPLES / "car.jpg")
FLOWER = str(EXAMPLES / "flower.jpg")


def explore_args(**over):
    """Explore's inputs, in the API's order, as keywords."""
    args = dict(
        image=CAR,
        set_prompts=["snowy"],
        extra_prompts="sunset",
        layouts=["left", "top"],
        mask="ramp",
        seam=8,
        lam=0.2,
        fractal="random",
        fractal_name=None,
        fractal_image=None,
        seed=3,
        randomize_seed=False,
        size=64,
        steps=5,
        guidance_scale=4.0,
        image_guidance_scale=1.5,
        strength=0.5,
    )
    args.update(over)
    return args


def png_bytes(colour=(200, 30, 30), size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def upload(path: Path) -> str:
    """Put a file where gradio keeps uploads (handlers open nothing else but the bundled assets)."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder()) / "diffusemix-tests" / os.urandom(6).hex()
    folder.mkdir(parents=True)
    target = folder / path.name
    target.write_bytes(path.read_bytes())
    return str(target)


def make_zip(path: Path, entries: dict[str, bytes]) -> str:
    """A zip with these entries, uploaded."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return upload(path)


@pytest.fixture(scope="module", autouse=True)
def clean_uploads():
    """Remove this module's uploads when it ends."""
    yield
    from gradio.utils import get_upload_folder

    shutil.rmtree(Path(get_upload_folder()) / "diffusemix-tests", ignore_errors=True)


@pytest.fixture(scope="module")
def ctx():
    """The app's context with the preview editor (no weights)."""
    return make_context("preview")

