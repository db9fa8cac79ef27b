"""The SAQ dynamic programme against a brute-force enumeration of every plan (docs/algorithms.md §10.6)."""

import itertools

import numpy as np
import pytest

from annvq.errors import InvalidParameterError
from annvq.quantizers.allocation import (TIE_RATIO, budget_units, plan_segments, segment_cost,
                                         segment_error)


def compositions(n):
    """Every way to cut n blocks into consecutive non-empty segments."""
    for cuts in range(n):
        for points in itertools.combinations(range(1, n), cuts):
            edges = (0, *points, n)
            yield tuple(b - a for a, b in zip(edges, edges[1:]))


def brute_force(variance, avg_bits, max_bits):
    """Least error per (segments, cost), then the same fewest-segments-within-1% scan as the DP."""
    blocks = np.asarray(variance, np.float64).reshape(-1, 64).sum(axis=1)
    nb, units = len(blocks), budget_units(avg_bits, len(blocks))
    max_segments = nb if avg_bits < 2 else max(1, nb // 2)
    best_at = {}
    for comp in compositions(nb):
        if len(comp) > max_segments:
            continue
        sums = np.add.reduceat(blocks, np.cumsum((0,) + comp[:-1]))
        for lead in itertools.product(range(1, max_bits + 1), repeat=len(comp) - 1):
            for last in range(max_bits + 1):
                bits = lead + (last,)
                cost = sum(segment_cost(n, b) for n, b in zip(comp, bits))
                if cost <= units:
                    err = sum(segment_error(v, b) for v, b in zip(sums, bits))
                    key = (len(comp), cost)
                    best_at[key] = min(best_at.get(key, np.inf), err)
    best = np.inf
    for s in range(max_segments + 1):
        for q in range(units + 1):
            if best_at.get((s, q), np.inf) * TIE_RATIO < best:
                best = best_at[(s, q)]
    return best


def plan_error(variance, plan):
    var = np.zeros(sum(length for length, _ in plan))
    var[:len(variance)] = variance
    edges = np.cumsum([0] + [length for length, _ in plan])
    return sum(segment_error(var[a:b].sum(), bits) for (a, b), (_, bits) in zip(zip(edges, edges[1:]), plan))


SPECTRA = {
    "power": lambda d: np.arange(1, d + 1) ** -1.1,
    "exponential": lambda d: np.exp(-np.arange(d) / 40.0),
    "steps": lambda d: np.repeat([9.0, 3.0, 3.0, 1.0, 0.2], 64)[:d],
}


def check_plan(variance, avg_bits, plan, error):
    """The invariants every plan keeps: coverage, budget, 0 bits only on the tail, its error."""
    nb = -(-len(variance) // 64)
    assert sum(length for length, _ in plan) == nb * 64
    assert all(length % 64 == 0 and length > 0 for length, _ in plan)
    assert all(bits >= 1 for _, bits in plan[:-1])
    assert sum(segment_cost(length // 64, bits) for length, bits in plan) <= budget_units(avg_bits, nb)
    assert error == pytest.approx(plan_error(variance, plan), rel=1e-9)


@pytest.mark.parametrize("spectrum", sorted(SPECTRA))
@pytest.mark.parametrize("dim,avg_bits", [(192, 1.0), (256, 0.5), (256, 2.5), (320, 1.5), (320, 3.0)])
def test_dp_equals_brute_force(spectrum, dim, avg_bits):
    variance = SPECTRA[spectrum](dim)
    plan, error = plan_segments(variance, avg_bits, max_bits=8)
    check_plan(variance, avg_bits, plan, error)
    assert error == pytest.approx(brute_force(variance, avg_bits, 8), rel=1e-9)


@pytest.mark.parametrize("avg_bits", [0.2, 0.5, 1, 2, 3.5, 4, 8, 13])
def test_plans_keep_budget_and_tail_rule_on_large_inputs(avg_bits):
    variance = SPECTRA["power"](784)
    plan, error = plan_segments(variance, avg_bits)
    check_plan(variance, avg_bits, plan, error)
    assert all(bits <= 13 for _, bits in plan)


def test_modelled_error_does_not_grow_with_bits():
    variance = SPECTRA["power"](512)
    errors = [plan_segments(variance, b)[1] for b in (0.5, 1, 1.5, 2, 3, 4, 6, 8)]
    # The fewest-segments rule may give back up to 1% of the optimum at each budget.
    assert all(b <= a * TIE_RATIO for a, b in zip(errors, errors[1:]))
    assert errors[-1] < errors[0] / 100


@pytest.mark.parametrize("dim", [64, 256, 832])
@pytest.mark.parametrize("avg_bits", [1, 2, 4, 8])
def test_flat_spectrum_gives_one_segment(dim, avg_bits):
    plan, error = plan_segments(np.ones(dim), avg_bits)
    assert plan == [(dim, avg_bits)]
    assert error == pytest.approx(dim / 2 ** avg_bits)


def test_example_plans_of_the_reference():
    """docs/algorithms.md §7.2: sigma_i^2 = i^-1.1 over 960 dimensions, padded to 1024."""
    variance = np.zeros(1024)
    variance[:960] = SPECTRA["power"](960)
    assert plan_segments(variance, 1)[0] == [(64, 7), (256, 2), (704, 0)]
    assert plan_segments(variance, 2)[0] == [(64, 7), (320, 3), (512, 1), (128, 0)]
    assert plan_segments(variance, 4)[0] == [(64, 10), (320, 5), (576, 3), (64, 0)]
    assert plan_segments(variance, 8)[0] == [(64, 13), (192, 10), (320, 8), (384, 7), (64, 0)]


@pytest.mark.parametrize("bits", [0.1, 13.5, -1, float("nan"), "4", True])
def test_bits_out_of_range_refused(bits):
    with pytest.raises(InvalidParameterError, match="'bits'"):
        plan_segments(np.ones(64), bits)


@pytest.mark.parametrize("variance", [[], [1.0, np.nan], [1.0, -2.0], np.ones((2, 64))])
def test_bad_variance_refused(variance):
    with pytest.raises(InvalidParameterError, match="variance"):
        plan_segments(np.asarray(variance, dtype=np.float64), 2)
