"""The benchmark's codec wrappers and metrics."""

from __future__ import annotations

import io
import math
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.codecs import CLASSICAL, CODECS, InrCodec, is_learned, parse_setting, setting_key
from bench.metrics import measure, ms_ssim, msssim_db, psnr


@pytest.fixture
def image() -> Image.Image:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:64]
    rgb = np.stack([x * 3, y * 4, (x + y) * 2], -1) + rng.normal(0, 3, (48, 64, 3))
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("name", CLASSICAL)
def test_classical_codecs_round_trip_and_rate_grows_with_setting(name: str, image: Image.Image) -> None:
    codec = CODECS[name]()
    low, high = codec.sweep[0], codec.sweep[-1]
    small, large = codec.encode(image, low), codec.encode(image, high)
    assert len(small) < len(large)
    rec = codec.decode(large)
    assert rec.mode == "RGB" and rec.size == image.size
    assert psnr(np.asarray(image), np.asarray(rec)) > 30
    assert codec.version().startswith("Pillow ")


def test_settings_round_trip_through_their_key() -> None:
    for cls in CODECS.values():
        for setting in cls.sweep:
            assert parse_setting(setting_key(setting)) == setting
    assert setting_key({"bpp": 0.5, "effort": "default"}) == "bpp=0.5;effort=default"


def test_bench_imports_no_inrcodec_until_it_runs() -> None:
    code = "import sys, bench.__main__; sys.exit('inrcodec' in sys.modules or 'torch' in sys.modules)"
    root = Path(__file__).resolve().parent.parent
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0


def test_inrcodec_wrapper_calls_the_package_api(image: Image.Image, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def encode(img: Image.Image, **kwargs: object) -> bytes:
        calls.append(kwargs)
        buf = io.BytesIO()
        img.save(buf, "PNG")
        return buf.getvalue()

    fake = types.SimpleNamespace(
        __version__="0.0-test", encode=encode, decode=lambda data: Image.open(io.BytesIO(data))
    )
    monkeypatch.setitem(sys.modules, "inrcodec", fake)
    codec = InrCodec()
    data = codec.encode(image, {"bpp": 0.5, "effort": "fast"})
    assert calls == [{"bpp": 0.5, "effort": "fast", "device": "cpu", "seed": 0}]
    assert np.array_equal(np.asarray(codec.decode(data)), np.asarray(image))
    assert codec.version().startswith("inrcodec 0.0-test; torch ")
    assert is_learned("inrcodec") and not is_learned("jpeg420") and not is_learned("someday")
    assert InrCodec.make_sweep([0.25, 1.0], ["fast"]) == (
        {"bpp": 0.25, "effort": "fast"},
        {"bpp": 1.0, "effort": "fast"},
    )
    codec.encode(image, {"bpp": 0.5, "effort": "max", "device": "cuda"})
    assert calls[-1] == {"bpp": 0.5, "effort": "max", "device": "cuda", "seed": 0}
    assert InrCodec.make_sweep([0.5], ["max"], "cuda") == ({"bpp": 0.5, "effort": "max", "device": "cuda"},)


def test_psnr_of_known_error() -> None:
    ref = np.zeros((8, 8, 3), np.uint8)
    rec = ref.copy()
    rec[..., 0] = 255  # MSE = 255^2 / 3 over all pixels and channels
    assert psnr(ref, rec) == pytest.approx(10 * math.log10(3))
    assert psnr(ref, ref) == math.inf


def test_ms_ssim_needs_161_pixels(image: Image.Image) -> None:
    small = np.asarray(image)
    assert math.isnan(ms_ssim(small, small)) and math.isnan(msssim_db(math.nan))
    big = np.asarray(image.resize((200, 161)))
    noisy = np.clip(big + np.random.default_rng(1).normal(0, 8, big.shape), 0, 255).astype(np.uint8)
    assert ms_ssim(big, big) == pytest.approx(1.0)
    value = ms_ssim(big, noisy)
    assert 0.5 < value < 1
    assert msssim_db(value) == pytest.approx(-10 * math.log10(1 - value))


def test_measure_reports_time_and_peak_memory() -> None:
    result, measured = measure(lambda: np.ones(50_000_000 // 8).sum())
    assert result == 50_000_000 // 8 and measured.seconds > 0
    if sys.platform == "linux":
        assert measured.peak_mb == pytest.approx(50, rel=0.2)
