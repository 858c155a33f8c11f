"""Exact integer arithmetic shared by the encoder's final pass and the decoder.

Every number the decoder computes is an integer. We keep those integers in
float64 arrays: as long as every product and every partial sum stays below
2**53 in magnitude, a float64 matrix product of integers is *exact* whatever
the summation order, blocking, FMA use or thread count, so BLAS on any CPU and
cuBLAS on any GPU give bit-identical results. The limits below (activation and
weight magnitudes, layer widths) are chosen so that bound always holds; the
`.coco` parser refuses files that would break it.

Fixed-point conventions (see formats/coco.md, "Arithmetic"):
- activations and sampled latents are Q12: the integer X stands for X / 4096;
- a layer's weights are integers W with a per-tensor step 2**-weight_exp;
- its biases are integers B with a per-tensor step 2**-bias_exp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACT_FRAC_BITS = 12
ACT_ONE = 1 << ACT_FRAC_BITS
# Activations saturate at +-256.0; with |W| < 2**15 and at most 64 inputs a dot
# product stays below 2**41, and the aligned bias below 2**43: far from the
# 2**53 exactness limit of float64.
ACT_LIMIT = 1 << 20
WEIGHT_LIMIT = 1 << 15
MAX_WEIGHT_EXP = 16
MAX_LAYER_WIDTH = 64

LATENT_MIN = -256
LATENT_MAX = 255

# Laplace scales live on a log grid: scale_k = 2**(k/8). The eight mantissas
# 2**(r/8) are fixed integers (round(2**(r/8) * 2**32)) so no machine's pow()
# or exp() enters the scales (constriction's CDF still calls exp(); see
# formats/coco.md).
SCALE_STEPS_PER_OCTAVE = 8
SCALE_MANTISSAS = (
    4294967296, 4683695048, 5107605667, 5569883475,
    6074001000, 6623745059, 7223245206, 7877004752,
)
SCALE_K_MIN = -32  # scale 1/16: a latent stuck at its mean costs ~0.0005 bit
SCALE_K_MAX = 127  # scale ~2**15.9: wide enough for network weights
LATENT_SCALE_K_MAX = 80  # scale 1024: wider than the latent domain
MU_FRAC_BITS = 4  # the Laplace mean is rounded to a multiple of 1/16


def scale_from_index(k: np.ndarray) -> np.ndarray:
    """Exact Laplace scale 2**(k/8) for integer indices k, as float64."""
    k = np.asarray(k, dtype=np.int64)
    octave, step = np.divmod(k, SCALE_STEPS_PER_OCTAVE)
    mantissa = np.asarray(SCALE_MANTISSAS, dtype=np.float64)[step]
    return np.ldexp(mantissa, (octave - 32).astype(np.int32))


def nearest_scale_index(scale: float, k_max: int = SCALE_K_MAX) -> int:
    """Index k whose 2**(k/8) is closest (in log) to `scale`; encoder only."""
    k = round(SCALE_STEPS_PER_OCTAVE * np.log2(max(scale, 1e-9)))
    return int(min(max(k, SCALE_K_MIN), k_max))


@dataclass(frozen=True)
class IntLinear:
    """A fully connected layer with integer weights.

    Attributes:
        weight: int64 array [out, in]; real weight = weight * 2**-weight_exp.
        bias: int64 array [out]; real bias = bias * 2**-bias_exp.
        weight_exp: 0..16.
        bias_exp: 0..weight_exp + 12, so the bias aligns exactly with the
            accumulator of Q12 activations times weights.
    """

    weight: np.ndarray
    bias: np.ndarray
    weight_exp: int
    bias_exp: int


def run_int_mlp(x: np.ndarray, layers: list[IntLinear]) -> np.ndarray:
    """Evaluate an integer MLP exactly: ReLU between layers, none after the last.

    Args:
        x: float64 array [N, in] of Q12 integers.
        layers: the layers in order.

    Returns:
        float64 array [N, out] of Q12 integers (a transposed view of
        `run_int_mlp_columns`' result).
    """
    return run_int_mlp_columns(np.ascontiguousarray(x.T), layers).T


def run_int_mlp_columns(columns: np.ndarray, layers: list[IntLinear]) -> np.ndarray:
    """`run_int_mlp` on column vectors: [in, N] -> [out, N], one column per input.

    The decoder's own layout: BLAS runs these tall, skinny products faster
    with N contiguous on a CPU. The accumulators are exact integers whatever
    the order of summation, so the layout cannot change a result, nor can
    running the columns in chunks of CACHE_COLUMNS.
    """
    return run_int_mlp_prepared(columns, int_mlp_arrays(layers))


# A layer prepared for `run_int_layers`: weight and bias column scaled by
# 2**-weight_exp, then the clamp's low and high (numbers, or columns of one
# per output).
IntLayerArrays = tuple[np.ndarray, np.ndarray, "float | np.ndarray", "float | np.ndarray"]


def int_mlp_arrays(layers: list[IntLinear]) -> list[IntLayerArrays]:
    """Each layer's float64 weight scaled by 2**-weight_exp, its aligned bias column so scaled, and its clamp.

    Scaling by a power of two is exact, so every partial sum of the scaled
    product is a multiple of 2**-weight_exp below 2**44 in magnitude,
    whichever order BLAS sums in: flooring it is flooring the accumulator
    divided by 2**weight_exp. `run_int_mlp_columns` builds them on every
    call; callers that run one network on many small batches build them
    once (`run_int_mlp_prepared`).
    """
    return [(np.asarray(layer.weight, dtype=np.float64) * 2.0 ** -layer.weight_exp,
             aligned_bias(layer)[:, None] * 2.0 ** -layer.weight_exp,
             _low_clamp(last=i == len(layers) - 1), ACT_LIMIT) for i, layer in enumerate(layers)]


def run_int_mlp_prepared(columns: np.ndarray, arrays: list[IntLayerArrays]) -> np.ndarray:
    """`run_int_mlp_columns` with the layers' arrays from `int_mlp_arrays`."""
    if columns.shape[1] > CACHE_COLUMNS:
        return np.concatenate([run_int_layers(columns[:, a : a + CACHE_COLUMNS], arrays)
                               for a in range(0, columns.shape[1], CACHE_COLUMNS)], axis=1)
    return run_int_layers(columns, arrays)


# Columns per pass through the layers: a [16, 2**14] float64 activation is 2
# MiB, so it stays in cache from one layer (and one in-place op) to the next.
# Rendering kodim03 in 2**18-pixel bands: the synthesis ~95 -> ~35 ms
# (ad hoc, 2026-12-01).
CACHE_COLUMNS = 1 << 14


def run_int_layers(columns: np.ndarray, arrays: list[IntLayerArrays]) -> np.ndarray:
    """Prepared layers on columns [in, N]: product, bias, floor and clamp, in place after the product."""
    for weight, bias, low, high in arrays:
        columns = weight @ columns
        columns += bias
        _floor_and_clamp(columns, low, high)
    return columns


def aligned_bias(layer: IntLinear) -> np.ndarray:
    """The layer's bias on the scale of its accumulator (Q12 activations times integer weights), float64."""
    shift = ACT_FRAC_BITS + layer.weight_exp - layer.bias_exp
    return np.asarray(layer.bias * (1 << shift), dtype=np.float64)


def finish_int_layer(accumulator: np.ndarray, layer: IntLinear, last: bool) -> np.ndarray:
    """Q12 outputs of `layer` from its accumulator (bias included), in place.

    The accumulator is an exact integer (see the module docstring) however it
    was summed, so callers may add its parts separately (`entropy` adds a
    parent cell's part once for the cells that share it). Division by a
    power of two and floor are exact in float64.
    """
    accumulator *= 2.0 ** -layer.weight_exp
    return _floor_and_clamp(accumulator, _low_clamp(last), ACT_LIMIT)


def _low_clamp(last: bool) -> float:
    """A layer's lowest output: 0 (the ReLU) between layers, -ACT_LIMIT after the last."""
    return -ACT_LIMIT if last else 0


def _floor_and_clamp(scaled: np.ndarray, low: "float | np.ndarray", high: "float | np.ndarray") -> np.ndarray:
    """Outputs from an accumulator already scaled by 2**-weight_exp, floored and clamped to low..high, in place."""
    np.floor(scaled, out=scaled)
    return np.clip(scaled, low, high, out=scaled)


def bicubic_taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer bicubic taps for resampling one axis from n_in to n_out samples.

    Pixel centres are aligned (the convention of PyTorch's
    `interpolate(..., mode="bicubic", align_corners=False)` with an explicit
    size): output sample j sits at source position u = (j + 0.5) * n_in / n_out
    - 0.5. The kernel is Keys' cubic with a = -3/4, evaluated exactly in
    integers at the Q12 fraction of u; taps beyond the border repeat the edge.

    Returns:
        (index, weight): int64 arrays [n_out, 4]; weights are Q12 and every
        row sums to exactly 4096.
    """
    j = np.arange(n_out, dtype=np.int64)
    num = (2 * j + 1) * n_in - n_out
    den = 2 * n_out
    i0 = np.floor_divide(num, den)
    frac = ((num - i0 * den) * ACT_ONE) // den  # Q12 fraction in [0, 4096)
    d = ACT_ONE

    def near(x: np.ndarray) -> np.ndarray:  # 4 * D**3 * kernel(|x| <= 1)
        return (5 * x - 9 * d) * x * x + 4 * d**3

    def far(x: np.ndarray) -> np.ndarray:  # 4 * D**3 * kernel(1 < |x| < 2)
        return ((-3 * x + 15 * d) * x - 24 * d * d) * x + 12 * d**3

    def to_q12(v: np.ndarray) -> np.ndarray:  # round(v / (4 * D**2))
        return np.floor_divide(v + 2 * d * d, 4 * d * d)

    w0 = to_q12(far(frac + d))
    w2 = to_q12(near(d - frac))
    w3 = to_q12(far(2 * d - frac))
    w1 = d - w0 - w2 - w3
    weight = np.stack([w0, w1, w2, w3], axis=1)
    index = np.clip(i0[:, None] + np.arange(-1, 3)[None, :], 0, n_in - 1)
    return index, weight


def quantize_mu(mu_q12: np.ndarray) -> np.ndarray:
    """Round Q12 Laplace means to the 1/16 grid, clamped to the latent domain (float64)."""
    step = 1 << (ACT_FRAC_BITS - MU_FRAC_BITS)
    index = np.floor((np.asarray(mu_q12, dtype=np.float64) + step // 2) / step)
    return np.clip(index, LATENT_MIN << MU_FRAC_BITS, LATENT_MAX << MU_FRAC_BITS) / (1 << MU_FRAC_BITS)


def scale_index_from_log2(log2_scale_q12: np.ndarray) -> np.ndarray:
    """Round Q12 log2-scales to the nearest 1/8 octave: the scale indices k (int64)."""
    step = ACT_ONE // SCALE_STEPS_PER_OCTAVE
    k = np.floor((np.asarray(log2_scale_q12, dtype=np.float64) + step // 2) / step)
    return np.clip(k, SCALE_K_MIN, LATENT_SCALE_K_MAX).astype(np.int64)


def laplace_indices(outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu, scale index k) from a context model's [2, N] Q12 outputs.

    `quantize_mu` of row 0 and `scale_index_from_log2` of row 1.
    """
    return quantize_mu(outputs[0]), scale_index_from_log2(outputs[1])
