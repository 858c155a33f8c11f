"""Input images from strangers: every file is either handled (maybe with a note) or an ImageInputError.

Also the atomic output writer the CLI relies on.
"""

from __future__ import annotations

import io
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from helper import listing, synthetic_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import inrcodec
from inrcodec import ImageInputError, UsageError
from inrcodec.imageio import atomic_output, load_image

RGB = synthetic_image(24, 16)


def save(im: Image.Image, path: Path, **kwargs: object) -> Path:
    im.save(path, **kwargs)
    return path


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def with_ihdr_size(png: bytes, width: int, height: int) -> bytes:
    """Patch the IHDR width/height of a PNG and fix its CRC (the image data stays small)."""
    assert png[12:16] == b"IHDR"
    ihdr = b"IHDR" + struct.pack(">II", width, height) + png[24:29]
    return png[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]


# --- broken files ---------------------------------------------------------------------------


def load_or_error(path: Path) -> np.ndarray | None:
    """Pixels of a handled file, None for ImageInputError; any other exception fails the test."""
    try:
        pixels, _ = load_image(path)
    except ImageInputError:
        return None
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3
    return pixels


@pytest.mark.filterwarnings("ignore:Truncated File Read")
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "TIFF", "BMP"])
@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_truncated(tmp_path: Path, fmt: str, keep: float) -> None:
    buf = io.BytesIO()
    Image.fromarray(RGB).save(buf, format=fmt)
    data = buf.getvalue()
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(data[: int(len(data) * keep)])
    if keep <= 0.5:
        with pytest.raises(ImageInputError):
            load_image(path)
    else:  # a cut in trailing chunks (PNG's IEND) may leave every pixel readable
        pixels = load_or_error(path)
        assert pixels is None or pixels.shape == (16, 24, 3)


@pytest.mark.parametrize("content", [b"", b"hello, world\n", b"\x89PNG\r\n\x1a\n", bytes(1000), b"\xff\xd8\xff"])
def test_not_an_image(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(content)
    with pytest.raises(ImageInputError, match="not a readable image|corrupt"):
        load_image(path)


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError, match="no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageInputError, match="directory"):
        load_image(tmp_path)
    os.mkfifo(tmp_path / "fifo.png")
    with pytest.raises(ImageInputError, match="regular file"):
        load_image(tmp_path / "fifo.png")  # would block forever if opened


@pytest.mark.parametrize(("width", "height", "match"), [
    (20000, 20000, "not a readable image"),  # Pillow's own decompression-bomb error (> 2x its limit)
    (10000, 10000, "not a readable image"),  # Pillow's warning, turned into an error
    (9000, 10, "at most"),
    (8192, 8192, "at most"),
    (0x7FFFFFFF, 1, "readable|at most"),
])
def test_decompression_bomb(tmp_path: Path, width: int, height: int, match: str) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(with_ihdr_size(png_bytes(Image.fromarray(RGB)), width, height))
    start = time.monotonic()
    with pytest.raises(ImageInputError, match=match):
        load_image(path)
    assert time.monotonic() - start < 2  # refused from the header, nothing decoded


def test_bomb_size_inside_limits_but_little_data(tmp_path: Path) -> None:
    """The header claims 4000x4000 but the stream holds 24x16 pixels: truncated, not a crash."""
    path = tmp_path / "short.png"
    path.write_bytes(with_ihdr_size(png_bytes(Image.fromarray(RGB)), 4000, 4000))
    with pytest.raises(ImageInputError):
        load_image(path)


@settings(max_examples=150, deadline=2000, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["PNG", "JPEG", "GIF", "BMP"]), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                                min_size=1, max_size=8))
def test_fuzz_corrupted_images(tmp_path: Path, fmt: str, flips: list[tuple[int, int]]) -> None:
    buf = io.BytesIO()
    Image.fromarray(RGB).save(buf, format=fmt)
    data = bytearray(buf.getvalue())
    for pos, value in flips:
        data[pos % len(data)] = value
    path = tmp_path / "fuzz.img"
    path.write_bytes(bytes(data))
    load_or_error(path)


# --- modes and metadata ---------------------------------------------------------------------


def test_rgb_png_exact(tmp_path: Path) -> None:
    pixels, notes = load_image(save(Image.fromarray(RGB), tmp_path / "x.png"))
    np.testing.assert_array_equal(pixels, RGB)
    assert notes == [] and pixels.flags["C_CONTIGUOUS"]


def test_16_bit_png(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    path = save(Image.fromarray(values), tmp_path / "x.png")
    with Image.open(path) as im:
        assert im.mode.startswith("I")
    pixels, notes = load_image(path)
    assert pixels.shape == (1, 4, 3)
    assert pixels[0, :, 0].tolist() == [0, 1, 128, 255]
    assert (pixels == pixels[:, :, :1]).all()
    assert any("8 bits" in n for n in notes)


def test_grayscale(tmp_path: Path) -> None:
    grey = RGB[:, :, 1]
    pixels, notes = load_image(save(Image.fromarray(grey), tmp_path / "x.png"))
    np.testing.assert_array_equal(pixels, np.repeat(grey[:, :, None], 3, axis=2))
    assert notes == []


def test_palette(tmp_path: Path) -> None:
    im = Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pixels, notes = load_image(save(im, tmp_path / "x.png"))
    np.testing.assert_array_equal(pixels, np.asarray(im.convert("RGB")))
    assert notes == []


def test_palette_with_transparency(tmp_path: Path) -> None:
    im = Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    used = int(np.asarray(im)[0, 0])
    with pytest.raises(ImageInputError, match="transparent"):
        load_image(save(im, tmp_path / "used.png", transparency=used))
    unused = next(i for i in range(256) if i not in set(np.asarray(im).ravel()))
    pixels, notes = load_image(save(im, tmp_path / "unused.png", transparency=unused))
    assert pixels.shape == (16, 24, 3) and "alpha" in " ".join(notes)


@pytest.mark.parametrize("mode", ["LA", "RGBA"])
def test_alpha(tmp_path: Path, mode: str) -> None:
    base = Image.fromarray(RGB).convert(mode[:-1])
    alpha = np.full((16, 24), 255, np.uint8)
    im = Image.merge(mode, [*base.split(), Image.fromarray(alpha)])
    pixels, notes = load_image(save(im, tmp_path / "opaque.png"))
    np.testing.assert_array_equal(pixels, np.asarray(base.convert("RGB")))
    assert notes == ["fully opaque alpha channel dropped"]
    alpha[3, 4] = 254
    im = Image.merge(mode, [*base.split(), Image.fromarray(alpha)])
    with pytest.raises(ImageInputError, match="transparent"):
        load_image(save(im, tmp_path / "translucent.png"))


def test_cmyk_jpeg(tmp_path: Path) -> None:
    pixels, notes = load_image(save(Image.fromarray(RGB).convert("CMYK"), tmp_path / "x.jpg", quality=95))
    assert pixels.shape == (16, 24, 3)
    assert any("CMYK" in n for n in notes)


def test_exif_rotated_jpeg(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = save(Image.fromarray(RGB), tmp_path / "x.jpg", exif=exif, quality=95)
    pixels, notes = load_image(path)
    assert pixels.shape == (24, 16, 3)
    assert "EXIF orientation applied" in notes
    # The top-left pixel of the stored image ends up top-right.
    stored = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert np.abs(pixels[0, -1].astype(int) - stored[0, 0]).max() <= 8


def test_exif_orientation_out_of_range_ignored(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 9
    pixels, notes = load_image(save(Image.fromarray(RGB), tmp_path / "x.jpg", exif=exif))
    assert pixels.shape == (16, 24, 3) and notes == []


def test_animated_gif_first_frame(tmp_path: Path) -> None:
    frames = [Image.fromarray(RGB), Image.fromarray(255 - RGB)]
    path = save(frames[0], tmp_path / "x.gif", save_all=True, append_images=frames[1:])
    pixels, notes = load_image(path)
    assert pixels.shape == (16, 24, 3)
    assert any("first frame" in n for n in notes)


@pytest.mark.parametrize("mode", ["1", "L", "P", "I", "I;16", "I;16B", "F", "LA", "La", "PA", "RGB", "RGBA", "RGBa",
                                  "RGBX", "CMYK", "YCbCr", "LAB", "HSV"])
def test_pil_image_modes(mode: str) -> None:
    """In-memory PIL images of every mode: converted, or refused cleanly."""
    im = Image.new(mode, (5, 3))
    try:
        pixels, _ = load_image(im)
    except ImageInputError as exc:
        assert "transparent" in str(exc)  # zero alpha
        return
    assert pixels.shape == (3, 5, 3) and pixels.dtype == np.uint8


@pytest.mark.parametrize("mode", ["RGBa", "La"])
def test_premultiplied_opaque_alpha(mode: str) -> None:
    im = Image.new(mode, (5, 3), (10,) * len(mode[:-1]) + (255,))
    pixels, notes = load_image(im)
    assert (pixels == 10).all() and "alpha" in notes[0]


@pytest.mark.parametrize("size", [(1, 1), (1, 4000), (4000, 1), (8192, 1)])
def test_extreme_shapes_load(tmp_path: Path, size: tuple[int, int]) -> None:
    im = Image.new("RGB", size, (1, 2, 3))
    pixels, _ = load_image(save(im, tmp_path / "x.png"))
    assert pixels.shape == (size[1], size[0], 3)


def test_too_wide(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError, match="at most"):
        load_image(save(Image.new("L", (8193, 1)), tmp_path / "x.png"))


@pytest.mark.parametrize("size", [(1, 1), (1, 40), (40, 1)])
def test_encode_extreme_shapes(size: tuple[int, int]) -> None:
    width, height = size
    image = synthetic_image(width, height)
    result, _ = inrcodec.encode_with_report(image, lmbda=1e-3, iterations=5, device="cpu")
    assert inrcodec.inspect(result.data).width == width
    assert inrcodec.decode_array(result.data).shape == (height, width, 3)
    assert inrcodec.decode_array(result.data, size="7x5").shape == (5, 7, 3)


# --- arrays -----------------------------------------------------------------------------------


def test_arrays() -> None:
    np.testing.assert_array_equal(load_image(RGB)[0], RGB)
    grey, _ = load_image(RGB[:, :, 0])
    assert grey.shape == (16, 24, 3)
    rgba = np.dstack([RGB, np.full((16, 24), 255, np.uint8)])
    np.testing.assert_array_equal(load_image(rgba)[0], RGB)
    np.testing.assert_array_equal(load_image(RGB[:, ::-1])[0], RGB[:, ::-1])  # non-contiguous view


@pytest.mark.parametrize("array", [
    RGB.astype(np.uint16), RGB.astype(np.float32) / 255, RGB.astype(bool), RGB[:, :, :2], RGB[None],
    np.zeros((0, 5, 3), np.uint8), np.zeros((5, 0), np.uint8), np.zeros((1, 8193, 3), np.uint8),
    np.dstack([RGB, np.zeros((16, 24), np.uint8)]),
])
def test_bad_arrays(array: np.ndarray) -> None:
    with pytest.raises(ImageInputError):
        load_image(array)


# --- atomic output ----------------------------------------------------------------------------


def test_atomic_output_success(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with atomic_output(target) as fh:
        fh.write(b"new")
        assert target.read_bytes() == b"old"  # not visible before the end
    assert target.read_bytes() == b"new"
    assert listing(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit, ValueError, OSError])
def test_atomic_output_failure_leaves_nothing(tmp_path: Path, exc: type[BaseException]) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    expected = UsageError if exc is OSError else exc
    with pytest.raises(expected), atomic_output(target) as fh:
        fh.write(b"partial")
        raise exc()
    assert target.read_bytes() == b"old"
    assert listing(tmp_path) == ["out.bin"]


def test_atomic_output_unwritable_folder(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot write"), atomic_output(tmp_path / "missing" / "x.bin"):
        pass
