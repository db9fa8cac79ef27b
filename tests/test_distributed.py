"""A sharded collection on a local Ray (2 CPUs): the same answers as one collection with the same
model and data, a killed shard restarting from its last commit, partial answers flagged in
coverage, clear errors, the distributed build and the REST API over a cluster. Skipped where
Ray is not installed (pip install annvq[ray])."""

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from click.testing import CliRunner  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from annvq import Collection, Index  # noqa: E402
from annvq.distributed import ShardedCollection, connect, routing  # noqa: E402
from annvq.errors import (CollectionExistsError, CollectionNotFoundError, DimensionMismatchError,  # noqa: E402
                          InvalidFilterError, InvalidParameterError, InvalidVectorsError,
                          UnsupportedOperationError)
from cli.main import cli  # noqa: E402
from naive import clustered, exact_knn  # noqa: E402
from service.app import create_app  # noqa: E402

DIM = 16
SPEC = "IVF16,SAQ4"
SHARDS = 2
#: one kernel thread per shard: two shards share the two CPUs
OPTIONS = {"threads": 1}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    connect("local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data():
    X = clustered(3000, DIM, seed=11)
    ids = np.arange(len(X), dtype=np.int64) * 5 + 3
    payloads = [{"label": int(i % 4)} for i in range(len(X))]
    return X, ids, payloads, clustered(25, DIM, seed=12)


@pytest.fixture(scope="module")
def model(data):
    return Index(DIM, SPEC, "l2", store_vectors=True, seed=0).train(data[0])


@pytest.fixture(scope="module")
def single(tmp_path_factory, data, model):
    """One collection with the same model and points."""
    X, ids, payloads, _ = data
    col = Collection.create(tmp_path_factory.mktemp("single") / "c", DIM, spec=SPEC,
                            payload_indexes={"label": "integer"})
    col.upsert(ids, X, payloads)
    col.adopt_model(model)
    yield col
    col.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, data, model):
    X, ids, payloads, _ = data
    # no timeout: shards compiling their kernels on loaded cores are waited for (tests give their own)
    sc = ShardedCollection.create(tmp_path_factory.mktemp("cluster") / "c", model, shards=SHARDS, timeout=None,
                                  payload_indexes={"label": "integer"}, **OPTIONS)
    sc.upsert(ids, X, payloads)
    sc.persist()
    sc.warmup()
    yield sc
    sc.close()


def test_points_are_routed_by_id_and_shards_split_them(cluster, data):
    X, ids, _, _ = data
    assert cluster.count == len(X)
    per_shard = [ray.get(a.count.remote()) for a in cluster.actors]
    np.testing.assert_array_equal(per_shard, np.bincount(routing.shard_of(ids, SHARDS), minlength=SHARDS))
    assert min(per_shard) > 0.4 * len(X)
    stats = cluster.stats()
    assert stats["count"] == len(X) and stats["shards"] == SHARDS and stats["segments"] == SHARDS


@pytest.mark.parametrize("nprobe", [1, 4, 16])
def test_sharded_search_equals_the_single_collection(cluster, single, data, nprobe):
    Q = data[3]
    # prune=0 scores every candidate of the probed lists exactly; SAQ's pruning bound is
    # probabilistic, and a shard's looser k-th distance keeps a few candidates the single collection
    # prunes (docs/scale.md): with it, nearly every id is the same
    want = single.query(Q, 10, nprobe=nprobe, params={"prune": 0})
    got = cluster.query(Q, 10, nprobe=nprobe, params={"prune": 0})
    assert got.coverage.complete and got.coverage.missing == {}
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_allclose(got.distances, want.distances, rtol=1e-5)
    assert got.strategy == "ivf" and (got.nprobe == nprobe).all()
    assert got.payloads(0) == want.payloads(0)
    np.testing.assert_array_equal(got.vectors(3)[0], want.vectors(3)[0])
    assert (cluster.query(Q, 10, nprobe=nprobe).ids == single.query(Q, 10, nprobe=nprobe).ids).mean() > 0.99


def test_a_large_batch_goes_to_the_shards_through_the_object_store_with_the_same_answers(cluster, single):
    from annvq.distributed.sharded import INLINE_BYTES

    Q = clustered(1800, DIM, seed=13)
    assert Q.nbytes > INLINE_BYTES and len(Q) * 16 * 8 > INLINE_BYTES  # the queries and their probed lists
    # prune=0 scores every candidate exactly: a shard's looser k-th distance prunes less than the single
    # collection's (docs/scale.md), which at nprobe 16 changes 3 of these 18,000 ids
    got, want = (c.search(Q, 10, nprobe=16, params={"prune": 0})[1] for c in (cluster, single))
    np.testing.assert_array_equal(got, want)


def test_filtered_search_get_count_and_scroll_equal_the_single_collection(cluster, single, data):
    Q = data[3]
    flt = {"must": [{"key": "label", "match": {"value": 2}}]}
    want, got = single.query(Q, 5, nprobe=2, filter=flt), cluster.query(Q, 5, nprobe=2, filter=flt)
    np.testing.assert_array_equal(got.ids, want.ids)
    assert cluster.count_matching(flt) == single.count_matching(flt) == 750
    ids = [data[1][7], 999_999, data[1][0], data[1][7]]
    got, want = cluster.get(ids), single.get(ids)
    assert [(p.id, p.payload) for p in got] == [(p.id, p.payload) for p in want] and len(got) == 3
    np.testing.assert_array_equal(np.stack([p.vector for p in got]), np.stack([p.vector for p in want]))
    pages, cursor = [], None
    while True:  # pages of 7 merged from both shards: every point once, in id order
        page, cursor = cluster.scroll(flt, limit=7, cursor=cursor)
        pages += [p.id for p in page]
        if cursor is None:
            break
    assert pages == sorted(data[1][np.array([p["label"] == 2 for p in data[2]])].tolist())


def test_upsert_and_delete_touch_one_shard_each(tmp_path, model, data):
    X, ids, _, Q = data
    with ShardedCollection.create(tmp_path / "c", model, shards=SHARDS, **OPTIONS) as sc:
        sc.upsert(ids[:200], X[:200])
        owner = routing.shard_of(ids[:1], SHARDS)[0]
        sc.upsert(ids[:1], X[500:501])  # replaces the point on its shard
        counts = [ray.get(a.count.remote()) for a in sc.actors]
        assert sum(counts) == 200 == sc.count
        np.testing.assert_array_equal(sc.get(ids[:1])[0].vector, X[500])
        assert sc.delete([ids[0], ids[1], 123_456_789]) == 2
        after = [ray.get(a.count.remote()) for a in sc.actors]
        assert sum(after) == 198 and after[owner] < counts[owner]
        assert ids[0] not in sc.search(X[:1], 5, exact=True)[1]


def test_a_killed_shard_restarts_from_its_last_commit(tmp_path, model, data):
    X, ids, _, Q = data
    with ShardedCollection.create(tmp_path / "c", model, shards=SHARDS, timeout=120, **OPTIONS) as sc:
        sc.upsert(ids[:2000], X[:2000])
        sc.persist()
        before = sc.query(Q, 10, nprobe=4)
        sc.upsert(ids[2000:], X[2000:])  # acknowledged, not persisted
        victim = 0
        busy = sc.actors[victim].__ray_call__.remote(lambda shard: time.sleep(2))
        with ThreadPoolExecutor(1) as pool:
            searching = pool.submit(sc.query, Q, 10, nprobe=4)  # queued behind the busy call
            time.sleep(0.5)
            ray.kill(sc.actors[victim], no_restart=False)  # mid-run: both calls are interrupted
            during = searching.result()  # Ray restarts the shard and retries the search
        assert during.coverage.complete
        ray.get(busy)
        lost = ids[2000:][routing.shard_of(ids[2000:], SHARDS) == victim]
        kept = ids[2000:][routing.shard_of(ids[2000:], SHARDS) != victim]
        assert sc.count == 2000 + len(kept) and len(lost) > 0
        assert sc.get(lost) == [] and len(sc.get(ids[:2000], with_vectors=False)) == 2000
        sc.delete(kept)  # back to the persisted points: the same answers as before the kill
        after = sc.query(Q, 10, nprobe=4)
        np.testing.assert_array_equal(after.ids, before.ids)


def test_a_slow_shard_gives_a_partial_answer_that_names_it(cluster, data):
    Q = data[3]
    slow = 1
    busy = cluster.actors[slow].__ray_call__.remote(lambda shard: time.sleep(4))  # holds the actor
    start = time.perf_counter()
    hits = cluster.query(Q, 10, nprobe=4, timeout=1.0)
    assert time.perf_counter() - start < 3.5
    assert not hits.coverage.complete and list(hits.coverage.missing) == [slow]
    assert "no answer in 1 s" in hits.coverage.missing[slow]
    assert hits.coverage.public()["answered"] == SHARDS - 1
    found = hits.ids[hits.ids >= 0]
    assert len(found) and (routing.shard_of(found, SHARDS) != slow).all()
    ray.get(busy)
    assert cluster.query(Q, 10, nprobe=4).coverage.complete


def test_writes_wait_for_a_busy_shard_and_close_ends_one_without_raising(tmp_path, model, data, caplog):
    X, ids, _, _ = data
    sc = ShardedCollection.create(tmp_path / "c", model, shards=SHARDS, timeout=0.5, **OPTIONS)
    busy = sc.actors[0].__ray_call__.remote(lambda shard: time.sleep(2))  # the writes queue behind it
    sc.upsert(ids[:300], X[:300])
    sc.persist()  # past the 0.5 s timeout: a write is waited for, not reported failed while it lands
    ray.get(busy)
    sc.actors[1].__ray_call__.remote(lambda shard: time.sleep(30))
    with caplog.at_level(logging.WARNING, logger="annvq.distributed.sharded"):
        sc.close()
    assert "shard 1 did not close (no answer in 0.5 s)" in caplog.text
    with ShardedCollection.open(tmp_path / "c", timeout=None, **OPTIONS) as again:
        assert again.count == 300 and len(again.get(ids[:300], with_vectors=False)) == 300


def test_bad_input_is_refused_clearly_and_changes_nothing(cluster, data, model, tmp_path):
    X, ids, _, Q = data
    with pytest.raises(DimensionMismatchError):
        cluster.query(Q[:, :8], 10)
    with pytest.raises(InvalidParameterError, match="nprobe"):
        cluster.query(Q, 10, nprobe=17)
    with pytest.raises(InvalidFilterError, match="colour"):
        cluster.query(Q, 10, filter={"must": [{"key": "colour", "match": {"value": "red"}}]})
    bad = X[:3].copy()
    bad[1, 2] = np.nan
    with pytest.raises(InvalidVectorsError):
        cluster.upsert([1, 2, 4], bad)
    with pytest.raises(InvalidParameterError, match="indexed as integer, but point 1"):
        cluster.upsert([1, 2, 4], X[:3], [{"label": "x"}, None, None])  # label is an integer index
    assert cluster.count == len(X) and cluster.get([1, 2, 4]) == []
    with pytest.raises(UnsupportedOperationError, match="annvq build --ray"):
        cluster.train()
    with pytest.raises(CollectionExistsError):
        ShardedCollection.create(cluster.path, model, shards=2)
    with pytest.raises(CollectionNotFoundError, match="No cluster"):
        ShardedCollection.open(tmp_path)
    with pytest.raises(InvalidParameterError, match="trained model"):
        ShardedCollection.create(tmp_path / "u", Index(DIM, SPEC), shards=2)


def test_a_build_failing_after_the_shards_started_removes_the_cluster(tmp_path, data, monkeypatch):
    from annvq.distributed import build

    np.save(tmp_path / "base.npy", data[0])

    def broken(sc, *args):
        sc.upsert([1], data[0][:1])
        raise OSError("disk full")

    monkeypatch.setattr(build, "_add", broken)
    with pytest.raises(OSError, match="disk full"):
        build.build_sharded(tmp_path / "base.npy", tmp_path / "c", shards=2, spec=SPEC, train_size=1000, threads=1,
                            quiet=True)
    assert not (tmp_path / "c").exists()


def test_the_build_reads_and_encodes_in_ray_tasks_and_equals_the_single_collection(tmp_path, data, monkeypatch):
    from annvq.distributed import build, cluster
    from annvq.io import sample_rows

    X, ids, _, Q = data
    np.save(tmp_path / "base.npy", X)
    monkeypatch.setattr(build, "PERSIST_ROWS", 700)  # two tasks per segment: three segments per shard
    monkeypatch.setattr(build, "read_rows", None)  # the driver reads no rows: the tasks do
    made = build.build_sharded(tmp_path / "base.npy", tmp_path / "c", shards=SHARDS, spec=SPEC, train_size=1000,
                               threads=1, chunk_rows=700, quiet=True)
    assert made.tasks == 5 and made.count == len(X)
    np.testing.assert_array_equal(  # the training sample read in tasks is sample_rows' own
        build._sample(str(tmp_path / "base.npy"), None, len(X), build.sample_row_numbers(len(X), 1000, 0), 700),
        sample_rows(tmp_path / "base.npy", 1000))
    body = cluster.load(str(tmp_path / "c"))
    with Collection.create(tmp_path / "single", DIM, spec=SPEC, store_vectors=False) as col, \
            ShardedCollection.open(tmp_path / "c", read_only=True, **OPTIONS) as sc:
        col.upsert(np.arange(len(X)), X)
        col.adopt_model(cluster.read_model(str(tmp_path / "c"), body))
        assert sc.stats()["segments"] == SHARDS  # compacted
        for nprobe in (1, 16):  # exact scores of every candidate, as in the search test above
            want, got = (c.query(Q, 10, nprobe=nprobe, params={"prune": 0}) for c in (col, sc))
            np.testing.assert_array_equal(got.ids, want.ids)
            np.testing.assert_allclose(got.distances, want.distances, rtol=1e-5)


def test_a_bad_row_read_by_a_task_fails_the_build_naming_it(tmp_path, data, monkeypatch):
    from annvq.distributed import build
    from annvq.errors import InvalidFileError

    X = data[0].copy()
    X[2500, 3] = np.nan
    np.save(tmp_path / "base.npy", X)
    monkeypatch.setattr(build, "sample_row_numbers", lambda *args: np.arange(1000))  # only an encode task sees it
    with pytest.raises(InvalidFileError, match="row 2500 contains NaN"):
        build.build_sharded(tmp_path / "base.npy", tmp_path / "c", shards=SHARDS, spec=SPEC, train_size=1000,
                            threads=1, chunk_rows=700, quiet=True)
    assert not (tmp_path / "c").exists()


def test_build_on_ray_then_reopen_and_serve(tmp_path, data):
    X, _, _, Q = data
    np.save(tmp_path / "base.npy", X)
    out = tmp_path / "db" / "sharded"
    runner = CliRunner()
    usage = runner.invoke(cli, ["build", str(tmp_path / "base.npy"), "--out", str(out), "--shards", "2"])
    assert usage.exit_code == 2 and "--ray and --shards go together" in usage.output
    result = runner.invoke(cli, ["build", str(tmp_path / "base.npy"), "--out", str(out), "--spec", SPEC,
                                 "--ray", "local", "--shards", "2", "--threads", "1", "-q"])
    assert result.exit_code == 0, result.output
    assert "3,000 vectors" in result.output and "shards: 2 (Ray), encoded by 1 Ray task," in result.output
    with ShardedCollection.open(out, read_only=True, **OPTIONS) as sc:
        sc.warmup()  # the build compiled no search kernels: a cold shard's warm-up took 27-28 s, near the 30 s timeout
        assert sc.count == len(X) and sc.stats()["segments"] == 2
        D, I = sc.search(Q, 10, nprobe=16)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, exact_knn(X, Q, 10, "l2"))])
        assert recall > 0.9, recall
    # the shards answer within shard_timeout once warm; a search sent during warm-up would wait
    # behind it in the actor's queue
    with TestClient(create_app(tmp_path / "db", ray_address="local")) as client:
        assert client.app.state.ready.wait(600)
        body = client.post("/v1/collections/sharded/query", json={"vector": Q[0].tolist(), "k": 10,
                                                                   "params": {"nprobe": 16}}).json()
        assert body["ids"] == I[0].tolist() and body["coverage"]["complete"] is True
        assert body["coverage"]["shards"] == 2 and body["payloads"] == [None] * 10
        info = client.get("/v1/collections/sharded").json()
        assert info["count"] == len(X) and info["stats"]["shards"] == 2
        refused = client.post("/v1/collections/sharded/train")
        assert refused.status_code == 501 and refused.json()["error"]["code"] == "unsupported"
    with TestClient(create_app(tmp_path / "db", ray_address="local", shard_timeout=1.0)) as client:
        assert client.app.state.ready.wait(600)
        served = client.app.state.registry.get("sharded")
        busy = served.actors[0].__ray_call__.remote(lambda shard: time.sleep(3))
        body = client.post("/v1/collections/sharded/query/batch", json={"vectors": Q[:2].tolist(), "k": 10}).json()
        assert [r["coverage"]["missing"] for r in body["results"]] == [[0], [0]]
        assert body["results"][0]["coverage"]["complete"] is False
        assert (routing.shard_of(np.array(body["results"][0]["ids"]), 2) == 1).all()
        ray.get(busy)


def test_ray_serve_hosts_the_same_api_over_a_cluster(tmp_path, data):
    pytest.importorskip("ray.serve", reason="Ray Serve's packages (the ray extra) are not installed")
    import json
    import socket
    import urllib.request

    from ray import serve

    from annvq.distributed import build_sharded
    from cli.serve_cmd import deploy_on_ray_serve

    X, _, _, Q = data
    np.save(tmp_path / "base.npy", X)
    build_sharded(tmp_path / "base.npy", tmp_path / "db" / "sharded", shards=SHARDS, spec=SPEC, train_size=1000,
                  threads=1, quiet=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    deploy_on_ray_serve(tmp_path / "db", "local", "127.0.0.1", port, warmup=False, shard_timeout=300.0)
    try:
        url = f"http://127.0.0.1:{port}/v1/collections/sharded"
        query = json.dumps({"vector": Q[0].tolist(), "k": 10, "params": {"nprobe": 16}}).encode()
        with urllib.request.urlopen(urllib.request.Request(f"{url}/query", data=query, headers={
                "content-type": "application/json"})) as answer:
            body = json.loads(answer.read())
        with urllib.request.urlopen(url) as answer:
            info = json.loads(answer.read())
        with ShardedCollection.open(tmp_path / "db" / "sharded", read_only=True, **OPTIONS) as sc:
            want = sc.query(Q[:1], 10, nprobe=16)
        assert body["ids"] == want.ids[0].tolist() and body["coverage"]["complete"] is True
        assert info["count"] == len(X) and info["stats"]["shards"] == SHARDS
    finally:
        serve.shutdown()
