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
from diffusemix.errors import DiffuseMixError  # noqa: E402

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
    assert args.share is False and args.editor_spec.name == "auto"


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


# ---------------------------------------------------------------------------
# the API as gradio_client users meet it (issue 8, "The app")
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(demo):
    from gradio_client import Client

    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **app.launch_kwargs(demo.ctx))
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()


def _png16(path: Path, level: int = 20_000) -> Path:
    """A 16-bit grey PNG (mode I;16) at ``level`` of 65535: mid-dark grey, never white."""
    import numpy as np

    Image.fromarray(np.full((40, 60), level, np.uint16)).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I;16")
    return path


def test_explore_api_needs_only_the_image(client):
    from gradio_client import handle_file

    gallery, seed, records, summary = client.predict(image=handle_file(CAR), api_name="/explore")
    assert len(gallery) == 12 and seed == 0  # the page's defaults: two ticked prompts, seed 0
    assert [r["prompt"] for r in records["samples"]] == ["Autumn", "snowy"]


def test_view_api_is_short_and_lists_the_three_endpoints(client, ctx):
    info = client.view_api(print_info=False, return_format="dict")
    assert set(info["named_endpoints"]) == {"/explore", "/prompt_lab", "/export"}
    assert not info["unnamed_endpoints"]
    text = str(info)
    assert sum(name in text for name in ctx.fractals.names) < 3  # not all 128 names inline
    explore_params = {p["parameter_name"]: p for p in info["named_endpoints"]["/explore"]["parameters"]}
    assert [k for k, p in explore_params.items() if not p["parameter_has_default"]] == ["image"]


def test_prompt_lab_api_returns_plain_values(client):
    from gradio_client import handle_file

    grid, keep, yaml_text, yaml_file, notes = client.predict(
        images=[{"image": handle_file(CAR), "caption": None}], candidates="snowy\nfoggy", api_name="/prompt_lab"
    )
    assert keep == ["snowy", "foggy"]  # a list, not an update dict
    assert "preview: no look for “foggy”" in notes
    assert isinstance(grid, list) and len(grid) == 2 and "snowy" in grid[0]["caption"]
    assert "snowy" in yaml_text and Path(yaml_file).is_file()


def test_sixteen_bit_png_is_not_white(client, tmp_path):
    from gradio_client import handle_file

    png = _png16(tmp_path / "grey16.png")
    gallery, *_ = client.predict(image=handle_file(str(png)), extra_prompts="", api_name="/explore")
    with Image.open(gallery[0]["image"]) as im:  # the I stage
        value = im.convert("L").getpixel((10, 10))
    assert abs(value - round(20_000 / 65535 * 255)) <= 2, value


HOSTILE_UPLOADS = {
    "notes.png": b"this is not an image at all",
    "truncated.png": None,  # made below: a PNG cut in half
    "drawing.svg": b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'><rect width='10'/></svg>",
    "huge.png": None,  # made below: a 1-bit PNG of 9000 x 9000 (a few KB)
    "empty.png": b"",
}


@pytest.mark.parametrize("name", list(HOSTILE_UPLOADS))
def test_bad_uploads_say_what_to_do_without_server_paths(client, tmp_path, name):
    from gradio_client import handle_file

    path = tmp_path / name
    data = HOSTILE_UPLOADS[name]
    if name == "truncated.png":
        Image.new("RGB", (300, 200), (10, 200, 30)).save(path)
        path.write_bytes(path.read_bytes()[:400])
    elif name == "huge.png":
        Image.new("1", (9000, 9000)).save(path)
    else:
        path.write_bytes(data)
    with pytest.raises(Exception) as err:
        client.predict(image=handle_file(str(path)), api_name="/explore")
    message = str(err.value)
    for leak in ("/tmp", "gradio", "Original error", "index 0", "max_pixels", "Traceback", str(ROOT)):
        assert leak not in message, (leak, message)
    assert name in message and ("upload" in message.lower() or "use" in message.lower()), message
    gallery, *_ = client.predict(image=handle_file(CAR), extra_prompts="", api_name="/explore")  # still serves
    assert len(gallery) == 12


def test_sigterm_removes_the_work_folder(tmp_path):
    import socket
    import subprocess
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**__import__("os").environ, "TMPDIR": str(tmp_path), "DIFFUSEMIX_EDITOR": "preview"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--editor", "preview", "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        up = False
        while not up and time.time() < deadline and proc.poll() is None:
            time.sleep(0.5)
            with socket.socket() as s:
                up = s.connect_ex(("127.0.0.1", port)) == 0
        assert up, "the app did not start"
        assert list(tmp_path.glob("diffusemix-app-*")), "the app made no work folder"
        proc.terminate()  # SIGTERM
        assert proc.wait(timeout=60) is not None
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not list(tmp_path.glob("diffusemix-app-*"))


def test_running_exports_do_not_hold_up_explore(client, tmp_path, monkeypatch):
    """Two exports at once (one running, one queued) leave Explore's slots free."""
    import threading
    import time

    from app_helpers import make_zip, png_bytes
    from gradio_client import handle_file

    from diffusemix.ui import batch_export as batch_export_tab

    started, release = threading.Event(), threading.Event()

    def held_export(*args, **kwargs):  # an export that runs until the test lets it go
        started.set()
        release.wait(60)
        raise DiffuseMixError("export released by the test")

    monkeypatch.setattr(batch_export_tab, "_run_export", held_export)
    dataset = make_zip(tmp_path / "d.zip", {"cats/a.png": png_bytes(), "dogs/b.png": png_bytes()})
    jobs = [client.submit(dataset_zip=handle_file(dataset), api_name="/export") for _ in range(2)]
    try:
        assert started.wait(60), "the export did not start"
        t0 = time.perf_counter()
        gallery, *_ = client.predict(image=handle_file(CAR), extra_prompts="", size=64, api_name="/explore")
        assert len(gallery) == 12 and time.perf_counter() - t0 < 30
        assert not release.is_set() and not jobs[0].done()  # the export was still running meanwhile
    finally:
        release.set()
    for job in jobs:
        with pytest.raises(Exception, match="released by the test"):
            job.result(timeout=60)
