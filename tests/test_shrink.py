"""The landing's cost-ranked rate cut (inrcodec.train.shrink)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from inrcodec.format.architecture import Architecture
from inrcodec.format.bitstream import read_coco
from inrcodec.format.render import render
from inrcodec.train import encoder
from inrcodec.train.encoder import _quantize_and_write, _shrink_to, latent_section_bits, psnr_uint8
from inrcodec.train.fit import Fitter, RateTarget, Schedule
from inrcodec.train.model import CocoNet, context_bits_columns
from inrcodec.train.shrink import n_candidates, shrink_costs, shrink_masks

ARCH_1 = Architecture(n_levels=4, synth_hidden=(8,), arm_hidden=(8,))
ARCH_2 = replace(ARCH_1, context_tile=(8, 8))


def _image(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(3)
    img = np.stack([x * 255 / width, y * 255 / height, 128 + 70 * np.sin(x / 4.0) * np.cos(y / 5.0)], axis=-1)
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("arch", [ARCH_1, ARCH_2], ids=["format1", "format2"])
def test_bits_saved_are_each_cells_own_code_one_step_nearer_zero(arch: Architecture) -> None:
    torch.manual_seed(0)
    model = CocoNet(37, 29, arch)
    with torch.no_grad():
        for grid in model.latents:
            grid.normal_(0, 2.0)
        model.arm[0].weight.zero_()  # every cell gets the same prediction: its bits depend on its value alone
        model.arm[-1].weight.zero_()
        model.arm[-1].bias.copy_(torch.tensor([0.3, 1.2]))
    outputs = torch.tensor([[0.3], [1.2]])
    for win in (model.full_window(),):
        crops = model.crop_latents(win, "round")
        saved = model.bits_saved_by_shrinking(crops, win)
        for (grid, _), level_saved in zip(crops, saved):
            values = grid.reshape(-1)
            step = torch.sign(values)
            expected = (context_bits_columns(values, outputs.expand(2, values.numel()))
                        - context_bits_columns(values - step, outputs.expand(2, values.numel()))) * step.abs()
            assert torch.allclose(level_saved.reshape(-1), expected, atol=1e-5)


def test_masks_pick_the_cheapest_candidates() -> None:
    costs = [torch.tensor([[3.0, torch.inf], [-1.0, 2.0]]), torch.tensor([[0.5, torch.inf]])]
    assert n_candidates(costs) == 4
    masks = shrink_masks(costs, 2)
    assert masks[0].tolist() == [[0.0, 0.0], [1.0, 0.0]] and masks[1].tolist() == [[1.0, 0.0]]
    assert sum(int(m.sum()) for m in shrink_masks(costs, 99)) == 4
    assert sum(int(m.sum()) for m in shrink_masks(costs, 0)) == 0


def _fitted(arch: Architecture, lmbda: float) -> tuple[Fitter, np.ndarray]:
    pixels = _image(64, 64)
    torch.manual_seed(0)
    fitter = Fitter(torch.tensor(pixels, dtype=torch.float32) / 255, CocoNet(64, 64, arch), RateTarget(None, lmbda),
                    seed=0)
    fitter.run(Schedule(iterations=300, crop=64))
    return fitter, pixels


@pytest.mark.parametrize(("arch", "lmbda"), [(ARCH_2, 3e-4), (ARCH_2, 3e-3), (ARCH_1, 1e-4), (ARCH_1, 3e-4)],
                         ids=["format 2.0, 3e-4", "format 2.0, 3e-3", "format 1.0, 1e-4", "format 1.0, 3e-4"])
def test_a_cost_ranked_cut_costs_less_picture_than_the_dead_zone_at_the_same_rate(arch: Architecture,
                                                                                    lmbda: float) -> None:
    fitter, pixels = _fitted(arch, lmbda)
    data = _quantize_and_write(fitter.model, fitter.image, lmbda, 0)
    target = len(data) * 8 - 0.08 * latent_section_bits(data)

    def psnr(file: bytes) -> float:
        return psnr_uint8(render(read_coco(file)), pixels)

    ranked = _shrink_to(fitter, data, target)
    assert ranked is not None and fitter.model.shrink is not None and fitter.model.dead_zone == 0.0
    fitter.model.shrink = None
    dead_zone = _shrink_to(fitter, data, target, by_cost=False)
    assert dead_zone is not None and fitter.model.shrink is None and fitter.model.dead_zone > 0
    for file in (ranked, dead_zone):
        assert abs(len(file) * 8 / target - 1) < 0.03
    assert psnr(ranked) > psnr(dead_zone) + 0.1, (psnr(ranked), psnr(dead_zone), psnr(data))


def test_format_1_cuts_move_no_checkerboard_anchor() -> None:
    # The anchors are what their neighbours are predicted from: moving the
    # ones the own-code estimate ranked cheapest raised the rate instead
    # (bench/results/shrink-cut-2026-12-03).
    fitter, _ = _fitted(ARCH_1, 3e-4)
    data = _quantize_and_write(fitter.model, fitter.image, 3e-4, 0)
    shrunk = _shrink_to(fitter, data, len(data) * 8 - 0.03 * latent_section_bits(data))
    assert shrunk is not None and fitter.model.shrink is not None and fitter.model.dead_zone == 0.0
    for mask in fitter.model.shrink:
        y, x = torch.nonzero(mask, as_tuple=True)
        assert bool(((y % 2) != (x % 2)).all())
    costs = shrink_costs(fitter.model, fitter.image, fitter.bands())
    assert all(bool(torch.isinf(c[0::2, 0::2]).all() and torch.isinf(c[1::2, 1::2]).all()) for c in costs)


def test_a_cut_no_candidate_can_make_falls_back_on_the_dead_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    fitter, _ = _fitted(ARCH_2, 3e-4)
    data = _quantize_and_write(fitter.model, fitter.image, 3e-4, 0)
    monkeypatch.setattr(encoder, "_shrink_by_cost", lambda *args: False)
    shrunk = _shrink_to(fitter, data, len(data) * 8 - 0.03 * latent_section_bits(data))
    assert shrunk is not None and fitter.model.shrink is None and fitter.model.dead_zone > 0


def test_a_cut_from_a_cut_file_starts_again_from_plain_rounding() -> None:
    fitter, _ = _fitted(ARCH_2, 3e-4)
    data = _quantize_and_write(fitter.model, fitter.image, 3e-4, 0)
    latent = latent_section_bits(data)
    first = _shrink_to(fitter, data, len(data) * 8 - 0.02 * latent)
    assert first is not None
    moved_first = sum(int(m.sum()) for m in fitter.model.shrink or [])
    second = _shrink_to(fitter, first, len(data) * 8 - 0.06 * latent)
    assert second is not None and len(second) < len(first)
    assert sum(int(m.sum()) for m in fitter.model.shrink or []) > moved_first


def test_costs_leave_the_models_own_cut_alone() -> None:
    torch.manual_seed(0)
    model = CocoNet(24, 20, ARCH_2)
    with torch.no_grad():
        for grid in model.latents:
            grid.normal_(0, 2.0)
    fitter = Fitter(torch.rand(24, 20, 3), model, RateTarget(None, 1e-3), seed=0)
    masks = [torch.zeros(h, w) for h, w in model.sizes]
    model.shrink = masks
    costs = shrink_costs(model, fitter.image, fitter.bands())
    assert model.shrink is masks
    assert all(c.shape == g.shape for c, g in zip(costs, model.latents))
