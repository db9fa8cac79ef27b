"""Prometheus text-format metrics, hand-rolled (a few counters and one histogram need no client
library): requests by handler and status, latency histograms by handler, vectors upserted, deleted
and queried per collection, and per-collection gauges read from `Collection.stats()`."""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Latency bucket upper bounds in seconds (Prometheus' default set, plus finer sub-millisecond ones).
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
GAUGES = {"count": "live points", "deleted": "tombstoned points", "segments": "immutable segments",
          "buffered": "points not yet persisted", "bytes_on_disk": "bytes of files on disk",
          "bytes_mapped": "bytes memory-mapped"}


def _escape(value) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


class Metrics:
    """Thread-safe counters; `render` writes the exposition text."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[str, list[int]] = {}  # handler -> per-bucket counts (+Inf last)
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.vectors: dict[tuple[str, str], int] = defaultdict(int)

    def observe(self, method: str, handler: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, handler, status)] += 1
            counts = self.latency.setdefault(handler, [0] * (len(BUCKETS) + 1))
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.latency_sum[handler] += seconds

    def count_vectors(self, collection: str, op: str, n: int) -> None:
        with self._lock:
            self.vectors[(collection, op)] += n

    def render(self, collections: dict[str, dict], ready: bool) -> str:
        out = ["# HELP annvq_ready 1 once collections are open and kernels compiled.",
               "# TYPE annvq_ready gauge", f"annvq_ready {int(ready)}",
               "# HELP annvq_http_requests_total HTTP requests by method, handler and status.",
               "# TYPE annvq_http_requests_total counter"]
        with self._lock:
            for (method, handler, status), n in sorted(self.requests.items()):
                labels = _labels(method=method, handler=handler, status=status)
                out.append(f"annvq_http_requests_total{labels} {n}")
            out += ["# HELP annvq_http_request_duration_seconds Request latency by handler.",
                    "# TYPE annvq_http_request_duration_seconds histogram"]
            for handler, counts in sorted(self.latency.items()):
                total = 0
                for bound, n in zip((*BUCKETS, "+Inf"), counts):
                    total += n
                    out.append(f"annvq_http_request_duration_seconds_bucket"
                               f"{_labels(handler=handler, le=bound)} {total}")
                out.append(f"annvq_http_request_duration_seconds_sum{_labels(handler=handler)} "
                           f"{self.latency_sum[handler]:.6f}")
                out.append(f"annvq_http_request_duration_seconds_count{_labels(handler=handler)} {total}")
            out += ["# HELP annvq_vectors_total Vectors upserted, deleted and queried.",
                    "# TYPE annvq_vectors_total counter"]
            for (name, op), n in sorted(self.vectors.items()):
                out.append(f"annvq_vectors_total{_labels(collection=name, op=op)} {n}")
        for key, help_text in GAUGES.items():
            out += [f"# HELP annvq_collection_{key} Collection {help_text}.",
                    f"# TYPE annvq_collection_{key} gauge"]
            out += [f"annvq_collection_{key}{_labels(collection=name)} {stats[key]}"
                    for name, stats in sorted(collections.items()) if key in stats]
        return "\n".join(out) + "\n"


class MetricsMiddleware:
    """Times every HTTP request and records it under its handler's name (``query``,
    ``upsert_points``...), so label cardinality stays bounded whatever paths clients send."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            handler = getattr(scope.get("route"), "name", None) or "unmatched"
            self.metrics.observe(scope["method"], handler, status, time.perf_counter() - start)
