"""Reading input images defensively and writing outputs atomically.

Inputs come from strangers: the size is checked from the header before any
pixel is decoded, every Pillow failure becomes one `ImageInputError`, and
modes are normalised to 8-bit RGB with the conversions listed in the README
(EXIF orientation applied, 16-bit reduced to 8, grey and palette expanded,
opaque alpha dropped, translucent alpha refused).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageInputError, UsageError
from .format.header import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray]
SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
EXIF_ORIENTATION = 0x0112


def _check_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ImageInputError(f"image has an empty size {width}x{height}")
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise ImageInputError(
            f"image is {width}x{height}; the encoder accepts at most {MAX_IMAGE_SIDE} pixels a side "
            f"and {MAX_IMAGE_PIXELS} pixels in all")


def _to_rgb(im: Image.Image, notes: list[str]) -> np.ndarray:
    """Normalise any Pillow mode to uint8 RGB [H, W, 3]."""
    if im.mode in SIXTEEN_BIT_MODES:
        notes.append(f"{im.mode} image reduced to 8 bits per sample")
        grey = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode != "I" or grey.max(initial=0) > 255 else 255.0
        grey8 = np.clip(np.round(grey / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey8[:, :, None], 3, axis=2)
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = np.asarray(im.getchannel(len(im.getbands()) - 1))  # "A", or "a" when premultiplied
        if alpha.min(initial=255) < 255:
            raise ImageInputError("image has transparent pixels; inrcodec stores opaque RGB only (flatten it first)")
        notes.append("fully opaque alpha channel dropped")
        if im.mode == "La":  # Pillow has no La -> RGB path; with opaque alpha La equals LA
            im = im.convert("LA")
    if im.mode == "CMYK":
        notes.append("CMYK converted to RGB without a colour profile")
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def _from_pil(im: Image.Image, notes: list[str]) -> np.ndarray:
    """Size check (before decoding), load, EXIF orientation, then mode conversion."""
    _check_size(*im.size)
    im.load()
    if getattr(im, "n_frames", 1) > 1:
        notes.append("only the first frame of a multi-frame image is encoded")
    if im.getexif().get(EXIF_ORIENTATION, 1) in range(2, 9):
        notes.append("EXIF orientation applied")
    oriented = ImageOps.exif_transpose(im)
    _check_size(*oriented.size)
    return _to_rgb(oriented, notes)


def load_image(source: ImageLike) -> tuple[np.ndarray, list[str]]:
    """Load an image as uint8 RGB.

    Args:
        source: a path, a PIL image, or a uint8 array [H, W], [H, W, 3] or [H, W, 4].

    Returns:
        (pixels [H, W, 3] uint8, notes about conversions applied).

    Raises:
        ImageInputError: unreadable, corrupt, unsupported or too large.
    """
    notes: list[str] = []
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source), notes
    if isinstance(source, Image.Image):
        with _pillow_errors("image"):
            return _from_pil(source, notes), notes
    path = Path(source)
    if path.is_dir():
        raise ImageInputError(f"{path} is a directory, not an image")
    if path.exists() and not path.is_file():
        raise ImageInputError(f"{path} is not a regular file")
    try:
        with _pillow_errors(str(path)), Image.open(path) as im:
            return _from_pil(im, notes), notes
    except FileNotFoundError as exc:
        raise ImageInputError(f"{path}: no such file") from exc


@contextlib.contextmanager
def _pillow_errors(name: str) -> Iterator[None]:
    """Turn whatever Pillow raises on a hostile file into one ImageInputError.

    Pillow's decoders raise many types on corrupt input (OSError, ValueError,
    SyntaxError, struct.error, EOFError, TypeError, KeyError, IndexError, ...);
    a decompression-bomb warning is an error here.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except (ImageInputError, FileNotFoundError):
            raise
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageInputError(f"{name}: not a readable image ({exc.__class__.__name__})") from exc
        except PermissionError as exc:
            raise ImageInputError(f"{name}: {exc.strerror}") from exc
        except MemoryError as exc:
            raise ImageInputError(f"{name}: out of memory while decoding the image") from exc
        except Exception as exc:  # any decoder failure on untrusted bytes
            raise ImageInputError(f"{name}: corrupt or truncated image ({exc.__class__.__name__}: {exc})") from exc


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.dtype != np.uint8:
        raise ImageInputError(f"image arrays must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ImageInputError(f"image arrays must be [H, W], [H, W, 3] or [H, W, 4], got {arr.shape}")
    if arr.shape[2] == 4:
        if arr[:, :, 3].min(initial=255) < 255:
            raise ImageInputError("image has transparent pixels; inrcodec stores opaque RGB only")
        arr = arr[:, :, :3]
    _check_size(arr.shape[1], arr.shape[0])
    return np.ascontiguousarray(arr)


def check_output_path(path: Path, *inputs: Path) -> None:
    """Refuse output paths that are directories, special files or one of the inputs."""
    if path.is_dir():
        raise UsageError(f"output path {path} is a directory")
    if path.exists() and not path.is_file():
        raise UsageError(f"output path {path} exists and is not a regular file")
    if not path.parent.is_dir():
        raise UsageError(f"output folder {path.parent} does not exist")
    for source in inputs:
        if path.exists() and source.exists() and os.path.samefile(path, source):
            raise UsageError(f"refusing to overwrite the input file {source}")


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[IO[bytes]]:
    """Write to a temporary file beside `path`, renamed onto it only on success.

    An exception, a full disk or Ctrl-C leaves no partial file and leaves any
    existing file at `path` untouched.

    Raises:
        UsageError: the file cannot be created or written (permissions, full
            disk, ...); the OSError is chained.
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    umask = os.umask(0)
    os.umask(umask)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~umask)  # mkstemp creates 0600; give the usual mode
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise


def save_png(pixels: np.ndarray, path: Path) -> None:
    """Write uint8 RGB pixels as PNG, atomically."""
    with atomic_output(path) as fh:
        Image.fromarray(pixels, "RGB").save(fh, format="PNG")
