"""SAQ's joint dimension segmentation and bit allocation: a dynamic programme over PCA variances.

Follows the official code (docs/algorithms.md §7.2), not the paper's Alg. 2: dimensions are grouped
in 64-dim blocks, a segment of L dims at B bits costs ``L*B + 64`` bits (its two float32 factors),
a 0-bit segment is free but only allowed as the tail, and the plan with the fewest segments
within 1% of the best modelled error wins. Costs are counted in units of 64 bits.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InvalidParameterError
from ..linalg import BLOCK, padded_dim

MIN_BITS, MAX_BITS = 0.2, 13.0
#: Most bits one segment may use (the official KMaxQuantizeBits; factors overflow above it).
MAX_SEGMENT_BITS = 13
#: A plan with more segments replaces the incumbent only when more than 1% better.
TIE_RATIO = 1.01


def check_bits(bits: float, owner: str) -> float:
    """``bits`` per dimension as a float in [0.2, 13], or a clear error."""
    if isinstance(bits, bool) or not isinstance(bits, (int, float)) or not MIN_BITS <= bits <= MAX_BITS:
        raise InvalidParameterError(
            f"The 'bits' parameter of {owner} must be a number in [{MIN_BITS}, {MAX_BITS:g}]. Got {bits!r}."
        )
    return float(bits)


def budget_units(avg_bits: float, n_blocks: int) -> int:
    """Total budget in 64-bit units: ``floor(avg * D_pad) + 64`` bits, one segment's factors free."""
    return math.floor(avg_bits * n_blocks + 1e-9) + 1


def segment_cost(blocks: int, bits: int) -> int:
    """Units used by a segment of ``blocks`` 64-dim blocks: codes plus two factors; the tail is free."""
    return blocks * bits + 1 if bits else 0


def segment_error(variance_sum: float, bits: int) -> float:
    """Modelled error of a segment: the variance it holds, halved per bit (eq. 17 without pi)."""
    return variance_sum / 2.0 ** bits


def plan_segments(variance: np.ndarray, avg_bits: float, *,
                  max_bits: int = MAX_SEGMENT_BITS) -> tuple[list[tuple[int, int]], float]:
    """The plan ``[(length, bits), ...]`` (leading, high-variance dimensions first) and its error.

    ``variance`` holds the per-dimension variances in PCA order (descending); it is padded with
    zeros to a multiple of 64.
    """
    avg_bits = check_bits(avg_bits, "plan_segments")
    var = np.asarray(variance, dtype=np.float64)
    if var.ndim != 1 or var.size < 1 or not np.isfinite(var).all() or (var < 0).any():
        raise InvalidParameterError("The 'variance' of plan_segments must be a non-empty 1-D array of "
                                    "finite values >= 0.")
    padded = np.zeros(padded_dim(var.size))
    padded[:var.size] = var
    nb = padded.size // BLOCK
    prefix = np.concatenate([[0.0], np.cumsum(padded.reshape(nb, BLOCK).sum(axis=1))])
    units = budget_units(avg_bits, nb)
    max_segments = nb if avg_bits < 2 else max(1, nb // 2)

    # F[s, j, q]: least error covering blocks [0, j) with exactly s segments and exactly q units.
    F = np.full((max_segments + 1, nb + 1, units + 1), np.inf)
    F[0, 0, 0] = 0.0
    back = np.zeros((max_segments + 1, nb + 1, units + 1, 2), np.int64)  # (start block, bits)
    for s in range(max_segments):
        for j in range(nb):
            row = F[s, j]
            if not np.isfinite(row).any():
                continue
            for end in range(j + 1, nb + 1):
                for bits in range(1, max_bits + 1):
                    cost = segment_cost(end - j, bits)
                    if cost > units:
                        break
                    _relax(F[s + 1, end, cost:], back[s + 1, end, cost:], row[:units + 1 - cost]
                           + segment_error(prefix[end] - prefix[j], bits), j, bits)
            _relax(F[s + 1, nb], back[s + 1, nb], row + (prefix[nb] - prefix[j]), j, 0)

    best, arg = np.inf, None
    for s in range(max_segments + 1):
        for q in range(units + 1):
            if F[s, nb, q] * TIE_RATIO < best:
                best, arg = F[s, nb, q], (s, q)
    plan = []
    s, j, q = arg[0], nb, arg[1]
    while s > 0:
        start, bits = back[s, j, q]
        plan.append((int(j - start) * BLOCK, int(bits)))
        q -= segment_cost(j - start, bits)
        s, j = s - 1, start
    return plan[::-1], float(best)


def _relax(target: np.ndarray, pointers: np.ndarray, candidate: np.ndarray, start: int, bits: int) -> None:
    """Keep the candidate errors that beat the target, with their back-pointers."""
    better = candidate < target
    target[better] = candidate[better]
    pointers[better] = (start, bits)
