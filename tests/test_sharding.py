"""The parts of a sharded collection that need no Ray: a collection adopting a model trained
elsewhere, routing ids to shards, merging shard answers, the cluster manifest."""

import numpy as np
import pytest

from annvq import Collection, Index
from annvq.errors import InvalidParameterError
from naive import clustered

DIM = 16


@pytest.fixture(scope="module")
def data():
    return clustered(1200, DIM, seed=5), clustered(20, DIM, seed=6)


def test_adopted_model_encodes_like_the_same_model_trained_in_place(tmp_path, data):
    X, Q = data
    ids = np.arange(len(X)) * 7
    model = Index(DIM, "IVF8,SAQ4", "l2", store_vectors=True).train(X)
    with Collection.create(tmp_path / "trained", DIM, spec="IVF8,SAQ4") as trained, \
            Collection.create(tmp_path / "adopted", DIM, spec="IVF8,SAQ4") as adopted:
        trained.upsert(ids, X)
        trained.train(X, centroids=model.centroids_)
        adopted.upsert(ids, X)
        adopted.adopt_model(model)
        assert adopted.is_trained and adopted.stats()["segments"] == 1 and adopted.count == len(X)
        for nprobe in (1, 8):
            D1, I1 = trained.search(Q, 10, nprobe=nprobe)
            D2, I2 = adopted.search(Q, 10, nprobe=nprobe)
            np.testing.assert_array_equal(I1, I2)
            np.testing.assert_allclose(D1, D2, rtol=1e-5)
    with Collection.open(tmp_path / "adopted") as reopened:  # the model was committed
        np.testing.assert_array_equal(reopened.search(Q, 10, nprobe=8)[1], I2)


@pytest.mark.parametrize("model_args, why", [
    ((DIM, "IVF8,SAQ4", "ip"), "metric"),
    ((DIM, "IVF4,SAQ4", "l2"), "spec"),
    ((DIM + 1, "IVF8,SAQ4", "l2"), "dim"),
])
def test_adopting_a_model_of_another_shape_is_refused_and_changes_nothing(tmp_path, data, model_args, why):
    X, _ = data
    dim = model_args[0]
    model = Index(*model_args, store_vectors=True).train(clustered(400, dim, seed=1))
    with Collection.create(tmp_path / why, DIM, spec="IVF8,SAQ4") as col:
        col.upsert(np.arange(100), X[:100])
        with pytest.raises(InvalidParameterError, match=r"Cannot adopt a model with .* needs a trained"):
            col.adopt_model(model)
        assert not col.is_trained and col.count == 100


def test_an_untrained_model_is_refused(tmp_path):
    with Collection.create(tmp_path / "c", DIM, spec="IVF8,SAQ4") as col:
        with pytest.raises(InvalidParameterError, match=r"trained: False"):
            col.adopt_model(Index(DIM, "IVF8,SAQ4", "l2", store_vectors=True))


@pytest.mark.parametrize("spec, metric", [("IVF8,SAQ4", "l2"), ("IVF8,SAQ4", "cosine"), ("IVF8,CAQ4", "l2"),
                                          ("IVF8,PQ8x8", "ip"), ("IVF8,Flat", "l2")])
def test_lists_probed_once_equal_the_collections_own_and_give_its_answers(tmp_path, data, spec, metric):
    X, Q = data
    ids = np.arange(len(X)) * 3
    model = Index(DIM, spec, metric).train(X)
    with Collection.create(tmp_path / "c", DIM, spec=spec, metric=metric, store_vectors=False) as col:
        col.upsert(ids[:600], X[:600])
        col.adopt_model(model)
        col.upsert(ids[600:], X[600:])
        col.persist()  # two segments: the given lists serve both
        for nq, nprobe in ((1, 1), (1, 3), (len(Q), 3)):
            plan = model.plan(Q[:nq], 10, nprobe=nprobe)
            probes = model.probed(plan)
            scanned = model.plan(Q[:nq], 10, nprobe=nprobe)
            model.scan(scanned, col._state.parts[0].segment.lists)  # what a segment's scan probes
            own = [v for key, v in scanned.cache.entries.items() if isinstance(key, tuple) and "lists" in key[0]]
            assert own and probes.shape == (nq, nprobe)
            for lists in own:
                np.testing.assert_array_equal(probes, lists)
            want, got = col.query(Q[:nq], 10, nprobe=nprobe), col.query(Q[:nq], 10, nprobe=nprobe, probes=probes)
            np.testing.assert_array_equal(got.ids, want.ids)
            # a single SAQ query rotates apart from its scan then, not in the fused kernel: last-bit rounding
            np.testing.assert_allclose(got.distances, want.distances, rtol=1e-6)


def test_given_lists_are_the_lists_read(tmp_path, data):
    X, Q = data
    ids = np.arange(len(X)) * 3
    index = Index(DIM, "IVF8,SAQ4", "l2").train(X).add(X, ids)
    far = np.argmax(((Q[:, None, :] - index.centroids_[None]) ** 2).sum(-1), axis=1)[:, None]  # farthest list
    with Collection.create(tmp_path / "c", DIM, spec="IVF8,SAQ4", store_vectors=False) as col:
        col.upsert(ids, X)
        col.adopt_model(index)
        for nq in (1, len(Q)):  # SAQ's fused single-query kernel, which probes itself, and a batch
            got = col.query(Q[:nq], 5, nprobe=1, probes=far[:nq]).ids
            for q in range(nq):
                start, end = index.lists.offsets[far[q, 0]:far[q, 0] + 2]
                assert set(got[q]) <= set(index.lists.ids[start:end]) and (got[q] >= 0).any()
            assert (got != col.query(Q[:nq], 5, nprobe=1).ids).any()


@pytest.mark.parametrize("probes, options, match", [
    (np.zeros((20, 2), np.float32), {}, "integer list numbers; got dtype float32"),
    (np.zeros((19, 2), np.int64), {}, r"shape \(queries, nprobe\) = \(20, 2\); got \(19, 2\)"),
    (np.zeros((20, 2), np.int64), {"nprobe": 3}, r"= \(20, 3\); got \(20, 2\)"),
    (np.full((20, 2), 8), {}, r"list numbers in \[0, 8\); got 8 to 8"),
    (np.full((20, 2), -1), {}, r"in \[0, 8\); got -1"),
    (np.zeros((20, 2), np.int64), {"filter": {"must": []}}, "unfiltered IVF searches"),
    (np.zeros((20, 2), np.int64), {"exact": True}, "unfiltered IVF searches"),
])
def test_bad_given_lists_are_refused_clearly(tmp_path, data, probes, options, match):
    X, Q = data
    with Collection.create(tmp_path / "c", DIM, spec="IVF8,SAQ4") as col:
        col.upsert(np.arange(len(X)), X)
        col.adopt_model(Index(DIM, "IVF8,SAQ4", "l2", store_vectors=True).train(X))
        with pytest.raises(InvalidParameterError, match=match):
            col.query(Q, 5, probes=probes, **options)
        assert col.query(Q, 5, probes=np.zeros((20, 2), np.uint8)).nprobe.tolist() == [2] * 20  # nprobe: the width


def test_a_build_task_encodes_its_rows_as_the_model_does_split_by_shard(tmp_path, data):
    from annvq.distributed.build import encode_chunk
    from annvq.distributed.routing import shard_of

    X, _ = data
    np.save(tmp_path / "x.npy", X)
    model = Index(DIM, "IVF8,SAQ4", "l2", store_vectors=True).train(X)
    pieces = encode_chunk(str(tmp_path / "x.npy"), None, 300, 700, None, model.state(), 3)
    want = model.encode_lists(X[300:700], np.arange(300, 700))
    row_of = np.argsort(want.ids)  # the row of id 300 + i in want's list order
    assert sorted(np.concatenate([p[1] for p in pieces]).tolist()) == list(range(300, 700))
    for s, (lists, ids, codes, factors, vectors) in enumerate(pieces):
        rows = row_of[ids - 300]
        assert (shard_of(ids, 3) == s).all() and len(ids)
        np.testing.assert_array_equal(lists, want.assignments()[rows])
        np.testing.assert_array_equal(codes, want.codes[rows])
        np.testing.assert_array_equal(factors, want.factors[rows])
        np.testing.assert_array_equal(vectors, X[ids])


def test_encoded_points_commit_as_a_segment_replacing_their_ids(tmp_path, data):
    X, Q = data
    model = Index(DIM, "IVF8,SAQ4", "l2").train(X)
    with Collection.create(tmp_path / "a", DIM, spec="IVF8,SAQ4", store_vectors=False) as col, \
            Collection.create(tmp_path / "b", DIM, spec="IVF8,SAQ4", store_vectors=False) as ref:
        with pytest.raises(InvalidParameterError, match="no model yet"):
            col.add_encoded(model.encode_lists(X[:10]))
        col.upsert(np.arange(100), X[:100])
        col.adopt_model(model)
        col.upsert([2000], X[5:6])  # buffered: persisted first
        assert col.add_encoded(model.encode_lists(X[50:], np.arange(50, len(X)))) == len(X) - 50
        ref.upsert(np.arange(len(X)), X)
        ref.upsert([2000], X[5:6])
        ref.adopt_model(model)
        assert col.count == len(X) + 1 and col.stats()["buffered"] == 0
        np.testing.assert_array_equal(col.search(Q, 10, nprobe=8)[1], ref.search(Q, 10, nprobe=8)[1])
        other = Index(DIM, "IVF8,SAQ2", "l2").train(X).encode_lists(X[:10])
        with pytest.raises(InvalidParameterError, match=r"do not fit collection .* its model encodes"):
            col.add_encoded(other)
    with Collection.open(tmp_path / "a") as reopened:  # durable
        assert reopened.count == len(X) + 1


def test_splitmix64_matches_the_reference_and_routes_stably_and_evenly():
    from annvq.distributed.routing import shard_of, split, splitmix64

    # Vigna's splitmix64: the first two outputs of a generator seeded with 0
    np.testing.assert_array_equal(splitmix64(np.array([0, 0x9E3779B97F4A7C15 - 2**64], np.int64)),
                                  np.array([0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4], np.uint64))
    ids = np.arange(200_000, dtype=np.int64) * 3
    owner = shard_of(ids, 5)
    np.testing.assert_array_equal(owner, shard_of(ids[::-1], 5)[::-1])  # a function of the id alone
    counts = np.bincount(owner, minlength=5)
    assert counts.min() > 0.98 * len(ids) / 5, counts
    parts = split(ids[:1000], 5)
    assert sorted(np.concatenate(parts).tolist()) == list(range(1000))
    for s, rows in enumerate(parts):
        assert (owner[rows] == s).all() and (np.diff(rows) > 0).all()


@pytest.mark.parametrize("descending", [False, True])
def test_merge_keeps_the_k_best_of_every_row_in_order(descending):
    from annvq.distributed.sharded import merge

    rng = np.random.default_rng(3)
    nq, k, shards = 40, 7, 3
    answers = []
    for s in range(shards):
        D = np.sort(rng.standard_normal((nq, k)).astype(np.float32), axis=1)
        D = D[:, ::-1] if descending else D
        ids = rng.permutation(10_000)[:nq * k].reshape(nq, k) + 10_000 * s
        ids[:5, k - 2:] = -1  # padding: shards with fewer than k points
        D[:5, k - 2:] = -np.inf if descending else np.inf
        answers.append((np.ascontiguousarray(D), ids))
    D, ids = merge(answers, k, descending)
    allD = np.concatenate([a[0] for a in answers], axis=1)
    allI = np.concatenate([a[1] for a in answers], axis=1)
    for q in range(nq):
        real = allI[q] >= 0
        order = np.argsort(-allD[q][real] if descending else allD[q][real], kind="stable")[:k]
        np.testing.assert_array_equal(ids[q], allI[q][real][order])
        np.testing.assert_array_equal(D[q], allD[q][real][order])
    pad = merge([(np.full((2, 3), np.inf, np.float32), np.full((2, 3), -1))], 3, False)[1]
    assert (pad == -1).all()


def test_the_cluster_manifest_round_trips_and_refuses_other_formats(tmp_path, data):
    from annvq.distributed import cluster, is_cluster
    from annvq.errors import CollectionExistsError, CollectionNotFoundError, UnsupportedFormatError

    X, Q = data
    model = Index(DIM, "IVF8,SAQ4", "l2").train(X)
    config = {"dim": DIM, "metric": "l2", "spec": "IVF8,SAQ4", "store_vectors": False, "seed": 0,
              "payload_indexes": {}}
    body = cluster.create(str(tmp_path), config, 3, model)
    assert is_cluster(tmp_path) and not is_cluster(tmp_path / "CLUSTER")
    loaded = cluster.load(str(tmp_path))
    assert loaded["shards"] == ["shard-000", "shard-001", "shard-002"] and loaded["collection"] == config
    np.testing.assert_array_equal(cluster.read_model(str(tmp_path), loaded).search(Q, 5, nprobe=2)[1],
                                  model.search(Q, 5, nprobe=2)[1])
    with pytest.raises(CollectionExistsError):
        cluster.create(str(tmp_path), config, 3, model)
    with pytest.raises(CollectionNotFoundError):
        Collection.open(tmp_path)  # a cluster is not mistaken for a collection
    newer = cluster.update(str(tmp_path), body, cluster_format=cluster.CLUSTER_FORMAT + 1)
    assert newer["version"] == 2
    with pytest.raises(UnsupportedFormatError, match="cluster format 2"):
        cluster.load(str(tmp_path))
    with pytest.raises(CollectionNotFoundError, match="No cluster"):
        cluster.load(str(tmp_path / "nothing"))


def test_ray_options_without_the_ray_extra_say_how_to_install_it(tmp_path, monkeypatch, data):
    import importlib.util

    from click.testing import CliRunner

    from cli.main import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    np.save(tmp_path / "x.npy", data[0])
    runner = CliRunner()
    built = runner.invoke(cli, ["build", str(tmp_path / "x.npy"), "--out", str(tmp_path / "c"), "--ray", "local",
                                "--shards", "2"])
    assert built.exit_code == 1 and "--ray needs Ray: pip install 'annvq[ray]'" in built.output
    assert not (tmp_path / "c").exists()
    served = runner.invoke(cli, ["serve", str(tmp_path), "--ray-serve"])
    assert served.exit_code == 2 and "--ray-serve needs --ray ADDRESS|local" in served.output
