"""Turn a trained float CocoNet into the integers a `.coco` file carries.

Latents are rounded (they were trained for it). Each network tensor gets its
own power-of-two step 2**-exp, chosen greedily by rate-distortion cost
J = MSE + lambda * bits / pixels, as Cool-chic does for its decoder weights;
powers of two keep the decoder's fixed-point arithmetic exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .context import level_context
from ..format.fixedpoint import ACT_FRAC_BITS, WEIGHT_LIMIT, IntLinear, nearest_scale_index, scale_from_index
from ..format.header import Header, LayerCoding
from ..format.upsampling import UP_TAP_MAX, UP_TAP_MIN
from .model import LOG2_SCALE_MAX, LOG2_SCALE_MIN, CocoNet, laplace_bits

EXP_CANDIDATES = range(3, 15)
DEFAULT_EXP = 10
SUBSET = 1 << 16  # pixels / latent cells used to score a choice


@dataclass
class QuantizedModel:
    """Everything `format.bitstream.write_coco` needs."""

    header: Header
    synthesis: list[IntLinear]
    arm: list[IntLinear]
    latents: list[np.ndarray]


def to_int(values: torch.Tensor, exp: int) -> np.ndarray:
    """Round real values to integers with step 2**-exp, clamped to the codable range."""
    ints = torch.round(values.detach().double() * 2.0**exp)
    return ints.clamp(-WEIGHT_LIMIT + 1, WEIGHT_LIMIT - 1).long().numpy()


def scale_index_of(ints: np.ndarray) -> int:
    """Laplace scale index fitted to integers (ML estimate: mean absolute value)."""
    return nearest_scale_index(float(np.abs(ints).mean()) if ints.size else 1.0)


def tensor_bits(ints: np.ndarray) -> float:
    """Estimated bits of one integer tensor under its fitted Laplace."""
    scale = torch.tensor(float(scale_from_index(np.int64(scale_index_of(ints)))), dtype=torch.float64)
    x = torch.as_tensor(ints, dtype=torch.float64)
    return float(laplace_bits(x, torch.zeros(()), scale).sum())


class _Scorer:
    """Fast RD cost of a set of (weight, bias) integer tensors."""

    def __init__(self, model: CocoNet, image: torch.Tensor, lmbda: float, gen: torch.Generator) -> None:
        self.model, self.lmbda = model, lmbda
        self.n_pixels = model.height * model.width
        with torch.no_grad():
            q = model.quantized_latents("round")
            win = model.full_window()
            idx = torch.randperm(self.n_pixels, generator=gen)[:SUBSET]
            feats = model.sample(q, win)
            # Columns ([channels, N]): BLAS runs these tall, skinny products
            # ~2x faster with the long axis contiguous (see `model.mlp_columns`).
            self.feats = feats[idx].T.contiguous()
            self.target = image.reshape(-1, 3)[idx].float().T.contiguous()
            tile = model.arch.context_tile
            ctx = torch.cat([level_context(tile, g, q[i + 1] if i + 1 < len(q) else None) for i, g in enumerate(q)])
            vals = torch.cat([g.reshape(-1) for g in q])
            cidx = torch.randperm(vals.numel(), generator=gen)[:SUBSET]
            self.ctx, self.vals = ctx[cidx].float().T.contiguous(), vals[cidx].double()
            self.cell_factor = vals.numel() / max(1, cidx.numel())
        assert self.ctx.shape[0] == model.arch.n_context()

        self.synthesis_run, self.context_run = _PrefixRun(self.feats), _PrefixRun(self.ctx)

    def distortion(self, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
        return float(((self.synthesis_run(layers) - self.target) ** 2).mean(dtype=torch.float64))

    def latent_bits(self, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
        out = self.context_run(layers)
        scale = torch.exp2(out[1].clamp(LOG2_SCALE_MIN, LOG2_SCALE_MAX))
        mu = torch.round(out[0] * 16) / 16
        return float(laplace_bits(self.vals, mu, scale).sum()) * self.cell_factor


def _layer(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, last: bool) -> torch.Tensor:
    """One linear layer on columns x [in, N] (ReLU unless last): [out, N]."""
    x = torch.addmm(b[:, None], w, x)
    return x if last else torch.relu_(x)


class _PrefixRun:
    """An MLP (ReLU between layers) on a fixed input, reusing what it shared with the last call.

    The exponent search changes one tensor at a time, in layer order, so
    consecutive calls share every layer before it: recomputing only from the
    changed layer on halves the search (~0.7 -> ~0.35 s of a Kodak file
    write). The same operations on the same tensors: the same results.
    Layers are recognised by identity, so callers pass the same tensor
    objects for unchanged layers (`_choose_exponents` caches them).
    """

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x
        self.chain: list[tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]] = []  # (layer, its output)

    def __call__(self, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        shared = 0
        while (shared < min(len(layers), len(self.chain)) and self.chain[shared][0][0] is layers[shared][0]
               and self.chain[shared][0][1] is layers[shared][1]):
            shared += 1
        del self.chain[shared:]
        x = self.chain[-1][1] if self.chain else self.x
        for i in range(shared, len(layers)):
            w, b = layers[i]
            x = _layer(x, w, b, last=i == len(layers) - 1)
            self.chain.append(((w, b), x))
        return x


def _dequantized(linears: list[torch.nn.Linear], exps: list) -> list[tuple[torch.Tensor, torch.Tensor]]:  # noqa: ANN001
    """(weight, bias) as the decoder will see them after rounding to 2**-exp steps."""
    return [
        (torch.from_numpy(to_int(lin.weight, we)).float() * 2.0**-we,
         torch.from_numpy(to_int(lin.bias, be)).float() * 2.0**-be)
        for lin, (we, be) in zip(linears, exps)
    ]


def _choose_exponents(linears: list[torch.nn.Linear], cost) -> list[tuple[int, int]]:  # noqa: ANN001
    """Greedy per-tensor choice of (weight_exp, bias_exp) minimising `cost`."""
    exps = [[DEFAULT_EXP, DEFAULT_EXP] for _ in linears]
    # Per (layer, exponents): the dequantized tensors, the same objects each
    # time (`_PrefixRun` recognises unchanged layers by identity), and bits.
    layer_cache: dict[tuple[int, int, int], tuple[torch.Tensor, torch.Tensor]] = {}
    bits_cache: dict[tuple[int, int, int], float] = {}

    def dequantized() -> list[tuple[torch.Tensor, torch.Tensor]]:
        for i, (we, be) in enumerate(exps):
            if (i, we, be) not in layer_cache:
                layer_cache[i, we, be] = _dequantized([linears[i]], [(we, be)])[0]
        return [layer_cache[i, we, be] for i, (we, be) in enumerate(exps)]

    def tensor_bits_at(i: int, slot: int, exp: int) -> float:
        if (i, slot, exp) not in bits_cache:
            bits_cache[i, slot, exp] = tensor_bits(to_int(linears[i].weight if slot == 0 else linears[i].bias, exp))
        return bits_cache[i, slot, exp]

    def bits() -> float:
        return sum(tensor_bits_at(i, 0, we) + tensor_bits_at(i, 1, be) for i, (we, be) in enumerate(exps))

    # Hill-climb each exponent from the default: the cost is close to convex in
    # the exponent (coarser steps: fewer bits, more error), so a local search
    # needs ~4 evaluations instead of a dozen.
    for i in range(len(linears)):
        for slot in (0, 1):
            hi = exps[i][0] + ACT_FRAC_BITS if slot == 1 else EXP_CANDIDATES[-1]
            best = cost(dequantized(), bits())
            for direction in (-1, 1):
                while EXP_CANDIDATES[0] <= exps[i][slot] + direction <= hi:
                    exps[i][slot] += direction
                    j = cost(dequantized(), bits())
                    if j >= best:
                        exps[i][slot] -= direction
                        break
                    best = j
    return [tuple(e) for e in exps]


def upsampling_taps_q12(model: CocoNet) -> tuple[tuple[int, ...], ...]:
    """Format 3.0's learned upsampling taps as the header's Q12 integers (none for other formats)."""
    if not model.arch.learned_upsampling:
        return ()
    taps = torch.round(model.synthesis.up_taps.detach().double() * (1 << ACT_FRAC_BITS))
    return tuple(tuple(int(v) for v in row) for row in taps.clamp(UP_TAP_MIN, UP_TAP_MAX))


def quantize_model(model: CocoNet, image: torch.Tensor, lmbda: float, seed: int = 0) -> QuantizedModel:
    """Choose per-tensor steps by RD cost and produce the integer model.

    Args:
        model: the trained network.
        image: [H, W, 3] float target in [0, 1].
        lmbda: the rate-distortion trade-off used in training (MSE + lmbda * bpp).
    """
    gen = torch.Generator().manual_seed(seed)
    scorer = _Scorer(model, image, lmbda, gen)
    n = scorer.n_pixels
    synth = [m for m in model.synthesis if isinstance(m, torch.nn.Linear)]
    arm = [m for m in model.arm if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        arm_float = [(m.weight.float(), m.bias.float()) for m in arm]
        lat_bits = scorer.latent_bits(arm_float)
        synth_exps = _choose_exponents(
            synth, lambda layers, b: scorer.distortion(layers) + lmbda * (b + lat_bits) / n)
        base_d = scorer.distortion(_dequantized(synth, synth_exps))
        arm_exps = _choose_exponents(
            arm, lambda layers, b: base_d + lmbda * (b + scorer.latent_bits(layers)) / n)
    int_layers, codings = [], []
    for lin, (we, be) in zip(synth + arm, synth_exps + arm_exps):
        w, b = to_int(lin.weight, we), to_int(lin.bias, be)
        int_layers.append(IntLinear(w, b, we, be))
        codings.append(LayerCoding(we, be, scale_index_of(w), scale_index_of(b)))
    header = Header(model.width, model.height, model.arch, tuple(codings), upsampling_taps_q12(model))
    latents = [g.detach().double().numpy().astype(np.int64) for g in model.quantized_latents("round")]
    n_synth = len(synth)
    return QuantizedModel(header, int_layers[:n_synth], int_layers[n_synth:], latents)
