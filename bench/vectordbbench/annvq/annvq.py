"""annvq for VectorDBBench, over the REST API of ``annvq serve`` (docs/service.md): inserts as
Arrow IPC bodies (one ``PUT points`` per batch), searches as single JSON queries, ``optimize`` as
``persist`` (which trains the IVF model once the collection holds enough points). Label filters
map onto a keyword payload index ``labels``."""

import json
import logging
from contextlib import contextmanager

import numpy as np
import pyarrow as pa
import requests

from vectordb_bench.backend.clients.api import VectorDB
from vectordb_bench.backend.filter import Filter, FilterOp

from .config import AnnvqIndexConfig

log = logging.getLogger(__name__)

ARROW_STREAM = "application/vnd.apache.arrow.stream"
#: the payload field holding a point's label (VectorDBBench's scalar label column)
LABEL_FIELD = "labels"


class AnnvqError(RuntimeError):
    """An error answer of the service: its status, code and message."""


def _check(r: requests.Response) -> dict:
    if r.status_code >= 400:
        try:
            err = r.json()["error"]
            msg = f"annvq answered {r.status_code} {err['code']}: {err['message']}"
        except (ValueError, KeyError, TypeError):
            msg = f"annvq answered {r.status_code}: {r.text[:500]}"
        raise AnnvqError(msg)
    return r.json()


def arrow_body(ids: np.ndarray, X: np.ndarray, labels: list[str] | None) -> bytes:
    """An upsert body: ``id`` int64, ``vector`` fixed_size_list<float32>[dim], and with labels a
    ``payload`` column of JSON objects ``{"labels": label}``."""
    columns = {"id": pa.array(ids), "vector": pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), X.shape[1])}
    if labels is not None:
        columns["payload"] = pa.array([json.dumps({LABEL_FIELD: str(v)}) for v in labels], pa.string())
    table = pa.table(columns)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


class Annvq(VectorDB):
    supported_filter_types: list[FilterOp] = [FilterOp.NonFilter, FilterOp.StrEqual]
    name = "annvq"
    thread_safe = True  # one requests.Session per process (made in init()), shared by its threads

    def __init__(self, dim: int, db_config: dict, db_case_config: AnnvqIndexConfig,
                 collection_name: str = "VDBBench", drop_old: bool = False, with_scalar_labels: bool = False,
                 **kwargs):
        self.dim, self.db_config, self.case_config = dim, db_config, db_case_config
        self.collection_name = collection_name or "VDBBench"
        self.path = f"/v1/collections/{self.collection_name}"
        self.with_scalar_labels = with_scalar_labels
        self.filter: dict | None = None
        self.session: requests.Session | None = None
        with self.init():
            if drop_old:
                r = self.session.delete(self._url(""))
                if r.status_code != 404:
                    _check(r)
            if self.session.get(self._url("")).status_code == 404:
                body = {"dim": dim, **db_case_config.index_param()}
                if with_scalar_labels:
                    body["payload_indexes"] = {LABEL_FIELD: "keyword"}
                _check(self.session.put(self._url(""), json=body))

    def _url(self, tail: str) -> str:
        return f"{self.db_config['url'].rstrip('/')}{self.path}{tail}"

    @contextmanager
    def init(self):
        self.session = requests.Session()
        if self.db_config.get("api_key"):
            self.session.headers["api-key"] = self.db_config["api_key"]
        try:
            yield
        finally:
            self.session.close()
            self.session = None

    def optimize(self, data_size: int | None = None):
        """Persist: the buffer becomes a segment, and the model is trained on the first one."""
        _check(self.session.post(self._url("/persist"), timeout=None))

    def insert_embeddings(self, embeddings, metadata, labels_data=None, **kwargs) -> tuple[int, Exception | None]:
        X = np.ascontiguousarray(embeddings, dtype=np.float32)
        ids = np.asarray(metadata, dtype=np.int64)
        labels = labels_data if self.with_scalar_labels else None
        try:
            body = arrow_body(ids, X, labels)
            out = _check(self.session.put(self._url("/points"), data=body,
                                          headers={"content-type": ARROW_STREAM}))
        except (AnnvqError, requests.RequestException) as exc:
            log.warning("annvq insert failed: %s", exc)
            return 0, exc
        return out["upserted"], None

    def prepare_filter(self, filters: Filter):
        if filters.type == FilterOp.NonFilter:
            self.filter = None
        elif filters.type == FilterOp.StrEqual:
            self.filter = {"must": [{"key": LABEL_FIELD, "match": {"value": filters.label_value}}]}
        else:
            msg = f"annvq's client maps no filter of type {filters.type}."
            raise ValueError(msg)

    def search_embedding(self, query, k: int = 100, **kwargs) -> list[int]:
        body = {"vector": [float(v) for v in query], "k": k, "params": self.case_config.search_param(),
                "with_payload": False}
        if self.filter is not None:
            body["filter"] = self.filter
        return _check(self.session.post(self._url("/query"), json=body))["ids"]
