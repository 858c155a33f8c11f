"""Version 2.0 files (wavefront context): written when the architecture asks, read back exactly, refused when bad."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from helper import head_of, synthetic_image, tiny_encode_as, with_head

import inrcodec
from inrcodec import CocoFormatError
from inrcodec.format.bitstream import read_coco
from inrcodec.train.context import wavefront_context_features
from inrcodec.format.header import header_rows
from inrcodec.train import encoder
from inrcodec.train.encoder import psnr_uint8
from inrcodec.train.model import CocoNet, Window, context_bits


@pytest.fixture(scope="module")
def v2_encoded():
    """One tiny encode with every effort's architecture on the wavefront context (8x4 tiles), bicubic sampling."""
    return tiny_encode_as(context_tile=(8, 4), learned_upsampling=False)


def test_a_wavefront_architecture_writes_a_version_2_file(v2_encoded) -> None:
    data = v2_encoded.data
    assert data[9:11] == b"\x02\x00"
    stream = read_coco(data)
    assert stream.version == (2, 0) and stream.header.arch.context_tile == (8, 4)
    assert stream.header.arch.arm_widths()[0] == 21
    decoded = inrcodec.decode_array(data)
    assert v2_encoded.psnr == psnr_uint8(decoded, synthetic_image(48, 32)) > 15
    assert inrcodec.decode_array(data, size="97x61").shape == (61, 97, 3)


def test_the_header_carries_the_tile(v2_encoded) -> None:
    assert head_of(v2_encoded.data).tile == [8, 4]
    rows = dict(header_rows(read_coco(v2_encoded.data).header))
    assert rows["latent context"] == "wavefront, 8x4 tiles"
    assert rows["context model"] == "21 -> 16 -> 16 -> 2"


@pytest.mark.parametrize("tile", [[0, 4], [8, 1], [129, 4], [8, 255]])
def test_a_tile_out_of_range_is_refused(v2_encoded, tile: list[int]) -> None:
    head = head_of(v2_encoded.data)
    head.tile = tile
    with pytest.raises(CocoFormatError, match="tile_(width|height)"):
        inrcodec.decode_array(with_head(v2_encoded.data, head))


@pytest.mark.parametrize("tile", [[2, 2], [4, 8], [16, 16], [128, 2]])
def test_another_valid_tile_decodes_or_fails_cleanly(v2_encoded, tile: list[int]) -> None:
    """The same LATS read with other fronts: garbage, but a clean answer either way."""
    head = head_of(v2_encoded.data)
    head.tile = tile
    try:
        pixels = inrcodec.decode_array(with_head(v2_encoded.data, head))
    except CocoFormatError:
        return
    assert pixels.shape == (32, 48, 3)


def test_relabelled_versions_are_refused(v2_encoded) -> None:
    as_v1 = v2_encoded.data[:9] + b"\x01" + v2_encoded.data[10:]
    with pytest.raises(CocoFormatError):
        inrcodec.decode_array(as_v1)


def test_every_truncation_is_a_format_error(v2_encoded) -> None:
    data = v2_encoded.data
    for length in range(0, len(data), max(1, len(data) // 97)):
        with pytest.raises(CocoFormatError):
            inrcodec.decode_array(data[:length])


@pytest.mark.parametrize("tile", [(3, 3), (16, 16), (5, 2)])
def test_the_training_rate_is_the_wavefront_definition_in_any_window(tile: tuple[int, int]) -> None:
    """`CocoNet.latent_bits` under a wavefront architecture: the 21-feature context of every cell, crop or not."""
    torch.manual_seed(0)
    net = CocoNet(20, 28, replace(encoder.ARCHITECTURE, context_tile=tile))
    with torch.no_grad():
        for grid in net.latents:
            grid.normal_(0.0, 3.0)
        for p in net.arm.parameters():
            p.normal_(0.0, 0.3)
    grids = net.quantized_latents("round")
    with torch.no_grad():
        per_cell = [context_bits(g.reshape(-1), net.arm(wavefront_context_features(
            g, grids[i + 1] if i + 1 < len(grids) else None, tile))).reshape(g.shape) for i, g in enumerate(grids)]
        for win in (net.full_window(), Window(0, 7, 3, 12), Window(11, 20, 20, 28), Window(5, 6, 9, 10)):
            bits, counts = net.latent_bits(net.crop_latents(win, "round"), win)
            cells = [win.at_level(level) for level in range(len(grids))]
            expected = sum(float(b[c.r0:c.r1, c.c0:c.c1].sum()) for b, c in zip(per_cell, cells))
            assert float(bits) == pytest.approx(expected, rel=1e-5)
            assert counts == [c.n_pixels for c in cells]


def test_the_training_rate_gradient_is_the_wavefront_definitions() -> None:
    """The parent-shared arrangement of `latent_bits` gives the latents and the context model the definition's gradients."""
    torch.manual_seed(1)
    net = CocoNet(19, 26, replace(encoder.ARCHITECTURE, context_tile=(4, 3)))
    with torch.no_grad():
        for grid in net.latents:
            grid.copy_(torch.round(torch.randn_like(grid) * 3.0))
        for p in net.arm.parameters():
            p.normal_(0.0, 0.3)
    win = Window(3, 16, 5, 23)
    grads = []
    for by_definition in (False, True):
        net.zero_grad()
        grids = [g.clamp(-256, 255) for g in net.latents]  # differentiable, and integer already
        if by_definition:
            cells = [win.at_level(level) for level in range(len(grids))]
            bits = sum(context_bits(g.reshape(-1), net.arm(wavefront_context_features(
                g, grids[i + 1] if i + 1 < len(grids) else None, (4, 3)))).reshape(g.shape)[c.r0:c.r1, c.c0:c.c1].sum()
                for i, (g, c) in enumerate(zip(grids, cells)))
        else:
            bits, _ = net.latent_bits(grids, win)
        bits.backward()
        grads.append([p.grad.clone() for p in net.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > len(net.latents)
    for ours, theirs in zip(*grads):
        assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-4)
