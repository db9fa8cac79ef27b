"""The protocol every codec follows, so the Index, storage and benchmarks treat them alike.

A codec turns vectors (already assigned to IVF lists) into fixed-size rows of ``codes`` (uint8)
and ``factors`` (float32), and scans those rows for a batch of queries in one numba call.
Scores returned by ``search`` are "smaller is better": squared L2 for ``l2`` and the negated
inner product for ``ip`` and ``cosine``. A codec gets the index's metric: ``cosine`` is inner
product on unit vectors, which SAQ uses (its L2 estimate is the more accurate, docs/algorithms.md
§9); the others treat it as ``ip``.
"""

from __future__ import annotations

import functools
import re
import weakref
from collections.abc import Callable, Hashable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from ..errors import InvalidParameterError, InvalidSpecError, NotTrainedError
from ..kernels.config import readonly
from ..kernels.finite import query_rows


class Codec:
    """Base class: hyperparameters stored unchanged in ``__init__``, learned state in ``fit``."""

    #: spec transforms the codec accepts, by prefix (PQ: ("OPQ",)); others are refused
    transforms: ClassVar[tuple[str, ...]] = ()
    #: search-time parameters: name -> (type, low, high, default); checked by ``check_params``
    search_params: ClassVar[dict[str, tuple]] = {}
    #: a search of at most this many queries runs on the calling thread alone, so the Index has no
    #: numba thread team to cap around it (`threads.at_most`, 2-3 us per call)
    serial_queries: ClassVar[int] = 0

    def __init__(self, dim: int, metric: str, *, seed: int = 0):
        self.dim = dim
        self.metric = metric
        self.seed = seed
        self._cache = {}

    # --- construction from a spec string -------------------------------------------------
    @classmethod
    def from_spec(cls, match: re.Match, dim: int, metric: str, *, transform: str | None = None,
                  seed: int = 0) -> "Codec":
        """The codec a spec's codec part names; a transform (``OPQ{M}``) only where accepted."""
        if transform is not None and not transform.startswith(cls.transforms):
            raise InvalidSpecError(f"The {match.group(0)} codec does not support the {transform} transform.")
        return cls._from_match(match, dim, metric, transform=transform, seed=seed)

    @classmethod
    def _from_match(cls, match: re.Match, dim: int, metric: str, *, transform: str | None,
                    seed: int) -> "Codec":
        """Build from the codec's own spec parameters (the regex groups of its registry entry)."""
        return cls(dim, metric, seed=seed)

    @property
    def spec(self) -> str:
        """The codec part of the spec string, e.g. ``"SAQ4"`` (round-trips through ``from_spec``)."""
        raise NotImplementedError

    # --- sizes -----------------------------------------------------------------------------
    @property
    def code_size(self) -> int:
        """Bytes of ``codes`` per vector."""
        raise NotImplementedError

    @property
    def n_factors(self) -> int:
        """float32 ``factors`` per vector."""
        return 0

    @property
    def bytes_per_vector(self) -> float:
        """Codes plus per-vector factors, ids excluded (what faiss calls code size)."""
        return self.code_size + 4 * self.n_factors

    # --- training and encoding -------------------------------------------------------------
    @property
    def is_trained(self) -> bool:
        return True

    def _check_trained(self, action: str) -> None:
        """The one not-trained refusal of every codec, from ``is_trained``; shaped like the Index's."""
        if not self.is_trained:
            raise NotTrainedError(f"Cannot {action} before the {self.spec} codec is trained: call fit first.")

    def fit(self, X: np.ndarray, centroids: np.ndarray, nearest: Callable[[np.ndarray], np.ndarray]) -> "Codec":
        """Learn the codec from training vectors X. ``nearest`` gives rows' lists among
        ``centroids``; a codec that trains on residuals calls it on the rows it reads (PQ: its
        sample alone), so the Index searches no lists that would be thrown away."""
        return self

    def encode(self, X: np.ndarray, centroids: np.ndarray, assign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(codes (n, code_size) uint8, factors (n, n_factors) float32)."""
        raise NotImplementedError

    def assign_encode(self, X: np.ndarray, centroids: np.ndarray,
                      nearest: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(list, codes, factors) of new rows: each row's list from ``nearest`` (the coarse
        quantizer), then `encode`. A codec that rotates the rows anyway may find them itself."""
        assign = nearest(X)
        return (assign, *self.encode(X, centroids, assign))

    def decode(self, codes: np.ndarray, factors: np.ndarray, centroids: np.ndarray,
               assign: np.ndarray) -> np.ndarray:
        """Approximate vectors (n, dim) float32 from their codes."""
        raise NotImplementedError

    # --- search ----------------------------------------------------------------------------
    def search(self, plan, centroids: np.ndarray, lists, probe, k: int,
               live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(raw scores (nq, k) float32 ascending, row positions (nq, k) int64; -1 where none) of
        a `plan.SearchPlan`'s queries over the lists ``plan.lists(probe)`` names (an `ivf.Probe`),
        returning only rows in the ``live`` bitset (`kernels.driver`). Per-query work goes in
        ``plan.cache``, so the segments of a collection share it."""
        raise NotImplementedError

    def search_one(self, centroids: np.ndarray, lists, probe, k: int) -> Callable | None:
        """A function answering one query over ``lists`` as `Index.search` does, in one kernel
        call: (writable C float32 (1, dim), ``live`` row bitset) -> (distances, ids, row positions,
        bad), bad >= 0 where the query is not finite or (cosine) zero and nothing was searched. Made once per
        lists, probe and k; None where the codec has none, and every single query takes the plan
        path."""
        return None

    def search_one_parts(self, centroids: np.ndarray, lists: list, probe, k: int, Q: np.ndarray,
                         live: list) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """One query (writable C float32 (1, dim)) over several lists, each less the rows outside
        its ``live`` bitset (a collection's segments), with the work that depends on the query
        alone done once: each lists' (raw scores, row positions), as `search` returns them. None
        where the codec has no such path, or the query is not finite or (cosine) zero: then the
        plan path runs, and refuses such a query by name."""
        return None

    def _query_rows(self, probe, Q: np.ndarray) -> np.ndarray | None:
        """`search_one_parts`' query checked and normalised for cosine (`finite.query_rows`),
        read-only as a plan's queries (the kernels' specialisations the plan path compiled); None
        for a filter's probe, or a query the plan path must refuse."""
        if probe.keep is not None:
            return None
        X, bad = query_rows(Q, self.metric == "cosine")
        return None if bad >= 0 else readonly(X)

    def probed(self, plan, centroids: np.ndarray, probe) -> np.ndarray:
        """The lists ``probe`` names for the plan's queries (nq, n), as `search` reads them: a
        codec that finds them faster in its own basis says so here (SAQ)."""
        return plan.lists(probe)

    def warmup(self) -> None:
        """Compile this codec's kernels now, so the first query pays nothing.

        Encodes a few random vectors into two lists, probes them and searches them with one
        query, two (both probed in numba) and all (a batch), with and without a row bitset, each
        plan twice (the second search finds the plan's cached work, as a collection's next segment
        does): the same array types as real data, so the cached specialisations are the ones
        queries use.
        """
        from ..ivf import InvertedLists, Probe
        from ..kernels.driver import ALL_ROWS
        from ..linalg import SMALL_ROWS
        from ..plan import QueryCache, SearchPlan

        X = np.random.default_rng(0).standard_normal((SMALL_ROWS + 1, self.dim)).astype(np.float32)
        centroids = np.zeros((2, self.dim), np.float32)
        assign = np.arange(len(X)) % 2
        codes, factors = self.encode(X, centroids, assign)
        lists = InvertedLists.from_rows(2, assign, np.arange(len(X)), codes, factors)
        probe = Probe(readonly(centroids), self.metric, 1)
        for Q in (X[:1], X[:2], X):
            for live in (ALL_ROWS, np.ones(2, np.uint8)):
                plan = SearchPlan(readonly(Q), self.metric, 1, 1, 0, self.check_params({}), QueryCache())
                # the lists alone, as a filtered scan of raw vectors asks (a plan of their own)
                self.probed(plan._replace(cache=QueryCache()), centroids, probe)
                for _ in range(2):
                    scores, rows = self.search(plan, centroids, lists, probe, 1, live)
            plan.answers(scores, rows, readonly(lists.ids))  # what every search ends with
        search_one = self.search_one(centroids, lists, probe, 1)
        if search_one is not None:  # any row bitset is the type of ALL_ROWS: one specialisation
            search_one(X[:1], ALL_ROWS)
        self._cache = {}  # drop what was derived from the warm-up's lists

    def _cached(self, key: Hashable, obj, make):
        """A value derived from `obj` (centroids or lists), kept while obj lives: one entry per
        object, so segments scanned through one model (``Index.scan(plan, lists)``) each keep theirs."""
        hit = self._cache.get((key, id(obj)))
        if hit is not None and hit[0]() is obj:
            return hit[1]
        self._cache = {k: v for k, v in self._cache.items() if v[0]() is not None}
        value = make()
        self._cache[(key, id(obj))] = (weakref.ref(obj), value)
        return value

    @functools.cached_property
    def _default_params(self) -> Mapping[str, Any]:
        """The search parameters at their defaults, made once per codec (every search without
        knobs reads them; per codec, since LVQ's depend on its levels)."""
        return MappingProxyType({name: spec[3] for name, spec in self.search_params.items()})

    def __getstate__(self) -> dict[str, Any]:
        """What a copy or a pickle carries: the model, without what is derived from it (the
        read-only defaults cannot be copied; `_cached` entries belong to other objects)."""
        state = self.__dict__.copy()
        state.pop("_default_params", None)
        state["_cache"] = {}
        return state

    def check_params(self, params: dict[str, Any]) -> Mapping[str, Any]:
        """Fill defaults and validate codec-specific search parameters, read-only; unknown names raise."""
        if not params:  # valid by construction
            return self._default_params
        out = {}
        for name, (typ, lo, hi, default) in self.search_params.items():
            value = params.get(name, default)
            if not isinstance(value, typ) or isinstance(value, bool) or not lo <= value <= hi:
                raise InvalidParameterError(
                    f"The {name!r} search parameter of {self.spec} must be a {typ.__name__} in "
                    f"[{lo}, {hi}]. Got {value!r}."
                )
            out[name] = value
        return MappingProxyType(out)

    # --- persistence: plain arrays and JSON, no pickles ------------------------------------
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able metadata, named arrays) holding everything ``fit`` learned."""
        return {}, {}

    def load_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> "Codec":
        """Restore what ``state`` returned (arrays may be read-only memory maps)."""
        return self
