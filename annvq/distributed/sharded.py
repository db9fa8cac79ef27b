"""ShardedCollection: one model, N shards as Ray actors, writes routed by id, scatter-gather reads.

    >>> annvq.distributed.connect("local")                   # or a Ray address
    >>> sc = ShardedCollection.create("db/big", model, shards=4)   # model: a trained Index
    >>> sc.upsert(ids, X); sc.persist()
    >>> hits = sc.query(Q, k=10, nprobe=16)                   # hits.coverage.complete

The router (this object, in the driver process) holds the shared model to validate every search
once, routes each id to one shard (`routing.shard_of`), and merges the shards' best k by score.
A shard that does not answer a read within ``timeout`` seconds leaves the answer partial, and
``hits.coverage`` names it. Writes are checked whole here before any shard sees them and wait
for every shard without that limit; a shard failing mid-write (its process or node dying) can
leave the other shards' part applied.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np

from .. import payload_index
from ..errors import (AnnvqError, InvalidParameterError, ReadOnlyError, ShardUnavailableError,
                      UnsupportedOperationError)
from ..filters import parse_filter
from ..index import Index
from ..segments import encode_payloads
from ..storage.lock import WriterLock
from ..validation import check_ids, check_int, metric_vectors
from . import cluster, routing
from .shard import Shard

log = logging.getLogger(__name__)

#: seconds a search waits for the shards before answering without the missing ones
DEFAULT_TIMEOUT = 30.0
#: seconds the shards have to open their collections (Ray may first have to start worker processes)
START_TIMEOUT = 300.0
#: queries larger than this go to the object store once (Ray sends smaller arguments inline)
INLINE_BYTES = 100 * 1024
#: Ray restarts a dead shard this many times (then calls to it fail with ShardUnavailableError)
MAX_RESTARTS = 20
#: Ray retries a call that a shard's death interrupted; every shard call is idempotent
MAX_TASK_RETRIES = 3


def connect(address: str = "local", **init_options) -> None:
    """Start Ray (``"local"``: a Ray on this machine) or join the cluster at ``address``; a
    no-op when Ray is already initialised in this process."""
    import ray

    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address, **init_options)


def _ray():
    import ray

    if not ray.is_initialized():
        raise InvalidParameterError("Ray is not initialised: call annvq.distributed.connect() first.")
    return ray


@dataclass(frozen=True)
class Coverage:
    """Which shards an answer covers: ``missing`` ({shard: why}) did not answer in time."""

    shards: int
    missing: dict[int, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.missing

    def public(self) -> dict:
        return {"shards": self.shards, "answered": self.shards - len(self.missing),
                "missing": sorted(self.missing), "complete": self.complete,
                "reasons": {str(s): why for s, why in sorted(self.missing.items())}}


@dataclass(eq=False)
class ShardedHits:
    """A merged answer: distances and ids (nq, k) best first (-1 / +-inf padding), the nprobe
    each query read (the most any shard used), the shards' strategies and the ``coverage``.
    Payloads and vectors are fetched from the owning shards on first use, one call per shard."""

    distances: np.ndarray
    ids: np.ndarray
    nprobe: np.ndarray
    strategy: str
    coverage: Coverage
    _source: "ShardedCollection"
    _fetched: dict = field(default_factory=dict)  # with vectors (bool) -> {id: Point}

    @property
    def found(self) -> np.ndarray:
        return (self.ids >= 0).sum(axis=1)

    def _hits(self, qi: int, with_vectors: bool) -> list:
        """The Points of query qi's hits (None where one is gone), all queries' fetched at once."""
        if with_vectors not in self._fetched:
            wanted = np.unique(self.ids[self.ids >= 0])
            self._fetched[with_vectors] = {p.id: p for p in self._source.get(
                wanted, with_vectors=with_vectors, with_payloads=not with_vectors)}
        points = self._fetched[with_vectors]
        return [points.get(i) for i in self.ids[qi][self.ids[qi] >= 0].tolist()]

    def payloads(self, qi: int) -> list[dict | None]:
        """The payload of each of query qi's hits (None where a point has none or is gone)."""
        return [getattr(p, "payload", None) for p in self._hits(qi, False)]

    def vectors(self, qi: int) -> list[np.ndarray | None]:
        """The stored vector of each of query qi's hits (None where none is kept)."""
        return [getattr(p, "vector", None) for p in self._hits(qi, True)]


def merge(answers: list[tuple[np.ndarray, np.ndarray]], k: int, descending: bool) -> tuple[np.ndarray, np.ndarray]:
    """The best k of every row over the shards' (distances, ids) (nq, k_s), best first:
    argpartition to the k best, then a sort of those k; padding (-1) sorts last."""
    D = np.concatenate([d for d, _ in answers], axis=1)
    ids = np.concatenate([i for _, i in answers], axis=1)
    key = np.where(ids < 0, np.inf, -D if descending else D)
    if key.shape[1] > k:
        best = np.argpartition(key, k - 1, axis=1)[:, :k]
        key = np.take_along_axis(key, best, 1)
        D, ids = np.take_along_axis(D, best, 1), np.take_along_axis(ids, best, 1)
    order = np.argsort(key, axis=1, kind="stable")
    return np.take_along_axis(D, order, 1), np.take_along_axis(ids, order, 1)


class ShardedCollection:
    """A collection split over Ray actors by id; the methods mirror `Collection`'s."""

    def __init__(self, path: str, body: dict, model: Index, shards: list, model_ref, *, read_only: bool,
                 lock: WriterLock | None, timeout: float | None):
        self.path = path
        self._body = body
        self.model = model
        self._shards = shards
        # Ray re-runs a restarted shard's constructor with this object: it must outlive every shard
        self._model_ref = model_ref
        self.read_only = read_only
        self._lock = lock
        self.timeout = timeout

    # --- life cycle ----------------------------------------------------------------------
    @classmethod
    def create(cls, path, model: Index, *, shards: int, payload_indexes: dict | None = None,
               timeout: float | None = DEFAULT_TIMEOUT, shard_cpus: float | None = None,
               threads: int | None = None) -> "ShardedCollection":
        """A new cluster at ``path`` sharing the trained ``model``: the cluster manifest, then
        one empty collection per shard (each adopts the model). ``shard_cpus`` is the CPUs Ray
        holds for each shard actor while it lives (None: Ray's default for actors, one CPU to
        place it and none held after); ``threads`` caps each shard's kernel threads."""
        path = os.path.abspath(os.fspath(path))
        shards = check_int(shards, "shards", "ShardedCollection.create")
        if not model.is_trained:
            raise InvalidParameterError("ShardedCollection.create needs a trained model (Index.train).")
        config = {"dim": model.dim, "metric": model.metric, "spec": str(model.spec),
                  "store_vectors": model.store_vectors, "seed": model.seed,
                  "payload_indexes": payload_index.check_schema(payload_indexes)}
        body = cluster.create(path, config, shards, model)
        return cls._start(path, body, model, read_only=False, timeout=timeout, shard_cpus=shard_cpus,
                          threads=threads)

    @classmethod
    def open(cls, path, *, read_only: bool = False, timeout: float | None = DEFAULT_TIMEOUT,
             shard_cpus: float | None = None, threads: int | None = None) -> "ShardedCollection":
        """Open the cluster at ``path``: one actor per shard reopens its collection. A search
        waits ``timeout`` seconds for the shards; `warmup` first, or the shards' first search may
        spend it compiling."""
        path = os.path.abspath(os.fspath(path))
        body = cluster.load(path)
        return cls._start(path, body, cluster.read_model(path, body), read_only=read_only, timeout=timeout,
                          shard_cpus=shard_cpus, threads=threads)

    @classmethod
    def _start(cls, path: str, body: dict, model: Index, *, read_only: bool, timeout: float | None,
               shard_cpus: float | None, threads: int | None) -> "ShardedCollection":
        ray = _ray()
        if timeout is not None and not timeout > 0:
            raise InvalidParameterError(f"timeout must be > 0 seconds (or None: no limit); got {timeout!r}.")
        lock = None if read_only else WriterLock(cluster.manifest_dir(path))
        shards = []
        try:
            model_ref = ray.put(model.state())
            cpus = {} if shard_cpus is None else {"num_cpus": shard_cpus}
            actor = ray.remote(Shard).options(max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES, **cpus)
            shards = [actor.remote(os.path.join(path, name), dict(body["collection"]), model_ref,
                                   read_only=read_only, threads=threads) for name in body["shards"]]
            ready, _ = ray.wait([s.count.remote() for s in shards], num_returns=len(shards), timeout=START_TIMEOUT)
            ray.get(ready)  # a shard that failed to open raises here
            if len(ready) < len(shards):
                raise ShardUnavailableError(
                    f"{len(shards) - len(ready)} of the {len(shards)} shards of {path} did not start in "
                    f"{START_TIMEOUT:g} s; Ray has {ray.available_resources()} free (shard_cpus={shard_cpus}).")
        except BaseException:
            for s in shards:
                ray.kill(s, no_restart=True)
            if lock is not None:
                lock.release()
            raise
        return cls(path, body, model, shards, model_ref, read_only=read_only, lock=lock, timeout=timeout)

    def close(self) -> None:
        """Close every shard's collection (unpersisted writes are dropped, as `Collection.close`
        does) and end the actors. A shard still busy after ``timeout`` seconds is ended anyway
        and logged: closing never hides the error a ``with`` block is leaving with."""
        ray = _ray()
        if self._shards:
            try:
                _, missing = self._gather([(i, s.close.remote()) for i, s in enumerate(self._shards)], self.timeout)
                self._log_missing("close", missing)  # its actor is ended below all the same
            finally:
                for s in self._shards:
                    ray.kill(s, no_restart=True)
                self._shards = []
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "ShardedCollection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"ShardedCollection({self.path!r}, shards={self.shards}, dim={self.dim}, spec={self.spec!r}, "
                f"metric={self.metric!r})")

    # --- description -----------------------------------------------------------------------
    dim = property(lambda self: self.model.dim)
    metric = property(lambda self: self.model.metric)
    spec = property(lambda self: str(self.model.spec))
    store_vectors = property(lambda self: self.model.store_vectors)
    nlist = property(lambda self: self.model.nlist)
    shards = property(lambda self: len(self._body["shards"]))
    #: the shard actors in shard order, for Ray-level operations (placement, killing a shard)
    actors = property(lambda self: list(self._shards))
    #: the shared model's `Index.state()` in Ray's object store, for tasks that encode with it
    model_ref = property(lambda self: self._model_ref)
    is_trained = True

    @property
    def payload_indexes(self) -> dict[str, str]:
        return dict(self._body["collection"]["payload_indexes"])

    @property
    def count(self) -> int:
        return sum(self._all("count"))

    def stats(self) -> dict:
        """`Collection.stats` summed over the shards, plus ``shards``; ``version`` is the cluster
        manifest's."""
        per_shard = self._all_call("stats")
        out = {key: sum(s[key] for s in per_shard)
               for key in ("count", "deleted", "segments", "buffered", "bytes_on_disk", "bytes_mapped")}
        return {**out, "format_version": self._body["format_version"], "version": self._body["version"],
                "spec": self.spec, "metric": self.metric, "dim": self.dim, "trained": True,
                "nlist": self.nlist, "shards": self.shards}

    # --- calls -----------------------------------------------------------------------------
    def _gather(self, refs: list, timeout: float | None) -> tuple[dict, dict[int, str]]:
        """The answers ({position: value}) of the calls ``refs`` ([(shard, ref)]) that came
        within ``timeout`` seconds (None: no limit), and why the others gave none ({shard: why}).
        An annvq error a shard raised is raised here as itself, without Ray's wrapping."""
        ray = _ray()
        _, pending = ray.wait([r for _, r in refs], num_returns=len(refs), timeout=timeout)
        pending = set(pending)
        answers, missing = {}, {}
        for i, (s, ref) in enumerate(refs):
            if ref in pending:
                missing[s] = f"no answer in {timeout:g} s"
                continue
            try:
                answers[i] = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                missing[s] = f"shard actor died: {exc}"
            except ray.exceptions.RayTaskError as exc:
                if isinstance(exc.cause, AnnvqError):
                    raise exc.cause from None
                raise
        return answers, missing

    def wait(self, refs: list, what: str, *, write: bool = False) -> list:
        """The answers of the shard calls ``refs`` ([(shard, ref)], from `send` or `send_all`)
        in order, or ShardUnavailableError naming the shards that gave none in time. A ``write``
        waits without the timeout: a shard cut off mid-write goes on writing, and the error
        would report as failed a write that then lands."""
        answers, missing = self._gather(refs, None if write else self.timeout)
        if missing:
            raise ShardUnavailableError(
                f"{what} on cluster {self.path}: shards {sorted(missing)} unavailable "
                f"({'; '.join(missing.values())}).")
        return [answers[i] for i in range(len(refs))]

    def send_all(self, method: str, *args, **kwargs) -> list:
        """Start `Collection.<method>` on every shard; returns [(shard, ref)] for `wait`."""
        return [(i, s.call.remote(method, *args, **kwargs)) for i, s in enumerate(self._shards)]

    def send(self, method: str, ids: np.ndarray, *columns, **kwargs) -> list:
        """Start `Collection.<method>` on every shard owning some of ``ids``, with those ids,
        its rows of each column (an array, a list or None) and ``kwargs``; returns [(shard, ref)]
        for `wait`. Calls from one process reach a shard in the order sent."""
        return [(s, self._shards[s].call.remote(method, ids[rows], *(c if c is None else _take(c, rows)
                                                                      for c in columns), **kwargs))
                for s, rows in enumerate(routing.split(ids, self.shards)) if len(rows)]

    def _all(self, method: str) -> list:
        return self.wait([(i, getattr(s, method).remote()) for i, s in enumerate(self._shards)], method)

    def _all_call(self, method: str, *args, write: bool = False, **kwargs) -> list:
        return self.wait(self.send_all(method, *args, **kwargs), method, write=write)

    def _routed(self, method: str, ids: np.ndarray, *columns, write: bool = False, **kwargs) -> list:
        return self.wait(self.send(method, ids, *columns, **kwargs), method, write=write)

    def _check_writable(self, what: str) -> None:
        if self.read_only:
            raise ReadOnlyError(f"Cluster {self.path} is open read-only; {what}() is refused.")

    # --- writes ----------------------------------------------------------------------------
    def upsert(self, ids, vectors, payloads=None) -> int:
        """Insert or replace points, each on the shard its id routes to. Everything is checked
        here first (vectors, ids, payloads and their indexed fields), so a bad row refuses the
        whole call before any shard changes."""
        self._check_writable("upsert")
        X = metric_vectors(vectors, self.dim, self.metric, name="vectors")
        ids = check_ids(ids, len(X))
        texts = encode_payloads(payloads, len(X))
        payload_index.columns(texts, ids, self.payload_indexes)  # a value of another kind is refused now
        self._routed("upsert", ids, X, None if payloads is None else list(payloads), write=True)
        return len(ids)

    def delete(self, ids) -> int:
        """Delete points by id; returns how many existed."""
        self._check_writable("delete")
        ids = np.unique(check_ids(ids, unique=False))
        return sum(self._routed("delete", ids, write=True))

    def persist(self, *, train: bool = True) -> None:
        """Persist every shard (``train`` is accepted for `Collection`'s signature: shards share
        a trained model, so there is nothing to train)."""
        self._check_writable("persist")
        self._all_call("persist", train=False, write=True)

    def compact(self) -> None:
        self._check_writable("compact")
        self._all_call("compact", write=True)

    def create_payload_index(self, field: str, kind: str) -> None:
        """Index payload ``field`` as ``kind`` on every shard, then record it in the manifest."""
        self._check_writable("create_payload_index")
        kind = payload_index.check_kind(field, kind)
        self._all_call("create_payload_index", field, kind, write=True)
        self._set_payload_indexes({**self.payload_indexes, field: kind})

    def drop_payload_index(self, field: str) -> None:
        self._check_writable("drop_payload_index")
        if field not in self.payload_indexes:
            raise InvalidParameterError(
                f"Payload field {field!r} is not indexed; indexed: {sorted(self.payload_indexes)}.")
        self._all_call("drop_payload_index", field, write=True)
        self._set_payload_indexes({f: k for f, k in self.payload_indexes.items() if f != field})

    def _set_payload_indexes(self, schema: dict) -> None:
        config = dict(self._body["collection"], payload_indexes=payload_index.check_schema(schema))
        self._body = cluster.update(self.path, self._body, collection=config)

    def train(self, sample=None, *, centroids=None) -> None:
        raise UnsupportedOperationError(
            f"Cluster {self.path} shares one model across its shards; retrain by building a new "
            "cluster (annvq build --ray) and switching to it.")

    def snapshot(self, dest_dir) -> dict:
        raise UnsupportedOperationError(
            f"Snapshots of a sharded cluster ({self.path}) are not supported; snapshot each "
            "shard directory with Collection.snapshot instead.")

    # --- reads -----------------------------------------------------------------------------
    def get(self, ids, *, with_vectors: bool = True, with_payloads: bool = True) -> list:
        """The points with these ids, in request order; missing ids are omitted."""
        ids = check_ids(ids, unique=False)
        found = {}
        for points in self._routed("get", np.unique(ids), with_vectors=with_vectors,
                                   with_payloads=with_payloads):
            found.update((p.id, p) for p in points)
        return [found[i] for i in ids.tolist() if i in found]

    def payloads(self, ids) -> list[dict | None]:
        found = {p.id: p.payload for p in self.get(ids, with_vectors=False)}
        return [found.get(i) for i in check_ids(ids, unique=False).tolist()]

    def count_matching(self, filter=None) -> int:
        parse_filter(filter, self.payload_indexes)
        return sum(self._all_call("count_matching", filter))

    def scroll(self, filter=None, *, limit: int = 100, cursor: int | None = None, with_vectors: bool = False,
               with_payloads: bool = True) -> tuple[list, int | None]:
        """`Collection.scroll` over every shard: each shard's first ``limit`` points from
        ``cursor`` merged in id order; the next cursor is the smallest id not yet returned."""
        parse_filter(filter, self.payload_indexes)
        limit = check_int(limit, "limit", "ShardedCollection.scroll")
        pages = self._all_call("scroll", filter, limit=limit, cursor=cursor, with_vectors=with_vectors,
                               with_payloads=with_payloads)
        points = sorted((p for page, _ in pages for p in page), key=lambda p: p.id)
        later = [c for _, c in pages if c is not None] + ([points[limit].id] if len(points) > limit else [])
        return points[:limit], min(later) if later else None

    def search(self, Q, k: int = 10, *, nprobe: int | None = None, rerank: int | None = None,
               exact: bool = False, params=None, filter=None, timeout: float | None = None):
        """(distances, ids) as `Collection.search`; see `query` (a partial answer is not flagged
        here: use query for its coverage)."""
        hits = self.query(Q, k, nprobe=nprobe, rerank=rerank, exact=exact, params=params, filter=filter,
                          timeout=timeout)
        return hits.distances, hits.ids

    def query(self, Q, k: int = 10, *, nprobe: int | None = None, rerank: int | None = None,
              exact: bool = False, params=None, filter=None, timeout: float | None = None) -> ShardedHits:
        """The k best points of every query over all shards. The queries, options and filter
        are validated once here, and an unfiltered IVF search probed once here against the
        shared centroids (`Index.probed`): every shard scans the lists it is sent, instead of
        probing again. The shards' k best are merged by score. Shards that give no answer within
        ``timeout`` (default: the collection's) are left out and named in ``coverage``; an error
        a shard raises is raised here."""
        plan = self.model.plan(Q, k, nprobe=nprobe, rerank=rerank, params=params, owner="ShardedCollection.query")
        parse_filter(filter, self.payload_indexes)
        # a filter's lists depend on each shard's rows (`Index.probe`'s keep): shards probe those
        probes = self.model.probed(plan) if filter is None and not exact and self.nlist > 1 else None
        options = {"nprobe": plan.nprobe, "rerank": rerank, "exact": exact, "params": params, "filter": filter,
                   "probes": _shared(probes)}
        Q = _shared(np.asarray(plan.queries))
        answers, missing = self._gather([(i, s.query.remote(Q, plan.k, **options)) for i, s in enumerate(self._shards)],
                                        self.timeout if timeout is None else timeout)
        coverage = Coverage(self.shards, missing)
        descending = self.metric != "l2"
        if not answers:
            shape = (plan.nq, plan.k)
            return ShardedHits(np.full(shape, -np.inf if descending else np.inf, np.float32),
                               np.full(shape, -1, np.int64), np.full(plan.nq, plan.nprobe), "none", coverage, self)
        answers = list(answers.values())
        D, ids = merge([(a[0], a[1]) for a in answers], plan.k, descending)
        strategies = dict.fromkeys(s for a in answers for s in a[3].split("+") if s != "none")
        return ShardedHits(D, ids, np.max([a[2] for a in answers], axis=0), "+".join(strategies) or "none",
                           coverage, self)

    # --- maintenance -----------------------------------------------------------------------
    def verify(self) -> list[str]:
        """Every shard's `Collection.verify`, each problem prefixed by its shard directory."""
        problems = self._all_call("verify")
        return [f"{name}: {p}" for name, found in zip(self._body["shards"], problems) for p in found]

    def warmup(self) -> None:
        """Every shard's `Collection.warmup`, waited for without the search timeout: on a cold
        numba cache the shards compile for minutes, and no query is waiting. A dead shard is
        logged, not raised: the cluster still serves, naming it in each answer's coverage."""
        _, missing = self._gather(self.send_all("warmup"), None)
        self._log_missing("warm up", missing)

    def _log_missing(self, what: str, missing: dict[int, str]) -> None:
        for shard, why in sorted(missing.items()):
            log.warning("cluster %s: shard %d did not %s (%s)", self.path, shard, what, why)


def _shared(arr: np.ndarray | None):
    """``arr``, or past INLINE_BYTES a reference to one copy of it in the object store, sent to
    every shard instead of a copy per call."""
    return _ray().put(arr) if arr is not None and arr.nbytes > INLINE_BYTES else arr


def _take(column, rows: np.ndarray):
    """The ``rows`` of an array or of a list."""
    if isinstance(column, np.ndarray):
        return column[rows]
    return [column[i] for i in rows.tolist()]


