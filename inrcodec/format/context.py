"""Latent grid geometry and the context the entropy model sees, as the format defines it.

Decoding order: levels from coarsest to finest. Format 1.0 codes each level
in two steps: first the "anchor" cells ((x + y) even), then the others, as in
checkerboard context models (He et al., CVPR 2021). An anchor sees the 3x3
neighbourhood of its parent cell in the next coarser level; a non-anchor
also sees its four same-level neighbours, which are all anchors and hence
already decoded. Formats 2.0 and 3.0 code each level in wavefronts of tiles
(`wavefront`), every cell seeing its parent's neighbourhood and
WAVEFRONT_NEIGHBOURS.

The features themselves are computed by the decoder's own batched paths
(`entropy.phase_parameters`, `wavefront`) in numpy, and for training by
`train.context` in torch (differentiable); the tests hold the two to the
same values.
"""

from __future__ import annotations

import numpy as np

N_CONTEXT = 14  # 9 parent neighbourhood + 4 same-level neighbours + phase flag


def grid_sizes(height: int, width: int, n_levels: int) -> list[tuple[int, int]]:
    """Sizes of the latent pyramid: level i is ceil(H / 2**i) x ceil(W / 2**i)."""
    return [(-(-height // 2**i), -(-width // 2**i)) for i in range(n_levels)]


def phase_mask(r0: int, r1: int, width: int, non_anchors: bool) -> np.ndarray:
    """Boolean [r1 - r0, width] mask of one phase's cells in rows r0..r1-1.

    Anchors ((x + y) even) are decoded in a level's first step, non-anchors
    ((x + y) odd) in its second.
    """
    y = np.arange(r0, r1)[:, None]
    x = np.arange(width)[None, :]
    return (x + y) % 2 == int(non_anchors)


# Format 2.0's context (formats/coco.md, LATS): the same-level neighbours a
# cell sees, as (dy, dx). Each is decoded on an earlier wavefront
# (dx + 3 dy < 0), so a decoder runs one front of every tile at a time.
# They are every cell within two rows above and two columns either side
# that comes earlier in raster order, Cool-chic's kind of context.
WAVEFRONT_NEIGHBOURS = ((-2, -2), (-2, -1), (-2, 0), (-2, 1), (-2, 2),
                        (-1, -2), (-1, -1), (-1, 0), (-1, 1), (-1, 2), (0, -2), (0, -1))
N_WAVEFRONT_CONTEXT = 9 + len(WAVEFRONT_NEIGHBOURS)
