"""The app in headless Chromium: Explore with an annotation (a COCO JSON of the bundled still life: two
polygons and an RLE mask) draws the objects on I, Î, H and A of every prompt.

``DIFFUSEMIX_SCREENSHOTS=docs/screenshots python -m pytest tests/test_browser_annotations.py`` makes
docs/screenshots/annotations_app.png (as tests/test_browser.py makes the others).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_browser import EXAMPLES, ROOT, _screenshot, browser, page, server  # noqa: F401 (fixtures)

from diffusemix.annotations import rle as rle_ops
from diffusemix.annotations.draw import category_colour

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")]


def _still_life_coco(folder: Path) -> Path:
    """The sphere and the cube (polygons) and the vase (an RLE mask) of assets/examples/still_life.jpg, with the
    geometry scripts/make_examples.py draws them with (scripts/make_annotation_figure.py's)."""
    spec = importlib.util.spec_from_file_location("make_annotation_figure", ROOT / "scripts" /
                                                  "make_annotation_figure.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    anns, cats = [], []
    t = (np.arange(512) + 0.5) / 512
    x, y = np.meshgrid(t, t)
    radius = 0.025 + 0.045 * np.sin(np.pi * (0.15 + 0.8 * np.clip((y - 0.34) / 0.40, 0, 1))) ** 2
    vase = (np.abs((x - 0.52) / radius) < 1) & (y > 0.34) & (y < 0.74)  # the figure's vase, uncut
    for k, (name, polygon, _) in enumerate(module._objects(512, 0), start=1):
        ann = {"id": k, "image_id": 1, "category_id": k, "iscrowd": 0}
        if polygon is not None:
            ann["segmentation"] = [polygon]
        else:
            ann["segmentation"] = rle_ops.encode(vase).to_coco()
        anns.append(ann)
        cats.append({"id": k, "name": name})
    coco = {"images": [{"id": 1, "file_name": "still_life.jpg", "width": 512, "height": 512}],
            "annotations": anns, "categories": cats}
    path = folder / "still_life.json"
    path.write_text(json.dumps(coco))
    return path


def test_explore_draws_the_objects_on_every_stage_that_shows_the_image(page, tmp_path):
    page.locator("#dm-explore-image input[type=file]").set_input_files(str(EXAMPLES / "still_life.jpg"))
    page.wait_for_selector("#dm-explore-image img")
    page.get_by_text("Objects (detection, segmentation)").click()
    page.locator("#dm-annotation-file input[type=file]").set_input_files(str(_still_life_coco(tmp_path)))
    page.wait_for_function("(document.querySelector('#dm-annotation-file') || {innerText: ''})"
                           ".innerText.includes('still_life.json')")
    page.locator("#dm-generate").click()
    page.wait_for_function("document.querySelectorAll('#dm-stages img').length >= 12")
    page.wait_for_function(
        "[...document.querySelectorAll('#dm-stages img')].every(i => i.complete && i.naturalWidth > 0)")
    summary = page.locator("#dm-summary").inner_text()
    assert "Objects: 3 (3 kept, 0 clipped, 0 dropped by the resize)" in summary
    assert "Share of each object on the Î side" in summary
    # the stage images the page shows: the outlines' colours on I, Î, H and A; none on M and F
    sources = page.evaluate("[...document.querySelectorAll('#dm-stages img')].map(i => i.src)")
    assert len(sources) == 12
    shot = _screenshot(page, "annotations_app.png", tmp_path)
    for k, src in enumerate(sources[:6]):
        data = page.request.get(src).body()
        path = tmp_path / f"stage-{k}.png"
        path.write_bytes(data)
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
        found = sum(np.all(pixels == category_colour(c), axis=-1).sum() > 30 for c in range(3))
        assert (found == 3) == (k in (0, 1, 3, 5)), k  # I, Î, H, A
    assert shot.stat().st_size > 50_000
