"""The trainable CocoNet: latent pyramid, synthesis MLP and context model.

This is the float, differentiable twin of the integer decoder in
`inrcodec.format`. Structure (Cool-chic/C3 family, rendered at any size):

    latents (L grids, 1/1 .. 1/2**(L-1))
        -> quantize (noise / straight-through rounding / rounding)
        -> bicubic sampling at pixel centres      [N, L]
        -> synthesis MLP (ReLU)                     [N, 3]  RGB in [0, 1]
    latents -> context features -> context MLP -> Laplace(mu, scale) -> bits

Training works on crops (a window of the image and the latent cells under
it): on a 2-core CPU a full 768x512 pass costs ~0.4 s, a quarter-size crop a
quarter of that, and four noisy steps beat one exact one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..format.architecture import Architecture
from ..format.context import context_features, grid_sizes
from ..format.fixedpoint import LATENT_MAX, LATENT_MIN, LATENT_SCALE_K_MAX, SCALE_K_MIN
from ..format.fixedpoint import ACT_ONE
from ..format.sampling import AxisTaps, pixel_taps

QuantMode = Literal["noise", "ste", "round"]
Crop = tuple[torch.Tensor, tuple[int, int]]  # sub-grid and its level coordinates
CROP_MARGIN = 3
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


def laplace_bits(x: torch.Tensor, mu: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Bits to code integer-binned values x under Laplace(mu, scale): [N]."""

    def cdf(v: torch.Tensor) -> torch.Tensor:
        return 0.5 - 0.5 * torch.sign(v) * torch.expm1(-v.abs() / scale)

    prob = cdf(x + 0.5 - mu) - cdf(x - 0.5 - mu)
    return -torch.log2(prob.clamp_min(2.0**-24))


class CocoNet(nn.Module):
    """One image's network: latent grids plus synthesis and context MLPs."""

    def __init__(self, height: int, width: int, arch: Architecture) -> None:
        super().__init__()
        self.height, self.width, self.arch = height, width, arch
        self.sizes = grid_sizes(height, width, arch.n_levels)
        self.latents = nn.ParameterList(nn.Parameter(torch.zeros(h, w)) for h, w in self.sizes)
        self.synthesis = make_mlp(arch.synth_widths())
        self.arm = make_mlp(arch.arm_widths())
        self._taps: dict[str, list[tuple[torch.Tensor, torch.Tensor] | None]] = {}
        # Rounding dead zone (encoder-only, see `round_latents`): the rate
        # landing's last, exact knob (`encoder._shrink_to`). 0 is plain rounding.
        self.dead_zone = 0.0
        # Levels below this one are held at zero (see `drop_finest_level`).
        self.first_level = 0
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

    def crop_latents(self, win: Window, mode: QuantMode) -> list[Crop]:
        """The part of every latent grid that pixels `win` depend on, quantized.

        Each level keeps CROP_MARGIN cells around the window: enough for the
        bicubic taps, the same-level neighbours and the children's parent
        neighbourhoods. Cutting first means noise, rounding and all gradients
        touch only the crop, not the whole pyramid.

        noise: additive U(-0.5, 0.5) (training, Balle et al. 2017);
        ste: hard rounding with the identity gradient (final phase, as in C3);
        round: hard rounding (evaluation), with `self.dead_zone`.
        """
        out = []
        for i, grid in enumerate(self.latents):
            h, w = self.sizes[i]
            a, b = max(0, (win.r0 >> i) - CROP_MARGIN), min(h, ((win.r1 - 1) >> i) + 1 + CROP_MARGIN)
            c, d = max(0, (win.c0 >> i) - CROP_MARGIN), min(w, ((win.c1 - 1) >> i) + 1 + CROP_MARGIN)
            if i < self.first_level:
                out.append((grid.new_zeros(b - a, d - c), (a, c)))
                continue
            g = grid[a:b, c:d].clamp(LATENT_MIN, LATENT_MAX)
            if mode == "noise":
                g = g + torch.empty_like(g).uniform_(-0.5, 0.5)
            elif mode == "ste":
                g = g + (torch.round(g) - g).detach()
            else:
                g = round_latents(g, self.dead_zone)
            out.append((g, (a, c)))
        return out

    def synthesize(self, crops: list[Crop] | list[torch.Tensor], win: Window) -> torch.Tensor:
        """RGB of the pixels in `win`, raster order: [N, 3], nominally [0, 1]."""
        return self.synthesis(self.sample(crops, win))

    def sample(self, crops: list[Crop] | list[torch.Tensor], win: Window) -> torch.Tensor:
        """Latent features of the pixels in `win`, raster order: [N, levels]."""
        taps = self.taps(_tensor(crops[0]).device)
        cols = []
        for crop, level_taps in zip(crops, taps):
            grid, (gy, gx) = _split(crop)
            if level_taps is None:
                sampled = grid[win.r0 - gy : win.r1 - gy, win.c0 - gx : win.c1 - gx]
            else:
                rows_m, cols_m = level_taps
                rows_m = rows_m[win.r0 : win.r1, gy : gy + grid.shape[0]]
                cols_m = cols_m[win.c0 : win.c1, gx : gx + grid.shape[1]]
                sampled = rows_m @ grid @ cols_m.T
            cols.append(sampled.reshape(-1))
        return torch.stack(cols, dim=1)

    def latent_bits(self, crops: list[Crop] | list[torch.Tensor], win: Window) -> tuple[torch.Tensor, list[int]]:
        """Estimated bits of the latent cells under `win`, and their count per level."""
        feats, values, counts = [], [], []
        for i, crop in enumerate(crops):
            grid, origin = _split(crop)
            w = win.at_level(i)
            parent, parent_origin = _split(crops[i + 1]) if i + 1 < len(crops) else (None, (0, 0))
            feats.append(context_features(grid, parent, (w.r0, w.r1, w.c0, w.c1), origin, parent_origin))
            values.append(grid[w.r0 - origin[0] : w.r1 - origin[0], w.c0 - origin[1] : w.c1 - origin[1]].reshape(-1))
            counts.append(w.n_pixels)
        out = self.arm(torch.cat(feats))
        scale = torch.exp2(out[:, 1].clamp(LOG2_SCALE_MIN, LOG2_SCALE_MAX))
        return laplace_bits(torch.cat(values), out[:, 0], scale).sum(), counts


def round_latents(values: torch.Tensor, dead_zone: float = 0.0) -> torch.Tensor:
    """Round to integers, widening the bins towards zero by `dead_zone`.

    With dead_zone d in [0, 0.5), a value is rounded down in magnitude unless
    its fractional part reaches 0.5 + d: latents that barely earned the next
    integer (and its bits) give it up. The rate falls monotonically as d grows,
    which makes d a precise post-training rate knob (`encoder._land_rate`);
    like rate-distortion-optimised quantization, it drops the values whose
    bits buy least.
    """
    if dead_zone == 0.0:
        return torch.round(values)
    return torch.sign(values) * torch.floor(values.abs() + (0.5 - dead_zone))


def _dense(taps: AxisTaps, n_in: int, device: torch.device) -> torch.Tensor:
    """Taps of one axis as a dense [n_out, n_in] float32 matrix."""
    n_out = taps.index.shape[0]
    dense = torch.zeros(n_out, n_in, dtype=torch.float64)
    dense.scatter_add_(1, taps.index.cpu(), taps.weight_q12.cpu() / ACT_ONE)
    return dense.to(device=device, dtype=torch.float32)


def _split(crop: Crop | torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """(grid, origin) of a crop, or of a whole grid (origin 0, 0)."""
    return crop if isinstance(crop, tuple) else (crop, (0, 0))


def _tensor(crop: Crop | torch.Tensor) -> torch.Tensor:
    return _split(crop)[0]
