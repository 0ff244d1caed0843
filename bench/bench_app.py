"""How long the app takes from request to the six stages, with the preview editor.

Two figures, medians of several runs after a warm-up:

1. handler: ``diffusemix.ui.explore.explore`` called directly (load + prepare I, the editor, the
   mix, the records, the six lossless PNGs written), the server-side work;
2. client: the same request through ``gradio_client`` against the running
   app on 127.0.0.1: adds the upload of the image, the queue and its events,
   and (first figure) the download of the six PNGs.

    python bench/bench_app.py [--size 256] [--prompts 1] [--runs 15]

Target: under 0.5 s for one prompt at 256 px (the handler).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DIFFUSEMIX_EDITOR", "preview")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPTS = ["snowy", "sunset", "watercolor art", "Autumn", "rainbow", "aurora", "mosaic", "ukiyo-e"]


def _args(image: object, size: int, prompts: int) -> dict:
    return dict(
        image=image,
        set_prompts=PROMPTS[:prompts],
        extra_prompts="",
        layouts=["left", "top"],
        mask="ramp",
        seam=20,
        lam=0.2,
        fractal="random",
        fractal_name=None,
        fractal_image=None,
        seed=0,
        randomize_seed=False,
        size=size,
        steps=100,
        guidance_scale=4.0,
        image_guidance_scale=1.5,
        strength=0.5,
    )


def _median_ms(fn, runs: int) -> tuple[float, float, float]:
    fn()  # warm-up: caches, first PNG encoder use, first fractal decode
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3, min(times) * 1e3, max(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--prompts", type=int, default=1, choices=range(1, len(PROMPTS) + 1))
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--image", default=str(ROOT / "assets" / "examples" / "landscape.jpg"))
    args = parser.parse_args()

    from gradio_client import Client, handle_file

    import app
    from diffusemix.ui.explore import explore

    demo = app.build_demo("preview")
    ctx = demo.ctx
    print(f"editor: {ctx.editor.name}; size {args.size} px; {args.prompts} prompt(s); median of {args.runs} runs")

    def handler() -> None:
        gallery = explore(**_args(args.image, args.size, args.prompts), ctx=ctx)[0]
        assert len(gallery) == 6 * args.prompts

    med, lo, hi = _median_ms(handler, args.runs)
    print(f"handler (explore, server side):       {med:7.1f} ms  (min {lo:.1f}, max {hi:.1f})")

    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **app.launch_kwargs(ctx))
    try:
        client = Client(demo.local_url, verbose=False)

        def through_client() -> None:
            out = client.predict(**_args(handle_file(args.image), args.size, args.prompts), api_name="/explore")
            assert len(out[0]) == 6 * args.prompts

        cmed, clo, chi = _median_ms(through_client, args.runs)
        print(f"gradio_client, files downloaded:      {cmed:7.1f} ms  (min {clo:.1f}, max {chi:.1f})")

        client = Client(demo.local_url, verbose=False, download_files=False)
        nmed, nlo, nhi = _median_ms(through_client, args.runs)
        print(f"gradio_client, files not downloaded:  {nmed:7.1f} ms  (min {nlo:.1f}, max {nhi:.1f})")
        print(f"  overhead over the handler: {nmed - med:.1f} ms (upload, queue, events);"
              f" downloading the {6 * args.prompts} PNGs: {cmed - nmed:.1f} ms")
    finally:
        demo.close()
    target = 500.0
    print(f"target < {target:.0f} ms for the handler: {'met' if med < target else 'MISSED'}")


if __name__ == "__main__":
    main()
