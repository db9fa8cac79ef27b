"""HTTP load generator for the annvq service: N concurrent clients on loopback sending
single-vector queries, bounded in count and time, optionally with one writer upserting at the
same time; reports throughput and p50/p99 latency, and the same search called in-process.

    python3 -m bench.http_load                      # fashion-mnist, IVF1024,SAQ4, nprobe 16
    python3 -m bench.http_load --url http://127.0.0.1:8000 --collection fmnist --writer
    python3 -m bench.http_load --ingest            # Arrow vs JSON ingest, batch search vs in-process

Like wrk, the clients are lean, so that what is timed is the server and the loopback, not the
client library: one keep-alive socket per client thread speaking just enough HTTP/1.1
(`Connection`), and query bodies encoded to bytes once before the clock starts (what httpx and
http.client cost in client CPU: docs/service.md, Load test).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from service.server_threads import use_server_threads

# The in-process baseline runs under `annvq serve`'s thread settings, which take effect only
# before numpy loads; both ways in (`python3 -m bench.http_load`, `annvq bench http`) import this
# module before anything has loaded numpy.
use_server_threads()

import httpx  # noqa: E402  (after the thread settings, see above)
import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

WRITER_BATCH = 100          # vectors per upsert request
WRITER_INTERVAL_S = 0.1     # pause between upserts: ~1000 vectors/s, a steady ingest, not a flood
WRITER_ID_BASE = 1 << 40    # writer ids never collide with the dataset's
# Distinct upsert blocks cycled through, their vectors encoded once: json.dumps of a block done per
# request held the load generator's GIL, stalling the query clients' clocks once per upsert (the
# p99 "with writer" was that, not the server: docs/service.md, the writer round measured right).
WRITER_BODIES = 8
# Untimed queries first: the first couple of hundred searches after opening run slower (page
# faults on the mapped files, thread pools starting), in-process and over HTTP alike.
WARMUP_QUERIES = 200
# Distinct query vectors cycled through, each encoded once (a Fashion-MNIST body is ~3.8 KB of JSON).
QUERY_BODIES = 1000
# The idle gap between the paced in-process searches: about what one HTTP client leaves between two
# searches. A search after an idle gap runs slower than one right after another (caches and the
# idle vCPU), and that part is not HTTP's doing (docs/service.md, Load test).
PACED_GAP_S = 0.001


class Connection:
    """One keep-alive HTTP/1.1 connection to `url`, as lean as wrk's: a request goes out in one
    send, and the response is read by its Content-Length (every annvq response has one). After
    an error the connection is dropped and the next request opens a new one.

    http.client spends most of its client CPU per request parsing headers with the email package,
    on the same cores as the server it measures (docs/service.md, Load test).
    """

    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 60.0):
        parts = urlsplit(url)
        self._address = (parts.hostname, parts.port or 80)
        self._timeout = timeout_s
        self._headers = (f"Host: {parts.netloc}\r\nContent-Type: application/json\r\n"
                         + (f"api-key: {api_key}\r\n" if api_key else ""))
        self._sock: socket.socket | None = None
        self._buf = b""

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """(status, response body); OSError (ConnectionError for a malformed answer) on failure."""
        body = body or b""
        try:
            if self._sock is None:
                self._sock = socket.create_connection(self._address, timeout=self._timeout)
                self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            head = f"{method} {path} HTTP/1.1\r\n{self._headers}Content-Length: {len(body)}\r\n\r\n"
            self._sock.sendall(head.encode() + body)
            status_line, *lines = self._read_head().decode("latin-1").split("\r\n")
            fields = {name.strip().lower(): value.strip()
                      for name, _, value in (line.partition(":") for line in lines)}
            if "content-length" not in fields:
                raise ConnectionError(f"response without Content-Length: {status_line!r}")
            content = self._read_body(int(fields["content-length"]))
            if fields.get("connection", "").lower() == "close":
                self.close()
            return int(status_line.split(" ", 2)[1]), content
        except OSError:
            self.close()
            raise
        except (ValueError, IndexError) as exc:
            self.close()
            raise ConnectionError(f"malformed response: {exc}") from exc

    def _recv(self) -> None:
        chunk = self._sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self._buf += chunk

    def _read_head(self) -> bytes:
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            self._recv()
        head, self._buf = self._buf[:end], self._buf[end + 4:]
        return head

    def _read_body(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._recv()
        content, self._buf = self._buf[:n], self._buf[n:]
        return content

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock, self._buf = None, b""


def upsert_blocks(queries: np.ndarray) -> list[bytes]:
    """``"vectors": [...]`` JSON members of `WRITER_BODIES` blocks of perturbed query vectors: an
    upsert body is one of them plus fresh ids (`upsert_body`)."""
    rng = np.random.default_rng(0)
    blocks = []
    for _ in range(WRITER_BODIES):
        rows = queries[rng.integers(len(queries), size=WRITER_BATCH)]
        rows = rows + rng.normal(0, 1, rows.shape).astype(np.float32)
        blocks.append(b'"vectors":' + json.dumps(rows.tolist(), separators=(",", ":")).encode())
    return blocks


def upsert_body(first_id: int, block: bytes) -> bytes:
    return b'{"ids":' + json.dumps(list(range(first_id, first_id + WRITER_BATCH))).encode() + b"," + block + b"}"


def query_bodies(queries: np.ndarray, *, nprobe: int, k: int) -> list[bytes]:
    """The JSON bodies of single-vector queries for the first `QUERY_BODIES` rows of `queries`."""
    return [json.dumps({"vector": q.tolist(), "k": k, "params": {"nprobe": nprobe}, "with_payload": False},
                       separators=(",", ":")).encode() for q in queries[:QUERY_BODIES]]


def _percentiles(seconds: list[float]) -> dict:
    if not seconds:
        return {"p50_ms": None, "p99_ms": None, "mean_ms": None}
    ms = np.asarray(seconds) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "mean_ms": round(float(ms.mean()), 3)}


def run_http_load(url: str, collection: str, queries: np.ndarray, *, clients: int = 4,
                  duration_s: float = 20.0, max_requests: int = 20_000, writer: bool = False,
                  nprobe: int = 16, k: int = 10, api_key: str | None = None, label: str = "queries",
                  quiet: bool = False) -> dict:
    """`clients` threads, one keep-alive connection each, POST /query with the rows of `queries`
    in turn until `duration_s` passes or `max_requests` were sent in all. With `writer`, one more
    thread upserts batches of perturbed query vectors under fresh ids meanwhile, and deletes
    them when the round ends. A progress bar named `label` counts the requests unless `quiet`."""
    path = f"/v1/collections/{collection}/query"
    bodies = query_bodies(queries, nprobe=nprobe, k=k)
    blocks = upsert_blocks(queries) if writer else []
    lock = threading.Lock()
    sent = 0
    latencies: list[list[float]] = [[] for _ in range(clients)]
    handler: list[list[float]] = [[] for _ in range(clients)]  # the took_ms each answer reports
    errors: list[str] = []
    stop = threading.Event()
    deadline = time.perf_counter() + duration_s

    bar = tqdm(total=max_requests, desc=label, unit="req", leave=False, disable=quiet or None)

    def client(slot: int) -> None:
        nonlocal sent
        conn = Connection(url, api_key)
        i = slot
        while not stop.is_set() and time.perf_counter() < deadline:
            with lock:
                if sent >= max_requests:
                    break
                sent += 1
                bar.update()  # before the clock starts: tqdm's own time is not timed
            body = bodies[i % len(bodies)]
            start = time.perf_counter()
            try:
                status, content = conn.request("POST", path, body)
            except OSError as exc:
                status, content = None, repr(exc).encode()
            latencies[slot].append(time.perf_counter() - start)
            answer = json.loads(content) if status == 200 else {}
            ok = len(answer.get("ids", ())) == k
            if not ok:
                errors.append(f"{status} {content[:200]!r}")
            handler[slot].append(answer["took_ms"] / 1e3 if ok else math.nan)
            i += clients
        conn.close()

    writes: list[float] = []
    write_errors: list[str] = []

    def write() -> None:
        next_id = WRITER_ID_BASE
        conn = Connection(url, api_key)
        for block in itertools.cycle(blocks):
            if stop.is_set() or time.perf_counter() >= deadline:
                break
            body = upsert_body(next_id, block)
            start = time.perf_counter()
            try:
                status, content = conn.request("PUT", f"/v1/collections/{collection}/points", body)
                if status != 200:
                    write_errors.append(f"{status} {content[:200]!r}")
            except OSError as exc:
                write_errors.append(repr(exc))
            writes.append(time.perf_counter() - start)
            next_id += WRITER_BATCH
            stop.wait(WRITER_INTERVAL_S)
        # Undo the round's writes: a clean shutdown persists them, and the next run should find
        # the collection as this one did.
        body = json.dumps({"ids": list(range(WRITER_ID_BASE, next_id))}).encode()
        try:
            status, content = conn.request("POST", f"/v1/collections/{collection}/points/delete", body)
            if status != 200:
                write_errors.append(f"cleanup: {status} {content[:200]!r}")
        except OSError as exc:
            write_errors.append(f"cleanup: {exc!r}")
        conn.close()

    threads = [threading.Thread(target=client, args=(s,)) for s in range(clients)]
    if writer:
        threads.append(threading.Thread(target=write))
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads[:clients]:
        t.join()
    elapsed = time.perf_counter() - began
    bar.close()
    stop.set()
    for t in threads[clients:]:
        t.join()
    all_lat = [x for per in latencies for x in per]
    took = np.array([x for per in handler for x in per])
    answered = ~np.isnan(took)
    # the round trip less the handler's own time (parse, search, hits): what the framework, the
    # thread hops and the loopback take
    outside = (np.array(all_lat) - took)[answered].tolist()
    out = {"clients": clients, "writer": writer, "nprobe": nprobe, "k": k, "requests": len(all_lat),
           "errors": len(errors), "seconds": round(elapsed, 2), "qps": round(len(all_lat) / elapsed, 1),
           **_percentiles(all_lat), "handler_p50_ms": _percentiles(took[answered].tolist())["p50_ms"],
           "outside_handler_p50_ms": _percentiles(outside)["p50_ms"], "first_errors": errors[:3]}
    if writer:
        out["upserts"] = {"requests": len(writes), "vectors": len(writes) * WRITER_BATCH,
                          "errors": len(write_errors), **_percentiles(writes), "first_errors": write_errors[:3]}
    return out


def ping_latency(url: str, n: int = 200, api_key: str | None = None) -> dict:
    """p50/p99 of GET /healthz: the loopback round trip with no work behind it."""
    times = []
    conn = Connection(url, api_key)
    for _ in range(n):
        start = time.perf_counter()
        status, content = conn.request("GET", "/healthz")
        times.append(time.perf_counter() - start)
        if status != 200:
            raise RuntimeError(f"/healthz answered {status}: {content[:200]!r}")
    conn.close()
    return {"requests": n, **_percentiles(times)}


def inprocess_latency(col, queries: np.ndarray, *, nprobe: int, k: int, n: int, gap_s: float = 0.0) -> dict:
    """p50/p99 of `Collection.search` on one vector at a time, `gap_s` idle between calls: the
    baseline HTTP adds to. Cycles through the same query vectors as the HTTP clients."""
    queries = queries[:QUERY_BODIES]
    times = []
    for i in range(n):
        q = queries[i % len(queries)][None]
        start = time.perf_counter()
        col.search(q, k, nprobe=nprobe)
        times.append(time.perf_counter() - start)
        if gap_s:
            time.sleep(gap_s)
    return {"requests": n, "gap_ms": gap_s * 1e3, **_percentiles(times)}


def build_fashion_mnist(path: Path, spec: str) -> None:
    """A collection of Fashion-MNIST's 60,000 training images (ids 0..59999), trained and persisted."""
    from annvq import Collection
    from bench.datasets import info

    chunks, _ = info("fashion-mnist-784-euclidean").build()
    with Collection.create(path, 784, metric="l2", spec=spec) as col:
        start = 0
        for X in chunks:
            col.upsert(np.arange(start, start + len(X)), X)
            start += len(X)
        col.train()
        col.persist()


def ingest_bench(url: str, data_dir: Path, X: np.ndarray, Q: np.ndarray, *, spec: str, batch: int = 5000,
                 json_batch: int = 1000, nprobe: int = 16, k: int = 10, rounds: int = 5,
                 quiet: bool = False) -> dict:
    """Ingest X through `annvq.Client` (Arrow bodies of `batch` rows) and through JSON bodies
    (`json_batch` rows, encoded before the clock starts, so only the requests are timed) into two
    new collections of the server at `url` (whose data dir is `data_dir`); time each ingest into
    the buffer and each persist (which trains), then a batch search of Q: over HTTP with Arrow
    both ways, with a JSON body and answer, and in-process on the persisted collection (opened
    read-only beside the server), `rounds` times each, medians."""
    from annvq import Client, Collection

    out: dict = {"n": len(X), "dim": X.shape[1], "spec": spec, "batch": batch, "json_batch": json_batch}
    ids = np.arange(len(X))
    with Client(url, timeout=3600) as client, httpx.Client(base_url=url, timeout=3600) as http:
        for name in ("ingest_arrow", "ingest_json", "ingest_warm"):
            with contextlib.suppress(Exception):
                client.drop_collection(name)
        warm = client.create_collection("ingest_warm", X.shape[1], spec=spec)  # untimed: first-call costs
        warm.upsert(ids[:100], X[:100])
        http.put("/v1/collections/ingest_warm/points", json={"ids": [100], "vectors": X[100:101].tolist()})
        warm.drop()
        # Arrow through the client: the clock includes the client's own encoding
        col = client.create_collection("ingest_arrow", X.shape[1], spec=spec)
        start = time.perf_counter()
        col.upsert(ids, X, batch_size=batch)
        took = time.perf_counter() - start
        out["arrow"] = {"ingest_s": round(took, 3), "vectors_per_s": round(len(X) / took)}
        print("Arrow ingest (client):", json.dumps(out["arrow"]), flush=True)
        # the same with two batches in flight (one body arrives while the server stores the other),
        # then persisted (the same buffer: one persist is timed per path)
        client.drop_collection("ingest_arrow")
        col = client.create_collection("ingest_arrow", X.shape[1], spec=spec)
        start = time.perf_counter()
        col.upsert(ids, X, batch_size=batch, workers=2)
        took = time.perf_counter() - start
        out["arrow_2_workers"] = {"ingest_s": round(took, 3), "vectors_per_s": round(len(X) / took)}
        start = time.perf_counter()
        col.persist()
        out["arrow_2_workers"]["persist_s"] = round(time.perf_counter() - start, 2)
        print("Arrow ingest (client, workers=2):", json.dumps(out["arrow_2_workers"]), flush=True)
        # JSON: bodies encoded first, then only the requests timed
        client.create_collection("ingest_json", X.shape[1], spec=spec)
        bodies = [json.dumps({"ids": ids[lo:lo + json_batch].tolist(), "vectors": X[lo:lo + json_batch].tolist()},
                             separators=(",", ":")).encode() for lo in range(0, len(X), json_batch)]
        headers = {"content-type": "application/json"}
        took = 0.0
        for body in tqdm(bodies, desc="JSON ingest", disable=quiet):
            start = time.perf_counter()
            r = http.put("/v1/collections/ingest_json/points", content=body, headers=headers)
            took += time.perf_counter() - start
            r.raise_for_status()
        del bodies
        out["json"] = {"ingest_s": round(took, 3), "vectors_per_s": round(len(X) / took)}
        start = time.perf_counter()
        http.post("/v1/collections/ingest_json/persist").raise_for_status()
        out["json"]["persist_s"] = round(time.perf_counter() - start, 2)
        print("JSON ingest (requests only):", json.dumps(out["json"]), flush=True)
        out["ingest_speedup"] = {key: round(out[key]["vectors_per_s"] / out["json"]["vectors_per_s"], 2)
                                 for key in ("arrow", "arrow_2_workers")}
        # batch search: the same queries over HTTP (Arrow, then JSON) and in-process
        json_body = json.dumps({"vectors": Q.tolist(), "k": k, "params": {"nprobe": nprobe}, "with_payload": False},
                               separators=(",", ":")).encode()
        with Collection.open(data_dir / "ingest_arrow", read_only=True) as local:
            times: dict[str, list[float]] = {"inprocess": [], "http_arrow": [], "http_json": []}
            D0, I0 = local.search(Q, k, nprobe=nprobe)  # warm-up, and the reference answer
            D1, I1 = col.search(Q, k, nprobe=nprobe)
            out["same_ids_as_inprocess"] = bool(np.array_equal(I0, I1))
            http.post("/v1/collections/ingest_arrow/query/batch", content=json_body, headers=headers)
            for _ in range(rounds):  # interleaved, so a noisy minute hits all three
                start = time.perf_counter()
                local.search(Q, k, nprobe=nprobe)
                times["inprocess"].append(time.perf_counter() - start)
                start = time.perf_counter()
                col.search(Q, k, nprobe=nprobe)
                times["http_arrow"].append(time.perf_counter() - start)
                start = time.perf_counter()
                http.post("/v1/collections/ingest_arrow/query/batch", content=json_body,
                          headers=headers).raise_for_status()
                times["http_json"].append(time.perf_counter() - start)
        search = {key: round(float(np.median(v)) * 1e3, 1) for key, v in times.items()}
        search["arrow_over_inprocess"] = round(search["http_arrow"] / search["inprocess"], 2)
        search["json_over_inprocess"] = round(search["http_json"] / search["inprocess"], 2)
        out["batch_search_ms"] = {"queries": len(Q), "nprobe": nprobe, "k": k, **search}
        print("batch search (median ms):", json.dumps(out["batch_search_ms"]), flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="A running server (default: start one on --data-dir).")
    p.add_argument("--data-dir", type=Path, default=Path("data/http-bench"),
                   help="Data dir; the collection is built here from Fashion-MNIST when missing.")
    p.add_argument("--collection", default="fmnist")
    p.add_argument("--spec", default="IVF1024,SAQ4")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--duration", type=float, default=20.0, help="Seconds per run (upper bound).")
    p.add_argument("--max-requests", type=int, default=20_000, help="Requests per run (upper bound).")
    p.add_argument("--nprobe", type=int, default=16)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--writer", action="store_true", help="Only the run with one writer.")
    p.add_argument("--inprocess-queries", type=int, default=500,
                   help="Single-vector searches timed in-process (skipped with --url).")
    p.add_argument("--api-key", default=None)
    p.add_argument("--ingest", action="store_true",
                   help="Instead: ingest Fashion-MNIST's 60,000 vectors over HTTP, Arrow (annvq.Client) against "
                        "JSON, time each persist, and a 1,000-query batch search over HTTP against in-process.")
    p.add_argument("--ingest-batch", type=int, default=5000, help="Rows per Arrow upsert (--ingest).")
    p.add_argument("--out", type=Path, help="Also write the results as JSON here.")
    p.add_argument("-q", "--quiet", action="store_true", help="No progress bars; only the results.")
    args = p.parse_args(argv)
    if args.ingest:
        return main_ingest(args)

    from bench.datasets import info

    _, queries = info("fashion-mnist-784-euclidean").build()
    results = {"spec": args.spec, "collection": args.collection}
    if args.url is None:
        from annvq import Collection
        from service.process import serve_in_subprocess, wait_ready

        path = args.data_dir / args.collection
        if not path.exists():
            print(f"building {path} ({args.spec}) from Fashion-MNIST ...", flush=True)
            args.data_dir.mkdir(parents=True, exist_ok=True)
            build_fashion_mnist(path, args.spec)
        with Collection.open(path, read_only=True) as col:
            if col.spec != args.spec:
                p.error(f"{path} holds a {col.spec} collection, not {args.spec}; use another --data-dir.")
            col.warmup()
            inprocess_latency(col, queries, nprobe=args.nprobe, k=args.k, n=WARMUP_QUERIES)
            results["inprocess"] = inprocess_latency(col, queries, nprobe=args.nprobe, k=args.k,
                                                     n=args.inprocess_queries)
            results["inprocess_paced"] = inprocess_latency(col, queries, nprobe=args.nprobe, k=args.k,
                                                           n=args.inprocess_queries, gap_s=PACED_GAP_S)
        print("in-process Collection.search:", json.dumps(results["inprocess"]), flush=True)
        print("the same, paced:", json.dumps(results["inprocess_paced"]), flush=True)
        server = serve_in_subprocess(args.data_dir, "--log-level", "warning",
                                     log_path=args.data_dir / "serve.log")
    else:
        server = contextlib.nullcontext(args.url)
    with server as url:
        with httpx.Client(base_url=url, timeout=600) as c:
            if args.url is None:
                wait_ready(c, timeout_s=600)
        run_http_load(url, args.collection, queries, clients=1, duration_s=args.duration,  # warm-up
                      max_requests=WARMUP_QUERIES, nprobe=args.nprobe, k=args.k, api_key=args.api_key,
                      label="warm-up", quiet=args.quiet)
        results["healthz"] = ping_latency(url, api_key=args.api_key)
        print("GET /healthz:", json.dumps(results["healthz"]), flush=True)
        # one client first: its p50 against the in-process p50 is the cost of HTTP itself
        runs = {"with_writer": (args.clients, True)} if args.writer else {
            "one_client": (1, False), "queries_only": (args.clients, False), "with_writer": (args.clients, True)}
        for label, (clients, writer) in runs.items():
            r = run_http_load(url, args.collection, queries, clients=clients, duration_s=args.duration,
                              max_requests=args.max_requests, writer=writer, nprobe=args.nprobe, k=args.k,
                              api_key=args.api_key, label=label, quiet=args.quiet)
            results[label] = r
            print(f"{label}:", json.dumps(r), flush=True)
        if "one_client" in results and "inprocess" in results:
            results["http_adds_ms"] = {
                base: round(results["one_client"]["p50_ms"] - results[base]["p50_ms"], 3)
                for base in ("inprocess", "inprocess_paced")}
            print("HTTP adds to the p50 (ms):", json.dumps(results["http_adds_ms"]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


def main_ingest(args) -> None:
    """``--ingest``: a new server on a fresh ``DATA_DIR/ingest`` (or --url, whose data dir must be
    --data-dir for the in-process search), `ingest_bench`, results printed (and --out)."""
    import shutil

    from bench.datasets import load
    from service.process import serve_in_subprocess, wait_ready

    ds = load("fashion-mnist-784-euclidean", quiet=args.quiet)
    X, Q = np.ascontiguousarray(ds.train, dtype=np.float32), np.ascontiguousarray(ds.test[:1000], dtype=np.float32)
    if args.url is None:
        data_dir = args.data_dir / "ingest"
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        server = serve_in_subprocess(data_dir, "--log-level", "warning", log_path=args.data_dir / "ingest-serve.log")
    else:
        data_dir, server = args.data_dir, contextlib.nullcontext(args.url)
    with server as url:
        with httpx.Client(base_url=url, timeout=600) as c:
            wait_ready(c, timeout_s=600)
        results = ingest_bench(url, data_dir, X, Q, spec=args.spec, batch=args.ingest_batch, nprobe=args.nprobe,
                               k=args.k, quiet=args.quiet)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
