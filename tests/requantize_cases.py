"""Requantize inputs and the reference output, shared by the kernel tests (test_custom_ops.py) and the function-body
tests (test_functions.py), so both check the op on the same kinds of accumulators and parameters."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from fqvit_export.ops import reference as R

Inputs = dict[str, np.ndarray]


def requantize_inputs(rng: np.random.Generator, shape: tuple[int, ...], *, acc: str = "matmul",
                      m: float | str = "channel", b: float | str = "channel", y_scale: float | None = None,
                      y_zp: int | None = None) -> Inputs:
    """acc: matmul (|A| < 2^20, a realistic accumulator), large (any int32, +-(2^31 - 1) and -2^31 included, most
    beyond 2^24 so f32(A) rounds), odd_big (odd values in (2^24, 2^25): f32(A) rounds on every element), conv_ties
    (+-(2^24 + k), k < 128, alternating sign per channel: with m = 1 and b = "conv" (-+2^24) the output is f32(A)'s
    round half to even), ties (small A; with m = 0.5, b = 0, y_scale = 1 every odd A lands on a .5 tie).
    m, b: "channel" ([N] random), "scalar" (rank 0), "one" ([1]), "conv" (b only), or a constant ([N])."""
    n = shape[-1]
    if acc == "large":
        a = rng.integers(-2**31, 2**31, shape, dtype=np.int64)
        flat = a.reshape(-1)
        if flat.size >= 4:
            flat[:4] = [2**31 - 1, -2**31, -(2**31 - 1), 2**24 + 1]
    elif acc == "odd_big":
        a = rng.integers(2**23, 2**24, shape, dtype=np.int64) * 2 + 1
        a *= rng.choice([-1, 1], shape)
    elif acc == "conv_ties":
        a = (2**24 + rng.integers(0, 128, shape, dtype=np.int64)) * np.where(np.arange(n) % 2, -1, 1)
    elif acc == "ties":
        a = rng.integers(-600, 600, shape, dtype=np.int64)
    else:
        a = rng.integers(-2**20, 2**20, shape, dtype=np.int64)

    def param(spec: float | str, draw: Callable[[int], np.ndarray]) -> np.ndarray:
        if spec == "channel":
            return draw(n).astype(np.float32)
        if spec == "scalar":
            return draw(1).astype(np.float32).reshape(())
        if spec == "one":
            return draw(1).astype(np.float32)
        if spec == "conv":  # -2^24 on even channels, +2^24 on odd ones (the sign pattern of conv_ties)
            return np.where(np.arange(n) % 2, 2.0**24, -2.0**24).astype(np.float32)
        return np.full(n, spec, np.float32)

    return {
        "A": a.astype(np.int32),
        "multiplier": param(m, lambda k: rng.uniform(0.5, 2.0, k) * 10.0 ** rng.uniform(-6.3, -5.7, k)),
        "bias": param(b, lambda k: rng.uniform(-1.0, 1.0, k)),
        "y_scale": np.array(y_scale if y_scale is not None else rng.uniform(0.01, 0.08), np.float32),
        "y_zero_point": np.array(y_zp if y_zp is not None else rng.integers(0, 256), np.uint8),
    }


def requantize_reference(inp: Inputs) -> np.ndarray:
    return R.requantize(*(torch.from_numpy(np.ascontiguousarray(inp[k]))
                          for k in ("A", "multiplier", "bias", "y_scale")), int(inp["y_zero_point"])).numpy()
