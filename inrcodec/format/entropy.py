"""Entropy coding of latents and network weights with constriction's range coder.

Probabilities are never computed in floating point on our side: the context
model runs in exact integer arithmetic (`fixedpoint.run_int_mlp`), its outputs
are rounded to a 1/16 grid (mean) and to a table of exactly representable
scales, and constriction (pinned, see formats/coco.md) turns those identical
float64 values into identical fixed-point CDFs on every machine.
"""

from __future__ import annotations

from collections.abc import Iterator

import constriction
import numpy as np
import torch

from ..errors import CocoFormatError
from .context import context_features, grid_sizes, non_anchor_mask
from .fixedpoint import (
    ACT_ONE,
    LATENT_MAX,
    LATENT_MIN,
    WEIGHT_LIMIT,
    IntLinear,
    quantize_mu,
    run_int_mlp,
    scale_from_index,
    scale_index_from_log2,
)

_LATENT_MODEL = constriction.stream.model.QuantizedLaplace(LATENT_MIN, LATENT_MAX)
_WEIGHT_MODEL = constriction.stream.model.QuantizedLaplace(-WEIGHT_LIMIT + 1, WEIGHT_LIMIT - 1)


def words_to_bytes(words: np.ndarray) -> bytes:
    """constriction's uint32 words as little-endian bytes, on any host."""
    return np.asarray(words, dtype="<u4").tobytes()


def bytes_to_words(data: bytes) -> np.ndarray:
    if len(data) % 4:
        raise CocoFormatError("entropy-coded section length is not a multiple of 4 bytes")
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)


def laplace_parameters(arm: list[IntLinear], grid: torch.Tensor, parent: torch.Tensor | None,
                       cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact Laplace mean and scale of some cells of one level.

    Args:
        arm: the integer context model.
        grid: [H, W] float64 integer latents (anchors decoded, others anything).
        parent: the decoded next-coarser level, or None.
        cells: boolean [H * W] mask of the cells wanted, raster order.

    Returns:
        (mu, scale): float64 arrays, one value per selected cell.
    """
    feats = context_features(grid, parent)[torch.from_numpy(cells)] * ACT_ONE
    out = run_int_mlp(feats, arm)
    mu = quantize_mu(out[:, 0]).numpy()
    scale = scale_from_index(scale_index_from_log2(out[:, 1]).numpy().astype(np.int64))
    return mu, scale


def _coding_steps(sizes: list[tuple[int, int]]) -> Iterator[tuple[int, np.ndarray]]:
    """(level, flat mask of the cells coded now) in decoding order."""
    for level in reversed(range(len(sizes))):
        odd = non_anchor_mask(*sizes[level]).reshape(-1).numpy()
        yield level, ~odd
        yield level, odd


def encode_latents(latents: list[np.ndarray], arm: list[IntLinear]) -> bytes:
    """Range-code integer latent grids (finest first in the list) into bytes."""
    grids = [torch.as_tensor(g, dtype=torch.float64) for g in latents]
    encoder = constriction.stream.queue.RangeEncoder()
    for level, cells in _coding_steps([tuple(g.shape) for g in grids]):
        parent = grids[level + 1] if level + 1 < len(grids) else None
        symbols = grids[level].reshape(-1).numpy()[cells].astype(np.int32)
        if symbols.size:
            mu, scale = laplace_parameters(arm, grids[level], parent, cells)
            encoder.encode(symbols, _LATENT_MODEL, mu, scale)
    return words_to_bytes(encoder.get_compressed())


def decode_latents(data: bytes, height: int, width: int, n_levels: int,
                   arm: list[IntLinear]) -> list[torch.Tensor]:
    """Inverse of `encode_latents`: float64 integer grids, finest first."""
    sizes = grid_sizes(height, width, n_levels)
    grids = [torch.zeros(h, w, dtype=torch.float64) for h, w in sizes]
    decoder = constriction.stream.queue.RangeDecoder(bytes_to_words(data))
    try:
        for level, cells in _coding_steps(sizes):
            if not cells.any():
                continue
            parent = grids[level + 1] if level + 1 < len(grids) else None
            mu, scale = laplace_parameters(arm, grids[level], parent, cells)
            symbols = decoder.decode(_LATENT_MODEL, mu, scale)
            flat = grids[level].view(-1)
            flat[torch.from_numpy(cells)] = torch.from_numpy(symbols.astype(np.float64))
    except (ValueError, KeyError, RuntimeError, OverflowError) as exc:
        raise CocoFormatError(f"latent stream is corrupt: {exc}") from exc
    return grids


def encode_weights(tensors: list[np.ndarray], scale_indices: list[int]) -> bytes:
    """Range-code integer weight tensors, each under Laplace(0, its scale)."""
    encoder = constriction.stream.queue.RangeEncoder()
    for values, k in zip(tensors, scale_indices):
        flat = np.asarray(values, dtype=np.int32).reshape(-1)
        mean = np.zeros(flat.size)
        scale = np.full(flat.size, scale_from_index(np.int64(k)))
        encoder.encode(flat, _WEIGHT_MODEL, mean, scale)
    return words_to_bytes(encoder.get_compressed())


def decode_weights(data: bytes, shapes: list[tuple[int, ...]], scale_indices: list[int]) -> list[np.ndarray]:
    """Inverse of `encode_weights`: int64 arrays of the given shapes."""
    decoder = constriction.stream.queue.RangeDecoder(bytes_to_words(data))
    out = []
    try:
        for shape, k in zip(shapes, scale_indices):
            n = int(np.prod(shape))
            scale = np.full(n, scale_from_index(np.int64(k)))
            values = decoder.decode(_WEIGHT_MODEL, np.zeros(n), scale)
            out.append(values.astype(np.int64).reshape(shape))
    except (ValueError, KeyError, RuntimeError, OverflowError) as exc:
        raise CocoFormatError(f"network weight stream is corrupt: {exc}") from exc
    return out
