"""The Prompt lab in headless Chromium with a tiny DINOv2 scorer: scores on the
tiles, the threshold dims the right ones (screenshot: prompt_lab_scores.png)."""

from __future__ import annotations

import re

import pytest
from test_browser import EXAMPLES, _need_browser, _screenshot, browser  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")]


@pytest.fixture(scope="module")
def scored_server(tiny_dino_dir):
    _need_browser()
    import app

    demo = app.build_demo("preview", score="dino", scorer_model=str(tiny_dino_dir))
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **app.launch_kwargs(demo.ctx))
    try:
        yield demo.local_url
    finally:
        demo.close()


def _captions(page) -> list[str]:
    return page.locator("#dm-lab-grid .caption-label").all_inner_texts()


def test_prompt_lab_scores_and_threshold(browser, scored_server, tmp_path):
    context = browser.new_context(viewport={"width": 1480, "height": 1100}, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(scored_server)
        page.get_by_role("tab", name="Prompt lab").click()
        assert "cosine similarity of Î to I by dino" in page.locator("#dm-lab-scores-note").inner_text()
        page.locator("#dm-lab-images input[type=file]").set_input_files(
            [str(EXAMPLES / "car.jpg"), str(EXAMPLES / "flower.jpg")]
        )
        page.wait_for_function("document.querySelectorAll('#dm-lab-images img').length >= 2")
        page.locator("#dm-lab-candidates textarea").fill("snowy\nsunset\nwatercolor art")
        page.locator("#dm-lab-run").click()
        page.wait_for_function("document.querySelectorAll('#dm-lab-grid .caption-label').length >= 6")

        # 1. every tile shows its score; the table has a row per prompt
        captions = _captions(page)
        scores = [float(re.match(r"(-?\d\.\d{3})( < | · )", c).group(1)) for c in captions]
        assert len(scores) == 6 and all(-1 <= s <= 1 for s in scores)
        # the run used the slider's start: 0.5 for DINOv2, to which no published threshold belongs (GenMix's 0.7
        # is the genmix scorer's, on DINO ViT-B/16 features), and the slider says so
        assert [" < 0.5 · " in c for c in captions] == [s < 0.5 for s in scores]
        assert "no published threshold" in page.locator("#dm-lab-threshold").inner_text()
        page.wait_for_selector("#dm-lab-table")
        assert "watercolor art" in page.locator("#dm-lab-table").inner_text()

        # 2. a threshold between the 3rd and 4th score dims exactly the three lowest tiles
        ordered = sorted(scores)
        assert ordered[3] - ordered[2] >= 0.002, f"scores too close to split on the page: {ordered}"
        t = round((ordered[2] + ordered[3]) / 2, 3)
        box = page.locator("#dm-lab-threshold input[type=number]")
        box.fill(str(t))
        box.press("Enter")
        page.wait_for_function("[...document.querySelectorAll('#dm-lab-grid .caption-label')]"
                               f".some(c => c.innerText.includes(' < {t:g} · '))")
        page.wait_for_function(
            "[...document.querySelectorAll('#dm-lab-grid img')].every(i => i.complete && i.naturalWidth > 0)"
        )
        dimmed = [" < " in c for c in _captions(page)]
        assert dimmed == [s < t for s in scores] and sum(dimmed) == 3

        # 3. the kept set is the prompts whose mean passes; still editable by hand
        prompts = ["snowy", "sunset", "watercolor art"]
        means = {p: (scores[2 * i] + scores[2 * i + 1]) / 2 for i, p in enumerate(prompts)}
        keep = page.locator("#dm-lab-keep")
        for p, m in means.items():
            assert keep.get_by_label(p).is_checked() == (m >= t), (p, m, t)
        _screenshot(page, "prompt_lab_scores.png", tmp_path)
        dropped = [p for p, m in means.items() if m < t]
        if dropped:
            keep.get_by_label(dropped[0]).check()
            page.wait_for_function(f"document.querySelector('#dm-lab-yaml').innerText.includes({dropped[0]!r})")
    finally:
        context.close()
