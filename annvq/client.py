"""A Python client of the annvq HTTP service (``annvq serve``), mirroring `Collection`.

    import annvq
    with annvq.Client("http://127.0.0.1:8000") as client:
        col = client.create_collection("docs", dim=784, spec="IVF1024,SAQ4")
        col.upsert(ids, X, payloads)            # Arrow IPC body
        col.persist()
        D, I = col.search(Q, 10, nprobe=16)     # Arrow both ways

Bulk calls (upsert, search, query) send and receive Arrow IPC streams (service/arrow.py); the
others JSON. An error response raises the annvq exception of its ``code``
(``dimension_mismatch`` -> `DimensionMismatchError`, ``collection_not_found`` ->
`CollectionNotFoundError`, ``invalid_filter`` -> `InvalidFilterError`...), with the server's
message; every one of them is also a `ServiceError` carrying ``status``, ``code`` and
``details``, and a code without an annvq counterpart (``unauthorized``, ``invalid_arrow``,
``validation_error``...) raises a plain `ServiceError`.

httpx is imported when a `Client` is made, so ``import annvq`` does not load it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from . import errors as E
from .collection import Point

ARROW_STREAM = "application/vnd.apache.arrow.stream"


class ServiceError(E.AnnvqError):
    """An error answer of the service: ``status`` (HTTP), ``code`` (e.g. ``invalid_arrow``) and
    ``details`` as the server sent them. Errors with an annvq counterpart are raised as a class
    that derives from both (``except DimensionMismatchError`` and ``except ServiceError`` both
    catch a remote dimension mismatch)."""

    status: int | None = None
    code: str | None = None
    details: Any = None


#: the class of each code the service answers: the library's codes (the first class of a shared
#: code, so collection_not_found is CollectionNotFoundError), and the service's own refusals of
#: values in a body
_BY_CODE: dict[str, type[E.AnnvqError]] = {
    **{code: cls for cls, code in reversed(E.CODES.items())},
    "non_finite_value": E.InvalidVectorsError,
    "out_of_range": E.InvalidParameterError,
}
_REMOTE: dict[type, type[ServiceError]] = {}


def _remote_class(cls: type[E.AnnvqError]) -> type[ServiceError]:
    if cls not in _REMOTE:
        _REMOTE[cls] = type(cls.__name__, (cls, ServiceError), {"__module__": __name__, "__doc__": cls.__doc__})
    return _REMOTE[cls]


def error_from_response(status: int, body: Any, text: str = "") -> ServiceError:
    """The exception for an error answer: by the ``code`` of ``{"error": {code, message, details}}``."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        code, message, details = err.get("code"), err.get("message") or "", err.get("details")
    else:
        code, message, details = None, text[:500] or f"HTTP {status}", None
    cls = _remote_class(_BY_CODE[code]) if code in _BY_CODE else ServiceError
    exc = cls(message)
    exc.status, exc.code, exc.details = status, code, details
    return exc


@dataclass(frozen=True)
class RemoteHits:
    """A batch query's answer: ``distances`` and ``ids`` (nq, k) as `Collection.search` returns
    them (padding id -1), ``found`` and ``nprobe`` (nq,), ``strategy``, ``payloads[qi]`` (the found
    hits' payloads, None without ``with_payload``) and the server's ``took_ms``."""

    distances: np.ndarray
    ids: np.ndarray
    found: np.ndarray
    nprobe: np.ndarray
    strategy: str
    payloads: list[list[dict | None]] | None
    took_ms: float


def _arrow_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _vector_column(vectors, name: str) -> pa.FixedSizeListArray:
    X = np.ascontiguousarray(vectors, dtype=np.float32)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise E.InvalidVectorsError(f"{name} must be a non-empty 2-D array (n, dim); got shape {X.shape}.")
    return pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), X.shape[1])


def _fixed_list(column: pa.ChunkedArray, dtype) -> np.ndarray:
    arr = column.combine_chunks()
    return arr.flatten().to_numpy(zero_copy_only=False).astype(dtype, copy=False).reshape(len(arr), arr.type.list_size)


class Client:
    """One annvq server; keeps one `httpx.Client` (keep-alive). ``api_key`` is sent as the
    ``api-key`` header. Use as a context manager, or call `close`."""

    def __init__(self, url: str = "http://127.0.0.1:8000", *, api_key: str | None = None,
                 timeout: float | None = 120.0):
        import httpx  # here, so that `import annvq` does not load it

        headers = {"api-key": api_key} if api_key else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def request(self, method: str, path: str, **kwargs):
        """One request; an error answer raises (`error_from_response`). Returns the httpx.Response."""
        r = self._http.request(method, path, **kwargs)
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = None
            raise error_from_response(r.status_code, body, r.text)
        return r

    def _json(self, method: str, path: str, **kwargs):
        return self.request(method, path, **kwargs).json()

    # --- server ----------------------------------------------------------------------------
    def health(self) -> dict:
        return self._json("GET", "/healthz")

    def ready(self) -> bool:
        """Whether collections are open and kernels compiled (``/readyz`` 200)."""
        return self._http.get("/readyz").status_code == 200

    # --- collections -----------------------------------------------------------------------
    def collections(self) -> list[dict]:
        """Every collection's description (name, dim, metric, spec, count, stats...)."""
        return self._json("GET", "/v1/collections")["data"]

    def create_collection(self, name: str, dim: int, **options) -> "RemoteCollection":
        """Create `name` (options as `Collection.create` and ``PUT /v1/collections/{name}``:
        metric, spec, store_vectors, train_threshold, seed, payload_indexes)."""
        self._json("PUT", f"/v1/collections/{name}", json={"dim": dim, **options})
        return RemoteCollection(self, name)

    def collection(self, name: str) -> "RemoteCollection":
        """A handle on `name` (no request: an unknown name fails on first use)."""
        return RemoteCollection(self, name)

    def drop_collection(self, name: str) -> None:
        self._json("DELETE", f"/v1/collections/{name}")

    def restore_snapshot(self, name: str, snapshot_id: str, target: str | None = None) -> "RemoteCollection":
        """A new collection `target` (default `name`) from a snapshot of `name`."""
        body = self._json("POST", f"/v1/collections/{name}/snapshots/{snapshot_id}/restore", json={"target": target})
        return RemoteCollection(self, body["name"])


class RemoteCollection:
    """A collection on the server, with `Collection`'s methods."""

    def __init__(self, client: Client, name: str):
        self.client, self.name = client, name
        self._path = f"/v1/collections/{name}"

    def __repr__(self) -> str:
        return f"RemoteCollection({self.client.url!r}, {self.name!r})"

    def _json(self, method: str, path: str = "", **kwargs):
        return self.client._json(method, self._path + path, **kwargs)

    # --- description -----------------------------------------------------------------------
    def info(self) -> dict:
        """The server's description: dim, metric, spec, count, trained, payload_indexes, stats."""
        return self._json("GET")

    @property
    def dim(self) -> int:
        return self.info()["dim"]

    @property
    def count(self) -> int:
        return self.info()["count"]

    @property
    def is_trained(self) -> bool:
        return self.info()["trained"]

    @property
    def payload_indexes(self) -> dict[str, str]:
        return self.info()["payload_indexes"]

    def stats(self) -> dict:
        return self.info()["stats"]

    # --- writes ----------------------------------------------------------------------------
    def upsert(self, ids, vectors, payloads=None, *, batch_size: int | None = None, workers: int = 1) -> int:
        """Insert or replace points (an Arrow body); returns how many. All or nothing per request:
        with `batch_size`, one request per `batch_size` rows, and a failed batch leaves the ones
        before it in place (with `workers`, others may have been written too). ``workers > 1``
        sends that many batches at once (one body arrives while the server stores the one
        before), when no id repeats: otherwise batches go in order, so that the last write wins."""
        ids = np.asarray(ids)
        if ids.ndim != 1 or (len(ids) and ids.dtype.kind not in "iu"):
            raise E.InvalidParameterError(f"ids must be a 1-D array of integers; got {ids.dtype} {ids.shape}.")
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise E.InvalidVectorsError(
                f"vectors must be 2-D with one row per id: {len(ids)} ids, vectors of shape {vectors.shape}.")
        if payloads is not None and (isinstance(payloads, (dict, str, bytes)) or len(payloads) != len(ids)):
            raise E.InvalidParameterError(f"payloads must be a list of {len(ids)} dicts (or None).")
        step = max(len(ids) if not batch_size else int(batch_size), 1)
        starts = range(0, max(len(ids), 1), step)
        if workers > 1 and len(starts) > 1 and len(np.unique(ids)) == len(ids):
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(workers, len(starts))) as pool:
                return sum(pool.map(lambda lo: self._upsert_batch(ids, vectors, payloads, lo, lo + step), starts))
        return sum(self._upsert_batch(ids, vectors, payloads, lo, lo + step) for lo in starts)

    def _upsert_batch(self, ids: np.ndarray, vectors: np.ndarray, payloads, lo: int, hi: int) -> int:
        columns = {"id": pa.array(ids[lo:hi].astype(np.int64, copy=False)),
                   "vector": _vector_column(vectors[lo:hi], "vectors")}
        if payloads is not None:
            columns["payload"] = pa.array(
                [None if p is None else json.dumps(p, allow_nan=False, separators=(",", ":"))
                 for p in payloads[lo:hi]], pa.string())
        body = _arrow_bytes(pa.table(columns))
        return self._json("PUT", "/points", content=body, headers={"content-type": ARROW_STREAM})["upserted"]

    def delete(self, ids) -> int:
        """Delete points by id; returns how many existed."""
        return self._json("POST", "/points/delete", json={"ids": [int(i) for i in ids]})["deleted"]

    def train(self) -> None:
        self._json("POST", "/train")

    def persist(self) -> None:
        """Make every write so far durable (the buffer becomes a segment)."""
        self._json("POST", "/persist")

    def compact(self) -> None:
        self._json("POST", "/compact")

    def create_payload_index(self, field: str, kind: str) -> None:
        self._json("PUT", f"/payload-indexes/{field}", json={"kind": kind})

    def drop_payload_index(self, field: str) -> None:
        self._json("DELETE", f"/payload-indexes/{field}")

    def drop(self) -> None:
        """Delete the collection on the server (its snapshots are kept)."""
        self.client.drop_collection(self.name)

    # --- snapshots -------------------------------------------------------------------------
    def snapshot(self) -> dict:
        """A consistent copy on the server; returns its record (id, created, count, files...)."""
        return self._json("POST", "/snapshots")

    def snapshots(self) -> list[dict]:
        return self._json("GET", "/snapshots")["data"]

    def restore(self, snapshot_id: str, target: str | None = None) -> "RemoteCollection":
        return self.client.restore_snapshot(self.name, snapshot_id, target)

    # --- reads -----------------------------------------------------------------------------
    @staticmethod
    def _point(p: dict) -> Point:
        vector = None if p.get("vector") is None else np.asarray(p["vector"], dtype=np.float32)
        return Point(id=p["id"], vector=vector, payload=p.get("payload"))

    def get(self, ids, *, with_vectors: bool = True, with_payloads: bool = True) -> list[Point]:
        """The points among `ids` that exist, in request order."""
        body = {"ids": [int(i) for i in ids], "with_vector": with_vectors, "with_payload": with_payloads}
        return [self._point(p) for p in self._json("POST", "/points/get", json=body)["data"]]

    def count_matching(self, filter=None) -> int:
        return self._json("POST", "/points/count", json={"filter": filter})["count"]

    def scroll(self, filter=None, *, limit: int = 100, cursor: int | None = None, with_vectors: bool = False,
               with_payloads: bool = True) -> tuple[list[Point], int | None]:
        """One page of the live points passing `filter` in id order, and the next page's cursor."""
        body = {"filter": filter, "limit": limit, "cursor": cursor, "with_vector": with_vectors,
                "with_payload": with_payloads}
        page = self._json("POST", "/points/scroll", json=body)
        return [self._point(p) for p in page["data"]], page["next_cursor"]

    def query(self, Q, k: int = 10, *, nprobe: int | None = None, rerank: int | None = None,
              exact: bool = False, params: dict | None = None, filter=None,
              with_payload: bool = False) -> RemoteHits:
        """The k best points of every query (rows of Q, or one 1-D vector) that pass `filter`:
        one ``POST .../query/batch`` with an Arrow body and an Arrow answer."""
        Q = np.asarray(Q, dtype=np.float32)
        if Q.ndim == 1:
            Q = Q[None]
        query = {"k": k, "exact": "true" if exact else "false", "with_payload": "true" if with_payload else "false"}
        if nprobe is not None:
            query["nprobe"] = nprobe
        if rerank is not None:
            query["rerank"] = rerank
        if params:
            query["params"] = json.dumps(params)
        if filter is not None:
            query["filter"] = json.dumps(filter)
        body = _arrow_bytes(pa.table({"vector": _vector_column(Q, "Q")}))
        r = self.client.request("POST", self._path + "/query/batch", content=body, params=query,
                                headers={"content-type": ARROW_STREAM, "accept": ARROW_STREAM})
        table = pa.ipc.open_stream(pa.py_buffer(r.content)).read_all()
        meta = {key.decode(): value.decode() for key, value in (table.schema.metadata or {}).items()}
        payloads = None
        if "payloads" in table.column_names:
            payloads = [[None if t is None else json.loads(t) for t in row]
                        for row in table.column("payloads").to_pylist()]
        return RemoteHits(distances=_fixed_list(table.column("distances"), np.float32),
                          ids=_fixed_list(table.column("ids"), np.int64),
                          found=table.column("found").to_numpy(), nprobe=table.column("nprobe").to_numpy(),
                          strategy=meta.get("strategy", ""), payloads=payloads,
                          took_ms=float(meta.get("took_ms", "nan")))

    def search(self, Q, k: int = 10, *, nprobe: int | None = None, rerank: int | None = None,
               exact: bool = False, params: dict | None = None, filter=None) -> tuple[np.ndarray, np.ndarray]:
        """(distances (nq, k), ids (nq, k)) best first, as `Collection.search` returns them."""
        hits = self.query(Q, k, nprobe=nprobe, rerank=rerank, exact=exact, params=params, filter=filter)
        return hits.distances, hits.ids
