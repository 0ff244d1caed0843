"""docs/screenshots/annotations.png: boxes and mask outlines on I, Î, H and A (preview editor).

The annotation is the geometry the bundled still life
(assets/examples/still_life.jpg, CC0) is drawn with by scripts/make_examples.py:
the sphere and the cube as polygons, the vase as an RLE mask, written to a
COCO JSON and read back as a user's file would be. The image and its annotation then go through
``prepare`` (center-crop of a 512 x 360 cut, so the crop moves things) and
``transform_annotation``; Î comes from the preview editor, which is NOT a
diffusion model (the figure says so); H and A from ``engine.apply_record``.

    python scripts/make_annotation_figure.py [--out docs/screenshots/annotations.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffusemix.annotations import rle as rle_ops
from diffusemix.annotations.coco import read_coco
from diffusemix.annotations.draw import draw_annotations
from diffusemix.annotations.export_step import AnnotationOptions, plan_annotations
from diffusemix.editors.preview import apply_preview
from diffusemix.engine import apply_record
from diffusemix.fractals import FractalSet
from diffusemix.images import load_image, prepare
from diffusemix.recipe import Recipe, draw


def _objects(size: int, cut_top: int) -> list[tuple[str, list[float] | None, np.ndarray | None]]:
    """The sphere (a 48-gon), the cube (its outline) and the vase (a mask), from the parameters
    scripts/make_examples.py draws them with, in pixels of the cut (rows from ``cut_top``)."""

    def px(xn: float, yn: float) -> tuple[float, float]:
        return xn * size, yn * size - cut_top

    ang = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    sphere = [v for t in ang for v in px(0.34 + 0.15 * np.cos(t), 0.62 + 0.15 * np.sin(t))]
    cx0, cy0, s = 0.62, 0.60, 0.17
    a, b, c = (cx0, cy0 + 0.1), (cx0 + s, cy0 + 0.13), (cx0 + s + 0.07, cy0 + 0.03)
    e, g, h = (cx0, cy0 - s + 0.1), (cx0 + s + 0.07, cy0 - s + 0.03), (cx0 + 0.07, cy0 - s)
    cube = [v for q in (a, b, c, g, h, e) for v in px(*q)]
    t_ = (np.arange(size) + 0.5) / size
    x, y = np.meshgrid(t_, t_)
    radius = 0.025 + 0.045 * np.sin(np.pi * (0.15 + 0.8 * np.clip((y - 0.34) / 0.40, 0, 1))) ** 2
    vase = (np.abs((x - 0.52) / radius) < 1) & (y > 0.34) & (y < 0.74)
    return [("sphere", sphere, None), ("cube", cube, None), ("vase", None, vase[cut_top : cut_top + 360])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots" / "annotations.png"))
    args = ap.parse_args()

    # 1. a 512 x 360 cut of the still life and a COCO file of its three objects
    full = np.asarray(load_image(ROOT / "assets" / "examples" / "still_life.jpg"))
    src = np.ascontiguousarray(full[120:480, :, :])
    tmp = Path(tempfile.mkdtemp())
    Image.fromarray(src).save(tmp / "still_life.png")
    anns, cats = [], []
    for k, (name, polygon, mask) in enumerate(_objects(full.shape[1], 120), start=1):
        ann = {"id": k, "image_id": 1, "category_id": k, "iscrowd": 0}
        if polygon is not None:
            xs, ys = polygon[0::2], polygon[1::2]
            ann |= {"bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)], "segmentation": [polygon]}
        else:
            ann["segmentation"] = rle_ops.encode(mask).to_coco()  # no bbox: read_coco takes the mask's
        anns.append(ann)
        cats.append({"id": k, "name": name})
    coco = {
        "images": [{"id": 1, "file_name": "still_life.png", "width": src.shape[1], "height": src.shape[0]}],
        "annotations": anns,
        "categories": cats,
    }
    (tmp / "instances.json").write_text(json.dumps(coco))
    ds = read_coco(tmp / "instances.json")

    # 2. the stages of one sample, and A's annotation
    recipe = Recipe(size=256, resize="center-crop", prompts=("sunset",), layouts=("left",), seed=0)
    record = draw(recipe, "still_life.png", FractalSet.default().names)[0]
    (record,), (sample,) = plan_annotations(ds.images[0], [record], recipe, ds.categories, AnnotationOptions())
    image = prepare(src, recipe.size, resize=recipe.resize)
    generated = apply_preview(image, record.prompt, seed=record.seed)
    stages = apply_record(record, image, generated, FractalSet.default().array(record.fractal, recipe.size))

    # 3. the panels
    panels = [
        ("I", stages.input),
        ("generated (preview editor, not a diffusion model)", stages.generated),
        ("H", stages.hybrid),
        ("A", stages.augmented),
    ]
    pad, top = 8, 22
    canvas = Image.new("RGB", (4 * 256 + 5 * pad, 256 + top + pad), (255, 255, 255))
    d = ImageDraw.Draw(canvas)
    for i, (title, arr) in enumerate(panels):
        x = pad + i * (256 + pad)
        canvas.paste(Image.fromarray(draw_annotations(arr, sample.annotation, ds.categories, width=2)), (x, top))
        d.text((x, 5), title, fill=(0, 0, 0))
    shares = ", ".join(
        f"{ds.categories.name(o.category_id)} {s:.2f}"
        for o, s in zip(sample.annotation.objects, sample.generated_share)
    )
    print(f"layout {record.layout}; share on the Î side: {shares}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
