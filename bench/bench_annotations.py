"""Cost of the annotation step, and what ``layout_choice="keep-objects"`` changes.

1. Time per image of ``plan_annotations`` (geometry once, then seam shares and
   row fields for each of the recipe's samples), for box, polygon and RLE-mask
   objects at 256 px, 640 x 480 sources, center-crop: the step runs beside an
   editor call that takes seconds, so it should cost milliseconds.
2. On a synthetic set of images (NOT a real dataset: 1-6 objects per image,
   centres uniform, sides log-uniform between 5 % and 60 % of the image), the
   area-weighted share of object area on the Î side under the drawn layouts
   and under ``keep-objects``, for the paper's layouts (left, top) and for all
   four. Real datasets put objects nearer the centre; the figures are an
   indication of the size of the effect, not a measurement on data.

    python bench/bench_annotations.py [--images 2000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diffusemix.annotations import rle as rle_ops
from diffusemix.annotations.export_step import AnnotationOptions, plan_annotations
from diffusemix.annotations.seam import area_profile, best_layout, generated_share
from diffusemix.annotations.types import Categories, ImageAnnotation, ObjectAnnotation
from diffusemix.recipe import Recipe, draw

CATS = Categories.from_names(["a", "b", "c"], start=1)


def _objects(rng: np.random.Generator, w: int, h: int, n: int, kind: str) -> tuple[ObjectAnnotation, ...]:
    out = []
    for _ in range(n):
        bw, bh = np.exp(rng.uniform(np.log(0.05), np.log(0.6), 2)) * (w, h)
        cx, cy = rng.uniform(bw / 2, w - bw / 2), rng.uniform(bh / 2, h - bh / 2)
        box = (cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2)
        cat = int(rng.integers(1, 4))
        if kind == "box":
            out.append(ObjectAnnotation(cat, box))
        elif kind == "polygon":
            ang = np.sort(rng.uniform(0, 2 * np.pi, 12))
            pts = np.stack([cx + bw / 2 * np.cos(ang), cy + bh / 2 * np.sin(ang)], axis=1)
            out.append(
                ObjectAnnotation(
                    cat,
                    (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()),
                    polygons=(tuple(pts.ravel()),),
                )
            )
        else:
            yy, xx = np.mgrid[0:h, 0:w] + 0.5
            m = ((xx - cx) / (bw / 2)) ** 2 + ((yy - cy) / (bh / 2)) ** 2 <= 1
            rows, cols = np.nonzero(m)
            out.append(
                ObjectAnnotation(cat, (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1), rle=rle_ops.encode(m))
            )
    return tuple(out)


def time_step(repeats: int) -> None:
    rng = np.random.default_rng(0)
    recipe = Recipe(size=256, resize="center-crop", prompts=("snowy", "sunset"))
    print("1. plan_annotations per image (640 x 480 -> 256, center-crop, 2 samples, 4 objects), median of runs:")
    for kind in ("box", "polygon", "mask"):
        anns = [ImageAnnotation(f"{i}.png", 640, 480, _objects(rng, 640, 480, 4, kind)) for i in range(20)]
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for a in anns:
                plan_annotations(a, draw(recipe, a.file_name, ["f"]), recipe, CATS, AnnotationOptions())
            times.append((time.perf_counter() - t0) / len(anns))
        print(f"   {kind:8s} {statistics.median(times) * 1e3:7.2f} ms")


def _share(ann: ImageAnnotation, layout: str, recipe: Recipe) -> tuple[float, float]:
    """(area on the Î side, total area) of an S x S annotation."""
    gen = tot = 0.0
    for o in ann.objects:
        a = float(area_profile(o, size=ann.width, axis=0).sum())
        kind, seam = recipe.mask, recipe.seam
        share = generated_share(o, size=ann.width, layout=layout, kind=kind, seam=seam)  # type: ignore[arg-type]
        gen += a * share
        tot += a
    return gen, tot


def layout_effect(n_images: int) -> None:
    rng = np.random.default_rng(1)
    print(f"2. share of object area on the Î side, {n_images} synthetic 256 px images (not a real dataset):")
    anns = [
        ImageAnnotation(f"{i}", 256, 256, _objects(rng, 256, 256, int(rng.integers(1, 7)), "box"))
        for i in range(n_images)
    ]
    for layouts in (("left", "top"), ("left", "right", "top", "bottom")):
        recipe = Recipe(size=256, prompts=("snowy",), layouts=layouts)
        drawn = [0.0, 0.0]
        best = [0.0, 0.0]
        for a in anns:
            rec = draw(recipe, a.file_name, ["f"])[0]
            g, t = _share(a, rec.layout, recipe)
            drawn[0] += g
            drawn[1] += t
            chosen = best_layout(a, recipe.layouts, kind=recipe.mask, seam=recipe.seam)  # type: ignore[arg-type]
            g, t = _share(a, chosen, recipe)
            best[0] += g
            best[1] += t
        print(
            f"   layouts {','.join(layouts):24s} drawn {drawn[0] / drawn[1]:.3f}   keep-objects {best[0] / best[1]:.3f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    time_step(args.repeats)
    layout_effect(args.images)


if __name__ == "__main__":
    main()
