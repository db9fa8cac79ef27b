"""A search, validated once at the boundary and passed down frozen.

`Index.plan` (and through it `Collection.search`) checks the queries, k, nprobe, rerank and the
codec's parameters and builds a `SearchPlan`; nothing below re-validates. Scans return raw
scores, "smaller is better" (squared L2 distance, or the negated inner product), which merge
across segments as they are; `SearchPlan.report` turns them into reported distances once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np

from .errors import InvalidParameterError
from .kernels.config import readonly
from .kernels.driver import answers, reported
from .validation import check_int, metric_vectors


@dataclass(eq=False)
class QueryCache:
    """Work that depends only on the plan's queries (probed lists, a codec's rotated queries and
    bounds), done once per search and shared by every segment scanned with the plan."""

    entries: dict = field(default_factory=dict)

    def get(self, key, make: Callable[[], Any]):
        if key not in self.entries:
            self.entries[key] = make()
        return self.entries[key]


class SearchPlan(NamedTuple):
    """What one search asks for, checked: queries (nq, dim) float32, finite, unit rows for
    cosine; k, nprobe and rerank in range; the codec's parameters with defaults filled in.
    Immutable: a named tuple, the cheapest frozen record to build once per search."""

    queries: np.ndarray  # read-only
    metric: str
    k: int
    nprobe: int
    rerank: int
    params: Mapping[str, Any]
    cache: QueryCache
    #: (nq, nprobe) int64 lists probed once elsewhere (a sharded collection's router), a copy
    probes: np.ndarray | None = None

    @property
    def nq(self) -> int:
        return len(self.queries)

    def given(self, probe) -> np.ndarray | None:
        """The plan's ``probes`` when they answer ``probe`` (as many lists, no filter's mask),
        else None: then the scan probes itself."""
        if self.probes is not None and probe.keep is None and probe.n == self.probes.shape[1]:
            return self.probes
        return None

    def lists(self, probe) -> np.ndarray:
        """The lists ``probe`` (an `ivf.Probe`) names for the queries, found once per search
        (the given ``probes`` when they answer it)."""
        given = self.given(probe)
        if given is not None:
            return given
        return self.cache.get(("lists", probe.key), lambda: probe(self.queries))

    def report(self, scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Reported distances from raw scores: Euclidean distance (l2), or the inner product /
        cosine similarity; +inf / -inf where ``rows`` is -1 (no result)."""
        return reported(scores, rows, self.metric == "l2")

    def answers(self, scores: np.ndarray, rows: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(reported distances, ids (int64, -1 where none)) of one part's raw scores and rows,
        ``ids`` its id per row position: in one call (`kernels.driver.answers`)."""
        return answers(scores, rows, ids, self.metric == "l2")


def parse_params(params: str | dict | None) -> dict[str, Any]:
    """Search parameters as a dict; also accepts faiss's "nprobe=16,rerank=4" string form."""
    if params is None:
        return {}
    if isinstance(params, dict):
        return dict(params)
    out = {}
    for item in str(params).split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise InvalidParameterError(f"Search parameter {item!r} is not of the form name=value.")
        try:
            out[name.strip()] = int(value)
        except ValueError:
            try:
                out[name.strip()] = float(value)
            except ValueError:
                raise InvalidParameterError(f"Search parameter {item!r} needs a number.") from None
    return out


def make_plan(Q, k, *, dim: int, metric: str, nlist: int, codec, owner: str, nprobe=None, rerank=None,
              default_rerank: int = 0, store_vectors: bool = True, params=None, probes=None) -> SearchPlan:
    """Validate a search against an index's shape and codec (``codec.search_params``) and freeze
    it. Keyword arguments win over the same names in ``params``; nprobe defaults to the width of
    ``probes`` when they are given (`check_probes`)."""
    opts = parse_params(params)
    given = 1 if probes is None or np.ndim(probes) != 2 else np.shape(probes)[1]
    params_nprobe, params_rerank = opts.pop("nprobe", given), opts.pop("rerank", default_rerank)
    nprobe = params_nprobe if nprobe is None else nprobe
    rerank = params_rerank if rerank is None else rerank
    k = check_int(k, "k", owner)
    nprobe = check_int(nprobe, "nprobe", owner, 1, nlist)
    rerank = check_int(rerank, "rerank", owner, 0)
    unknown = opts.keys() - codec.search_params.keys() if opts else ()
    if unknown:
        raise InvalidParameterError(
            f"Unknown search parameter(s) {sorted(unknown)} for {codec.spec}; known: "
            f"{['nprobe', 'rerank', *codec.search_params]}."
        )
    if rerank and not store_vectors:
        raise InvalidParameterError(
            "rerank needs the raw vectors: build the index with store_vectors=True or a ',Rerank' spec."
        )
    X = metric_vectors(Q, dim, metric, name="queries")
    if probes is not None:
        probes = check_probes(probes, len(X), nprobe, nlist, owner)
    return SearchPlan(readonly(X), metric, k, nprobe, rerank, codec.check_params(opts),
                      QueryCache(), probes)


def check_probes(probes, nq: int, nprobe: int, nlist: int, owner: str) -> np.ndarray:
    """Lists probed elsewhere, checked: integers, shape (nq, nprobe), each in [0, nlist); as
    a writable int64 copy, the type of the scans' own probes: read-only ones (a Ray shard's) were
    another specialisation of every scan kernel, compiled by the first query (112 s cold)."""
    arr = np.asarray(probes)
    if arr.dtype.kind not in "iu":
        raise InvalidParameterError(f"{owner}: probes must be integer list numbers; got dtype {arr.dtype}.")
    if arr.shape != (nq, nprobe):
        raise InvalidParameterError(
            f"{owner}: probes must have shape (queries, nprobe) = ({nq}, {nprobe}); got {arr.shape}.")
    if arr.size and (arr.min() < 0 or arr.max() >= nlist):
        raise InvalidParameterError(
            f"{owner}: probes must be list numbers in [0, {nlist}); got {arr.min()} to {arr.max()}.")
    return np.array(arr, np.int64, order="C")
