"""How one part of a snapshot is searched for a plan, and which strategy ran.

* ``ivf``: the model's scan over the part's encoded lists, with the bitset of the allowed rows
  (live, and passing the filter) inside the kernel.
* ``ivf-raw``: a filter allows at most ``RAW_IVF`` of the rows of the lists it may probe (and
  raw vectors are stored): the same probed lists, but only their allowed rows, scored exactly
  from the raw vectors. The codec's scan reads every row of a list; this reads 3 KB (784-d) per
  allowed row and nothing for the rest.
* ``flat``: a filter leaves few rows, against what a probe of ``nprobe`` lists would read
  (``reads = rows * nprobe / nlist``): those rows are scanned exhaustively, up to ``reads`` rows
  (``RAW_FLAT * reads`` for a batch over raw vectors; for a few queries over raw vectors also up
  to ``nlist`` rows, no more than a probe reads of centroids). Over raw vectors when stored
  (exact distances), else over every list of codes with the bitset.
* ``exact``: brute force over raw vectors (the buffer, untrained segments, ``exact=True``).
"""

from __future__ import annotations

import faiss
import numpy as np

from .errors import InvalidParameterError
from .filters import Bool
from .index import Index
from .ivf import InvertedLists
from .kernels.config import readonly
from .kernels.driver import WORST, row_ids
from .kernels.flat import ivf_flat_scan, ivf_raw_scan, ivf_raw_scan_one, rows_flat_scan, rows_flat_scan_one
from .kernels.topk import merge_sorted
from .linalg import SMALL_ROWS
from .plan import QueryCache, SearchPlan
from .segments import Part
from .threads import at_most

#: allowed rows a batch scans exactly over raw vectors, per row an unfiltered probe would read:
#: on fashion-mnist (784-d) 6,000 gathered rows through BLAS ran as fast as SAQ4's IVF scan of
#: 3.2x fewer rows, and gave recall 1.0 (docs/benchmarks.md, "Filtered search"). A single query
#: gets no GEMM: it streams 3 KB of floats per row from memory against ~430 B of SAQ4 code, so
#: it goes flat only below ``reads``.
RAW_FLAT = 3
#: the largest fraction of the rows of the lists a probe may read (those holding any allowed
#: row) that a filter may allow for ``ivf-raw``. On fashion-mnist (batch, 1 thread) it beat
#: SAQ4's scan 1.4x at a random 10% and lost 1.3x at 20% (docs/benchmarks.md, "Filtered search").
RAW_IVF = 0.15
#: a batch gathers the allowed rows into a copy of at most this many bytes for BLAS
GATHER_BYTES = 256 << 20


def _knn(plan: SearchPlan, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """faiss's BLAS brute force as (raw scores, rows)."""
    l2 = plan.metric == "l2"
    D, I = faiss.knn(plan.queries, vectors, plan.k, metric=faiss.METRIC_L2 if l2 else faiss.METRIC_INNER_PRODUCT)
    return np.where(I < 0, WORST, D if l2 else -D).astype(np.float32), I.astype(np.int64)


def exact_scan(plan: SearchPlan, vectors: np.ndarray, part: Part, pred: Bool | None, allowed: np.ndarray,
               count: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force (raw scores, rows) over the raw vectors of the ``count`` rows of ``part`` the
    bitset ``allowed`` lets through (every row when it is empty). A few queries read the allowed
    rows in place by number; a batch gathers them for faiss's BLAS knn (one GEMM beats any row
    loop), or, past GATHER_BYTES, runs the flat kernel over one list that skips the others."""
    if not len(allowed):
        return _knn(plan, vectors)
    if plan.nq > SMALL_ROWS and count * vectors.shape[1] * 4 <= GATHER_BYTES:
        rows = part.allowed_rows(pred)
        scores, at = _knn(plan, np.ascontiguousarray(vectors[rows]))
        return scores, np.where(at < 0, -1, rows[np.maximum(at, 0)])
    if plan.nq <= SMALL_ROWS:
        data = plan.queries, readonly(part.allowed_rows(pred)), readonly(vectors), plan.metric == "l2", plan.k
        if plan.nq == 1:
            return rows_flat_scan_one(*data)
        with at_most(plan.nq):
            return rows_flat_scan(*data)
    l2 = plan.metric == "l2"
    norms = np.einsum("ij,ij->i", vectors, vectors) if l2 else np.zeros(0, np.float32)
    one_list = np.zeros((plan.nq, 1), np.int64)
    return ivf_flat_scan(plan.queries, one_list, readonly(np.array([0, len(vectors)], np.int64)), readonly(vectors),
                         readonly(norms), np.float32(-2.0 if l2 else -1.0), allowed, plan.k)


def raw_ivf_scan(model: Index, plan: SearchPlan, lists: InvertedLists, allowed: np.ndarray,
                 keep: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(raw scores, rows) of the allowed rows of the lists ``model`` probes (the nearest kept
    ones with ``keep``), exact over the raw vectors, which are read for those rows alone."""
    probes = model.codec.probed(plan, model.centroids_, model.probe(plan.nprobe, keep))
    data = (plan.queries, probes, readonly(lists.offsets), readonly(lists.vectors), plan.metric == "l2",
            readonly(allowed), plan.k)
    if plan.nq == 1:
        return ivf_raw_scan_one(*data)
    with at_most(plan.nq):
        return ivf_raw_scan(*data)


def scan_part(model: Index | None, part: Part, plan: SearchPlan, pred: Bool | None, allowed: np.ndarray,
              count: int, *, exact: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """(raw scores, rows, strategy) of the best of the ``count`` rows of ``part`` that are live
    and pass ``pred``, whose bitset is ``allowed`` (module docstring)."""
    seg = part.segment
    if seg.lists is not None and not exact:
        reads = seg.rows * plan.nprobe / model.nlist
        if seg.vectors is None:
            flat_rows = reads
        elif plan.nq > SMALL_ROWS:
            flat_rows = RAW_FLAT * reads
        else:  # a probe alone reads nlist centroids
            flat_rows = max(reads, model.nlist)
        if pred is not None and count <= flat_rows:
            if seg.vectors is not None:
                return (*exact_scan(plan, seg.vectors, part, pred, allowed, count), "flat")
            every = plan._replace(nprobe=model.nlist, cache=QueryCache())
            return (*model.scan(every, seg.lists, allowed), "flat")
        keep = None if pred is None else seg.matching(pred).lists
        if pred is not None and seg.vectors is not None:
            read = seg.rows if keep is None else int(np.diff(seg.lists.offsets)[keep].sum())
            if count <= RAW_IVF * read:
                return (*raw_ivf_scan(model, plan, seg.lists, allowed, keep), "ivf-raw")
        return (*model.scan(plan, seg.lists, allowed, keep), "ivf")
    if seg.vectors is None:
        raise InvalidParameterError(
            "exact=True needs the raw vectors: create the collection with store_vectors=True.")
    return (*exact_scan(plan, seg.vectors, part, pred, allowed, count), "exact")


def warmup() -> None:
    """Compile (or load from numba's cache) the exact kernels and the merge of several parts'
    hits (`Hits.merge`), so no first query pays for it."""
    Q, one = readonly(np.zeros((1, 4), np.float32)), readonly(np.zeros(1, np.int64))
    probes, offsets = readonly(np.zeros((1, 1), np.int64)), readonly(np.array([0, 1], np.int64))
    live = readonly(np.ones(1, np.uint8))
    merge_sorted(np.zeros((1, 2), np.float32), np.zeros((1, 2), np.int64), np.zeros((1, 2), np.int64),
                 np.array([0, 1, 2]), 1)
    row_ids(np.zeros((1, 1), np.int64), one)
    for l2 in (True, False):
        rows_flat_scan(Q, one, Q, l2, 1)
        rows_flat_scan_one(Q, one, Q, l2, 1)
        ivf_raw_scan(Q, probes, offsets, Q, l2, live, 1)
        ivf_raw_scan_one(Q, probes, offsets, Q, l2, live, 1)
