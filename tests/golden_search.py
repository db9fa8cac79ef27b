"""The search results every codec gave before the search path was rebuilt (issue 15), kept as
a fixture: ``python tests/golden_search.py`` rewrites tests/data/search_golden.npz.

Rewritten since when SAQ's stage 1 changed what it prunes (issue 14): every id both versions
returned had the same distance to 1e-6, and the pruned searches agreed with the unpruned ranking
(``prune=0``) at least as often as before (CAQ4 inner product 1.000 against 0.990). The cosine
entries of SAQ and CAQ were replaced alone when cosine became SAQ's L2 estimate on unit vectors
(docs/algorithms.md §9): recall against exact search on this fixture moved by at most 0.01
(0.880 to 0.877 SAQ4, 0.877 to 0.880 CAQ4, 0.947 to 0.957 SAQ2 with rerank). Then the SAQ and
CAQ entries alone, when searches began to rotate by the float16-rounded transform: distances
moved by at most 6e-4, and 2% (SAQ4 l2) and 0.7% (CAQ4 cosine) of positions swapped near-equal
estimates, the other ids unchanged; recall against exact search unchanged."""

import os

import numpy as np

from naive import clustered

SPECS = ["Flat", "IVF16,Flat", "IVF16,SAQ4", "IVF16,SAQ1.5", "IVF16,CAQ4", "IVF16,PQ8x8",
         "IVF16,PQ16x4fs", "OPQ8,IVF16,PQ8x8", "IVF16,LVQ8", "IVF16,LVQ4x8", "IVF16,SAQ2,Rerank"]
METRICS = ["l2", "ip", "cosine"]
DIM, K, NPROBE = 64, 10, 4
PATH = os.path.join(os.path.dirname(__file__), "data", "search_golden.npz")


def data():
    return clustered(3000, DIM, seed=11), clustered(30, DIM, seed=12)


def results():
    """{"spec|metric|D": distances, "spec|metric|I": ids} of every spec and metric, on one
    thread: OPQ's training moves with BLAS's thread count."""
    import numba

    from annvq import Index
    from annvq.threads import set_threads

    X, Q = data()
    out = {}
    before = numba.get_num_threads()
    set_threads(1)
    try:
        for spec in SPECS:
            for metric in METRICS:
                index = Index(DIM, spec, metric).train(X).add(X)
                D, I = index.search(Q, K, nprobe=NPROBE if "IVF" in spec else None)
                out[f"{spec}|{metric}|D"], out[f"{spec}|{metric}|I"] = D, I
    finally:
        set_threads(before)
    return out


if __name__ == "__main__":
    np.savez_compressed(PATH, **results())
