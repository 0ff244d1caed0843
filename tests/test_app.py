"""The app as assembled and launched (app.py): its command line, and the running server through gradio_client.

The tabs' handlers are tested beside their modules: tests/test_ui_*.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from app_helpers import CAR, EXAMPLES, ROOT, clean_uploads, ctx, explore_args  # noqa: F401 (fixtures)
from PIL import Image

sys.path.insert(0, str(ROOT))

import app  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")


@pytest.fixture(scope="module")
def demo(ctx):
    return app.build_demo(ctx=ctx)


def test_save_is_forced_off_on_a_space(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/diffusemix")
    assert app.parse_args(["--allow-save-prompts"]).allow_save_prompts is False
    assert app.make_context("preview", allow_save_prompts=True).allow_save_prompts is False
    for var in ("SPACE_ID", "DIFFUSEMIX_EDITOR", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT"):
        monkeypatch.delenv(var, raising=False)
    args = app.parse_args(["--allow-save-prompts"])
    assert args.allow_save_prompts is True and args.host == "127.0.0.1" and args.port == 7860
    assert args.share is False and args.editor == "auto"


def test_running_app_through_gradio_client(demo):
    from gradio_client import Client, handle_file

    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **app.launch_kwargs(demo.ctx))
    try:
        client = Client(demo.local_url, verbose=False)
        args = explore_args(image=handle_file(CAR))

        gallery, seed, records, _summary = client.predict(**args, api_name="/explore")
        assert len(gallery) == 12 and seed == 3
        assert [g["caption"].split("·")[0].strip() for g in gallery] == ["I", "Î", "M", "H", "F", "A"] * 2
        with Image.open(gallery[5]["image"]) as im:
            assert im.format == "PNG" and im.size == (64, 64)  # lossless, at the chosen size
        assert records["editor"]["name"] == "preview"

        # out of range through the API: a readable message, not a trace
        with pytest.raises(Exception, match="greater than maximum value 1") as err:
            client.predict(**{**args, "lam": 5}, api_name="/explore")
        assert "Traceback" not in str(err.value)
        with pytest.raises(Exception, match="No image"):
            client.predict(**{**args, "image": None}, api_name="/explore")

        # and the app still serves
        gallery, *_ = client.predict(**{**args, "extra_prompts": ""}, api_name="/explore")
        assert len(gallery) == 6

        # the server hands out the bundled assets, nothing else of the machine
        import httpx

        def status(path: Path | str) -> int:
            return httpx.get(f"{demo.local_url}gradio_api/file={path}").status_code

        assert status(EXAMPLES / "car.jpg") == 200
        assert status(ROOT / "app.py") == 403 and status(ROOT / "prompts.yaml") == 403
        assert status("/etc/passwd") == 403
    finally:
        demo.close()
