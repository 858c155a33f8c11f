"""Encoder-side checks: crops compute what the whole image computes, the rate
estimate matches the coded rate, and rate control lands on the target."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from inrcodec.format.architecture import Architecture
from inrcodec.format.bitstream import read_sections, write_coco
from inrcodec.train.encoder import EncodeOptions, _latent_bits_in, _quantize_and_write, _shrink_to, encode_array
from inrcodec.train.fit import Fitter, RateTarget
from inrcodec.train.model import CocoNet, Window, round_latents
from inrcodec.train.quantize import quantize_model

ARCH = Architecture(7, (16, 16), (16, 16))


def _random_model(height: int, width: int, spread: float = 3.0) -> CocoNet:
    torch.manual_seed(0)
    model = CocoNet(height, width, ARCH)
    with torch.no_grad():
        for grid in model.latents:
            grid.normal_(0, spread)
    return model


@pytest.mark.parametrize("size", [(77, 53), (64, 64), (130, 200)])
def test_crop_equals_whole_image(size: tuple[int, int]) -> None:
    height, width = size
    model = _random_model(height, width)
    full = model.quantized_latents("round")
    for win in (Window(0, height, 0, width), Window(5, 40, 7, 33), Window(height - 20, height, 0, 17),
                Window(1, 2, width - 1, width)):
        crops = model.crop_latents(win, "round")
        torch.testing.assert_close(model.synthesize(crops, win), model.synthesize(full, win))
        torch.testing.assert_close(model.latent_bits(crops, win)[0], model.latent_bits(full, win)[0])


def test_rate_estimate_matches_coded_latents() -> None:
    model = _random_model(96, 80, spread=2.0)
    image = torch.rand(96, 80, 3)
    with torch.no_grad():
        estimate = float(model.latent_bits(model.quantized_latents("round"), model.full_window())[0])
    qm = quantize_model(model, image, lmbda=1e-3)
    _, _, payloads, _ = read_sections(write_coco(qm.header, qm.synthesis, qm.arm, qm.latents))
    coded = len(payloads[b"LATS"]) * 8
    # The context model is quantized for coding, so allow a few percent.
    assert abs(coded / estimate - 1) < 0.05


def _test_image(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(1)
    img = np.stack([x * 255 / width, y * 255 / height, 128 + 60 * np.sin(x / 5.0) * np.cos(y / 7.0)], axis=-1)
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.slow
def test_rate_control_lands_within_five_percent() -> None:
    pixels = _test_image(96, 128)
    target = 3.0
    result = encode_array(pixels, EncodeOptions(bpp=target, iterations=120, device="cpu"))
    assert abs(result.bpp / target - 1) <= 0.05, result.bpp
    assert result.psnr > 20


def test_dead_zone_rounds_towards_zero_only_near_the_half() -> None:
    values = torch.tensor([-2.7, -1.55, -0.6, -0.2, 0.0, 0.3, 0.58, 1.5, 1.62, 2.4])
    assert torch.equal(round_latents(values), torch.round(values))
    assert round_latents(values, 0.1).tolist() == [-3.0, -1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 2.0]
    # Wider dead zones never increase a magnitude: the rate can only fall.
    previous = round_latents(values).abs()
    for dead_zone in (0.05, 0.2, 0.45):
        current = round_latents(values, dead_zone).abs()
        assert bool((current <= previous).all())
        previous = current


def test_dead_zone_shrinks_a_file_onto_its_target() -> None:
    model = _random_model(96, 80, spread=2.0)
    fitter = Fitter(torch.rand(96, 80, 3), model, RateTarget(None, 1e-3), seed=0)
    data = _quantize_and_write(model, fitter.image, 1e-3, 0)
    # An untrained context model prices every value broadly, so the dead zone
    # saves only ~8 % of these latent bits at most: aim within that.
    target = len(data) * 8 - 0.04 * _latent_bits_in(data)
    shrunk = _shrink_to(fitter, data, target)
    assert shrunk is not None and 0 < model.dead_zone < 0.45
    assert abs(len(shrunk) * 8 / target - 1) < 0.01
    # A target the dead zone cannot reach is refused, and nothing changes.
    model.dead_zone = 0.0
    assert _shrink_to(fitter, data, 0.05 * len(data) * 8) is None
    assert model.dead_zone == 0.0


def _fitter(latent_bpp: float | None, lmbda: float = 1e-2) -> Fitter:
    model = _random_model(32, 48, spread=2.0)
    return Fitter(torch.rand(32, 48, 3), model, RateTarget(latent_bpp, lmbda), seed=0)


def test_lambda_jump_follows_the_measured_rate() -> None:
    from inrcodec.train import fit

    probe = _fitter(1.0)
    rate = probe.latent_bpp()
    for ratio in (0.5, 2.0, 100.0):  # the last is beyond the cap
        fitter = _fitter(rate / ratio)
        before = fitter.log_lambda
        fitter.jump_lambda()
        want = max(-fit.MAX_LOG_JUMP, min(fit.MAX_LOG_JUMP, math.log(ratio) / fit.ELASTICITY))
        assert fitter.log_lambda - before == pytest.approx(want)
        lo, hi = fitter.log_lambda_range
        assert lo < fitter.log_lambda < hi  # the controller's range moves with it
    fixed = _fitter(None)
    fixed.jump_lambda()
    assert fixed.log_lambda == math.log(1e-2)


def test_a_collapsed_fit_starts_again_without_the_jump(monkeypatch: pytest.MonkeyPatch) -> None:
    from inrcodec.train import encoder

    made: list[bool] = []
    real = encoder.Fitter

    def spy(*args: object, **kwargs: object) -> Fitter:
        made.append(bool(kwargs.get("jump", True)))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(encoder, "Fitter", spy)
    monkeypatch.setattr(encoder, "MISSED", -1.0)  # every file counts as missed
    encode_array(_test_image(32, 48), EncodeOptions(bpp=1.0, iterations=20, device="cpu"))
    assert made == [True, False]
    made.clear()
    monkeypatch.setattr(encoder, "MISSED", float("inf"))
    encode_array(_test_image(32, 48), EncodeOptions(bpp=1.0, iterations=20, device="cpu"))
    assert made == [True]
