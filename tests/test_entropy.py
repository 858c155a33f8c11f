"""The entropy-coded sections: banded (bounded-memory) latent coding and coder failures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helper import DATA, SAMPLE_NAMES, head_of, replace_section, with_head

import inrcodec
from inrcodec import CocoFormatError
from inrcodec.format import entropy, wavefront
from inrcodec.format.bitstream import read_coco, read_sections
from inrcodec.format.context import N_CONTEXT, phase_mask
from inrcodec.format.entropy import decode_latents, encode_latents, laplace_parameters, phase_parameters
from inrcodec.format.fixedpoint import IntLinear
from inrcodec.train.context import context_features


def _random_arm(rng: np.random.Generator, hidden: list[int]) -> list[IntLinear]:
    widths = [N_CONTEXT, *hidden, 2]
    return [IntLinear(rng.integers(-3000, 3000, (b, a)), rng.integers(-3000, 3000, b), int(rng.integers(6, 12)),
                      int(rng.integers(0, 14))) for a, b in zip(widths, widths[1:])]


def _sparse_latents(rng: np.random.Generator, shape: tuple[int, int], density: float) -> np.ndarray:
    return (rng.integers(-256, 256, shape) * (rng.random(shape) < density)).astype(np.float64)


@pytest.mark.parametrize(("height", "width"), [(1, 1), (1, 6), (2, 3), (7, 5), (16, 9), (33, 4)])
@pytest.mark.parametrize("hidden", [[], [5], [16, 16]])
@pytest.mark.parametrize("density", [1.0, 0.1])
def test_phase_parameters_equal_the_context_features_definition(height: int, width: int, hidden: list[int],
                                                                density: float) -> None:
    """The per-parent evaluation gives exactly the 14-feature rows' mean and scale, for any band.

    The rows come from training's (torch) `context_features`, so this also
    holds the decoder's features to training's. Mostly-zero latents (density
    0.1) take the path that runs the network only on cells with a non-zero
    feature; dense ones the path that runs it on all.
    """
    rng = np.random.default_rng(height * 100 + width + len(hidden))
    arm = _random_arm(rng, hidden)
    grid = _sparse_latents(rng, (height, width), density)
    parent = _sparse_latents(rng, (-(-height // 2), -(-width // 2)), density)
    odd_cells = phase_mask(0, height, width, non_anchors=True)
    for p in (parent, None):
        p_tensor = None if p is None else torch.from_numpy(p)
        whole = context_features(torch.from_numpy(grid), p_tensor).numpy().reshape(height, width, N_CONTEXT)
        for r0 in range(height):
            for r1 in range(r0 + 1, height + 1):
                for odd in (False, True):
                    cells = odd_cells[r0:r1] == odd
                    if not cells.any():
                        continue
                    expected = laplace_parameters(arm, whole[r0:r1][cells])
                    got = phase_parameters(arm, grid, p, r0, r1, odd)
                    assert all(np.array_equal(a, b) for a, b in zip(got, expected)), (r0, r1, odd)


@pytest.mark.parametrize("chunk", [1, 7, 100])
def test_banded_latent_decoding_is_exact(chunk: int, expected: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any band height gives the pinned pixels (the range coder is a stream)."""
    from helper import pixel_md5

    monkeypatch.setattr(entropy, "CHUNK_CELLS", chunk)
    name = "gradient-64x48.coco"
    pixels = inrcodec.decode_array((DATA / name).read_bytes())
    assert pixel_md5(pixels) == expected[name]["pixels_md5"]["native"]


@pytest.mark.parametrize("name", SAMPLE_NAMES)
@pytest.mark.parametrize("chunk", [entropy.CHUNK_CELLS, 5])
def test_reencoding_decoded_latents_gives_the_same_stream(name: str, chunk: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """encode_latents is the exact inverse of decode_latents, banded or not (either version's)."""
    monkeypatch.setattr(entropy, "CHUNK_CELLS", chunk)
    monkeypatch.setattr(wavefront, "CHUNK_CELLS", chunk)
    data = (DATA / name).read_bytes()
    stream = read_coco(data)
    _, _, payloads, _ = read_sections(data)
    latents = [np.asarray(g).astype(np.int64) for g in stream.latents]
    tile = stream.header.arch.context_tile
    assert stream.version[0] == stream.header.arch.format_major and (tile is not None) == (stream.version[0] >= 2)
    reencoded = wavefront.encode_latents(latents, stream.arm, tile) if tile else encode_latents(latents, stream.arm)
    assert reencoded == payloads[b"LATS"]


def test_latent_decoding_memory_is_banded(sample: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crafted header with a big size: features are never built for more than a band of cells.

    An empty LATS decodes (to garbage) and, with the information check off,
    every cell is visited.
    """
    seen: list[tuple[int, int, int]] = []  # (band rows, level width, cells given parameters)
    real = entropy.phase_parameters

    def spy(arm: list, grid: np.ndarray, parent: np.ndarray | None, r0: int, r1: int,
            odd: bool) -> tuple[np.ndarray, np.ndarray]:
        out = real(arm, grid, parent, r0, r1, odd)
        seen.append((r1 - r0, grid.shape[1], out[0].size))
        return out

    monkeypatch.setattr(entropy, "CHUNK_CELLS", 1000)
    monkeypatch.setattr(entropy, "INFORMATION_SLACK_BITS", float("inf"))
    monkeypatch.setattr(entropy, "phase_parameters", spy)
    head = head_of(sample)
    head.width, head.height = 300, 200
    stream = read_coco(replace_section(with_head(sample, head), b"LATS", b""))
    assert [tuple(g.shape) for g in stream.latents][:2] == [(200, 300), (100, 150)]
    assert max(cells for _, _, cells in seen) <= 1000
    assert all(rows <= max(1, 1000 // width) for rows, width, _ in seen)


@pytest.mark.parametrize("spread", [0.01, 1.0, 4.0])
def test_symbol_bits_is_what_the_coder_spends(spread: float) -> None:
    """The coder never writes fewer bits than `symbol_bits` (and not many more): the check is safe."""
    rng = np.random.default_rng(int(spread * 100))
    n = 20000
    mu = np.clip(np.round(rng.normal(0, 30, n) * 16) / 16, -256, 255)
    scale_index = rng.integers(0, entropy.LATENT_SCALES.size, n)
    scale = entropy.LATENT_SCALES[scale_index]
    symbols = np.clip(np.round(mu + spread * scale * rng.laplace(size=n)), -256, 255).astype(np.int32)
    encoder = entropy.constriction.stream.queue.RangeEncoder()
    encoder.encode(symbols, entropy._LATENT_MODEL, mu, scale)
    written = 32 * encoder.get_compressed().size
    bits = entropy.symbol_bits(symbols, mu, scale_index)
    assert bits <= written < bits + 64


def test_symbol_bits_table_gives_the_formula_exactly() -> None:
    """Symbols near their mean read their cost from a table: the same bits as the slice formula, edges included."""
    rng = np.random.default_rng(7)
    n = 50000
    mu = np.round(rng.uniform(-256, 255, n) * 16) / 16
    mu[: n // 4] = np.round(rng.uniform(-256, -254, n // 4) * 16) / 16  # the edge bins
    mu[n // 4 : n // 2] = np.round(rng.uniform(253, 255, n // 4) * 16) / 16
    scale_index = rng.integers(0, entropy.LATENT_SCALES.size, n)
    symbols = np.clip(np.round(mu + rng.integers(-2, 3, n) * rng.uniform(0, 1, n)), -256, 255).astype(np.int32)
    near = np.abs(symbols - mu) <= 0.5
    assert near.mean() > 0.5 and (symbols == -256).any() and (symbols == 255).any()
    one_by_one = [entropy._slice_bits(symbols[i : i + 1].astype(np.float64), mu[i : i + 1],
                                      entropy.LATENT_SCALES[scale_index[i : i + 1]])[0] for i in range(n)]
    batched = [entropy.symbol_bits(symbols[i : i + 1], mu[i : i + 1], scale_index[i : i + 1]) for i in range(n)]
    assert np.array_equal(np.array(one_by_one), np.array(batched))


@pytest.mark.parametrize("lats", [b"", b"\x01\x00\x00\x00", None])
def test_huge_header_over_a_short_stream_fails_fast(sample: bytes, lats: bytes | None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A forged size over a small stream is refused within a few bands, not after every cell."""
    bands: list[int] = []
    real = entropy.phase_parameters
    monkeypatch.setattr(entropy, "phase_parameters", lambda *a: bands.append(1) or real(*a))
    head = head_of(sample)
    head.width, head.height = 8192, 4096
    forged = with_head(sample, head)
    if lats is not None:
        forged = replace_section(forged, b"LATS", lats)
    with pytest.raises(CocoFormatError, match="latent stream"):
        read_coco(forged)
    assert len(bands) <= 4  # of about 700 bands at this size


@pytest.mark.parametrize("words", [b"\xff" * 8, b"\x01\x00\x00\x00", bytes(range(64))])
def test_undecodable_stream_raises_only_format_errors(sample: bytes, words: bytes) -> None:
    """constriction 0.5 raises AssertionError on data no encoder could produce; garbage may also decode."""
    stream = read_coco(sample)
    try:
        decode_latents(words, 32, 48, 7, stream.arm)
    except CocoFormatError as exc:
        assert "latent stream" in str(exc)


class PanicException(BaseException):  # how pyo3 reports a Rust panic
    pass


@pytest.mark.parametrize(("raised", "expected"), [
    (AssertionError("invalid"), CocoFormatError), (ValueError("x"), CocoFormatError), (KeyError(1), CocoFormatError),
    (RuntimeError("x"), CocoFormatError), (PanicException("rust panic"), CocoFormatError),
    (MemoryError(), MemoryError), (KeyboardInterrupt(), KeyboardInterrupt),
])
def test_coder_failures_are_wrapped(raised: BaseException, expected: type[BaseException]) -> None:
    class Decoder:
        def decode(self, *args: object) -> np.ndarray:
            raise raised

    with pytest.raises(expected):
        entropy._decode_symbols(Decoder(), None, np.zeros(1), np.ones(1), "test")  # type: ignore[arg-type]


def test_entropy_section_not_whole_words(sample: bytes) -> None:
    with pytest.raises(CocoFormatError, match="multiple of 4"):
        inrcodec.decode_array(replace_section(sample, b"NETW", b"\0" * 5))


@pytest.mark.parametrize("section", [b"NETW", b"LATS"])
@pytest.mark.parametrize("extra", [b"\x01\x00\x00\x00" * 2, b"\xff" * 8, b"\x00" * 8, bytes(range(64))])
def test_data_after_the_last_symbol_is_refused(sample: bytes, section: bytes, extra: bytes) -> None:
    """A payload longer than its symbols need belongs to another header (or was spliced).

    The range decoder holds two words of look-ahead, so one extra word can be
    indistinguishable from the encoder's final flush; two or more cannot.
    """
    _, _, payloads, _ = read_sections(sample)
    with pytest.raises(CocoFormatError, match="beyond its last symbol|stream is corrupt"):
        inrcodec.decode_array(replace_section(sample, section, payloads[section] + extra))


def test_streams_of_valid_files_are_used_up_exactly(sample: bytes) -> None:
    stream = read_coco(sample)  # would raise if either stream had data left
    assert stream.latents[0].shape == (32, 48)
