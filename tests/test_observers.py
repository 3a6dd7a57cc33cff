"""Observers (FQ-ViT Sec. 4.1 calibrators) and ``QuantPoint`` against hand-written loops of the module rules.

MinMax and EMA are replayed in numpy float32 (``m += f32(0.01) * (cur - m)``, one rounding per operation, as the
float32 tensors of FQ-ViT's code do); Percentile against ``np.quantile`` (linear interpolation, correctly rounded)
and an exact rational interpolation; OMSE against a brute force over its 90 candidates with the float32
ONNX fake-quantizer written in numpy. ``QuantPoint`` is calibrated end to end and checked against the same oracles.
"""
from __future__ import annotations

import math
import pickle
import time
from fractions import Fraction

import numpy as np
import pytest
import torch

from fqvit_export.quant import observers as O
from fqvit_export.quant.point import QuantConfig, QuantPoint

from test_primitives import np_dequantize, np_quantize, oracle_act_qparams, oracle_select_alpha

Q_HI = 0.99999
Q_LO = 1.0 - 0.99999  # as FQ-ViT writes it: 1.0 - percentile (not the literal 1e-5)


def _t(a) -> torch.Tensor:
    return torch.from_numpy(np.array(a))


def _f32(v) -> np.float32:
    return np.float32(float(v))


def _same_f32(a, b) -> bool:
    return np.float32(a).view(np.int32) == np.float32(b).view(np.int32)


def _ulps(a, b) -> int:
    """Distance in float32 steps (monotone integer map of the bit patterns)."""
    def key(v):
        i = int(np.float32(v).view(np.int32))
        return i if i >= 0 else -(i & 0x7FFFFFFF)
    return abs(key(a) - key(b))


def _batches(seed: int, shapes=((4, 9, 8), (4, 9, 8), (4, 9, 8)), scales=(1.0, 2.5, 0.7)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(s) * k + 0.3 * i).astype(np.float32) for i, (s, k) in enumerate(zip(shapes, scales))]


# --- MinMax / EMA ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("batches", [
    pytest.param(_batches(0), id="three_normal"),
    pytest.param([np.float32([[5.0]]), np.float32([[-2.0, 7.0]]), np.float32([[1.0]])], id="tiny_batches"),
    pytest.param([np.full((3, 3), 2.0, np.float32)] * 3, id="constant"),
    pytest.param([np.float32([1.0, 2.0]), np.float32([-1e30, 1e30]), np.float32([0.0])], id="extremes"),
])
def test_minmax_running(batches):
    ob = O.MinMaxObserver()
    lo, hi = np.inf, -np.inf
    for i, b in enumerate(batches):
        ob.update(_t(b))
        lo, hi = min(lo, b.min()), max(hi, b.max())
        assert _same_f32(ob.min_val.item(), lo) and _same_f32(ob.max_val.item(), hi)
        assert int(ob.batches) == i + 1
    r_lo, r_hi = ob.range(_t(batches[-1]), 8)
    assert _same_f32(r_lo.item(), lo) and _same_f32(r_hi.item(), hi)
    sd = ob.state_dict()
    assert {"min_val", "max_val", "batches"} <= set(sd)


def _ema_loop(values: list[np.float32]) -> np.float32:
    m = None
    for v in values:
        m = np.float32(v) if m is None else np.float32(m + np.float32(np.float32(0.01) * np.float32(v - m)))
    return m


@pytest.mark.parametrize("n_batches", [1, 2, 3, 17])
def test_ema_hand_loop(n_batches):
    rng = np.random.default_rng(n_batches)
    batches = [(rng.standard_normal((5, 13)) * (1 + i % 4) - i * 0.1).astype(np.float32) for i in range(n_batches)]
    ob = O.EmaObserver()
    for b in batches:
        ob.update(_t(b))
    want_lo = _ema_loop([b.min() for b in batches])
    want_hi = _ema_loop([b.max() for b in batches])
    assert _same_f32(ob.min_val.item(), want_lo) and _same_f32(ob.max_val.item(), want_hi)
    if n_batches > 1:  # not a running min/max: the EMA is strictly inside the extremes here
        assert ob.max_val.item() < max(b.max() for b in batches)


# --- Percentile ------------------------------------------------------------------------------------------------------

def exact_quantile(sorted_vals: np.ndarray, q: float) -> np.float32:
    """Linear interpolation at position ``(n - 1) q`` with exact rationals, rounded once to float32."""
    n = sorted_vals.size
    pos = Fraction(n - 1) * Fraction(q)
    lo, hi = math.floor(pos), math.ceil(pos)
    a, b = Fraction(float(sorted_vals[lo])), Fraction(float(sorted_vals[hi]))
    return np.float32(float(a + (b - a) * (pos - lo)))


# n = 1 and n = 100001 make (n - 1) * 0.99999 an integer; every other n here leaves it fractional.
PERCENTILE_SIZES = [1, 2, 3, 7, 50, 101, 257, 1000, 4097, 100001]


@pytest.mark.parametrize("n", PERCENTILE_SIZES)
@pytest.mark.parametrize("dist", ["normal", "heavy_tail", "duplicates"])
def test_percentile_single_batch(n, dist):
    rng = np.random.default_rng(n)
    if dist == "normal":
        x = rng.standard_normal(n)
    elif dist == "heavy_tail":
        x = rng.standard_t(1.5, n) * 3
    else:
        x = rng.integers(-4, 5, n).astype(np.float64) * 0.25
    x = x.astype(np.float32).reshape(-1, 1) if n % 2 else x.astype(np.float32)
    ob = O.PercentileObserver()
    ob.update(_t(x))
    s = np.sort(x.reshape(-1))
    for got, q in ((ob.min_val.item(), Q_LO), (ob.max_val.item(), Q_HI)):
        want = exact_quantile(s, q)
        npq = np.quantile(x.reshape(-1), q)  # numpy's linear method: correctly rounded here
        assert _ulps(npq, want) == 0
        pos = (n - 1) * q
        v_lo, v_hi = float(s[math.floor(pos)]), float(s[math.ceil(pos)])
        # Three float32 roundings, v_lo + (v_hi - v_lo) * frac: one step of the result plus two of the gap.
        tol = float(np.spacing(np.float32(abs(want)))) + 2 * float(np.spacing(np.float32(abs(v_hi - v_lo))))
        assert abs(got - float(want)) <= tol, (got, want)
        if pos == math.floor(pos) or s[math.floor(pos)] == s[math.ceil(pos)]:
            assert _same_f32(got, want)  # no interpolation: exact
        if n <= 16_000_000:
            # torch.quantile computes the rank in float32 (q * (n - 1)); it agrees up to that rank error.
            tq = torch.quantile(_t(x).reshape(-1), q).item()
            lo_i = max(math.floor(pos) - 1, 0)
            gap = float(s[min(math.ceil(pos) + 1, n - 1)] - s[lo_i])
            assert abs(tq - got) <= gap * n * 2.0**-22 + 4 * abs(np.spacing(np.float32(got)))


def test_percentile_ema_across_batches():
    """Batches whose two extreme values on each side tie: the per-batch quantile is exact, so the EMA is too."""
    rng = np.random.default_rng(11)
    batches, lows, highs = [], [], []
    for i in range(4):
        x = rng.uniform(-1, 1, 300).astype(np.float32)
        lo, hi = np.float32(-2.0 - i * 0.37), np.float32(3.0 + i * 0.11)
        x[[3, 77]] = lo
        x[[10, 200]] = hi
        batches.append(x.reshape(3, 100))
        lows.append(lo)
        highs.append(hi)
    ob = O.PercentileObserver()
    for i, b in enumerate(batches):
        ob.update(_t(b))
        assert _same_f32(ob.min_val.item(), _ema_loop(lows[: i + 1]))
        assert _same_f32(ob.max_val.item(), _ema_loop(highs[: i + 1]))


def test_percentile_over_16m_elements():
    """torch.quantile refuses tensors above 2^24 elements; the observer must not (FQ-ViT falls back to numpy)."""
    n = (1 << 24) + 4099
    x = torch.randn(n, generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    ob = O.PercentileObserver()
    ob.update(x)
    elapsed = time.perf_counter() - t0
    xn = x.numpy()
    for got, q in ((ob.min_val.item(), Q_LO), (ob.max_val.item(), Q_HI)):
        pos = (n - 1) * q
        ks = sorted({math.floor(pos), math.ceil(pos)})
        part = np.partition(xn, ks)
        s = np.zeros(n, dtype=np.float32)  # only the two order statistics are read
        s[ks] = part[ks]
        assert _ulps(got, exact_quantile(s, q)) <= 1
    assert elapsed < 5.0, f"percentile update of {n} elements took {elapsed:.1f} s: mark this test slow"


# --- OMSE ------------------------------------------------------------------------------------------------------------

def omse_oracle(mn: np.float32, mx: np.float32, last: np.ndarray, bits: int) -> tuple[int, np.float32, np.float32]:
    """Brute force over ``i = 0..89``: candidates ``f32(min) * f32(1 - 0.01 i)`` (float32 tensor times a Python
    float, as in FQ-ViT), error ``sum (fq(x) - x)^2`` on the last batch; the first smallest wins."""
    qmax = (1 << bits) - 1
    x = last.astype(np.float32)
    best = (math.inf, -1, None, None)
    for i in range(90):
        f = np.float32(1.0 - 0.01 * i)
        lo, hi = np.float32(mn * f), np.float32(mx * f)
        s, zp = oracle_act_qparams(lo, hi, bits)
        dq = np_dequantize(np_quantize(x, s, zp, 0, qmax), s, zp)
        err = float(((dq.astype(np.float64) - x.astype(np.float64)) ** 2).sum())
        if err < best[0]:
            best = (err, i, lo, hi)
    return best[1], best[2], best[3]


def _omse_cases() -> list:
    rng = np.random.default_rng(21)
    outlier = [rng.standard_normal((8, 16)).astype(np.float32) for _ in range(3)]
    outlier[0][0, 0] = 40.0  # one far outlier: OMSE must shrink the range
    uniform = [rng.uniform(-1, 1, (8, 16)).astype(np.float32) for _ in range(3)]
    wide_then_narrow = [rng.standard_normal((8, 16)).astype(np.float32) * 10,
                        rng.standard_normal((8, 16)).astype(np.float32) * 10,
                        rng.standard_normal((8, 16)).astype(np.float32) * 0.5]
    positive = [np.abs(rng.standard_normal((4, 32))).astype(np.float32) + 0.5 for _ in range(3)]
    const = [np.full((2, 5), 1.5, np.float32)] * 3
    # Last batch all zeros: zero is exact on every candidate grid, so all 90 errors are 0 -> the first (i = 0) wins.
    zeros_last = [rng.uniform(-1, 1, (4, 8)).astype(np.float32), rng.uniform(-2, 0.5, (4, 8)).astype(np.float32),
                  np.zeros((4, 8), np.float32)]
    return [
        pytest.param(outlier, 8, True, id="outlier_shrinks"),
        pytest.param(outlier, 4, True, id="outlier_bits4"),
        pytest.param(uniform, 8, None, id="uniform"),
        pytest.param(uniform, 2, None, id="uniform_bits2"),
        pytest.param(wide_then_narrow, 8, True, id="last_batch_decides"),
        pytest.param(positive, 8, None, id="positive_only"),
        pytest.param(const, 8, False, id="constant_no_shrink"),
        pytest.param(zeros_last, 8, False, id="zero_last_batch_all_tie_first_wins"),
    ]


@pytest.mark.parametrize("batches, bits, shrinks", _omse_cases())
def test_omse_brute_force(batches, bits, shrinks):
    ob = O.OmseObserver()
    for b in batches:
        ob.update(_t(b))
    mn = np.float32(min(b.min() for b in batches))
    mx = np.float32(max(b.max() for b in batches))
    assert _same_f32(ob.min_val.item(), mn) and _same_f32(ob.max_val.item(), mx)  # MinMax statistics
    lo, hi = ob.range(_t(batches[-1]), bits)
    i, want_lo, want_hi = omse_oracle(mn, mx, batches[-1], bits)
    assert _same_f32(lo.item(), want_lo) and _same_f32(hi.item(), want_hi), (i, lo.item(), want_lo)
    if shrinks is not None:
        assert (i > 0) == shrinks
    if shrinks is False:
        assert i == 0


# --- registry --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, cls", [("minmax", O.MinMaxObserver), ("ema", O.EmaObserver),
                                       ("percentile", O.PercentileObserver), ("omse", O.OmseObserver)])
def test_build_observer(name, cls):
    ob = O.build_observer(name)
    assert type(ob) is cls
    assert O.build_observer(name) is not ob  # a fresh observer each time


@pytest.mark.parametrize("name", ["MinMax", "kl", "", "min max"])
def test_build_observer_unknown(name):
    with pytest.raises(ValueError) as err:
        O.build_observer(name)
    msg = str(err.value)
    assert repr(name) in msg
    for choice in ("minmax", "ema", "percentile", "omse"):
        assert choice in msg


# --- QuantPoint end to end -------------------------------------------------------------------------------------------

def _point_batches(seed: int, C: int = 12) -> list[np.ndarray]:
    """LayerNorm-input-like activations: channels of very different widths, three batches of different range."""
    rng = np.random.default_rng(seed)
    widths = np.exp(rng.uniform(-3, 1.5, C)).astype(np.float32)
    return [(rng.standard_normal((2, 10, C)) * widths * k + off).astype(np.float32)
            for k, off in ((1.0, 0.1), (1.6, -0.2), (0.8, 0.05))]


POINT_CASES = [pytest.param(m, False, 8, id=m) for m in ("minmax", "ema", "percentile", "omse")] + [
    pytest.param("minmax", True, 8, id="pts_minmax"),
    pytest.param("ema", True, 8, id="pts_ema_uses_global_minmax"),
    pytest.param("omse", True, 8, id="pts_omse_uses_global_minmax"),
    pytest.param("minmax", False, 4, id="minmax_bits4"),
    pytest.param("minmax", True, 6, id="pts_bits6"),
]


@pytest.mark.parametrize("method, pts, bits", POINT_CASES)
def test_quant_point_end_to_end(method, pts, bits):
    batches = _point_batches(len(method) + bits + pts)
    qmax = (1 << bits) - 1
    point = QuantPoint(bits, method, pts=pts)
    with pytest.raises(RuntimeError):
        point.quantize(_t(batches[0]))
    for i, b in enumerate(batches):
        point.observe(_t(b), last=i == len(batches) - 1)
        assert point.calibrated == (i == len(batches) - 1)
    C = batches[0].shape[-1]

    # Parameters against the independent oracles.
    if pts:  # global min/max over all batches whatever the calibrator (docs/ops.md Sec. 2)
        mn = min(b.min() for b in batches)
        mx = max(b.max() for b in batches)
        wide, zp = oracle_act_qparams(mn, mx, bits)
        s = np.float32(float(wide) / 8)
        alpha = oracle_select_alpha(batches[-1], s, zp, bits, 3)
        assert point.alpha.dtype == torch.uint8 and point.alpha.tolist() == alpha.tolist()
        assert len(set(alpha.tolist())) > 1, "channels of different widths should get different alphas"
        ch_scale = np.ldexp(s, alpha).astype(np.float32)
        ch_zp = np.full(C, zp, dtype=np.int64)
    else:
        mn, mx = point.observer.min_val.item(), point.observer.max_val.item()
        if method == "omse":
            _, mn, mx = omse_oracle(np.float32(mn), np.float32(mx), batches[-1], bits)
        elif method == "minmax":
            assert _same_f32(mn, min(b.min() for b in batches)) and _same_f32(mx, max(b.max() for b in batches))
        s, zp = oracle_act_qparams(mn, mx, bits)
        ch_scale, ch_zp = s, np.int64(zp)
        assert point.alpha.numel() == 0 and point.ln_alpha(C).tolist() == [0] * C
    assert _same_f32(point.scale.item(), s) and int(point.zero_point) == zp
    got_cs = point.channel_scale().numpy()
    assert np.array_equal(np.broadcast_to(got_cs, np.shape(ch_scale)).view(np.int32),
                          np.asarray(ch_scale, np.float32).view(np.int32))

    # Quantize / dequantize round trip, every element.
    x = np.concatenate([b.reshape(-1, C) for b in batches])
    q = point.quantize(_t(x))
    want_q = np_quantize(x, ch_scale, ch_zp, 0, qmax)
    assert q.dtype == torch.uint8 and np.array_equal(q.numpy().astype(np.int64), want_q)
    dq = point.dequantize(q).numpy()
    want_dq = np_dequantize(want_q, ch_scale, ch_zp)
    assert np.array_equal(dq.view(np.int32), want_dq.view(np.int32))
    cs = np.broadcast_to(np.asarray(ch_scale, np.float32), (C,)) if pts else np.full(C, s, np.float32)
    inside = (want_q > 0) & (want_q < qmax)
    err = np.abs(dq.astype(np.float64) - x)
    assert np.all(err[inside] <= (np.broadcast_to(cs, x.shape)[inside] * 0.5) * (1 + 1e-5))
    bound = np.broadcast_to(cs, x.shape) * 0.5 * (1 + 1e-5) + 1e-6
    if method == "minmax" and not pts:  # the whole observed range is on the grid (no clipping beyond half a step)
        assert np.all(err <= bound)
    if pts:  # the widest channels (alpha = K) cover the global range; narrower ones may clip earlier batches
        wide_ch = point.alpha.numpy() == 3
        assert np.all(err[:, wide_ch] <= bound[:, wide_ch])

    # params() / load_params() round trip: plain picklable values, identical quantization.
    params = pickle.loads(pickle.dumps(point.params()))
    assert set(params) == {"bits", "pts", "scale", "zero_point", "alpha"}
    assert all(type(params[k]) in (int, bool, float, list) for k in params)
    other = QuantPoint(8, "minmax")
    other.load_params(params)
    assert other.calibrated and other.bits == bits and other.pts == pts
    assert np.array_equal(other.quantize(_t(x)).numpy(), q.numpy())
    assert np.array_equal(other.dequantize(q).numpy().view(np.int32), dq.view(np.int32))
    assert np.array_equal(np.asarray(other.channel_scale().numpy()).view(np.int32),
                          np.asarray(point.channel_scale().numpy()).view(np.int32))
    assert other.ln_alpha(C).tolist() == point.ln_alpha(C).tolist()

    # The parameters are buffers, so they reach state_dict.
    sd = point.state_dict()
    assert {"scale", "zero_point", "alpha"} <= set(sd)
    assert _same_f32(sd["scale"].item(), s)


def test_quant_point_pts_ln_alpha_and_zero_point_expand():
    batches = _point_batches(5)
    point = QuantPoint(8, "minmax", pts=True)
    for i, b in enumerate(batches):
        point.observe(_t(b), last=i == 2)
    C = batches[0].shape[-1]
    assert point.ln_alpha(C) is point.alpha
    assert point.channel_zero_point().shape == (C,) and set(point.channel_zero_point().tolist()) == {
        int(point.zero_point)}
    assert int(point.alpha.max()) <= 3


def test_quant_point_fresh_load_without_observe():
    """A point restored from calib.pt parameters quantizes without ever observing."""
    point = QuantPoint(8, "omse")
    point.load_params({"bits": 8, "pts": False, "scale": 0.05, "zero_point": 7, "alpha": []})
    x = np.float32([-1.0, -0.35, 0.0, 0.025, 0.075, 12.0, 13.0])
    assert np.array_equal(point.quantize(_t(x)).numpy().astype(np.int64), np_quantize(x, 0.05, 7, 0, 255))


# --- QuantConfig validation (the bit widths a QuantPoint can hold in uint8) ------------------------------------------

@pytest.mark.parametrize("kwargs, ok", [
    pytest.param({}, True, id="defaults"),
    pytest.param({"w_bits": 2, "a_bits": 2, "attn_bits": 2}, True, id="all2"),
    pytest.param({"w_bits": 4, "a_bits": 4, "attn_bits": 4, "lis": True}, True, id="all4_lis"),
    pytest.param({"attn_bits": 1, "lis": True}, True, id="attn_bits1_lisTrue"),
    pytest.param({"attn_bits": 4, "lis": True, "pts": True, "method": "omse"}, True, id="lis_pts_omse"),
    pytest.param({"w_bits": 1}, False, id="w_bits1"),
    pytest.param({"w_bits": 9}, False, id="w_bits9"),
    pytest.param({"a_bits": 1}, False, id="a_bits1"),
    pytest.param({"a_bits": 9}, False, id="a_bits9"),
    pytest.param({"attn_bits": 0}, False, id="attn_bits0"),
    pytest.param({"attn_bits": 5, "lis": True}, False, id="attn_bits5_lisTrue"),
    pytest.param({"attn_bits": 8, "lis": True}, False, id="attn_bits8_lisTrue"),
    pytest.param({"method": "kl"}, False, id="methodkl"),
    pytest.param({"attn_bits": 9}, False, id="attn_bits9"),
    pytest.param({"attn_bits": 16}, False, id="attn_bits16"),
])
def test_quant_config_validation(kwargs, ok):
    if ok:
        QuantConfig(**kwargs)
    else:
        with pytest.raises(ValueError):
            QuantConfig(**kwargs)


def test_quant_point_more_than_8_bits():
    x = torch.linspace(0.0, 1.0, 7)
    try:
        point = QuantPoint(9, "minmax")
        point.observe(x, last=True)
    except ValueError:
        return  # rejecting the width is a fix too
    q = point.quantize(x).to(torch.int64)
    assert torch.all(q[1:] >= q[:-1]), f"codes not monotone in x (wrapped): {q.tolist()}"


def test_quant_config_reads_older_dicts():
    """calib.pt files written before ``extra`` was dropped still load; the round trip is the identity."""
    config = QuantConfig(pts=True, lis=True, attn_bits=4)
    assert QuantConfig.from_dict(config.to_dict()) == config
    assert QuantConfig.from_dict({**config.to_dict(), "extra": {}}) == config
