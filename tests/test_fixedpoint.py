"""The decoder's exact arithmetic: bicubic taps, the integer MLP, the scale table."""

from __future__ import annotations

import itertools
import math
from decimal import Decimal, getcontext
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from inrcodec.format.fixedpoint import (
    ACT_FRAC_BITS,
    ACT_LIMIT,
    ACT_ONE,
    LATENT_MAX,
    LATENT_MIN,
    LATENT_SCALE_K_MAX,
    MAX_LAYER_WIDTH,
    SCALE_K_MAX,
    SCALE_K_MIN,
    SCALE_MANTISSAS,
    WEIGHT_LIMIT,
    IntLinear,
    bicubic_taps,
    nearest_scale_index,
    laplace_indices,
    quantize_mu,
    run_int_mlp,
    scale_from_index,
    scale_index_from_log2,
)

# --- bicubic taps ---------------------------------------------------------------------------

PAIRS = [(1, 1), (5, 5), (97, 48), (61, 32), (48, 97), (32, 61), (2, 1), (1, 7), (13, 4), (4, 13),
         (1000, 3), (3, 1000), (640, 480), (255, 256), (2048, 6), (7, 2)]


def tap_matrix(n_out: int, n_in: int) -> np.ndarray:
    """[n_out, n_in] real weights of the integer taps (edge repeats folded in)."""
    index, weight = bicubic_taps(n_out, n_in)
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.repeat(np.arange(n_out), 4), index.reshape(-1)), weight.reshape(-1) / ACT_ONE)
    return m


def torch_matrix(n_out: int, n_in: int) -> np.ndarray:
    """[n_out, n_in] weights of torch's bicubic resize, from interpolating each delta image."""
    deltas = torch.eye(n_in, dtype=torch.float64).reshape(n_in, 1, n_in, 1)
    out = F.interpolate(deltas, size=(n_out, 1), mode="bicubic", align_corners=False)
    return out.reshape(n_in, n_out).T.numpy()


def keys_kernel(x: Fraction) -> Fraction:
    """Keys' cubic convolution kernel with a = -3/4 (PyTorch's bicubic), exactly."""
    a, x = Fraction(-3, 4), abs(x)
    if x <= 1:
        return (a + 2) * x**3 - (a + 3) * x**2 + 1
    if x < 2:
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return Fraction(0)


@pytest.mark.parametrize(("n_out", "n_in"), PAIRS)
def test_bicubic_taps_follow_their_spec(n_out: int, n_in: int) -> None:
    """Position u = (j + 1/2) n_in / n_out - 1/2; its fraction floored to Q12; w0, w2, w3
    = kernel rounded half up to Q12; w1 = 4096 - the others; indices clamped to the edge."""
    index, weight = bicubic_taps(n_out, n_in)
    for j in range(n_out):
        u = Fraction((2 * j + 1) * n_in - n_out, 2 * n_out)
        i0 = math.floor(u)
        t = Fraction(math.floor((u - i0) * ACT_ONE), ACT_ONE)
        w = [math.floor(keys_kernel(t - d) * ACT_ONE + Fraction(1, 2)) for d in (-1, 0, 1, 2)]
        w[1] = ACT_ONE - w[0] - w[2] - w[3]
        assert weight[j].tolist() == w
        assert index[j].tolist() == [min(max(i0 + d, 0), n_in - 1) for d in (-1, 0, 1, 2)]


# Not 1/4096: the fraction of u is floored to Q12 before the kernel is evaluated
# (up to 1/4096 pixel, times a kernel slope up to 1.35), w1 absorbs the rounding
# of the three others, and at the borders the folded edge taps add up.
TORCH_TOLERANCE = 3 / ACT_ONE


@pytest.mark.parametrize(("n_out", "n_in"), PAIRS)
def test_bicubic_taps_match_torch(n_out: int, n_in: int) -> None:
    diff = np.abs(tap_matrix(n_out, n_in) - torch_matrix(n_out, n_in))
    assert diff.max() <= TORCH_TOLERANCE, diff.max() * ACT_ONE
    assert diff.mean() <= 0.5 / ACT_ONE


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.integers(1, 5000), st.integers(1, 5000))
def test_bicubic_rows_sum_to_one(n_out: int, n_in: int) -> None:
    index, weight = bicubic_taps(n_out, n_in)
    assert index.shape == weight.shape == (n_out, 4)
    assert index.dtype == weight.dtype == np.int64
    assert (weight.sum(axis=1) == ACT_ONE).all()
    assert index.min() >= 0 and index.max() <= n_in - 1
    assert np.abs(weight).max() <= ACT_ONE  # Keys' kernel never exceeds 1


@pytest.mark.parametrize("n", [1, 2, 3, 48, 1000])
def test_bicubic_identity(n: int) -> None:
    index, weight = bicubic_taps(n, n)
    assert (weight == [0, ACT_ONE, 0, 0]).all()
    assert (index[:, 1] == np.arange(n)).all()


# --- integer MLP ----------------------------------------------------------------------------


def random_layers(rng: np.random.Generator, widths: list[int], extreme: bool = False) -> list[IntLinear]:
    layers = []
    for a, b in itertools.pairwise(widths):
        we = int(rng.integers(0, 17))
        be = int(rng.integers(0, we + ACT_FRAC_BITS + 1))
        if extreme:
            w = rng.choice([-(WEIGHT_LIMIT - 1), WEIGHT_LIMIT - 1], size=(b, a))
            bias = rng.choice([-(WEIGHT_LIMIT - 1), WEIGHT_LIMIT - 1], size=b)
        else:
            w = rng.integers(-(WEIGHT_LIMIT - 1), WEIGHT_LIMIT, size=(b, a))
            bias = rng.integers(-(WEIGHT_LIMIT - 1), WEIGHT_LIMIT, size=b)
        layers.append(IntLinear(w.astype(np.int64), bias.astype(np.int64), we, be))
    return layers


def reference_mlp(x: np.ndarray, layers: list[IntLinear]) -> np.ndarray:
    """The same network in exact int64 arithmetic (shifts instead of float division)."""
    x = x.astype(np.int64)
    for i, layer in enumerate(layers):
        shift = ACT_FRAC_BITS + layer.weight_exp - layer.bias_exp
        acc = x @ layer.weight.T + (layer.bias << shift)
        x = acc >> layer.weight_exp  # arithmetic shift: floor division
        x = np.clip(x, 0 if i < len(layers) - 1 else -ACT_LIMIT, ACT_LIMIT)
    return x


CASES = [  # (seed, widths, extreme values)
    (0, [14, 16, 16, 2], False),
    (1, [7, 16, 16, 3], False),
    (2, [MAX_LAYER_WIDTH] * 5 + [3], False),
    (3, [MAX_LAYER_WIDTH] * 5 + [3], True),
    (4, [1, 1], True),
]


def inputs(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    x = rng.integers(-ACT_LIMIT, ACT_LIMIT + 1, size=(n, width))
    x[: n // 4] = ACT_LIMIT  # saturated rows: the largest sums the format allows
    return x


@pytest.mark.parametrize(("seed", "widths", "extreme"), CASES)
def test_int_mlp_is_exact(seed: int, widths: list[int], extreme: bool) -> None:
    rng = np.random.default_rng(seed)
    layers = random_layers(rng, widths, extreme)
    x = inputs(rng, 3000, widths[0])
    got = run_int_mlp(x.astype(np.float64), layers)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got.astype(np.int64), reference_mlp(x, layers))


@pytest.mark.parametrize(("seed", "widths", "extreme"), CASES)
def test_int_mlp_independent_of_summation_order(seed: int, widths: list[int], extreme: bool) -> None:
    """Thread counts: tests/test_roundtrip.py decodes in fresh processes with one and two BLAS threads."""
    rng = np.random.default_rng(seed)
    layers = random_layers(rng, widths, extreme)
    x = inputs(rng, 20000, widths[0]).astype(np.float64)
    one = run_int_mlp(x, layers)
    # Permuting the inputs (and the first layer's columns) reorders every sum of the first layer.
    perm = rng.permutation(widths[0])
    first = layers[0]
    shuffled = [IntLinear(first.weight[:, perm], first.bias, first.weight_exp, first.bias_exp), *layers[1:]]
    assert np.array_equal(run_int_mlp(np.ascontiguousarray(x[:, perm]), shuffled), one)
    # Row order and batch splits do not matter either (different BLAS blocking).
    rows = rng.permutation(x.shape[0])
    assert np.array_equal(run_int_mlp(x[rows], layers), one[rows])
    assert np.array_equal(np.concatenate([run_int_mlp(x[:7], layers), run_int_mlp(x[7:], layers)]), one)


def test_int_mlp_in_cache_sized_chunks_is_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """Columns run through the layers a chunk at a time (a ragged last one too): same integers."""
    from inrcodec.format import fixedpoint

    rng = np.random.default_rng(7)
    layers = random_layers(rng, [7, 16, 16, 3])
    x = inputs(rng, 3000, 7)
    whole = run_int_mlp(x.astype(np.float64), layers)
    monkeypatch.setattr(fixedpoint, "CACHE_COLUMNS", 256)
    chunked = run_int_mlp(x.astype(np.float64), layers)
    assert np.array_equal(chunked, whole)
    np.testing.assert_array_equal(chunked.astype(np.int64), reference_mlp(x, layers))


# --- exact sampling -------------------------------------------------------------------------


@pytest.mark.parametrize(("n_out", "n_in", "phased"), [(512, 256, True), (512, 8, True), (768, 12, True),
                                                       (48, 6, True), (10, 5, True), (64, 4, False),
                                                       (100, 51, False), (97, 48, False), (256, 256, False),
                                                       (13, 26, False)])
def test_polyphase_sampling_equals_the_taps(n_out: int, n_in: int, phased: bool) -> None:
    """Where the output is an integer multiple of the grid, the 5-tap phases give the taps' exact integers."""
    from inrcodec.format.sampling import AxisTaps, sample_exact

    rows, cols = AxisTaps(n_out, n_in), AxisTaps(n_out + n_out // 2, n_in + n_in // 2)
    assert (rows.phases is not None) == phased
    grid = np.random.default_rng(n_out + n_in).integers(-256, 256, (n_in, n_in + n_in // 2)).astype(np.float64)
    plain_rows, plain_cols = AxisTaps(n_out, n_in), AxisTaps(n_out + n_out // 2, n_in + n_in // 2)
    plain_rows.phases = plain_cols.phases = None
    for r0, r1 in [(0, n_out), (0, 1), (n_out - 1, n_out), (n_out // 3, n_out // 3 + 5), (1, n_out - 1)]:
        if r0 < r1:
            expected = sample_exact(grid, plain_rows, plain_cols, r0, r1)
            assert np.array_equal(sample_exact(grid, rows, cols, r0, r1), expected), (r0, r1)


# --- scale and mean tables ------------------------------------------------------------------


def test_scale_mantissas_exact() -> None:
    getcontext().prec = 60
    for r, mantissa in enumerate(SCALE_MANTISSAS):
        exact = Decimal(2) ** (Decimal(r) / 8) * Decimal(2) ** 32
        assert mantissa == int(exact.to_integral_value())


def test_scale_from_index_values_and_monotonic() -> None:
    ks = np.arange(SCALE_K_MIN, SCALE_K_MAX + 1)
    scales = scale_from_index(ks)
    assert scales.dtype == np.float64
    assert (np.diff(scales) > 0).all()
    for k, s in zip(ks, scales):
        octave, step = divmod(int(k), 8)
        assert s == SCALE_MANTISSAS[step] * 2.0 ** (octave - 32)  # exact, no pow() of the machine
        assert s == pytest.approx(2 ** (k / 8), rel=1e-9)
        if step == 0:
            assert s == 2.0**octave
    assert scale_from_index(np.int64(0)) == 1.0
    assert scale_from_index(np.int64(SCALE_K_MIN)) == 1 / 16


def test_nearest_scale_index_inverts_the_table() -> None:
    for k in range(SCALE_K_MIN, SCALE_K_MAX + 1):
        assert nearest_scale_index(float(scale_from_index(np.int64(k)))) == k
    assert nearest_scale_index(0.0) == SCALE_K_MIN
    assert nearest_scale_index(1e30) == SCALE_K_MAX


def test_quantize_mu_grid_and_clamp() -> None:
    q12 = np.array([0.0, 255.0, 256.0, -256.0, 4096.0 * 3.03, 1e9, -1e9])
    mu = quantize_mu(q12)
    assert (mu * 16 == np.round(mu * 16)).all()
    assert mu.tolist()[:4] == [0.0, 0.0625, 0.0625, -0.0625]  # round half up on the 1/16 grid
    assert mu[5] == LATENT_MAX and mu[6] == LATENT_MIN


def test_scale_index_from_log2_rounds_and_clamps() -> None:
    q12 = np.array([0.0, 255.0, 256.0, -4096.0, 1e9, -1e9])
    assert scale_index_from_log2(q12).tolist() == [0, 0, 1, -8, LATENT_SCALE_K_MAX, SCALE_K_MIN]


def test_laplace_indices_equal_quantize_mu_and_scale_index_from_log2() -> None:
    """The decoders' mapping of both outputs: row 0 is the mean, row 1 the scale index, edges and clamps included."""
    rng = np.random.default_rng(3)
    edges = [0.0, 127.0, 128.0, -128.0, -129.0, 255.0, 256.0, 511.5, 1e9, -1e9, 4096.0 * 300, -4096.0 * 300]
    outputs = np.concatenate([np.array([edges, edges]), np.floor(rng.normal(0, 3e5, (2, 5000)))], axis=1)
    mu, k = laplace_indices(outputs)
    assert mu.tolist() == quantize_mu(outputs[0]).tolist()
    assert k.dtype == np.int64
    assert k.tolist() == scale_index_from_log2(outputs[1]).tolist()
    assert mu.min() == LATENT_MIN and mu.max() == LATENT_MAX and k.min() == SCALE_K_MIN  # the clamps were reached
