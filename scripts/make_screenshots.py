"""Screenshots of the app's three tabs at 1440 x 900 with real photos: docs/screenshots/*.png.

    pip install scikit-image playwright   # photos (skimage.data) and the browser driver; not test needs
    python scripts/make_screenshots.py [--out docs/screenshots]

Uses Debian's chromium (/usr/bin/chromium; never ``playwright install``) and
the preview editor (no weights), as a first visitor of the demo sees it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import zipfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DIFFUSEMIX_EDITOR", "preview")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage"]
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def write_photos(folder: Path) -> dict[str, Path]:
    """scikit-image's bundled photos as PNG files."""
    from PIL import Image
    from skimage import data

    paths = {}
    for name in PHOTOS:
        paths[name] = folder / f"{name}.png"
        Image.fromarray(getattr(data, name)()).save(paths[name])
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    import app

    demo = app.build_demo("preview")
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **app.launch_kwargs(demo.ctx))
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        photos = write_photos(Path(tmp))
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
        page.set_default_timeout(60_000)
        page.goto(demo.local_url)
        page.wait_for_selector("#dm-generate")
        # 1. Explore: the astronaut, two prompts
        page.locator("#dm-explore-image input[type=file]").set_input_files(str(photos["astronaut"]))
        page.wait_for_selector("#dm-explore-image img")
        page.locator("#dm-generate").click()
        page.wait_for_function("[...document.querySelectorAll('#dm-stages img')].length >= 12 && "
                               "[...document.querySelectorAll('#dm-stages img')].every(i => i.complete)")
        page.screenshot(path=str(out / "explore.png"), full_page=True)
        # 2. Prompt lab: three photos x four prompts (one with no preview look, one describing content)
        page.get_by_role("tab", name="Prompt lab").click()
        page.locator("#dm-lab-images input[type=file]").set_input_files(
            [str(photos[n]) for n in ("chelsea", "coffee", "rocket")])
        page.wait_for_function("document.querySelectorAll('#dm-lab-images img').length >= 3")
        page.locator("#dm-lab-candidates textarea").fill("snowy\nwatercolor art\nfoggy\na dog on a sofa")
        page.locator("#dm-lab-run").click()
        page.wait_for_function("document.querySelectorAll('#dm-lab-grid img').length >= 12")
        page.locator("#dm-lab-keep").get_by_label("a dog on a sofa").uncheck()
        page.wait_for_function("[...document.querySelectorAll('#dm-lab-grid .caption-label')]"
                               ".some(c => c.innerText.startsWith('dropped'))")
        page.wait_for_timeout(500)
        page.screenshot(path=str(out / "prompt_lab.png"), full_page=True)
        # 3. Batch export: the four photos as two classes
        dataset = Path(tmp) / "photos.zip"
        with zipfile.ZipFile(dataset, "w") as zf:
            for cls, names in {"people": ["astronaut", "rocket"], "things": ["chelsea", "coffee"]}.items():
                for n in names:
                    zf.write(photos[n], f"photos/{cls}/{n}.png")
        page.get_by_role("tab", name="Batch export").click()
        page.locator("#dm-export-zip input[type=file]").set_input_files(str(dataset))
        page.wait_for_function("document.querySelector('#dm-export-zip').innerText.includes('photos.zip')")
        page.locator("#dm-export-run").click()
        page.wait_for_function("document.querySelector('#dm-export-summary textarea').value.includes('finished')")
        page.wait_for_function("document.querySelector('#dm-export-result').innerText.includes('.zip')")
        page.screenshot(path=str(out / "batch_export.png"), full_page=True)
        browser.close()
    demo.close()
    print("wrote", ", ".join(str(out / n) for n in ("explore.png", "prompt_lab.png", "batch_export.png")))


if __name__ == "__main__":
    main()
