"""Index: train / add / search over one set of IVF lists, described by a faiss-style spec string.

    >>> index = Index(784, "IVF1024,SAQ4", metric="l2")
    >>> index.train(X).add(X)
    >>> D, I = index.search(Q, k=10, nprobe=16)

Distances are true metric values: Euclidean distance for ``l2`` (ascending), inner product for
``ip`` and cosine similarity for ``cosine`` (both descending). Missing results are id -1 with
distance +inf (l2) or -inf (ip, cosine).
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import replace

import numpy as np
from tqdm.auto import tqdm

from .errors import InvalidParameterError, InvalidVectorsError, NotTrainedError
from .ivf import InvertedLists, Probe, coarse_index, nearest_lists, train_centroids
from .kernels.config import readonly
from .kernels.driver import ALL_ROWS, merged_answers
from .kernels.flat import rerank_exact
from .plan import SearchPlan, make_plan
from .quantizers import make_codec
from .spec import parse_spec
from .threads import at_most
from .validation import as_ids, as_vectors, check_int, check_metric, metric_vectors

ADD_CHUNK = 65536
#: the context of a scan that runs on the caller's thread alone (reusable, made once)
_SERIAL = nullcontext()
#: candidates re-scored per result when the spec ends in ",Rerank" and no factor is given
DEFAULT_RERANK = 4


class Index:
    """An IVF index over compressed codes (or exact vectors for ``Flat``)."""

    def __init__(self, dim: int, spec: str = "Flat", metric: str = "l2", *,
                 store_vectors: bool = False, seed: int = 0, verbose: bool = False):
        self.dim = check_int(dim, "dim", "Index")
        self.metric = check_metric(metric)
        self.spec = parse_spec(spec)
        self.store_vectors = bool(store_vectors or self.spec.rerank)
        self.seed = seed
        self.verbose = verbose
        self.codec = make_codec(self.spec.codec, self.dim, self.metric, transform=self.spec.transform, seed=seed)
        # Without IVF the whole index is one list around the origin.
        self.centroids_ = None if self.spec.nlist else np.zeros((1, self.dim), np.float32)
        self._coarse = None  # (centroids, faiss index over them), built on first use
        self._probes = {}  # n -> Probe over the centroids, shared with views (`with_lists`)
        self.lists = InvertedLists.empty(self.nlist, self.codec.code_size, self.codec.n_factors,
                                         self.dim if self.store_vectors else None)

    # --- description -----------------------------------------------------------------------
    @property
    def codec_metric(self) -> str:
        return "l2" if self.metric == "l2" else "ip"

    @property
    def nlist(self) -> int:
        return self.spec.nlist or 1

    @property
    def ntotal(self) -> int:
        return self.lists.ntotal

    @property
    def is_trained(self) -> bool:
        return self.centroids_ is not None and self.codec.is_trained

    @property
    def bytes_per_vector(self) -> float:
        """Bytes stored per vector for codes and factors (ids and kept raw vectors excluded)."""
        return self.codec.bytes_per_vector

    def __repr__(self) -> str:
        return f"Index(dim={self.dim}, spec={str(self.spec)!r}, metric={self.metric!r}, ntotal={self.ntotal})"

    # --- input -----------------------------------------------------------------------------
    def _prepare(self, X, name: str) -> np.ndarray:
        return metric_vectors(X, self.dim, self.metric, name=name)

    def _check_trained(self, action: str) -> None:
        if not self.is_trained:
            raise NotTrainedError(f"Cannot {action} before the index is trained: call train(X) first.")

    # --- train / add -----------------------------------------------------------------------
    def train(self, X, *, centroids=None) -> "Index":
        """Learn the coarse centroids and the codec's model from X; the index is unchanged on error.

        ``centroids`` (nlist, dim) skips k-means and uses the given coarse partition, so that
        several indexes (or peers such as faiss) can share one partition in a benchmark.
        """
        X = self._prepare(X, "training vectors")
        if self.spec.nlist and len(X) < self.nlist:
            raise InvalidVectorsError(
                f"Training IVF{self.nlist} needs at least {self.nlist} vectors; got {len(X)}."
            )
        if centroids is not None:
            if not self.spec.nlist:
                raise InvalidParameterError(f"{self.spec} has no coarse quantizer to give centroids to.")
            centroids = as_vectors(centroids, self.dim, name="centroids")
            if len(centroids) != self.nlist:
                raise InvalidParameterError(f"centroids must have {self.nlist} rows; got {len(centroids)}.")
        elif self.spec.nlist:
            centroids = train_centroids(X, self.nlist, self.codec_metric, seed=self.seed, verbose=self.verbose)
        else:
            centroids = self.centroids_
        codec = copy.deepcopy(self.codec).fit(X, centroids, lambda rows: self._assign(rows, centroids))
        codec.warmup()
        self.codec, self.centroids_ = codec, centroids
        self._probes = {}
        self.lists = InvertedLists.empty(self.nlist, codec.code_size, codec.n_factors,
                                         self.dim if self.store_vectors else None)
        return self

    def _assign(self, X: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        if len(centroids) == 1:
            return np.zeros(len(X), np.int64)
        return nearest_lists(X, centroids, self.codec_metric, 1, index=self._coarse_for(centroids))[:, 0]

    def _coarse_for(self, centroids: np.ndarray):
        """The cached faiss index over `centroids` (rebuilt when the centroids object changes)."""
        cached = self._coarse
        if cached is None or cached[0] is not centroids:
            cached = self._coarse = (centroids, coarse_index(centroids, self.codec_metric))
        return cached[1]

    def encode_lists(self, X, ids=None) -> InvertedLists:
        """Encode vectors into new inverted lists without touching this index's own lists."""
        self._check_trained("add vectors")
        X = self._prepare(X, "vectors")
        ids = np.arange(self.ntotal, self.ntotal + len(X), dtype=np.int64) if ids is None else as_ids(ids, len(X))
        parts = []
        for start in tqdm(range(0, len(X), ADD_CHUNK), desc="encode", unit="chunk",
                          disable=not self.verbose or len(X) <= ADD_CHUNK):
            chunk = X[start:start + ADD_CHUNK]
            assign, codes, factors = self.codec.assign_encode(chunk, self.centroids_,
                                                              lambda X: self._assign(X, self.centroids_))
            parts.append((assign, codes, factors))
        joined = [p[0] if len(parts) == 1 else np.concatenate(p) for p in zip(*parts)]  # one chunk: no copy
        return InvertedLists.from_rows(self.nlist, joined[0], ids, joined[1], joined[2],
                                       X if self.store_vectors else None)

    def add(self, X, ids=None) -> "Index":
        """Encode X and append it to the lists; ids default to 0, 1, 2, ... in insertion order."""
        new = self.encode_lists(X, ids)
        self.lists = new if self.lists.ntotal == 0 else self.lists.merge(new)  # the first add: no copy
        return self

    def with_lists(self, lists: InvertedLists) -> "Index":
        """A view of the same trained model over other lists. The coarse index is built here, on
        the model, so that every view shares it and its probes instead of building its own."""
        if self.nlist > 1 and self.centroids_ is not None:
            self._coarse_for(self.centroids_)
        other = copy.copy(self)
        other.lists = lists
        return other

    # --- search ----------------------------------------------------------------------------
    def plan(self, Q, k: int = 10, *, nprobe: int | None = None, rerank: int | None = None,
             params: str | dict | None = None, owner: str = "Index.search", probes=None) -> SearchPlan:
        """Validate a search once (queries, k, nprobe, rerank, codec knobs) and freeze it; see
        `search` for the parameters. Scans of several lists with one plan (a collection's segments:
        ``scan(plan, lists)``) share its per-query work: probing, SAQ's rotation and bounds.
        ``probes`` (nq, nprobe), the lists `probed` found, replace the plan's own probe."""
        return make_plan(Q, k, dim=self.dim, metric=self.metric, nlist=self.nlist, codec=self.codec,
                         owner=owner, nprobe=nprobe, rerank=rerank, params=params, probes=probes,
                         default_rerank=DEFAULT_RERANK if self.spec.rerank else 0,
                         store_vectors=self.store_vectors)

    def scan(self, plan: SearchPlan, lists: InvertedLists | None = None, live: np.ndarray = ALL_ROWS,
             keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(raw scores (nq, k) ascending, row positions (nq, k); -1 where none) of the plan over
        ``lists`` (a collection's segment; default this index's own), returning only rows in
        the ``live`` bitset (`kernels.driver`). ``keep`` (a bool per list) names the lists that
        hold such rows: then the nprobe nearest of those are read (`ivf.Probe`). The codecs'
        searches leave the check that the model is trained to this call."""
        self._check_trained("search")
        lists = self.lists if lists is None else lists  # one snapshot for the whole call
        probe = self.probe(plan.nprobe, keep)
        serial = plan.nq <= self.codec.serial_queries and not plan.rerank
        with _SERIAL if serial else at_most(plan.nq):
            scores, rows = self.codec.search(plan, self.centroids_, lists, probe,
                                             plan.k * max(plan.rerank, 1), live)
            if plan.rerank:
                alpha = np.float32(-2.0 if self.codec_metric == "l2" else -1.0)
                scores, rows = rerank_exact(plan.queries, rows, readonly(lists.vectors), alpha, plan.k)
        return scores, rows  # k columns: what `Codec.search` and `rerank_exact` return

    def probe(self, nprobe: int, keep: np.ndarray | None = None) -> Probe:
        """The `Probe` of the nprobe nearest lists, or with ``keep`` of the nprobe nearest kept ones."""
        if keep is None:
            return self._probe(nprobe)
        # the nprobe nearest kept lists are expected among the nprobe / (kept fraction)
        # nearest of all; twice that leaves room for the spread between queries
        wide = min(self.nlist, -(-2 * nprobe * self.nlist // max(int(keep.sum()), 1)))
        return replace(self._probe(wide), keep=keep, budget=nprobe)

    def probed(self, plan: SearchPlan) -> np.ndarray:
        """The lists (nq, nprobe) an unfiltered scan of ``plan`` reads, found as the codec finds
        them: probed once by a sharded collection's router and given to every shard's plan."""
        return self.codec.probed(plan, self.centroids_, self.probe(plan.nprobe))

    def _probe(self, n: int) -> Probe:
        """The `Probe` of n lists over this model's centroids, made once per n and model."""
        hit = self._probes.get(n)
        if hit is None:
            hit = self._probes[n] = Probe(readonly(self.centroids_), self.codec_metric, n,
                                          None if self.nlist == 1 else self._coarse_for(self.centroids_))
        return hit

    def search(self, Q, k: int = 10, *, nprobe: int | None = None, rerank: int | None = None,
               params: str | dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(distances (nq, k) float32, ids (nq, k) int64), best first.

        ``nprobe`` lists are scanned per query (default 1). ``rerank=R`` re-scores the best k*R
        candidates exactly from kept vectors (0 turns it off). Codec-specific knobs (SAQ's ``m``)
        go in ``params``, as a dict or "nprobe=16,m=4".
        """
        self._check_trained("search")  # untrained comes first, before any complaint about the queries
        if rerank is None and params is None:
            found = self.search_one(Q, k, nprobe)
            if found is not None:
                return found[:2]
        plan = self.plan(Q, k, nprobe=nprobe, rerank=rerank, params=params)
        lists = self.lists
        return plan.answers(*self.scan(plan, lists), readonly(lists.ids))

    def search_one(self, Q, k: int = 10, nprobe: int | None = None, *, lists: InvertedLists | None = None,
                   live: np.ndarray = ALL_ROWS, owner: str = "Index.search") -> tuple[np.ndarray, ...] | None:
        """`search`'s answers to one query with the default knobs in one kernel call, and the row
        positions in ``lists`` they came from: (distances, ids, rows), over ``lists``
        (default this index's own) less the rows outside ``live`` (a collection's part): the plan,
        its cache and the answers cost a single query ~25 us of Python with the caches cold from
        its scan. None where this does not apply, and the plan path runs instead: Q not a float
        array of shape (dim,) or (1, dim), a codec without `Codec.search_one`, a ",Rerank" spec,
        or a query not finite or (cosine) zero, which the plan path then refuses by name."""
        one = self._one_query(Q, k, nprobe, owner)
        if one is None:
            return None
        Q, k, nprobe = one
        search = self.codec.search_one(self.centroids_, self.lists if lists is None else lists,
                                       self._probe(nprobe), k)
        if search is None:
            return None
        distances, ids, rows, bad = search(Q, live)
        return None if bad >= 0 else (distances, ids, rows)

    def search_parts(self, Q, k: int, nprobe: int | None, parts: list[tuple[InvertedLists, np.ndarray]], *,
                     owner: str = "Index.search") -> tuple[np.ndarray, ...] | None:
        """`search_one` over several (lists, live bitset) (a collection's segments), the query
        checked, rotated and probed once (`Codec.search_one_parts`) and the hits merged:
        (distances, ids, rows, part), part indexing ``parts``. On two fashion-mnist SAQ4
        segments a single query took 160-166 us this way against 182-190 through the plan. None
        where this does not apply, as for `search_one`."""
        one = self._one_query(Q, k, nprobe, owner)
        if one is None:
            return None
        Q, k, nprobe = one
        found = self.codec.search_one_parts(self.centroids_, [lists for lists, _ in parts], self._probe(nprobe), k,
                                            Q, [live for _, live in parts])
        if found is None:
            return None
        return merged_answers(found, [readonly(lists.ids) for lists, _ in parts], k, self.metric == "l2")

    def _one_query(self, Q, k, nprobe, owner) -> tuple[np.ndarray, int, int] | None:
        """(Q as the one-call kernels take it: writable C float32 (1, dim), k, nprobe) checked,
        or None where a single query with the default knobs cannot take one call (see
        `search_one`)."""
        if type(Q) is not np.ndarray or Q.dtype.kind != "f" or Q.shape not in ((1, self.dim), (self.dim,)) \
                or self.spec.rerank:
            return None
        if not (Q.dtype == np.float32 and Q.ndim == 2 and Q.flags.c_contiguous and Q.flags.writeable):
            Q = np.array(Q, np.float32, order="C", ndmin=2)  # the one type the kernel is compiled for
        k = check_int(k, "k", owner)
        nprobe = check_int(1 if nprobe is None else nprobe, "nprobe", owner, 1, self.nlist)
        return Q, k, nprobe

    # --- persistence -----------------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The trained model as (JSON-able metadata, arrays); lists are stored separately."""
        self._check_trained("save the model")
        codec_meta, codec_arrays = self.codec.state()
        meta = {"dim": self.dim, "spec": str(self.spec), "metric": self.metric,
                "store_vectors": self.store_vectors, "seed": self.seed, "codec": codec_meta}
        arrays = {"centroids": self.centroids_, **{f"codec.{k}": v for k, v in codec_arrays.items()}}
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray],
                   lists: InvertedLists | None = None) -> "Index":
        # models written before "store_vectors" became the one name say "keep_vectors"
        stored = meta.get("store_vectors", meta.get("keep_vectors"))
        index = cls(meta["dim"], meta["spec"], meta["metric"], store_vectors=stored, seed=meta["seed"])
        index.centroids_ = arrays["centroids"]
        index.codec.load_state(meta["codec"], {k[6:]: v for k, v in arrays.items() if k.startswith("codec.")})
        # the lists made before the codec was loaded have its untrained row sizes
        index.lists = lists if lists is not None else InvertedLists.empty(
            index.nlist, index.codec.code_size, index.codec.n_factors, index.dim if index.store_vectors else None)
        return index
