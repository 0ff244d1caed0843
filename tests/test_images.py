"""Tests for diffusemix.images: loading every pixel mode, guards, prepare, to_pil."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from diffusemix.errors import ImageError
from diffusemix.images import (
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    RESIZE_MODES,
    load_image,
    prepare,
    to_pil,
)

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _save(img: Image.Image, path: Path, fmt: str | None = None, **kw) -> Path:
    img.save(path, format=fmt, **kw)
    return path


def _png_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _one_bit_png(width: int, height: int, *, rows: int | None = None) -> bytes:
    """A real 1-bit greyscale PNG of ``width x height``, all black, built row by row.

    ``rows`` < height writes only that many rows of data (a header that claims
    more than the file holds).
    """
    row = b"\x00" + b"\x00" * ((width + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    idat = bytearray()
    for _ in range(height if rows is None else rows):
        idat += comp.compress(row)
    idat += comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", bytes(idat))
        + _chunk(b"IEND", b"")
    )


def _px(img: Image.Image, xy: tuple[int, int] = (0, 0)) -> tuple[int, ...]:
    return tuple(np.asarray(img)[xy[1], xy[0]].tolist())


def _noise(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


# ---------------------------------------------------------------------------
# constants
# ---------------------------------------------------------------------------


def test_constants():
    assert IMAGE_EXTENSIONS == {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
    assert all(e == e.lower() and e.startswith(".") for e in IMAGE_EXTENSIONS)
    assert RESIZE_MODES == ("resize", "center-crop")
    assert MAX_PIXELS == 89_478_485


# ---------------------------------------------------------------------------
# modes
# ---------------------------------------------------------------------------


def test_rgb_png_is_exact(tmp_path):
    src = _noise(33, 17)
    out = load_image(_save(src, tmp_path / "a.png"))
    assert out.mode == "RGB" and out.size == (33, 17)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(src))


def test_rgba_composited_over_white(tmp_path):
    a = np.zeros((2, 3, 4), np.uint8)
    a[0, 0] = (0, 0, 0, 0)  # fully transparent black -> white
    a[0, 1] = (255, 0, 0, 255)  # opaque red stays red
    a[0, 2] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    a[1, :] = (10, 200, 30, 255)
    out = load_image(_save(Image.fromarray(a, "RGBA"), tmp_path / "a.png"))
    assert out.mode == "RGB"
    assert _px(out, (0, 0)) == (255, 255, 255)
    assert _px(out, (1, 0)) == (255, 0, 0)
    assert all(abs(v - 127) <= 1 for v in _px(out, (2, 0)))
    assert _px(out, (0, 1)) == (10, 200, 30)


def test_la_composited_over_white(tmp_path):
    a = np.array([[[0, 0], [50, 255]]], np.uint8)
    out = load_image(_save(Image.fromarray(a, "LA"), tmp_path / "la.png"))
    assert _px(out, (0, 0)) == (255, 255, 255)
    assert _px(out, (1, 0)) == (50, 50, 50)


def test_palette_with_transparency_over_white(tmp_path):
    p = Image.new("P", (2, 1))
    p.putpalette([255, 0, 0, 0, 0, 255])
    p.putpixel((0, 0), 0)
    p.putpixel((1, 0), 1)
    for name in ("p.png", "p.gif"):
        out = load_image(_save(p, tmp_path / name, transparency=0))
        assert _px(out, (0, 0)) == (255, 255, 255), name
        assert _px(out, (1, 0)) == (0, 0, 255), name


def test_palette_without_transparency(tmp_path):
    p = Image.new("P", (2, 1))
    p.putpalette([12, 34, 56, 200, 100, 0])
    p.putpixel((1, 0), 1)
    out = load_image(_save(p, tmp_path / "p.png"))
    assert _px(out, (0, 0)) == (12, 34, 56)
    assert _px(out, (1, 0)) == (200, 100, 0)


def test_rgb_with_trns_colour_over_white(tmp_path):
    a = np.zeros((1, 2, 3), np.uint8)
    a[0, 1] = (9, 8, 7)
    out = load_image(_save(Image.fromarray(a), tmp_path / "t.png", transparency=(0, 0, 0)))
    assert _px(out, (0, 0)) == (255, 255, 255)
    assert _px(out, (1, 0)) == (9, 8, 7)


def test_greyscale_and_bilevel(tmp_path):
    out = load_image(_save(Image.new("L", (3, 2), 77), tmp_path / "l.png"))
    assert out.mode == "RGB" and _px(out) == (77, 77, 77)
    one = Image.new("1", (3, 2), 0)
    one.putpixel((2, 1), 1)
    out = load_image(_save(one, tmp_path / "1.png"))
    assert _px(out, (0, 0)) == (0, 0, 0)
    assert _px(out, (2, 1)) == (255, 255, 255)


def test_cmyk_cyan(tmp_path):
    cmyk = Image.new("CMYK", (4, 4), (255, 0, 0, 0))
    out = load_image(_save(cmyk, tmp_path / "c.tif"))
    assert _px(out) == (0, 255, 255)
    out = load_image(_save(cmyk, tmp_path / "c.jpg", quality=95))
    assert np.allclose(_px(out), (0, 255, 255), atol=6)


def test_ycbcr_lab_hsv_in_memory():
    red = Image.new("RGB", (4, 4), (255, 0, 0))
    for mode in ("YCbCr", "HSV"):
        out = load_image(red.convert(mode))
        assert np.allclose(_px(out), (255, 0, 0), atol=3), mode
    lab = Image.new("LAB", (2, 2), (128, 128, 128))  # mid grey in 8-bit Lab
    out = load_image(lab)
    r, g, b = _px(out)
    assert abs(r - g) <= 3 and abs(g - b) <= 3 and 90 < r < 160


@pytest.mark.parametrize("fmt", ["png", "tif"])
def test_sixteen_bit_file_scaled_by_shift(tmp_path, fmt):
    a = np.array([[0, 255, 40000, 65535]], np.uint16)
    img = Image.fromarray(a)
    assert img.mode == "I;16"
    out = load_image(_save(img, tmp_path / f"s.{fmt}"))
    got = [v[0] for v in np.asarray(out)[0].tolist()]
    assert got == [0, 0, 156, 255]  # value >> 8, not Pillow's clip-to-255


def test_sixteen_bit_big_endian_in_memory():
    img = Image.new("I;16B", (2, 1), 40000)
    assert np.asarray(img)[0, 0] == 40000
    assert _px(load_image(img)) == (156, 156, 156)


def test_mode_i_read_as_sixteen_bit():
    a = np.array([[-5, 40000, 70000]], np.int32)
    img = Image.fromarray(a)
    assert img.mode == "I"
    out = np.asarray(load_image(img))[0, :, 0].tolist()
    assert out == [0, 156, 255]


def test_float_images():
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32))
    assert unit.mode == "F"
    assert np.asarray(load_image(unit))[0, :, 0].tolist() == [0, 128, 255]
    wide = Image.fromarray(np.array([[-3.0, 200.0, 300.0, np.nan]], np.float32))
    assert np.asarray(load_image(wide))[0, :, 0].tolist() == [0, 200, 255, 0]


def test_premultiplied_modes_over_white():
    rgba = Image.new("RGBA", (1, 1), (0, 0, 0, 0))
    assert _px(load_image(rgba.convert("RGBa"))) == (255, 255, 255)
    half = Image.new("RGBA", (1, 1), (200, 0, 0, 255)).convert("RGBa")
    assert _px(load_image(half)) == (200, 0, 0)
    la = Image.new("LA", (1, 1), (0, 0)).convert("La")
    assert _px(load_image(la)) == (255, 255, 255)


def test_pa_mode_over_white():
    p = Image.new("P", (2, 1))
    p.putpalette([255, 0, 0, 0, 255, 0])
    p.putpixel((1, 0), 1)
    pa = p.convert("PA")
    pa.putpixel((0, 0), (0, 0))
    out = load_image(pa)
    assert _px(out, (0, 0)) == (255, 255, 255)
    assert _px(out, (1, 0)) == (0, 255, 0)


def test_pil_input_not_modified_and_result_is_new():
    src = Image.new("RGBA", (3, 3), (0, 0, 0, 0))
    out = load_image(src)
    assert src.mode == "RGBA" and out.mode == "RGB"
    rgb = Image.new("RGB", (3, 3), (1, 2, 3))
    out = load_image(rgb)
    assert out is not rgb
    out.putpixel((0, 0), (9, 9, 9))
    assert rgb.getpixel((0, 0)) == (1, 2, 3)


# ---------------------------------------------------------------------------
# EXIF, frames, inputs
# ---------------------------------------------------------------------------


def test_exif_orientation_applied(tmp_path):
    a = np.zeros((20, 40, 3), np.uint8)
    a[:10, :10] = (255, 0, 0)  # red block in the top-left corner
    img = Image.fromarray(a)
    exif = img.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = _save(img, tmp_path / "o.jpg", exif=exif.tobytes(), quality=95)
    out = load_image(path)
    assert out.size == (20, 40)
    arr = np.asarray(out).astype(int)
    assert arr[3, 16, 0] > 200 and arr[3, 16, 1] < 60  # top-left went to top-right
    assert arr[3, 3, 0] < 60


def test_first_frame_of_gif(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    assert _px(load_image(path)) == (255, 0, 0)


def test_first_frame_of_multipage_tiff(tmp_path):
    pages = [Image.new("RGB", (8, 8), c) for c in ((0, 255, 0), (0, 0, 255))]
    path = tmp_path / "pages.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    assert _px(load_image(path)) == (0, 255, 0)


def test_bytes_file_object_and_pathlike_inputs(tmp_path):
    src = _noise(9, 5, seed=3)
    data = _png_bytes(src)
    path = tmp_path / "x.png"
    path.write_bytes(data)
    expected = np.asarray(src)
    for source in (data, bytearray(data), io.BytesIO(data), path, str(path)):
        out = load_image(source)
        np.testing.assert_array_equal(np.asarray(out), expected)
        assert getattr(out, "fp", None) is None  # fully loaded, nothing left open
    with open(path, "rb") as f:
        np.testing.assert_array_equal(np.asarray(load_image(f)), expected)


def test_text_mode_file_object_rejected(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(_png_bytes(_noise(4, 4)))
    with open(path, encoding="latin-1") as f, pytest.raises(ImageError, match="binary mode"):
        load_image(f)


def test_wrong_source_type():
    with pytest.raises(TypeError, match="path, bytes"):
        load_image(123)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# bad files
# ---------------------------------------------------------------------------


def test_missing_path(tmp_path):
    path = tmp_path / "nope.png"
    with pytest.raises(ImageError, match=r"nope\.png' does not exist"):
        load_image(path)


def test_folder_path(tmp_path):
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("hello, I am text\n")
    with pytest.raises(ImageError, match=r"notes\.png' is not an image Pillow can read"):
        load_image(path)
    with pytest.raises(ImageError, match=r"the image data is not an image Pillow can read"):
        load_image(b"hello")


def test_zero_bytes(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.jpg' is empty \(0 bytes\)"):
        load_image(path)
    with pytest.raises(ImageError, match=r"is empty \(0 bytes\)"):
        load_image(io.BytesIO())


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated(tmp_path, fmt):
    buf = io.BytesIO()
    _noise(64, 64, seed=1).save(buf, format=fmt)
    data = buf.getvalue()
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=rf"cut\.{fmt.lower()}' is truncated or corrupt"):
        load_image(path)


def test_max_pixels_checked_before_decoding(tmp_path):
    path = _save(_noise(40, 30), tmp_path / "big.png")
    with pytest.raises(ImageError, match=r"big\.png' is 40x30 = 1,200 pixels, more than the limit of 1,000"):
        load_image(path, max_pixels=1000)
    assert load_image(path, max_pixels=1200).size == (40, 30)


def test_header_claiming_huge_size_is_refused_without_decoding():
    # the header says 60000 x 60000 but only 10 rows of data follow
    data = _one_bit_png(60000, 60000, rows=10)
    assert len(data) < 10_000
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(data)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_real_one_bit_bomb_png(tmp_path):
    # a genuine 10000 x 10000 PNG (100 MP) that is only a few KiB on disk
    path = tmp_path / "bomb.png"
    path.write_bytes(_one_bit_png(10000, 10000))
    assert path.stat().st_size < 100_000
    with pytest.raises(ImageError, match=r"10000x10000 = 100,000,000 pixels, more than the limit of 89,478,485"):
        load_image(path)


def test_small_one_bit_png_loads_under_limit():
    data = _one_bit_png(300, 200)
    with pytest.raises(ImageError, match="limit of 50,000"):
        load_image(data, max_pixels=50_000)
    out = load_image(data, max_pixels=60_000)
    assert out.size == (300, 200) and not np.asarray(out).any()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_max_pixels_validated(bad):
    with pytest.raises(ValueError, match="max_pixels must be a positive int"):
        load_image(b"x", max_pixels=bad)


def test_no_global_state_changed(tmp_path):
    before = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ImageError):
            load_image(_one_bit_png(10000, 10000))
    load_image(_png_bytes(_noise(4, 4)), max_pixels=16)
    assert Image.MAX_IMAGE_PIXELS == before


# ---------------------------------------------------------------------------
# prepare
# ---------------------------------------------------------------------------


def _bands(width: int, height: int) -> np.ndarray:
    """Three vertical bands: red | green | blue, each width // 3 wide."""
    a = np.zeros((height, width, 3), np.uint8)
    t = width // 3
    a[:, :t] = (255, 0, 0)
    a[:, t : 2 * t] = (0, 255, 0)
    a[:, 2 * t :] = (0, 0, 255)
    return a


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_prepare_odd_size(mode):
    src = _noise(33, 17)
    for image in (src, np.asarray(src)):
        out = prepare(image, 24, resize=mode)
        assert out.shape == (24, 24, 3) and out.dtype == np.uint8
        assert out.flags.c_contiguous and out.flags.writeable


def test_prepare_resize_keeps_whole_image_center_crop_keeps_middle():
    a = _bands(51, 17)
    full = prepare(a, 17, resize="resize")
    assert tuple(full[8, 1]) == (255, 0, 0) and tuple(full[8, 15]) == (0, 0, 255)
    crop = prepare(a, 17, resize="center-crop")
    # the centre square of 51 x 17 is exactly the green band, at scale 1
    assert (crop == (0, 255, 0)).all()


def test_prepare_center_crop_portrait():
    a = np.zeros((40, 10, 3), np.uint8)
    a[:15] = 255  # white top, black below from row 15: centre square rows 15..24 is black
    crop = prepare(a, 10, resize="center-crop")
    assert crop.max() == 0


def test_prepare_identity_and_not_aliased():
    a = np.asarray(_noise(32, 32))
    out = prepare(a, 32)
    np.testing.assert_array_equal(out, a)
    assert not np.shares_memory(out, a)


def test_prepare_matches_pil_bicubic_resize():
    src = _noise(33, 17, seed=7)
    expected = np.asarray(src.resize((16, 16), Image.BICUBIC))
    np.testing.assert_array_equal(prepare(src, 16), expected)


def test_prepare_converts_pil_modes():
    out = prepare(Image.new("RGBA", (10, 10), (0, 0, 0, 0)), 8)
    assert (out == 255).all()
    out = prepare(Image.new("I;16", (10, 10), 40000), 8)
    assert (out == 156).all()


@pytest.mark.parametrize("size", [7, 0, -8, 8.0, True, "16", None])
def test_prepare_size_validated(size):
    with pytest.raises(ValueError, match=r"size must be an int >= 8"):
        prepare(np.zeros((9, 9, 3), np.uint8), size)  # type: ignore[arg-type]


def test_prepare_resize_mode_validated():
    with pytest.raises(ValueError, match=r"resize must be one of resize, center-crop; got 'crop'"):
        prepare(np.zeros((9, 9, 3), np.uint8), 8, resize="crop")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((9, 9, 3), np.float32),
        np.zeros((9, 9), np.uint8),
        np.zeros((9, 9, 4), np.uint8),
        np.zeros((0, 9, 3), np.uint8),
    ],
)
def test_prepare_array_validated(array):
    with pytest.raises(ValueError, match="image array"):
        prepare(array, 8)


def test_prepare_wrong_type():
    with pytest.raises(TypeError, match="PIL image or a uint8"):
        prepare([[0]], 8)  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 70),
    w=st.integers(1, 70),
    size=st.integers(8, 48),
    mode=st.sampled_from(RESIZE_MODES),
    colour=st.tuples(*[st.integers(0, 255)] * 3),
)
def test_prepare_shape_and_constant_image(h, w, size, mode, colour):
    a = np.empty((h, w, 3), np.uint8)
    a[:] = colour
    out = prepare(a, size, resize=mode)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert (out == np.array(colour, np.uint8)).all()


# ---------------------------------------------------------------------------
# to_pil
# ---------------------------------------------------------------------------


def test_to_pil():
    rgb = np.asarray(_noise(5, 3))
    img = to_pil(rgb)
    assert img.mode == "RGB" and img.size == (5, 3)
    np.testing.assert_array_equal(np.asarray(img), rgb)
    grey = np.arange(6, dtype=np.uint8).reshape(2, 3)
    img = to_pil(grey)
    assert img.mode == "L"
    np.testing.assert_array_equal(np.asarray(img), grey)
    mask = np.array([[0.0, 0.2, 0.5, 1.0]], np.float32)
    img = to_pil(mask)
    assert img.mode == "L"
    assert np.asarray(img).tolist() == [[0, 51, 128, 255]]


@pytest.mark.parametrize(
    "array",
    [np.array([[1.5]]), np.array([[-0.1]]), np.array([[np.nan]])],
)
def test_to_pil_rejects_out_of_range_masks(array):
    with pytest.raises(ValueError, match=r"mask with values in \[0, 1\]"):
        to_pil(array)


def test_to_pil_rejects_other_arrays():
    with pytest.raises(ValueError, match="to_pil takes"):
        to_pil(np.zeros((2, 2, 3), np.float32))


def test_prepare_size_has_a_cap():
    # issue 8: prepare(size=100000) tried to allocate a 30 GB array
    from diffusemix.images import MAX_SIZE

    with pytest.raises(ValueError, match=r"size must be at most 4096 pixels.*got 100000"):
        prepare(np.zeros((9, 9, 3), np.uint8), 100000)
    assert MAX_SIZE == 4096 and prepare(np.zeros((9, 9, 3), np.uint8), 16).shape == (16, 16, 3)


def test_recipe_and_prepare_share_the_size_cap():
    from diffusemix.images import MAX_SIZE
    from diffusemix.recipe import Recipe

    Recipe(size=MAX_SIZE)
    with pytest.raises(ValueError, match="Recipe.size"):
        Recipe(size=MAX_SIZE + 1)
