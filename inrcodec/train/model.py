"""The trainable CocoNet: latent pyramid, synthesis MLP and context model.

This is the float, differentiable twin of the integer decoder in
`inrcodec.format`. Structure (Cool-chic/C3 family, rendered at any size):

    latents (L grids, 1/1 .. 1/2**(L-1))
        -> quantize (noise / straight-through rounding / rounding)
        -> bicubic sampling at pixel centres      [N, L]
           (format 3.0: learned 2x steps to the image's size, `format.upsampling`)
        -> synthesis MLP (ReLU)                     [N, 3]  RGB in [0, 1]
    latents -> context features -> context MLP -> Laplace(mu, scale) -> bits

Training works on crops (a window of the image and the latent cells under
it): on a 2-core CPU a full 768x512 pass costs ~0.4 s, a quarter-size crop a
quarter of that, and four noisy steps beat one exact one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..format.architecture import Architecture
from ..format.context import WAVEFRONT_NEIGHBOURS, grid_sizes
from ..format.fixedpoint import LATENT_MAX, LATENT_MIN, LATENT_SCALE_K_MAX, SCALE_K_MIN
from ..format.fixedpoint import ACT_ONE
from ..format.sampling import AxisTaps, pixel_taps
from ..format.upsampling import BICUBIC_2X, step_sources

QuantMode = Literal["noise", "ste", "round", "soft"]
Crop = tuple[torch.Tensor, tuple[int, int]]  # sub-grid and its level coordinates
CROP_MARGIN = 3
# Format 3.0: a 4-tap 2x step from a crop's edge spoils the two coarse cells
# nearest it, i.e. four fine ones; a margin of m coarse cells leaves 2m - 4
# true fine ones, so 4 holds through any number of steps.
UPSAMPLING_CROP_MARGIN = 4
LOG2_SCALE_MIN = SCALE_K_MIN / 8
LOG2_SCALE_MAX = LATENT_SCALE_K_MAX / 8


@dataclass(frozen=True)
class Window:
    """A pixel window [r0, r1) x [c0, c1) of the image."""

    r0: int
    r1: int
    c0: int
    c1: int

    @property
    def n_pixels(self) -> int:
        return (self.r1 - self.r0) * (self.c1 - self.c0)

    def at_level(self, level: int) -> "Window":
        """The latent cells of `level` whose parent pixels overlap the window."""
        s = 2**level
        return Window(self.r0 // s, -(-self.r1 // s), self.c0 // s, -(-self.c1 // s))


def make_mlp(widths: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def mlp_columns(mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """`mlp` applied to column vectors: x [in, N] -> [out, N], the same function as mlp(x.T).T.

    On a 2-core CPU the training MLPs' products are tall and skinny ([65k, 16]
    by [16, 7] and their backward): laid out with the 65k rows contiguous
    they run several times slower in BLAS than with the 65k columns
    contiguous (ad hoc, two threads: input gradient of the first synthesis
    layer 2.9 -> 0.5 ms, its weight gradient 2.4 -> 0.7 ms).
    """
    for layer in mlp:
        if isinstance(layer, nn.Linear):
            x = torch.addmm(layer.bias[:, None], layer.weight, x)
        elif isinstance(layer, nn.ReLU):
            x = torch.relu(x)
        else:
            raise TypeError(f"mlp_columns: unsupported layer {type(layer).__name__}")
    return x


def laplace_bits(x: torch.Tensor, mu: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Bits to code integer-binned values x under Laplace(mu, scale): [N]."""

    def cdf(v: torch.Tensor) -> torch.Tensor:
        return 0.5 - 0.5 * torch.sign(v) * torch.expm1(-v.abs() / scale)

    prob = cdf(x + 0.5 - mu) - cdf(x - 0.5 - mu)
    return -torch.log2(prob.clamp_min(2.0**-24))


def context_bits(values: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """Bits of integer `values` under a context model's outputs [N, 2] (mean, log2 scale): [N]."""
    return context_bits_columns(values, outputs.T)


def context_bits_columns(values: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """`context_bits` with the outputs as columns: [2, N] (mean row, log2 scale row)."""
    scale = torch.exp2(outputs[1].clamp(LOG2_SCALE_MIN, LOG2_SCALE_MAX))
    return laplace_bits(values, outputs[0], scale)


class UpSynthesis(nn.Sequential):
    """The synthesis MLP plus format 3.0's upsampling taps, [steps, 4], as a parameter of its optimizer group.

    Iterating it yields the MLP's layers only (`mlp_columns`). Step r (into
    resolution r) starts at bicubic's 2x taps.
    """

    def __init__(self, mlp: nn.Sequential, n_levels: int) -> None:
        super().__init__(*mlp)
        self.up_taps = nn.Parameter(torch.tensor(BICUBIC_2X).repeat(n_levels - 1, 1))


class CocoNet(nn.Module):
    """One image's network: latent grids plus synthesis and context MLPs."""

    def __init__(self, height: int, width: int, arch: Architecture) -> None:
        super().__init__()
        self.height, self.width, self.arch = height, width, arch
        self.sizes = grid_sizes(height, width, arch.n_levels)
        self.latents = nn.ParameterList(nn.Parameter(torch.zeros(h, w)) for h, w in self.sizes)
        self.synthesis = make_mlp(arch.synth_widths())
        if arch.learned_upsampling:
            self.synthesis = UpSynthesis(self.synthesis, arch.n_levels)
        self.crop_margin = UPSAMPLING_CROP_MARGIN if arch.learned_upsampling else CROP_MARGIN
        self.arm = make_mlp(arch.arm_widths())
        self._taps: dict[str, list[tuple[torch.Tensor, torch.Tensor] | None]] = {}
        self._step_sources: dict[str, list[tuple[tuple[torch.Tensor, torch.Tensor], ...]]] = {}
        # Rounding dead zone (encoder-only, see `round_latents`): the rate
        # landing's last, exact knob (`encoder._shrink_to`). 0 is plain rounding.
        self.dead_zone = 0.0
        # Levels below this one are held at zero (see `drop_finest_level`).
        self.first_level = 0
        # Per level, 1.0 where a rounded latent moves one step towards zero
        # (encoder-only, `inrcodec.train.shrink`): the landing's rate cut
        # that chooses its latents by distortion per bit saved. None: none.
        self.shrink: list[torch.Tensor] | None = None
        with torch.no_grad():  # start from mid-grey and a broad rate model
            self.synthesis[-1].bias.fill_(0.5)
            self.arm[-1].bias.copy_(torch.tensor([0.0, 1.0]))

    def taps(self, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
        """Per level, the bicubic taps at native size as dense matrices.

        Row matrix [H, h] and column matrix [W, w] hold the decoder's Q12 taps
        / 4096, so a crop is sampled as R[rows] @ grid @ C[cols].T: two small
        matrix products whose backward is two more, ~3x faster on a CPU than
        gathering four taps per axis (whose backward is a scatter-add).
        None for level 0, which is sampled at its own cells.
        """
        key = str(device)
        if key not in self._taps:
            self._taps[key] = [None if rows.identity and cols.identity
                               else (_dense(rows, h, device), _dense(cols, w, device))
                               for (rows, cols), (h, w) in zip(pixel_taps(self.height, self.width, self.sizes),
                                                               self.sizes)]
        return self._taps[key]

    def drop_finest_level(self) -> None:
        """Hold the full-resolution latents at zero for the rest of the fit.

        At high lambda (low rates on busy images) the one-latent-per-pixel
        level buys too little distortion for its bits, yet the rate term
        prunes it only late and slowly: the rate keeps falling until the last
        steps and the file misses. Without it, kodim05 at lambda 2.5e-2 coded
        at half the rate for -0.2 dB (ad-hoc runs, 2026-11-24). The zeros
        still go into the file (format 1.0 has every level), at ~0.015 bpp.
        """
        self.first_level = 1
        with torch.no_grad():
            self.latents[0].zero_()

    def full_window(self) -> Window:
        return Window(0, self.height, 0, self.width)

    def quantized_latents(self, mode: QuantMode) -> list[torch.Tensor]:
        """All latent grids as the decoder will see them (or a differentiable proxy)."""
        return [g for g, _ in self.crop_latents(self.full_window(), mode)]

    def noisy_latents(self, win: Window, temperature: float | None = None) -> tuple[list[Crop], list[Crop]]:
        """The training proxy of the latents under `win`: (synthesis input, rate input).

        Without a temperature, both are the latents plus U(-0.5, 0.5) noise
        (`crop_latents` in "noise" mode). With one, C3's proxy (Kim et al. 2024, after Agustsson & Theis 2020):
        the rate is charged on s(y) + u and the synthesis sees s(s(y) + u),
        with u ~ U(-0.5, 0.5) and s the soft rounding at `temperature`. As
        the temperature falls, s approaches rounding and the synthesis sees
        nearly the integers the decoder will, where plain noise shows it
        values up to half a step off. Same cropping as `crop_latents`.
        """
        if temperature is None:
            noisy = self.crop_latents(win, "noise")
            return noisy, noisy
        synthesis_in, rate_in = [], []
        for (g, origin), level in zip(self.crop_latents(win, "soft"), range(len(self.latents))):
            if level < self.first_level:
                synthesis_in.append((g, origin))
                rate_in.append((g, origin))
                continue
            noisy = soft_round(g, temperature) + torch.empty_like(g).uniform_(-0.5, 0.5)
            rate_in.append((noisy, origin))
            synthesis_in.append((soft_round(noisy, temperature), origin))
        return synthesis_in, rate_in

    def crop_latents(self, win: Window, mode: QuantMode) -> list[Crop]:
        """The part of every latent grid that pixels `win` depend on, quantized.

        Each level keeps `crop_margin` cells around the window: enough for the
        bicubic taps or the upsampling steps, the same-level neighbours and
        the children's parent neighbourhoods. Cutting first means noise,
        rounding and all gradients touch only the crop, not the whole pyramid.

        noise: additive U(-0.5, 0.5) (training, Balle et al. 2017);
        ste: hard rounding with the identity gradient (final phase, as in C3);
        round: hard rounding (evaluation), with `self.dead_zone`;
        soft: the clamped values themselves (`noisy_latents` quantizes them).
        """
        out = []
        for i, grid in enumerate(self.latents):
            h, w = self.sizes[i]
            m = self.crop_margin
            a, b = max(0, (win.r0 >> i) - m), min(h, ((win.r1 - 1) >> i) + 1 + m)
            c, d = max(0, (win.c0 >> i) - m), min(w, ((win.c1 - 1) >> i) + 1 + m)
            if i < self.first_level:
                out.append((grid.new_zeros(b - a, d - c), (a, c)))
                continue
            g = grid[a:b, c:d].clamp(LATENT_MIN, LATENT_MAX)
            if mode == "noise":
                g = g + torch.empty_like(g).uniform_(-0.5, 0.5)
            elif mode == "ste":
                g = g + (torch.round(g) - g).detach()
            elif mode == "soft":
                pass
            else:
                g = round_latents(g, self.dead_zone)
                if self.shrink is not None:
                    g = g - torch.sign(g) * self.shrink[i][a:b, c:d]
            out.append((g, (a, c)))
        return out

    def synthesize(self, crops: list[Crop] | list[torch.Tensor], win: Window) -> torch.Tensor:
        """RGB of the pixels in `win`, raster order: [N, 3], nominally [0, 1].

        Computed in columns (`mlp_columns`); the result is a transposed view.
        """
        return mlp_columns(self.synthesis, self.sample(crops, win).T).T

    def sample(self, crops: list[Crop] | list[torch.Tensor], win: Window) -> torch.Tensor:
        """Latent features of the pixels in `win`, raster order: [N, levels].

        A transposed view of a [levels, N] tensor: `synthesize` runs in columns.
        """
        cols = []
        for crop, matrices in zip(crops, self.sampling_matrices(crops, win)):
            grid, (gy, gx) = _split(crop)
            if matrices is None:
                sampled = grid[win.r0 - gy : win.r1 - gy, win.c0 - gx : win.c1 - gx]
            else:
                rows_m, cols_m = matrices
                sampled = rows_m @ grid @ cols_m.T
            cols.append(sampled.reshape(-1))
        return torch.stack(cols).T

    def sampling_matrices(self, crops: list[Crop] | list[torch.Tensor],
                          win: Window) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
        """Per level, how the pixels of `win` read its crop: (rows [win rows, crop rows], cols [win cols, crop cols]).

        A level's features are rows @ crop @ cols.T. None for level 0 in
        formats 1.0 and 2.0, sampled at its own cells.
        """
        if self.arch.learned_upsampling:
            return self._upsampling_chains(crops, win)
        out: list[tuple[torch.Tensor, torch.Tensor] | None] = []
        for crop, level_taps in zip(crops, self.taps(_tensor(crops[0]).device)):
            grid, (gy, gx) = _split(crop)
            if level_taps is None:
                out.append(None)
                continue
            rows_m, cols_m = level_taps
            h, w = grid.shape
            out.append((rows_m[win.r0 : win.r1, gy : gy + h], cols_m[win.c0 : win.c1, gx : gx + w]))
        return out

    def _upsampling_chains(self, crops: list[Crop] | list[torch.Tensor],
                           win: Window) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
        """Format 3.0: level k's matrices are the product of the 2x steps into resolutions 0 .. k-1.

        Each step is a matrix built from `upsampling.step_sources` and the
        learned taps (differentiable in them), restricted to the cells of
        the two crops it joins: level k's chain is level k-1's times one
        step. Sources beyond a crop read its edge; those cells are within
        UPSAMPLING_CROP_MARGIN of the crop's border, where the chain to the
        window does not reach.
        """
        device = _tensor(crops[0]).device
        steps = self._up_steps(device)
        taps = self.synthesis.up_taps
        out: list[tuple[torch.Tensor, torch.Tensor] | None] = []
        spans = ((win.r0, win.r1), (win.c0, win.c1))  # the previous resolution's cells: the window at first
        chains: list[torch.Tensor] = []
        for level, crop in enumerate(crops):
            grid, (gy, gx) = _split(crop)
            if level == 0:  # sampled at its own cells
                out.append(None)
                continue
            crop_spans = ((gy, gy + grid.shape[0]), (gx, gx + grid.shape[1]))
            step = [_step_matrix(taps[level - 1], steps[level - 1][axis], spans[axis], crop_spans[axis])
                    for axis in (0, 1)]
            chains = step if level == 1 else [chain @ u for chain, u in zip(chains, step)]
            out.append((chains[0], chains[1]))
            spans = crop_spans
        return out

    def _up_steps(self, device: torch.device) -> list[tuple[tuple[torch.Tensor, torch.Tensor], ...]]:
        """Per step (into resolution 0, 1, ...), per axis: `upsampling.step_sources` as tensors."""
        key = str(device)
        if key not in self._step_sources:
            self._step_sources[key] = [
                tuple(tuple(torch.as_tensor(a, device=device)
                            for a in step_sources(self.sizes[r][axis], self.sizes[r + 1][axis]))
                      for axis in (0, 1))
                for r in range(len(self.sizes) - 1)]
        return self._step_sources[key]

    def latent_bits(self, crops: list[Crop] | list[torch.Tensor], win: Window) -> tuple[torch.Tensor, list[int]]:
        """Estimated bits of the latent cells under `win`, and their count per level.

        The same function as `context_features` followed by the context MLP,
        arranged around parent cells (the context model is ~60 % of a
        training step). The parent part of the first layer is one product per
        parent cell, not four; the two anchors under a parent see only that
        parent's neighbourhood, so they share one prediction; and only the
        two non-anchors add same-level neighbours. That is 3 MLP rows per
        parent instead of 4 and no 14-wide feature rows.

        All levels go through the same few operations: every value the
        context model reads is gathered, by precomputed indices
        (`_ContextIndex`), from one flat vector of all crops. Per-level
        slicing cost ~500 small operations a step, and as many autograd
        nodes: more time than the arithmetic at crop 256 on a 2-core CPU.
        """
        terms = self._context_terms(crops, win)
        bits = (context_bits_columns(terms.values, terms.outputs) * terms.inside).sum()
        return bits, [win.at_level(i).n_pixels for i in range(len(crops))]

    def bits_saved_by_shrinking(self, crops: list[Crop], win: Window) -> list[torch.Tensor]:
        """Per crop, the bits each cell under `win` would save one step nearer zero (0 for zeros and cells outside).

        Only the cell's own code is counted, under the context it has now:
        the move also changes its neighbours' and children's predictions.
        """
        terms = self._context_terms(crops, win)
        step = torch.sign(terms.values)
        saved = context_bits_columns(terms.values, terms.outputs) - context_bits_columns(terms.values - step,
                                                                                          terms.outputs)
        flat = torch.zeros(terms.flat_size, dtype=saved.dtype, device=saved.device)
        flat.index_add_(0, terms.positions.long(), saved * terms.inside * step.abs())
        out, start = [], 0
        pad = 3 if terms.padded else 0  # one row and column before, two after
        for crop in crops:
            h, w = _tensor(crop).shape
            grid = flat[start : start + (h + pad) * (w + pad)].view(h + pad, w + pad)
            out.append(grid[1 : h + 1, 1 : w + 1] if pad else grid)
            start += grid.numel()
        return out

    def _context_terms(self, crops: list[Crop] | list[torch.Tensor], win: Window) -> "_ContextTerms":
        """The context model's outputs for every cell `latent_bits` codes, with where each cell lies."""
        if self.arch.context_tile:
            return self._wavefront_terms(crops, win)
        first, rest = self.arm[0], self.arm[1:]
        grids = [_split(crop) for crop in crops]
        index = _ContextIndex.of([(g.shape, origin) for g, origin in grids], win, _tensor(crops[0]).device)
        flat = torch.cat([F.pad(g, (1, 2, 1, 2)).reshape(-1) for g, _ in grids] + [grids[0][0].new_zeros(1)])
        weight, bias = first.weight, first.bias  # [hidden, 14]: parent 3x3, N, S, W, E, non-anchor flag
        # In columns, like the synthesis (`mlp_columns`): one column per MLP row.
        hoods = flat.index_select(0, index.hoods).view(9, -1)
        parent_rows = torch.addmm(bias[:, None], weight[:, :9], hoods)
        neighbours = flat.index_select(0, index.neighbours).view(4, -1)
        other_rows = torch.addmm(parent_rows.repeat(1, 2) + weight[:, 13:14], weight[:, 9:13], neighbours)
        out = mlp_columns(rest, torch.cat([parent_rows, other_rows], dim=1))
        n_parents = parent_rows.shape[1]
        # Each parent row predicts both anchors under it.
        params = torch.cat([out[:, :n_parents], out], dim=1)
        return _ContextTerms(flat.index_select(0, index.values), params, index.inside, index.values,
                             flat.numel(), padded=True)

    def _wavefront_terms(self, crops: list[Crop] | list[torch.Tensor], win: Window) -> "_ContextTerms":
        """`_context_terms` under format 2.0's context, arranged around parent cells as format 1.0's is.

        The four cells under a parent share its 3x3 neighbourhood, 9 of the
        21 features: the first layer's parent part is one product per parent
        cell, added to each child's product of its 12 same-level neighbours.
        Every value comes from one gather out of a flat vector of all crops
        (`_WavefrontIndex`): per-level slicing and masking took ~30 small
        operations per level and as many autograd nodes.
        """
        first, rest = self.arm[0], self.arm[1:]
        grids = [_split(crop) for crop in crops]
        index = _WavefrontIndex.of([(tuple(g.shape), origin) for g, origin in grids], self.sizes, win,
                                   self.arch.context_tile, _tensor(crops[0]).device)
        flat = torch.cat([g.reshape(-1) for g, _ in grids] + [grids[0][0].new_zeros(1)])
        n_parents = index.values.numel() // 4
        weight = first.weight  # [hidden, 21]: parent 3x3, then the 12 neighbours
        hoods = flat.index_select(0, index.hoods).view(9, n_parents)
        parent_part = weight[:, :9] @ hoods
        neighbours = flat.index_select(0, index.neighbours).view(-1, 4 * n_parents)
        rows = torch.addmm(first.bias[:, None], weight[:, 9:], neighbours)
        rows = (rows.view(-1, 4, n_parents) + parent_part[:, None, :]).view(-1, 4 * n_parents)
        outputs = mlp_columns(rest, rows)
        return _ContextTerms(flat.index_select(0, index.values), outputs, index.inside, index.values,
                             flat.numel(), padded=False)


@dataclass(frozen=True)
class _ContextTerms:
    """What the context model says of the cells `CocoNet.latent_bits` codes.

    values: [n] the cells; outputs: [2, n] their Laplace mean and log2
    scale rows; inside: [n] 1.0 where the cell counts (under the window);
    positions: [n] where each cell lies in the flat vector of all crops
    (flat_size long), each crop row major, with one zero row and column
    before it and two after if `padded` (format 1.0's layout).
    """

    values: torch.Tensor
    outputs: torch.Tensor
    inside: torch.Tensor
    positions: torch.Tensor
    flat_size: int
    padded: bool


_WAVEFRONT_DY = np.array([dy for dy, _ in WAVEFRONT_NEIGHBOURS])[:, None, None]
_WAVEFRONT_DX = np.array([dx for _, dx in WAVEFRONT_NEIGHBOURS])[:, None, None]
_HOOD_DY = np.repeat(np.arange(-1, 2), 3)[:, None]  # row-major 3x3, as columns
_HOOD_DX = np.tile(np.arange(-1, 2), 3)[:, None]
_CHILDREN = ((0, 0), (0, 1), (1, 0), (1, 1))  # a parent's cells, (dy, dx) from its top-left one
_CHILD_STEP = np.arange(2)[:, None]  # dy (or dx) of a parent's children, as a column


@dataclass(frozen=True)
class _WavefrontIndex:
    """Where `CocoNet._wavefront_terms` finds each value, in one flat vector of all crops plus a zero.

    Per level, the window is widened to even edges so that it covers whole
    2x2 blocks, one per parent cell; parents run in raster order, levels
    finest first (n_parents in all). A read outside its level, past the
    crop, or (for same-level neighbours) outside the cell's tile points at
    the trailing zero.

    hoods: [9 * n_parents] each parent cell's 3x3 neighbourhood in the next
        coarser level, as 9 rows (row major over the 3x3) of n_parents
        columns; zero for the coarsest level, which has no parent.
    neighbours: [12 * 4 * n_parents] the 12 same-level neighbours of every
        cell, as 12 rows of 4 * n_parents columns: the (0, 0) child of
        every parent, then the (0, 1), (1, 0) and (1, 1) children
        (`_CHILDREN`); column i's parent is column i mod n_parents.
    values: [4 * n_parents] the cells themselves, in that order.
    inside: [4 * n_parents] 1.0 where the cell is under the window (the
        widening adds cells that do not count).
    """

    hoods: torch.Tensor
    neighbours: torch.Tensor
    values: torch.Tensor
    inside: torch.Tensor

    @staticmethod
    def of(grids: list[tuple[tuple[int, int], tuple[int, int]]], sizes: list[tuple[int, int]], win: Window,
           tile: tuple[int, int], device: torch.device) -> "_WavefrontIndex":
        """Indices for crops (shape, origin in level coordinates), finest first, under `win`.

        Every index is a row part plus a column part, and whether it points
        into its level, its tile and the crop is a row test and a column
        test: each is worked out on the window's rows and columns alone and
        only the last sum is a whole array (`_join`). Building the arrays
        element by element took ~4 ms of a ~23 ms training step at crop 256
        (2026-12-05); this ~1.5 ms (`bench/results/context-index-2026-12-05`).
        """
        tile_w, tile_h = tile
        bases = np.cumsum([0] + [h * w for (h, w), _ in grids])
        zero = int(bases[-1])
        windows = [win.at_level(level) for level in range(len(grids))]
        parents = [_parent_span(cells) for cells in windows]
        counts = [rows.size * cols.size for rows, cols in parents]
        n_parents = sum(counts)
        # `_join`'s sums stay under 4 * zero + 4 or so: int32 unless the crops are huge.
        dtype = np.int32 if zero < 1 << 28 else np.int64
        hoods = np.empty((9, n_parents), dtype=dtype)
        neighbours = np.empty((len(WAVEFRONT_NEIGHBOURS), len(_CHILDREN), n_parents), dtype=dtype)
        values = np.empty((len(_CHILDREN), n_parents), dtype=dtype)
        inside = np.empty((len(_CHILDREN), n_parents), dtype=bool)
        start = 0
        for level, ((h, w), (gy, gx)) in enumerate(grids):
            cells, (prow, pcol) = windows[level], parents[level]
            level_h, level_w = sizes[level]
            span = slice(start, start + counts[level])
            start = span.stop
            if level + 1 < len(grids):
                (_, pw), (py0, px0) = grids[level + 1]
                up_h, up_w = sizes[level + 1]
                py, px = prow + _HOOD_DY, pcol + _HOOD_DX  # [9, parent rows / columns]
                _join(hoods[:, span], zero, bases[level + 1] + (py - py0) * pw, (py >= 0) & (py < up_h),
                      px - px0, (px >= 0) & (px < up_w))
            else:  # the coarsest level has no parent: its parent features are zero
                hoods[:, span] = zero
            # All four children of every parent at once: rows y = 2 prow + dy
            # ([2, parent rows], dy = 0, 1), columns x likewise; the joined
            # [.., 2, 2, rows, columns] blocks come out in `_CHILDREN` order.
            y, x = 2 * prow + _CHILD_STEP, 2 * pcol + _CHILD_STEP
            # The widening to even edges may step past the last row or column.
            row_in, col_in = y < level_h, x < level_w
            _join(values[None, :, span], zero, bases[level] + (y[None] - gy) * w, row_in[None], x[None] - gx,
                  col_in[None])
            under = _grid_view(inside[None, :, span], y.shape[1], x.shape[1])
            np.logical_and(((y >= cells.r0) & (y < cells.r1))[None, :, None, :, None],
                           ((x >= cells.c0) & (x < cells.c1))[None, None, :, None, :], out=under)
            ny, nx = y[None] + _WAVEFRONT_DY, x[None] + _WAVEFRONT_DX  # [12, 2, rows / columns]
            _join(neighbours[:, :, span], zero, bases[level] + (ny - gy) * w,
                  (ny // tile_h == y // tile_h) & (ny >= 0) & row_in,
                  nx - gx, (nx // tile_w == x // tile_w) & (nx >= 0) & (nx < level_w) & col_in)

        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(array.reshape(-1)).to(device)

        return _WavefrontIndex(hoods=tensor(hoods), neighbours=tensor(neighbours), values=tensor(values),
                               inside=tensor(inside).float())


def _parent_span(cells: Window) -> tuple[np.ndarray, np.ndarray]:
    """The parent rows and columns of a level's window widened to even edges (whole 2x2 blocks)."""
    return np.arange(cells.r0 >> 1, (cells.r1 + 1) >> 1), np.arange(cells.c0 >> 1, (cells.c1 + 1) >> 1)


def _join(out: np.ndarray, zero: int, row_part: np.ndarray, row_ok: np.ndarray, col_part: np.ndarray,
          col_ok: np.ndarray) -> None:
    """Fill index blocks with row_part + col_part where both tests pass, else `zero`.

    row_part / row_ok: [k, rows] or [k, 2, rows] (the latter per child row
    dy); col_part / col_ok likewise over columns and dx. `out` is [k, rows
    * columns], or [k, 4, rows * columns] for the children, whose block
    (dy, dx) is child 2 dy + dx (`_CHILDREN`). A failed test turns its part
    into `far`, more than `zero` plus any part's magnitude (every part lies
    in the crops' flat vector, whose length is `zero`), so a failing pair
    sums to at least `zero` and the closing minimum maps it there; passing
    pairs sum to an index below `zero`. One add and one minimum over the
    whole block.
    """
    far = 2 * zero + 2
    rows = np.where(row_ok, row_part, far).astype(out.dtype)  # the parts in the blocks' type: no casts in the sum
    cols = np.where(col_ok, col_part, far).astype(out.dtype)
    if rows.ndim == 2:
        grid = _grid_view(out, rows.shape[1], cols.shape[1])
        np.add(rows[:, :, None], cols[:, None, :], out=grid)
    else:
        grid = _grid_view(out, rows.shape[2], cols.shape[2])
        np.add(rows[:, :, None, :, None], cols[:, None, :, None, :], out=grid)
    np.minimum(grid, zero, out=grid)


def _grid_view(out: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """`out`'s last axis (rows * columns) as [rows, columns], and a children axis of 4 as [2, 2]; the same memory."""
    shape = out.shape[:-1] + (rows, cols)
    if len(shape) == 4:  # [k, 4, rows, columns]: the children's (dy, dx)
        shape = shape[:1] + (2, 2) + shape[2:]
    grid = out.reshape(shape)
    if grid.size and grid.ctypes.data != out.ctypes.data:  # a copy: what is written to it would be lost
        raise AssertionError("index block is not a view")
    return grid


@dataclass(frozen=True)
class _ContextIndex:
    """Where `CocoNet.latent_bits` finds each value, in one flat vector of all crops.

    The flat vector holds each level's crop padded with one zero row and
    column before and two after (finest level first, row major), then one
    zero. The padding stands in for the cells outside the crop, which
    `context_features` reads as zeros outside the level: with CROP_MARGIN
    cells around the window, the two differ only for cells outside the
    window, which do not count.

    Per level, the window is widened to even edges so that it covers whole
    2x2 blocks, one per parent cell; parents run in raster order, levels
    finest first. Every index array is then one template (the parents'
    raster) plus a constant per neighbour.

    hoods: [9 * n_parents] the 3x3 parent neighbourhood of each parent cell,
        as 9 rows (row major over the 3x3) of one column per parent;
    neighbours: [4 * 2 * n_parents] N, S, W, E of each non-anchor, as 4 rows
        of one column per non-anchor: the phase (0, 1) cells of every level,
        then the phase (1, 0) ones;
    values: [4 * n_parents] anchors (0, 0), anchors (1, 1), non-anchors in the
        same order, so that value i is predicted by MLP row i mod
        n_parents for anchors (their parent's) and i - n_parents for the
        rest (parent rows first, then non-anchor rows);
    inside: [4 * n_parents] 1.0 where the cell of `values` is in the window.

    Indices are int32: building them is ~1 ms a step at crop 256 (2026-12-01), most of it writing memory.
    """

    hoods: torch.Tensor
    neighbours: torch.Tensor
    values: torch.Tensor
    inside: torch.Tensor

    @staticmethod
    def of(grids: list[tuple[torch.Size, tuple[int, int]]], win: Window, device: torch.device) -> "_ContextIndex":
        """Indices for crops (shape, origin in level coordinates), finest first, under `win`."""
        widths = [int(shape[1]) + 3 for shape, _ in grids]
        bases = np.cumsum([0] + [(int(shape[0]) + 3) * width for (shape, _), width in zip(grids, widths)])
        zero = int(bases[-1])

        def flat(level: int, y: int, x: int) -> int:
            """Index of level cell (y, x) in the flat vector."""
            gy, gx = grids[level][1]
            return int(bases[level]) + (y - gy + 1) * widths[level] + (x - gx + 1)

        hoods: list[np.ndarray] = []
        neighbours: list[list[np.ndarray]] = [[], []]  # phase (0, 1), phase (1, 0)
        # anchors (0, 0), anchors (1, 1), non-anchors (0, 1), non-anchors (1, 0)
        values: list[list[np.ndarray]] = [[], [], [], []]
        inside: list[list[np.ndarray]] = [[], [], [], []]
        for level in range(len(grids)):
            w = win.at_level(level)
            r0, c0 = w.r0 & ~1, w.c0 & ~1
            ph, pw = ((w.r1 + 1) >> 1) - (r0 >> 1), ((w.c1 + 1) >> 1) - (c0 >> 1)
            width = widths[level]
            corner = flat(level, r0, c0)
            cells = (2 * width * np.arange(ph, dtype=np.int32))[:, None] + 2 * np.arange(pw, dtype=np.int32)[None, :]
            cells = cells.reshape(-1, 1) + corner
            if level + 1 < len(grids):
                up = widths[level + 1]
                parents = ((up * np.arange(ph, dtype=np.int32))[:, None] + np.arange(pw, dtype=np.int32)[None, :]
                           + flat(level + 1, r0 >> 1, c0 >> 1))
                hood = np.array([dy * up + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1)], dtype=np.int32)
                hoods.append(hood[:, None] + parents.reshape(1, -1))
            else:  # the coarsest level has no parent: its parent features are zero
                hoods.append(np.full((9, ph * pw), zero, dtype=np.int32))
            rows, cols = r0 + 2 * np.arange(ph), c0 + 2 * np.arange(pw)  # the (0, 0) cell of each block
            for slot, (dy, dx) in enumerate(((0, 0), (1, 1), (0, 1), (1, 0))):
                values[slot].append((cells + dy * width + dx).reshape(-1))
                rows_in = (rows + dy >= w.r0) & (rows + dy < w.r1)
                cols_in = (cols + dx >= w.c0) & (cols + dx < w.c1)
                inside[slot].append((rows_in[:, None] & cols_in[None, :]).reshape(-1))
            # N, S, W, E of the phase (0, 1) cells, and of the phase (1, 0) ones.
            neighbours[0].append(np.array([[1 - width], [1 + width], [0], [2]], dtype=np.int32) + cells.reshape(1, -1))
            neighbours[1].append(np.array([[0], [2 * width], [width - 1], [width + 1]], dtype=np.int32)
                                 + cells.reshape(1, -1))

        return _ContextIndex(hoods=_index_tensor(hoods, device),
                             neighbours=_index_tensor(neighbours[0] + neighbours[1], device),
                             values=_index_tensor(values[0] + values[1] + values[2] + values[3], device),
                             inside=_index_tensor(inside[0] + inside[1] + inside[2] + inside[3], device).float())


def _index_tensor(parts: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """Index parts joined along their last axis (columns), flattened row major, on `device`."""
    return torch.from_numpy(np.concatenate(parts, axis=-1).reshape(-1)).to(device)


def soft_round(values: torch.Tensor, temperature: float) -> torch.Tensor:
    """Differentiable rounding: identity as temperature grows, rounding as it falls to 0.

    s(y) = m + tanh(r / T) / (2 tanh(1 / (2 T))) with m = floor(y) + 1/2 and
    r = y - m (Agustsson & Theis, NeurIPS 2020): continuous, equal to y at
    half-integers, and flat near the integers at small T.
    """
    middle = torch.floor(values) + 0.5
    return middle + torch.tanh((values - middle) / temperature) / (2 * math.tanh(0.5 / temperature))


def round_latents(values: torch.Tensor, dead_zone: float = 0.0) -> torch.Tensor:
    """Round to integers, widening the bins towards zero by `dead_zone`.

    With dead_zone d in [0, 0.5), a value is rounded down in magnitude unless
    its fractional part reaches 0.5 + d: latents that barely earned the next
    integer (and its bits) give it up. The rate falls monotonically as d grows,
    which makes d a precise post-training rate knob (`encoder._land_rate`);
    like rate-distortion-optimised quantization, it drops the values whose
    bits buy least. Past 0.5 (the encoder's last resort, `RESCUE_DEAD_ZONE`)
    every magnitude shrinks by d - 0.5 more and never flips sign.
    """
    if dead_zone == 0.0:
        return torch.round(values)
    return torch.sign(values) * torch.floor(values.abs() + (0.5 - dead_zone)).clamp(min=0.0)


def _dense(taps: AxisTaps, n_in: int, device: torch.device) -> torch.Tensor:
    """Taps of one axis as a dense [n_out, n_in] float32 matrix."""
    n_out = taps.index.shape[0]
    dense = torch.zeros(n_out, n_in, dtype=torch.float64)
    dense.scatter_add_(1, torch.from_numpy(taps.index), torch.from_numpy(taps.weight_q12) / ACT_ONE)
    return dense.to(device=device, dtype=torch.float32)


def _step_matrix(taps: torch.Tensor, sources: tuple[torch.Tensor, torch.Tensor], out_span: tuple[int, int],
                 in_span: tuple[int, int]) -> torch.Tensor:
    """One 2x step along one axis as a matrix [outputs a..b-1, inputs c..d-1], sources beyond c..d-1 read its edge."""
    (a, b), (c, d) = out_span, in_span
    index, which = sources
    columns = (index[a:b] - c).clamp(0, d - c - 1)
    return taps.new_zeros(b - a, d - c).scatter_add(1, columns, taps[which[a:b]])


def _split(crop: Crop | torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """(grid, origin) of a crop, or of a whole grid (origin 0, 0)."""
    return crop if isinstance(crop, tuple) else (crop, (0, 0))


def _tensor(crop: Crop | torch.Tensor) -> torch.Tensor:
    return _split(crop)[0]
