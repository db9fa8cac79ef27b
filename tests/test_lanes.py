"""SAQ's stage 1 over a block's 32 lanes (`kernels.lanes`) against a float64 reference."""

import numba
import numpy as np
import pytest

from annvq.kernels.fastscan import BLOCK
from annvq.kernels.lanes import stage1_lanes


@numba.njit
def _stage1(lanes, b, acc, seg, base, tau, sigmas, alive):
    dcur, slack = np.empty(BLOCK, np.float32), np.empty(BLOCK, np.float32)
    return stage1_lanes(lanes, b, acc, seg, base, tau, sigmas, alive, dcur, slack), dcur, slack


@pytest.mark.parametrize("S", [1, 2, 5])
def test_estimates_slack_and_passing_lanes_equal_a_float64_reference(S):
    rng = np.random.default_rng(S)
    lanes = rng.uniform(0.1, 2.0, (4, 2 * S + 1, BLOCK)).astype(np.float32)  # rescale, spread, K1 per lane
    acc = rng.integers(0, 4000, (S, BLOCK)).astype(np.int32)
    seg = rng.uniform(-1.0, 1.0, (5, S)).astype(np.float32)
    seg[1] = np.abs(seg[1])  # ||x_s||^2
    base, sigmas, b = np.float32(-0.7), np.float32(2.5), 2
    L, A, G = lanes[b].astype(np.float64), acc.astype(np.float64), seg.astype(np.float64)
    d = base + L[2 * S] + sum(L[s] * (G[2, s] * A[s] + G[3, s]) for s in range(S))
    spread = sigmas * np.sqrt(sum(L[S + s] * G[1, s] for s in range(S)))
    tau = np.float32(np.median(d - spread))  # about half the lanes pass
    alive = (1 << BLOCK) - 1 - (1 << 3) - (1 << 17)  # lanes 3 and 17 out of play
    mask, dcur, slack = _stage1(lanes, b, acc, seg, base, tau, sigmas, np.int64(alive))
    np.testing.assert_allclose(dcur, d, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(slack, spread, rtol=1e-5)
    expected = sum(1 << v for v in range(BLOCK) if alive >> v & 1 and dcur[v] - slack[v] <= tau)
    assert mask == expected
    assert 0 < bin(mask).count("1") < BLOCK - 2


def test_no_lane_passes_below_every_bound_and_every_live_lane_above():
    S = 2
    lanes = np.ones((1, 2 * S + 1, BLOCK), np.float32)
    acc = np.zeros((S, BLOCK), np.int32)
    seg = np.ones((5, S), np.float32)
    live = (1 << 20) - 1  # a last block of 20 rows
    assert _stage1(lanes, 0, acc, seg, np.float32(0.0), np.float32(-100.0), np.float32(1.0), np.int64(live))[0] == 0
    assert _stage1(lanes, 0, acc, seg, np.float32(0.0), np.float32(100.0), np.float32(1.0), np.int64(live))[0] == live
