"""Encode -> decode through the Python API on a 48x32 image, and decoder determinism."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helper import DATA, TINY_ITERATIONS, encode_tiny
from PIL import Image

import inrcodec
from inrcodec import UsageError
from inrcodec.train.encoder import psnr_uint8


def test_round_trip_native(tiny_encoded, tiny_image: np.ndarray) -> None:
    result, notes = tiny_encoded
    # A clean RGB PNG gets no notes about its input (30 steps may still miss the rate, which is noted).
    assert [note for note in notes if not note.startswith("the file is ")] == []
    assert (result.width, result.height) == (48, 32)
    assert result.bpp == len(result.data) * 8 / (48 * 32)
    assert result.iterations >= TINY_ITERATIONS
    decoded = inrcodec.decode_array(result.data)
    assert decoded.shape == (32, 48, 3) and decoded.dtype == np.uint8
    assert psnr_uint8(decoded, tiny_image) > 15  # 30 steps: rough, but clearly the image


def test_encoder_reports_the_decoders_psnr(tiny_encoded, tiny_image: np.ndarray) -> None:
    result, _ = tiny_encoded
    assert result.psnr == psnr_uint8(inrcodec.decode_array(result.data), tiny_image)


def test_inspect_matches_encode(tiny_encoded) -> None:
    result, _ = tiny_encoded
    info = inrcodec.inspect(result.data)
    assert (info.width, info.height, info.file_bytes) == (48, 32, len(result.data))
    assert info.bpp == result.bpp


@pytest.mark.parametrize(("size", "scale", "shape"), [
    (None, None, (32, 48)),
    ("97x61", None, (61, 97)),
    ("50x", None, (33, 50)),  # aspect kept: 32 * 50 / 48 = 33.3
    ("x20", None, (20, 30)),
    (" 7 X 5 ", None, (5, 7)),
    ((1, 1), None, (1, 1)),
    ([300, 2], None, (2, 300)),
    (None, 2.5, (80, 120)),
    (None, 0.1, (3, 5)),
])
def test_decode_sizes(tiny_encoded, size, scale, shape: tuple[int, int]) -> None:
    data = tiny_encoded[0].data
    pixels = inrcodec.decode_array(data, size=size, scale=scale)
    assert pixels.shape == (*shape, 3) and pixels.dtype == np.uint8
    image = inrcodec.decode(data, size=size, scale=scale)
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == shape[::-1]
    np.testing.assert_array_equal(np.asarray(image), pixels)


def test_upscaled_decode_agrees_with_native(tiny_encoded) -> None:
    """Resolution independence, loosely: 2x decode, box-downsampled, is close to the native decode."""
    data = tiny_encoded[0].data
    native = inrcodec.decode_array(data).astype(np.float64)
    double = inrcodec.decode_array(data, scale=2).astype(np.float64)
    pooled = double.reshape(32, 2, 48, 2, 3).mean(axis=(1, 3))
    assert 10 * math.log10(255**2 / np.mean((pooled - native) ** 2)) > 25


@pytest.mark.parametrize(("size", "scale"), [
    ("0x0", None), ("axb", None), ("99999999x2", None), ("9" * 5000 + "x2", None), ("x", None), ("", None),
    ("-3x4", None), ("3.5x4", None), ("65537x1", None), ("8193x8193", None), ((0, 5), None), ((5,), None),
    ((2.5, 3), None), ({1, 2}, None), ("3x4", 2.0),
    (None, 0), (None, -1), (None, float("nan")), (None, float("inf")), (None, 1e308), (None, 1e-9), (None, "2"),
])
def test_bad_sizes_are_usage_errors(sample: bytes, size, scale) -> None:
    with pytest.raises(UsageError):
        inrcodec.decode_array(sample, size=size, scale=scale)


def test_corrupt_file_is_reported_before_the_size(sample: bytes) -> None:
    with pytest.raises(inrcodec.CocoFormatError):
        inrcodec.decode_array(sample[:-1], size="0x0")


@pytest.mark.parametrize("kwargs", [
    {"bpp": 0}, {"bpp": 0.01}, {"bpp": 8.01}, {"bpp": 100}, {"bpp": -1}, {"bpp": float("nan")},
    {"bpp": float("inf")}, {"bpp": None}, {"lmbda": 0}, {"lmbda": 10}, {"lmbda": -1e-3}, {"lmbda": float("nan")},
    {"effort": "slow"}, {"time_limit": 0}, {"time_limit": -5}, {"device": "tpu"},
])
def test_bad_encoder_arguments(tiny_image: np.ndarray, kwargs: dict) -> None:
    with pytest.raises(UsageError):
        inrcodec.encode_with_report(tiny_image, iterations=1, **{"device": "cpu", **kwargs})


def test_cuda_refused_for_training_without_gpu(tiny_image: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError, match="cuda"):
        inrcodec.encode_with_report(tiny_image, iterations=1, device="cuda")


def test_decoding_runs_on_the_cpu_whatever_the_device_says(sample: bytes) -> None:
    """Decoding is numpy on the CPU; `device` is kept for compatibility and only validated."""
    pixels = inrcodec.decode_array(sample)
    for device in ("auto", "cpu", "cuda"):
        assert np.array_equal(inrcodec.decode_array(sample, device=device), pixels)
    with pytest.raises(UsageError, match="tpu"):
        inrcodec.decode_array(sample, device="tpu")


NO_TORCH_DECODE = textwrap.dedent("""
    import sys
    import inrcodec
    data = open(sys.argv[1], "rb").read()
    inrcodec.inspect(data)
    inrcodec.decode(data, size="97x61")
    print(sorted(name for name in sys.modules if name == "torch" or name.startswith("torch.")))
""")


def test_decoding_does_not_import_torch() -> None:
    """Torch's import alone takes over a second: `inspect` and `decode` must not pay it."""
    for name in ("gradient-64x48.coco", "v2-gradient-48x32.coco", "v3-gradient-48x32.coco"):
        proc = subprocess.run([sys.executable, "-c", NO_TORCH_DECODE, str(DATA / name)],
                              capture_output=True, text=True, timeout=120, check=True)
        assert proc.stdout.strip() == "[]", (name, proc.stdout)


def test_lambda_mode() -> None:
    result, _ = encode_tiny(bpp=None, lmbda=1e-3)
    assert result.lmbda == pytest.approx(1e-3)  # no rate controller: lambda stays put
    assert result.iterations == TINY_ITERATIONS  # and no refits
    assert inrcodec.decode_array(result.data).shape == (32, 48, 3)


def test_same_seed_same_bytes(tiny_image: np.ndarray) -> None:
    def run(seed: int) -> bytes:
        result, _ = inrcodec.encode_with_report(tiny_image, lmbda=1e-3, iterations=10, device="cpu", seed=seed)
        return result.data

    first = run(0)
    assert run(0) == first
    assert run(1) != first


def test_encode_public_signature(tiny_image: np.ndarray, fast_encoder: None) -> None:
    data = inrcodec.encode(Image.fromarray(tiny_image), bpp=2.0, effort="fast", device="cpu")
    assert inrcodec.inspect(data).width == 48


DECODE_MD5 = textwrap.dedent("""
    import hashlib, os, sys
    import inrcodec
    data = open(sys.argv[1], "rb").read()
    for size in (None, "97x61", "211x3", "1024x768"):
        pixels = inrcodec.decode_array(data, size=size)
        print(os.environ["OPENBLAS_NUM_THREADS"], hashlib.md5(pixels.tobytes()).hexdigest())
""")


def test_decode_identical_with_one_or_two_threads() -> None:
    """Fresh processes, so no state is shared; the md5s must match each other and this process.

    numpy's BLAS (OpenBLAS) splits products of this size (1024x768's
    synthesis) over its threads; the sums are exact integers either way.
    """
    path = DATA / "gradient-64x48.coco"
    outputs = []
    for threads in (1, 2):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
        proc = subprocess.run([sys.executable, "-c", DECODE_MD5, str(path)],
                              capture_output=True, text=True, timeout=120, check=True, env=env)
        lines = proc.stdout.split()
        assert lines[0::2] == [str(threads)] * 4
        outputs.append(lines[1::2])
    assert outputs[0] == outputs[1]
    data = path.read_bytes()
    assert outputs[0][0] == hashlib.md5(inrcodec.decode_array(data).tobytes()).hexdigest()
    assert outputs[0][1] == hashlib.md5(inrcodec.decode_array(data, size="97x61").tobytes()).hexdigest()
