"""Version 3.0 files (learned upsampling): the decoder's 2x steps, the training's twin, the file and its limits."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from helper import head_of, synthetic_image, tiny_encode_as, with_head

import inrcodec
from inrcodec import CocoFormatError
from inrcodec.format import render as render_module
from inrcodec.format.architecture import Architecture
from inrcodec.format.bitstream import read_coco
from inrcodec.format.context import grid_sizes
from inrcodec.format.fixedpoint import ACT_LIMIT, ACT_ONE
from inrcodec.format.header import header_rows
from inrcodec.format.render import render
from inrcodec.format.sampling import pixel_taps, sample_exact
from inrcodec.format.upsampling import BICUBIC_2X, LevelPlanes
from inrcodec.train import encoder, pretrained
from inrcodec.train.encoder import psnr_uint8
from inrcodec.train.model import CocoNet, Window

ARCH = encoder.ARCHITECTURES["default"]
BICUBIC_Q12 = tuple(int(t * ACT_ONE) for t in BICUBIC_2X)


def _reference_step(x: np.ndarray, taps: tuple[int, ...], n_out: int) -> np.ndarray:
    """One axis of a 2x step as formats/coco.md words it, along axis 0 of integer Q12 `x`, output by output."""
    n_in = x.shape[0]
    out = np.zeros((n_out, *x.shape[1:]), dtype=np.int64)
    for i in range(n_out):
        j = i // 2
        first = j - 1 if i % 2 else j - 2
        weights = taps[::-1] if i % 2 else taps
        total = sum(w * x[min(max(first + k, 0), n_in - 1)] for k, w in enumerate(weights))
        out[i] = np.clip(np.floor_divide(total, ACT_ONE), -ACT_LIMIT, ACT_LIMIT)
    return out


def _reference_planes(grids: list[np.ndarray], up_taps: list[tuple[int, ...]]) -> np.ndarray:
    sizes = [g.shape for g in grids]
    planes = []
    for level, grid in enumerate(grids):
        x = grid.astype(np.int64) * ACT_ONE
        for r in reversed(range(level)):
            x = _reference_step(x, up_taps[r], sizes[r][0])
            x = _reference_step(x.T, up_taps[r], sizes[r][1]).T
        planes.append(x)
    return np.stack(planes)


def _random_grids(height: int, width: int, n_levels: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(-40, 41, size=size) for size in grid_sizes(height, width, n_levels)]


@pytest.mark.parametrize("shape", [(23, 37), (32, 48), (5, 3), (9, 1), (1, 6)])
def test_the_decoders_steps_are_the_specifications(shape: tuple[int, int]) -> None:
    """Mirrored phases, replicated edges, a floor per axis pass: checked against an output-by-output reading."""
    rng = np.random.default_rng(1)
    grids = _random_grids(*shape, 4)
    up_taps = [tuple(int(t) for t in rng.integers(-3000, 5000, size=4)) for _ in range(3)]
    planes = LevelPlanes([g.astype(np.float64) for g in grids], tuple(up_taps), [g.shape for g in grids])
    mine = planes.rows(0, shape[0])
    assert np.array_equal(mine, _reference_planes(grids, up_taps))
    bands = [planes.rows(a, min(shape[0], a + 4)) for a in range(0, shape[0], 4)]
    assert np.array_equal(np.concatenate(bands, axis=1), mine)  # any band of rows is the same integers


def test_extreme_taps_saturate_instead_of_overflowing() -> None:
    grids = [np.full(s, v) for s, v in zip(grid_sizes(16, 16, 5), (0, -256, 255, -256, 255))]
    taps = ((32767, -32768, 32767, -32768),) * 4
    planes = LevelPlanes([g.astype(np.float64) for g in grids], taps, [g.shape for g in grids])
    rows = planes.rows(0, 16)
    assert np.abs(rows).max() <= ACT_LIMIT and np.array_equal(rows, np.floor(rows))


def test_bicubic_taps_at_twice_the_size_decode_as_format_2_samples_level_1() -> None:
    grids = _random_grids(32, 48, 2)
    arrays = [g.astype(np.float64) for g in grids]
    planes = LevelPlanes(arrays, (BICUBIC_Q12,), [g.shape for g in grids]).rows(0, 32)
    rows, cols = pixel_taps(32, 48, [g.shape for g in grids])[1]
    assert np.array_equal(planes[1], sample_exact(arrays[1], rows, cols, 0, 32))


def _model(height: int, width: int, taps_noise: float = 0.1) -> CocoNet:
    torch.manual_seed(0)
    model = CocoNet(height, width, ARCH)
    with torch.no_grad():
        for grid in model.latents:
            grid.normal_(0.0, 3.0)
        taps = model.synthesis.up_taps
        taps.add_(torch.randn_like(taps) * taps_noise)
        taps.copy_(torch.round(taps * ACT_ONE) / ACT_ONE)  # what the file can say
    return model


@pytest.mark.parametrize("shape", [(64, 96), (37, 50)])
def test_training_samples_what_the_decoder_computes(shape: tuple[int, int]) -> None:
    """The training's chain matrices are the decoder's steps without the floors: within a few Q12 units."""
    model = _model(*shape)
    with torch.no_grad():
        latents = model.quantized_latents("round")
        features = model.sample(latents, model.full_window()).T.reshape(len(latents), *shape).double() * ACT_ONE
    taps = tuple(tuple(int(v) for v in torch.round(t * ACT_ONE)) for t in model.synthesis.up_taps)
    exact = torch.from_numpy(LevelPlanes([g.double().numpy() for g in latents], taps, model.sizes).rows(0, shape[0]))
    difference = (features - exact).abs()
    assert difference.max() < 16 and difference.mean() < 4  # floors: under 1/256 of a latent step
    assert difference[1:].max() > 0  # not trivially equal: the coarse levels went through steps


@pytest.mark.parametrize("shape", [(64, 96), (40, 56)])
def test_a_training_window_samples_what_the_whole_image_does(shape: tuple[int, int]) -> None:
    model = _model(*shape)
    h, w = shape
    with torch.no_grad():
        whole = model.sample(model.crop_latents(model.full_window(), "round"), model.full_window()).reshape(h, w, -1)
        for win in (Window(0, 9, 3, 30), Window(h - 11, h, w - 17, w), Window(5, 38, 0, w), Window(17, 18, 9, 10)):
            part = model.sample(model.crop_latents(win, "round"), win).reshape(win.r1 - win.r0, win.c1 - win.c0, -1)
            assert torch.allclose(part, whole[win.r0 : win.r1, win.c0 : win.c1], atol=1e-4)


def test_the_taps_train_with_the_synthesis() -> None:
    model = _model(32, 32, taps_noise=0.0)
    assert any(p is model.synthesis.up_taps for p in model.synthesis.parameters())
    assert [list(t) for t in torch.round(model.synthesis.up_taps * ACT_ONE).tolist()] == [list(BICUBIC_Q12)] * 6
    model.synthesize(model.quantized_latents("ste"), model.full_window()).sum().backward()
    assert model.synthesis.up_taps.grad is not None and model.synthesis.up_taps.grad.abs().sum() > 0


def test_learned_upsampling_needs_the_wavefront_context() -> None:
    with pytest.raises(ValueError, match="wavefront"):
        Architecture(7, (16, 16), (16, 16), None, learned_upsampling=True)
    assert replace(ARCH, learned_upsampling=False).format_major == 2 and ARCH.format_major == 3


@pytest.fixture(scope="module")
def v3_encoded():
    """One tiny encode with every effort on format 3.0, 8x4 context tiles."""
    return tiny_encode_as(context_tile=(8, 4), learned_upsampling=True)


def test_the_default_effort_writes_a_version_3_file(v3_encoded) -> None:
    data = v3_encoded.data
    assert data[9:11] == b"\x03\x00"
    stream = read_coco(data)
    assert stream.version == (3, 0) and stream.header.arch.learned_upsampling
    assert len(stream.header.up_taps) == ARCH.n_levels - 1
    assert stream.header.up_taps != (BICUBIC_Q12,) * (ARCH.n_levels - 1)  # the fit moved them
    decoded = inrcodec.decode_array(data)
    assert v3_encoded.psnr == psnr_uint8(decoded, synthetic_image(48, 32)) > 15
    assert inrcodec.decode_array(data, size="97x61").shape == (61, 97, 3)
    assert dict(header_rows(stream.header))["latent upsampling"].startswith("learned 2x steps: ")


@pytest.mark.parametrize("size", [None, (97, 61), (20, 9)])
def test_rendering_in_bands_is_rendering_whole(v3_encoded, size, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = read_coco(v3_encoded.data)
    width, height = size or (None, None)
    whole = render(stream, width, height)
    monkeypatch.setattr(render_module, "TILE_PIXELS", 97)  # bands of one or a few rows
    assert np.array_equal(render(stream, width, height), whole)


@pytest.mark.parametrize("taps", [[32767, -32768, 32767, -32768], [0, 0, 0, 0], [-1, 4096, 1, 0]])
def test_any_taps_decode(v3_encoded, taps: list[int]) -> None:
    head = head_of(v3_encoded.data)
    head.up_taps = [taps] * len(head.up_taps)
    assert inrcodec.decode_array(with_head(v3_encoded.data, head), size="30x20").shape == (20, 30, 3)


def test_relabelled_versions_are_refused(v3_encoded) -> None:
    for major in (b"\x01", b"\x02", b"\x04"):
        with pytest.raises(CocoFormatError):
            inrcodec.decode_array(v3_encoded.data[:9] + major + v3_encoded.data[10:])


def test_every_truncation_is_a_format_error(v3_encoded) -> None:
    data = v3_encoded.data
    for length in range(0, len(data), max(1, len(data) // 97)):
        with pytest.raises(CocoFormatError):
            inrcodec.decode_array(data[:length])


def test_networks_files_hold_the_mlps_and_leave_the_taps_at_bicubic() -> None:
    trained = _model(16, 16)
    state = pretrained.network_state(trained)
    assert "synthesis.up_taps" not in state and "synthesis.0.weight" in state
    fresh = CocoNet(16, 16, ARCH)
    pretrained.load_network_state(fresh, state)
    assert torch.equal(fresh.synthesis[0].weight, trained.synthesis[0].weight)
    assert torch.equal(fresh.synthesis.up_taps, torch.tensor(BICUBIC_2X).repeat(ARCH.n_levels - 1, 1))
    with pytest.raises(ValueError, match="unexpected"):
        pretrained.load_network_state(fresh, {**state, "synthesis.extra": [1.0]})


@pytest.mark.parametrize("name", ["v3-gradient-48x32.coco", "v2-gradient-48x32.coco", "gradient-64x48.coco"])
@pytest.mark.parametrize("size", [(48, 32), (97, 61), (300, 7)])
def test_render_bands_in_threads_give_the_same_pixels(name: str, size: tuple[int, int],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands rendered in several threads (small ones, so there are many) give one thread's pixels, rows in order."""
    from helper import DATA

    stream = read_coco((DATA / name).read_bytes())
    alone = render(stream, *size)
    monkeypatch.setattr(render_module, "TILE_PIXELS", 64)
    for workers in (1, 3):
        monkeypatch.setattr(render_module, "render_workers", lambda workers=workers: workers)
        rows: list[int] = []
        assert np.array_equal(render(stream, *size, on_rows=rows.append), alone)
        assert sum(rows) == size[1] and len(rows) > 3
