"""``fqvit_export.ops.reference`` against an independent transcription of docs/ops.md Sec. 2-4.

The oracles below follow the document line by line, element by element: Python ints for every integer step (no
overflow, no dtype to get wrong) and numpy float32 scalars for the float steps (IEEE single arithmetic, one rounding
per operation, ``np.sqrt`` on float32 correctly rounded). Nothing is imported from the module under test except the
functions themselves; the constants ``B`` and ``Cp`` are the document's numbers. Each table holds the adversarial
cases of one op; every output element, the dtype and the shape are asserted. Two property checks tie the integer
formulations back to what they approximate (float LayerNorm, float64 softmax).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fqvit_export.ops import reference as R
from fqvit_export.ops import spec as S
from fqvit_export.testing import op_cases as O

L = 14
B_POLY = 63993
C_POLY = 1559991451
Z_MIN = (1 - (1 << L)) * (1 - (1 << L) + B_POLY) + C_POLY  # the polynomial's minimum on r in (-2^L, 0]
assert Z_MIN == 779996821
P_BITS = 30
V_SHIFT = 14
f32 = np.float32


def _t(a) -> torch.Tensor:
    return torch.from_numpy(np.array(a))


def _rne_clamp(v: np.float32, zp: int, lo: int = 0, hi: int = 255) -> int:
    """``clamp(round_half_even(v) + zp, lo, hi)`` for a float32 value (Python ``round`` is half to even)."""
    v = float(v)
    if math.isnan(v):
        raise AssertionError("NaN reached a quantizer")
    v = min(max(v, -1e12), 1e12)
    return min(max(round(v) + zp, lo), hi)


def assert_u8_exact(got: torch.Tensor, want: np.ndarray) -> None:
    assert got.dtype == torch.uint8
    g = got.numpy().astype(np.int64)
    assert g.shape == want.shape, (g.shape, want.shape)
    bad = np.argwhere(g != want)
    assert bad.size == 0, (f"{len(bad)} of {want.size} elements differ, first at {tuple(map(int, bad[0]))}: "
                           f"reference {g[tuple(bad[0])]} oracle {want[tuple(bad[0])]}")


# --- docs/ops.md Sec. 2: PTSLayerNorm --------------------------------------------------------------------------------

def ln_oracle(X: np.ndarray, x_scale: float, x_zp: int, alpha, gamma, beta, y_scale: float, y_zp: int,
              eps: float) -> np.ndarray:
    C = X.shape[-1]
    alpha = [int(a) for a in alpha]
    gamma = [f32(g) for g in np.asarray(gamma, np.float32)]
    beta = [f32(b) for b in np.asarray(beta, np.float32)]
    xs, ys = f32(x_scale), f32(y_scale)
    t1 = xs * xs                                   # step 3, in the document's order
    t2 = f32(C * C) * f32(eps)
    with np.errstate(all="ignore"):
        e = t2 / t1
    rows = X.reshape(-1, C)
    out = np.empty(rows.shape, dtype=np.int64)
    for r, row in enumerate(rows):
        x = [(int(q) - x_zp) * (1 << a) for q, a in zip(row, alpha)]   # step 1 (shift = * 2^alpha)
        assert all(abs(v) <= 2040 for v in x)
        S1 = sum(x)                                                      # step 2 (exact ints)
        S2 = sum(v * v for v in x)
        D = C * S2 - S1 * S1
        assert D >= 0
        den = np.sqrt(f32(float(D)) + e)                                 # step 4 (f32(D): D < 2^53, one rounding)
        assert den.dtype == np.float32
        for c in range(C):
            num = C * x[c] - S1
            assert abs(num) < 1 << 24                                    # exact in float32
            y = f32(num) / den if den > 0 else f32(0.0)                  # step 5 (den 0, or NaN from e = 0/0)
            v = (y * gamma[c]) + beta[c]                                 # step 6, two roundings
            assert v.dtype == np.float32
            out[r, c] = _rne_clamp(v / ys, y_zp)                         # step 7
    return out.reshape(X.shape)


def _ln_case(name, C, rows=3, *, X=None, zp=128, alpha="mixed", xs=0.02, ys=0.03, yzp=128, eps=1e-5,
             gamma=None, beta=None, seed=None, lead=None):
    rng = np.random.default_rng(seed if seed is not None else C * 31 + rows)
    if X is None:
        X = rng.integers(0, 256, (rows, C))
    X = np.asarray(X, dtype=np.uint8)
    if lead is not None:
        X = X.reshape(*lead, C)
    if isinstance(alpha, int):
        alpha = np.full(C, alpha)
    elif isinstance(alpha, str):
        alpha = rng.integers(0, 4, C)
    gamma = rng.uniform(-2, 2, C) if gamma is None else np.broadcast_to(gamma, (C,))
    beta = rng.uniform(-1, 1, C) if beta is None else np.broadcast_to(beta, (C,))
    return pytest.param(X, f32(xs), zp, np.asarray(alpha, np.uint8), np.asarray(gamma, np.float32),
                        np.asarray(beta, np.float32), f32(ys), yzp, eps, id=name)


def _ln_cases() -> list:
    rng = np.random.default_rng(2024)
    const = np.repeat(rng.integers(0, 256, (4, 1)), 9, axis=1)
    ext = np.where(rng.random((4, 16)) < 0.5, 0, 255)
    ext[0] = 0
    ext[1] = 255
    ext[2, 0] = 255  # one channel at the other extreme
    cases = [
        _ln_case("random_C8", 8, 5),
        _ln_case("C1", 1, 4),
        _ln_case("C1_eps0_constant", 1, 3, eps=0.0),
        _ln_case("C7", 7, 6),
        _ln_case("C1024", 1024, 3, alpha="mixed"),
        _ln_case("C4096_one_row", 4096, 1, alpha="mixed"),
        _ln_case("C4096_extremes_alpha3", 4096, 1, X=np.where(np.arange(4096) % 3 == 0, 255, 0)[None], zp=0,
                 alpha=3),
        _ln_case("C768_alpha0", 768, 2, alpha=0),
        _ln_case("lead_dims_2x3", 12, lead=(2, 3), rows=6),
        _ln_case("constant_rows_eps", 9, X=const, eps=1e-5, beta=np.linspace(-1, 1, 9)),
        _ln_case("constant_rows_eps0", 9, X=const, eps=0.0, beta=np.linspace(-1, 1, 9)),
        _ln_case("constant_rows_eps0_big_beta", 9, X=const, eps=0.0, beta=np.linspace(-9, 9, 9), yzp=0),
        _ln_case("zero_eps_random", 10, 4, eps=0.0),
        _ln_case("big_eps", 10, 4, eps=1.0),
        _ln_case("tiny_x_scale_big_e", 10, 4, xs=1e-6, eps=1e-5),
        _ln_case("x_scale_square_inexact", 10, 4, xs=0.1),
        _ln_case("extremes_zp0", 16, X=ext, zp=0, alpha="mixed"),
        _ln_case("extremes_zp255", 16, X=ext, zp=255, alpha="mixed"),
        _ln_case("extremes_zp0_alpha3", 16, X=ext, zp=0, alpha=3),
        _ln_case("extremes_zp255_alpha3", 16, X=ext, zp=255, alpha=3),
        _ln_case("saturate_y_zp0", 8, 4, yzp=0, ys=0.001, gamma=5.0),
        _ln_case("saturate_y_zp255", 8, 4, yzp=255, ys=0.001, gamma=-5.0),
        _ln_case("gamma_zero_beta_ties", 6, 3, gamma=0.0, ys=0.25, yzp=10,
                 beta=f32(0.25) * np.float32([0.5, 1.5, 2.5, -0.5, -1.5, 3])),
    ]
    for a in range(4):
        cases.append(_ln_case(f"alpha{a}", 24, 3, alpha=a))
    return cases


LN_CASES = _ln_cases()


@pytest.mark.parametrize("X, xs, zp, alpha, gamma, beta, ys, yzp, eps", LN_CASES)
def test_pts_layernorm(X, xs, zp, alpha, gamma, beta, ys, yzp, eps):
    got = R.pts_layernorm(_t(X), _t(xs), zp, _t(alpha), _t(gamma), _t(beta), _t(ys), yzp, eps)
    want = ln_oracle(X, xs, zp, alpha, gamma, beta, ys, yzp, eps)
    assert_u8_exact(got, want)


@pytest.mark.parametrize("eps", [1e-5, 0.0])
@pytest.mark.parametrize("code, alpha", [(77, 0), (77, 1), (0, 2), (255, 3), (30, "mixed")])
def test_pts_layernorm_constant_row_is_beta(eps, code, alpha):
    """A row constant after the shift (x_c equal for all c; with mixed alphas only x_c = 0, i.e. the code = zp)
    normalises to y = 0 (no NaN, even with epsilon = 0): the output is beta quantized."""
    C, zp = 11, 30
    a = np.arange(C, dtype=np.uint8) % 4 if alpha == "mixed" else np.full(C, alpha, np.uint8)
    beta = np.linspace(-2, 2, C).astype(np.float32)
    X = np.full((2, C), code, np.uint8)
    got = R.pts_layernorm(_t(X), _t(f32(0.05)), zp, _t(a), _t(np.ones(C, np.float32)), _t(beta), _t(f32(0.02)), 100,
                          eps)
    want = np.array([_rne_clamp(b / f32(0.02), 100) for b in beta])
    assert_u8_exact(got, np.broadcast_to(want, (2, C)).copy())


def _tie_gamma(y: np.float32, k2: float, ys: np.float32) -> np.float32 | None:
    """A float32 gamma with ``f32(y * gamma) / ys`` exactly ``k2`` (a .5 tie), or None."""
    g = f32(k2 * float(ys) / float(y))
    for _ in range(64):
        v = y * g
        if v / ys == f32(k2):
            return g
        g = np.nextafter(g, f32(np.inf) if (v / ys < k2) == (y > 0) else f32(-np.inf))
    return None


def test_pts_layernorm_den_rounding_is_visible():
    """Rows whose float32 ``torch.sqrt`` is not correctly rounded, with gammas that put ``v`` exactly on .5 ties
    (even and odd, channel pairs with equal ``x``): a ``den`` one ulp off flips an output code, so only a correctly
    rounded square root (docs/ops.md Sec. 2 step 4) passes."""
    rng = np.random.default_rng(17)
    C, xs, zp, ys, eps = 8, f32(0.03), 128, f32(2.0**-6), 1e-5
    alpha = np.array([0, 0, 1, 1, 2, 2, 3, 3], np.uint8)
    e = (f32(C * C) * f32(eps)) / (xs * xs)
    rows = 0
    for _ in range(4000):
        X = np.repeat(rng.integers(0, 256, C // 2), 2).astype(np.uint8)
        x = [(int(q) - zp) << int(a) for q, a in zip(X, alpha)]
        D = C * sum(v * v for v in x) - sum(x) ** 2
        arg = f32(float(D)) + e
        den = np.sqrt(arg)
        if torch.sqrt(torch.tensor(arg)).item() == float(den):
            continue
        gamma = np.ones(C, np.float32)
        for c in range(0, C, 2):
            y = f32(C * x[c] - sum(x)) / den
            if y == 0:
                break
            ge, go = _tie_gamma(y, 40.5, ys), _tie_gamma(y, 41.5, ys)
            if ge is None or go is None:
                break
            gamma[c], gamma[c + 1] = ge, go
        else:
            beta = np.zeros(C, np.float32)
            want = ln_oracle(X[None], xs, zp, alpha, gamma, beta, ys, 100, eps)
            # Sensitivity: the same row with den one ulp either way gives other codes.
            for off in (np.inf, -np.inf):
                d2 = np.nextafter(den, f32(off))
                alt = [_rne_clamp(((f32(C * x[c] - sum(x)) / d2) * gamma[c] + beta[c]) / ys, 100) for c in range(C)]
                assert alt != want[0].tolist()
            got = R.pts_layernorm(_t(X[None]), _t(xs), zp, _t(alpha), _t(gamma), _t(beta), _t(ys), 100, eps)
            assert_u8_exact(got, want)
            rows += 1
            if rows == 6:
                break
    assert rows == 6, "not enough rows where float32 torch.sqrt is off"


@pytest.mark.parametrize("C", [0, 4097, 8192])
def test_pts_layernorm_channel_limit(C):
    with pytest.raises(ValueError, match="channels"):
        R.pts_layernorm(torch.zeros(1, C, dtype=torch.uint8), torch.tensor(0.1), 0, torch.zeros(C, dtype=torch.uint8),
                        torch.ones(C), torch.zeros(C), torch.tensor(0.1), 0, 1e-5)


def test_pts_layernorm_is_layernorm():
    """alpha = 0, C = 768: within one output code of float64 LayerNorm + QuantizeLinear on random data."""
    rng = np.random.default_rng(5)
    C, rows = 768, 6
    X = rng.integers(0, 256, (rows, C)).astype(np.uint8)
    X[2] = np.clip(np.round(rng.standard_normal(C) * 20 + 128), 0, 255)
    xs, zp, ys, yzp, eps = f32(0.031), 121, f32(0.025), 128, 1e-5
    gamma = rng.uniform(0.5, 1.5, C).astype(np.float32)
    beta = rng.uniform(-0.5, 0.5, C).astype(np.float32)
    got = R.pts_layernorm(_t(X), _t(xs), zp, torch.zeros(C, dtype=torch.uint8), _t(gamma), _t(beta), _t(ys), yzp,
                          eps).numpy().astype(np.int64)
    x = (X.astype(np.float64) - zp) * float(xs)
    y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)
    want = np.clip(np.rint((y * gamma + beta) / float(ys)) + yzp, 0, 255)
    diff = np.abs(got - want)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.97


# --- docs/ops.md Sec. 3: LogIntSoftmax -------------------------------------------------------------------------------

def lis_row_oracle(x: list[int], masked: list[bool], M: int, bits: int) -> list[int]:
    Z = (1 << bits) - 1
    live = [j for j in range(len(x)) if not masked[j]]
    if not live:
        return [Z] * len(x)
    mx = max(x[j] for j in live)
    e = [0] * len(x)
    for j in live:
        t = (x[j] - mx) * M                       # step 1
        n = (-t) >> L                             # step 2
        r = t + (n << L)
        assert -(1 << L) < r <= 0
        z = r * (r + B_POLY) + C_POLY             # step 3
        assert Z_MIN <= z <= C_POLY < 1 << 31
        e[j] = z >> min(n, 62)                    # step 4
    S = sum(e)
    assert S >= C_POLY
    codes = []
    for j in range(len(x)):
        if masked[j]:
            codes.append(Z)
            continue
        p = (e[j] << P_BITS) // S                 # step 5
        assert 0 <= p <= 1 << P_BITS
        codes.append(sum(1 for k in range(Z) if p * p < 1 << (2 * P_BITS - 1 - 2 * k)))  # step 6
    return codes


def lis_oracle(X: np.ndarray, M: int, bits: int, mask: np.ndarray | None) -> np.ndarray:
    m = np.zeros(X.shape, bool) if mask is None else np.broadcast_to(mask, X.shape)
    N = X.shape[-1]
    xr, mr = X.reshape(-1, N).tolist(), m.reshape(-1, N).tolist()
    return np.array([lis_row_oracle(a, b, M, bits) for a, b in zip(xr, mr)], dtype=np.int64).reshape(X.shape)


def _multiplier(scale: float) -> int:
    """``M = round(s * 2^14 / ln 2)`` in float64 from the float32 scale (the exporter's formula)."""
    return round(float(f32(scale)) * (1 << L) / math.log(2.0))


def _swin_mask(nW: int, N: int, rng: np.random.Generator) -> np.ndarray:
    """[1, nW, 1, N, N]: tokens of different shifted-window regions do not attend to each other; window 0 has one
    region (no mask), the others 2-4 regions."""
    masks = []
    for w in range(nW):
        region = np.zeros(N, int) if w == 0 else rng.integers(0, 2 + w % 3, N)
        masks.append(region[:, None] != region[None, :])
    return np.stack(masks)[None, :, None]


def _lis_cases() -> list:
    rng = np.random.default_rng(77)
    M = _multiplier(0.06)
    one_hot = np.zeros((3, 20), np.uint8)
    one_hot[np.arange(3), [0, 7, 19]] = 255
    near_dominant = np.full((2, 10), 200, np.uint8)
    near_dominant[:, 3] = 212
    swin = rng.integers(60, 200, (2, 4, 2, 49, 49)).astype(np.uint8)
    full_mask = np.zeros((3, 1, 12), bool)
    full_mask[1] = True
    cases = [
        pytest.param(rng.integers(0, 256, (4, 16)).astype(np.uint8), M, 4, None, id="random_N16"),
        pytest.param(rng.integers(90, 220, (3, 197)).astype(np.uint8), M, 4, None, id="N197"),
        pytest.param(rng.integers(90, 220, (2, 3, 49)).astype(np.uint8), M, 4, None, id="N49"),
        pytest.param(np.full((1, 197), 17, np.uint8), M, 4, None, id="uniform_N197"),
        pytest.param(np.full((2, 49), 255, np.uint8), M, 4, None, id="uniform_N49"),
        pytest.param(np.full((1, 1), 3, np.uint8), M, 4, None, id="N1"),
        pytest.param(one_hot, M, 4, None, id="one_dominant"),
        pytest.param(near_dominant, M, 4, None, id="near_dominant"),
        pytest.param(rng.integers(0, 256, (3, 16)).astype(np.uint8), 0, 4, None, id="multiplier0_uniform"),
        pytest.param(rng.integers(0, 256, (3, 16)).astype(np.uint8), 1, 4, None, id="multiplier1"),
        pytest.param(rng.integers(250, 256, (3, 16)).astype(np.uint8), R.MAX_LIS_MULTIPLIER, 4, None,
                     id="multiplier_max"),
        pytest.param(rng.integers(0, 256, (3, 16)).astype(np.uint8), 123456, 4, None, id="multiplier_large"),
        pytest.param(rng.integers(100, 140, (4, 40)).astype(np.uint8), M // 8, 4, None, id="near_uniform_small_M"),
        pytest.param(rng.integers(0, 256, (4, 40)).astype(np.uint8), M, 2, None, id="saturated_codes_bits2"),
        pytest.param(swin, M, 4, _swin_mask(4, 49, rng), id="swin_mask_1xnWx1xNxN"),
        pytest.param(rng.integers(0, 256, (3, 4, 12)).astype(np.uint8), M, 4, full_mask, id="fully_masked_row"),
        pytest.param(rng.integers(0, 256, (2, 9)).astype(np.uint8), M, 4, np.zeros((1, 1), bool), id="no_mask_1x1"),
        pytest.param(np.full((2, 8), 9, np.uint8), M, 4, np.eye(8, dtype=bool)[:2], id="mask_uniform_rest"),
    ]
    for bits in (1, 2, 3, 4):
        cases.append(pytest.param(rng.integers(0, 256, (3, 33)).astype(np.uint8), M, bits, None, id=f"bits{bits}"))
        cases.append(pytest.param(np.full((1, 5), 0, np.uint8), M, bits, None, id=f"uniform5_bits{bits}"))
    return cases


LIS_CASES = _lis_cases()


@pytest.mark.parametrize("X, M, bits, mask", LIS_CASES)
def test_log_int_softmax(X, M, bits, mask):
    got = R.log_int_softmax(_t(X), M, bits, None if mask is None else _t(mask))
    assert_u8_exact(got, lis_oracle(X, M, bits, mask))


def _round_log2_code(N: int, bits: int) -> int:
    """Uniform row: p = 1/N, code = round(log2 N) with the tie at log2 N = k + 1/2, capped at Z."""
    Z = (1 << bits) - 1
    return min(Z, max(0, math.ceil(math.log2(N) - 0.5)))


@pytest.mark.parametrize("N", [1, 2, 3, 5, 6, 11, 12, 22, 23, 45, 46, 49, 90, 91, 181, 182, 197, 1000, 40000])
@pytest.mark.parametrize("bits", [2, 4])
def test_lis_uniform_row_is_round_log2_n(N, bits):
    X = np.full((1, N), 131, np.uint8)
    got = R.log_int_softmax(_t(X), _multiplier(0.08), bits).numpy()
    assert np.all(got == _round_log2_code(N, bits)), (N, set(got.ravel().tolist()))


def test_lis_fully_masked_and_dominant():
    X = np.array([[255] + [0] * 15, [3] * 16], np.uint8)
    mask = np.zeros((2, 16), bool)
    mask[1] = True
    got = R.log_int_softmax(_t(X), _multiplier(0.1), 4, _t(mask)).numpy()
    assert got[0, 0] == 0 and np.all(got[0, 1:] == 15)
    assert np.all(got[1] == 15)


@pytest.mark.parametrize("alpha, eps, match", [(4, 1e-5, "alpha values must be in 0..3"), (255, 1e-5, "alpha"),
                                               (-1, 1e-5, "alpha"), (3, -1e-5, "epsilon"),
                                               (0, float("inf"), "epsilon"), (0, float("nan"), "epsilon"),
                                               (0, 1e39, "epsilon")])  # finite in float64, inf in float32
def test_pts_layernorm_rejects_what_the_kernels_reject(alpha, eps, match):
    # custom_ops' pts_layernorm_check refuses the same values: the reference never defines an output they lack.
    alphas = torch.zeros(8, dtype=torch.int32)
    alphas[5] = alpha
    with pytest.raises(ValueError, match=match):
        R.pts_layernorm(torch.zeros(2, 8, dtype=torch.uint8), torch.tensor(0.1), 0, alphas, torch.ones(8),
                        torch.zeros(8), torch.tensor(0.1), 0, eps)


@pytest.mark.parametrize("multiplier", [-1, R.MAX_LIS_MULTIPLIER + 1])
def test_lis_multiplier_out_of_range(multiplier):
    with pytest.raises(ValueError, match="multiplier must be in 0..2147483647"):
        R.log_int_softmax(torch.zeros(1, 4, dtype=torch.uint8), multiplier)


@pytest.mark.parametrize("bits", [0, 5, -1])
def test_lis_bits_out_of_range(bits):
    X = torch.zeros(1, 4, dtype=torch.uint8)
    with pytest.raises(ValueError):
        R.log_int_softmax(X, 100, bits)
    with pytest.raises(ValueError):
        R.lis_matmul(X, torch.zeros(4, 2, dtype=torch.uint8), torch.tensor(0.1), 0, torch.tensor(0.1), 0, bits)


def test_lis_constants_match_document():
    a, b, c = 0.35815147, 0.96963238, 1.0
    u = math.log(2.0) / (1 << L)
    assert math.floor(b / (a * u)) == B_POLY == R.LIS_POLY_B
    assert math.floor(c / (a * u * u)) == C_POLY == R.LIS_POLY_C
    assert R.LIS_FRAC_BITS == L and R.LIS_NORM_BITS == P_BITS and R.LIS_VALUE_SHIFT == V_SHIFT
    for s in (0.01, 0.0637, 0.2, 1.3):
        assert R.lis_multiplier(f32(s)) == _multiplier(s)


def test_lis_agrees_with_float_softmax():
    """4-bit codes are round(-log2 softmax) (capped at 15) on >= 99% of elements; the misses are off by one."""
    rng = np.random.default_rng(3)
    s = f32(0.0625)
    M = _multiplier(s)
    X = np.clip(np.round(rng.standard_normal((64, 197)) * 18 + 140), 0, 255).astype(np.uint8)
    got = R.log_int_softmax(_t(X), M, 4).numpy().astype(np.int64)
    logits = X.astype(np.float64) * (M * math.log(2.0) / (1 << L))  # the temperature the op realises
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    with np.errstate(divide="ignore"):
        want = np.minimum(15, np.floor(-np.log2(p) + 0.5)).astype(np.int64)
    agree = (got == want).mean()
    assert agree >= 0.99, agree
    assert np.abs(got - want).max() <= 1


# --- docs/ops.md Sec. 4: LISMatMul -----------------------------------------------------------------------------------

def lism_oracle(A: np.ndarray, V: np.ndarray, v_scale, v_zp: int, y_scale, y_zp: int, bits: int,
                check_bound: bool = False) -> np.ndarray:
    Z = (1 << bits) - 1
    lead = A.shape[:-2]
    Mr, N = A.shape[-2:]
    D = V.shape[-1]
    A2, V2 = A.reshape(-1, Mr, N).tolist(), V.reshape(-1, N, D).astype(np.int64).tolist()
    vs, ys = f32(v_scale), f32(y_scale)
    two_m14 = f32(2.0 ** -V_SHIFT)
    out = np.empty((len(A2), Mr, D), np.int64)
    for b in range(len(A2)):
        for m in range(Mr):
            w = [(1 << (V_SHIFT - k)) if k < Z else 0 for k in A2[b][m]]     # step 1
            for d in range(D):
                acc = sum(w[n] * (V2[b][n][d] - v_zp) for n in range(N))      # step 2, exact
                if check_bound:
                    assert abs(acc) < 1 << 23
                t = f32(float(acc)) * vs                                        # step 3
                t = t * two_m14
                out[b, m, d] = _rne_clamp(t / ys, y_zp)
    return out.reshape(*lead, Mr, D)


def _lism_cases() -> list:
    rng = np.random.default_rng(8)
    M = _multiplier(0.05)
    logits = rng.integers(80, 230, (2, 6, 197)).astype(np.uint8)
    codes197 = R.log_int_softmax(_t(logits), M, 4).numpy()
    codes49 = R.log_int_softmax(_t(rng.integers(0, 256, (2, 3, 49, 49)).astype(np.uint8)), M, 4).numpy()
    uniform = R.log_int_softmax(_t(np.full((1, 3, 64), 5, np.uint8)), M, 4).numpy()
    return [
        pytest.param(codes197, rng.integers(0, 256, (2, 197, 16)), 0.04, 128, 0.05, 120, 4, True, id="lis_N197"),
        pytest.param(codes49, rng.integers(0, 256, (2, 3, 49, 8)), 0.02, 3, 0.01, 0, 4, True, id="lis_N49_batched"),
        pytest.param(uniform, np.full((1, 64, 5), 255), 0.1, 0, 0.1, 0, 4, True, id="lis_uniform_v_max"),
        pytest.param(codes197, np.zeros((2, 197, 4)), 0.04, 255, 0.05, 255, 4, True, id="lis_v_min_zp255"),
        pytest.param(np.zeros((3, 4096), np.uint8), rng.integers(0, 256, (4096, 6)), 0.03, 0, 0.7, 2, 4, False,
                     id="all_code0_N4096"),
        pytest.param(np.zeros((2, 4096), np.uint8), np.full((4096, 3), 255), 0.003, 0, 200.0, 0, 4, False,
                     id="all_code0_N4096_v255_acc_2^34"),
        pytest.param(np.zeros((2, 2048), np.uint8), np.zeros((2048, 3)), 0.003, 255, 20.0, 255, 4, False,
                     id="all_code0_negative_acc"),
        pytest.param(np.full((2, 50), 15, np.uint8), rng.integers(0, 256, (50, 4)), 0.1, 7, 0.1, 99, 4, False,
                     id="all_zero_codes_give_y_zp"),
        pytest.param(rng.integers(0, 16, (5, 30)).astype(np.uint8), rng.integers(0, 256, (30, 7)), 0.07, 100, 0.002,
                     128, 4, False, id="arbitrary_codes_saturating"),
        pytest.param(rng.integers(0, 8, (4, 10)).astype(np.uint8), rng.integers(0, 256, (10, 1)), 0.5, 0, 0.03, 0, 3,
                     False, id="bits3_D1"),
        pytest.param(rng.integers(0, 4, (2, 1, 5)).astype(np.uint8), rng.integers(0, 256, (2, 5, 3)), 0.25, 9, 0.125,
                     4, 2, False, id="bits2"),
        pytest.param(rng.integers(0, 2, (3, 12)).astype(np.uint8), rng.integers(0, 256, (12, 2)), 0.02, 50, 0.5, 1, 1,
                     False, id="bits1"),
        pytest.param(np.zeros((1, 1), np.uint8), np.full((1, 1), 200), 0.5, 0, 0.25, 0, 4, False, id="M1_N1_D1"),
        pytest.param(*_cancelling(), 1.0, 128, 2.0**-14, 0, 4, False, id="cancelling_partial_sums_2^32"),
    ]


def _cancelling() -> tuple[np.ndarray, np.ndarray]:
    """Arbitrary codes whose partial sums reach ~2^32 and cancel, with weight-1 terms in between: exact integer
    accumulation gives acc = 96 (output code 96); a float32 accumulator loses the small terms."""
    N = 4096
    codes = np.zeros((1, N), np.uint8)
    V = np.empty((N, 1), np.uint8)
    V[: N // 2] = 255  # +127 * 2^14 each (zp 128)
    V[N // 2:] = 1     # -127 * 2^14 each
    small = np.arange(5, N // 2, 21)[:96]
    codes[0, small] = 14  # weight 2^0
    V[small] = 129        # +1 each
    V[N // 2: N // 2 + 96] = 1  # keep the big terms balanced: 96 of the negatives removed below
    codes[0, N // 2: N // 2 + 96] = 15  # zero code: those negatives drop out, as the positives turned small
    return codes, V


@pytest.mark.parametrize("A, V, vs, vzp, ys, yzp, bits, from_lis", _lism_cases())
def test_lis_matmul(A, V, vs, vzp, ys, yzp, bits, from_lis):
    A = np.asarray(A, np.uint8)
    V = np.asarray(V, np.uint8)
    got = R.lis_matmul(_t(A), _t(V), _t(f32(vs)), vzp, _t(f32(ys)), yzp, bits)
    assert_u8_exact(got, lism_oracle(A, V, vs, vzp, ys, yzp, bits, check_bound=from_lis))


def test_lis_matmul_zero_codes_contribute_nothing():
    """Changing V where the code is the zero code (and V's zero point where the code is not) changes nothing."""
    rng = np.random.default_rng(4)
    A = rng.integers(0, 16, (6, 40)).astype(np.uint8)
    A[:, ::3] = 15
    V = rng.integers(0, 256, (40, 5)).astype(np.uint8)
    args = (_t(f32(0.05)), 77, _t(f32(0.02)), 128, 4)
    base = R.lis_matmul(_t(A), _t(V), *args).numpy()
    V2 = V.copy()
    cols = np.where((A == 15).all(axis=0))[0]
    assert cols.size > 0
    V2[cols] = rng.integers(0, 256, (cols.size, 5))
    assert np.array_equal(R.lis_matmul(_t(A), _t(V2), *args).numpy(), base)
    # A row of only zero codes gives acc = 0 -> exactly the output zero point.
    A[2] = 15
    assert np.all(R.lis_matmul(_t(A), _t(V), *args).numpy()[2] == 128)


def test_lis_codes_bound_the_accumulator():
    """For LogIntSoftmax codes, sum_n 2^(14 - k_n) <= sqrt(2) * 2^14 (each 2^-k <= sqrt(2) p), so |acc| < 2^23."""
    rng = np.random.default_rng(12)
    for N, M in ((197, _multiplier(0.05)), (49, _multiplier(0.2)), (7, 1), (300, 0)):
        codes = R.log_int_softmax(_t(rng.integers(0, 256, (32, N)).astype(np.uint8)), M, 4).numpy().tolist()
        for row in codes:
            w = sum(1 << (14 - k) for k in row if k < 15)
            assert w * w <= 2 * (1 << 28)
            assert w * 255 < 1 << 23


# --- the shared case tables (fqvit_export.testing.op_cases): the reference against these oracles ----------------------

def _oracle_cases() -> list:
    """The small cases of the shared tables (the oracles are plain Python loops): at most 2048 outputs, and for
    LISMatMul at most 2^15 multiply-adds."""
    out = []
    for op in ("PTSLayerNorm", "LogIntSoftmax", "LISMatMul"):
        for name in O.params(op):
            c = O.build(op, name)
            size = int(np.prod(O.out_shape(op, c)))
            work = size * (c.inputs["A"].shape[-1] if op == "LISMatMul" else 1)
            if size <= 2048 and work <= 1 << 15:
                out.append(pytest.param(op, name, id=f"{op}-{name}"))
    return out


@pytest.mark.parametrize("op, name", _oracle_cases())
def test_shared_case_against_oracle(op: str, name: str) -> None:
    c = O.build(op, name)
    i, a = c.inputs, c.attrs
    got = torch.from_numpy(O.reference(op, c))
    if op == "PTSLayerNorm":
        want = ln_oracle(i["X"], f32(i["x_scale"]), int(i["x_zero_point"]), i["alpha"], i["gamma"], i["beta"],
                         f32(i["y_scale"]), int(i["y_zero_point"]), a["epsilon"])
    elif op == "LogIntSoftmax":
        want = lis_oracle(i["X"], a["multiplier"], a["bits"], i.get("mask"))
    else:
        want = lism_oracle(i["A"], i["V"], i["v_scale"], int(i["v_zero_point"]), i["y_scale"], int(i["y_zero_point"]),
                           a["bits"])
    assert_u8_exact(got, want)


# --- code types: the int8 form of every case is the uint8 one shifted by 128 (docs/ops.md Sec. 1, code types) -------

@pytest.mark.parametrize("op, name", [(op, name) for op in O.CASES for name in O.params(op)])
def test_int8_codes_same_integers(op: str, name: str) -> None:
    u8 = O.build(op, name)
    want = O.reference(op, u8)
    got = O.reference(op, O.as_code_type(op, u8, "int8"))
    if S.OPS[op].outputs[0].dtype == "T":
        assert got.dtype == np.int8
        want = (want.astype(np.int16) - 128).astype(np.int8)
    assert got.dtype == want.dtype and np.array_equal(got, want)


def test_code_type_follows_zero_point() -> None:
    acc = torch.tensor([[-1000, 0, 1000]], dtype=torch.int32)
    one, zero = torch.ones(1), torch.zeros(1)
    u8 = R.requantize(acc, one, zero, torch.tensor(1.0), 0)
    i8 = R.requantize(acc, one, zero, torch.tensor(1.0), torch.tensor(-128, dtype=torch.int8))
    assert u8.dtype == torch.uint8 and u8.tolist() == [[0, 0, 255]]
    assert i8.dtype == torch.int8 and i8.tolist() == [[-128, -128, 127]]
    with pytest.raises(ValueError, match="outside the torch.uint8 code range"):
        R.requantize(acc, one, zero, torch.tensor(1.0), -1)
    table = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    t8 = R.int8_table(table)
    x = torch.tensor([-128, -1, 0, 127], dtype=torch.int8)
    assert R.lookup(x, t8).tolist() == [-128, -1, 0, 127]  # identity stays identity in the other code type
