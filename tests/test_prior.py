"""The image-based starting lambda (`inrcodec.train.prior`) and how the fit uses it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from inrcodec.train import encoder, fit, prior
from inrcodec.train.fit import Fitter, RateTarget
from inrcodec.train.model import CocoNet

ARCH = encoder.ARCHITECTURE


def _smooth(height: int = 64, width: int = 96) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], -1).astype(np.uint8)


def _noise(height: int = 64, width: int = 96) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_jpeg_bpp_measures_detail_without_the_headers() -> None:
    smooth, noise = prior.jpeg_bpp(_smooth()), prior.jpeg_bpp(_noise())
    assert prior.MIN_JPEG_BPP <= smooth < 0.5 < noise
    # Headers are left out: a flat image costs little per pixel at any size
    # (an 8x8 one with its ~600 bytes of headers would be ~80 bpp).
    for size in (8, 16, 200):
        assert prior.MIN_JPEG_BPP <= prior.jpeg_bpp(np.full((size, size, 3), 77, dtype=np.uint8)) < 0.5
    # A tile of the noise costs about the same per pixel as the whole.
    assert prior.jpeg_bpp(_noise()[:32, :32]) == pytest.approx(noise, rel=0.1)


def test_prior_lambda_grows_with_detail_and_falls_with_the_rate() -> None:
    base = prior.prior_log_lambda(0.5, 0.6)
    assert prior.prior_log_lambda(0.5, 1.2) > base > prior.prior_log_lambda(0.5, 0.3)
    assert prior.prior_log_lambda(1.0, 0.6) < base < prior.prior_log_lambda(0.25, 0.6)
    assert prior.prior_log_lambda(0.5, 0.0) == prior.prior_log_lambda(0.5, prior.MIN_JPEG_BPP)


def test_rate_target_starts_busy_images_at_a_higher_lambda_within_the_shift() -> None:
    n = 256 * 384  # large enough that the weights leave the latents most of 1 bpp
    generic = encoder.rate_target(1.0, n)
    smooth, noise = encoder.rate_target(1.0, n, _smooth(256, 384)), encoder.rate_target(1.0, n, _noise(256, 384))
    assert not generic.aimed and smooth.aimed and noise.aimed
    assert generic.lmbda == pytest.approx(fit.initial_lambda(1.0))
    assert smooth.latent_bpp == noise.latent_bpp == generic.latent_bpp  # only lambda depends on the image
    assert smooth.lmbda < noise.lmbda
    for target in (smooth, noise):
        assert abs(math.log(target.lmbda / generic.lmbda)) <= encoder.MAX_PRIOR_SHIFT + 1e-9
    flat = encoder.rate_target(1.0, n, np.zeros((256, 384, 3), dtype=np.uint8))
    assert flat.lmbda == pytest.approx(generic.lmbda / 16)  # far outside Kodak: clamped


@pytest.mark.parametrize("aimed", [False, True])
def test_the_probe_re_aims_only_a_generic_lambda(aimed: bool) -> None:
    torch.manual_seed(0)
    image = torch.rand(32, 48, 3)
    fitter = Fitter(image, CocoNet(32, 48, ARCH), RateTarget(0.05, 1e-3, aimed=aimed), seed=0)
    fitter.probe()
    assert fitter.probe_rate is not None and fitter.probe_mse is not None  # measured either way
    if aimed:
        assert fitter.lmbda == pytest.approx(1e-3)
    else:
        assert fitter.lmbda != pytest.approx(1e-3)


def test_an_aimed_lambda_past_the_drop_threshold_still_drops_the_finest_level_at_the_probe() -> None:
    image = torch.rand(32, 48, 3)
    start = fit.DROP_FINEST_ABOVE * 2
    fitter = Fitter(image, CocoNet(32, 48, ARCH), RateTarget(0.05, start, aimed=True), seed=0)
    fitter.probe()
    assert fitter.model.first_level == 1 and fitter.lmbda == pytest.approx(start * fit.DROP_LAMBDA_FACTOR)



@pytest.mark.parametrize("min_steps, aimed", [(prior.MIN_STEPS, False), (10, True)])
def test_only_fits_of_at_least_min_steps_start_from_the_prior(monkeypatch: pytest.MonkeyPatch, min_steps: int,
                                                              aimed: bool) -> None:
    monkeypatch.setattr(prior, "MIN_STEPS", min_steps)
    seen: list[RateTarget] = []
    real = encoder.rate_target
    monkeypatch.setattr(encoder, "rate_target", lambda *args: seen.append(real(*args)) or seen[-1])
    result = encoder.encode_array(_smooth(32, 48), encoder.EncodeOptions(bpp=2.0, iterations=20))
    assert result.data and [t.aimed for t in seen] == [aimed]
