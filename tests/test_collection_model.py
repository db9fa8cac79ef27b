"""Collection against a dict of id -> (vector, payload) under random sequences of upserts, deletes,
persists (training or not), compactions, snapshots and reopenings: every step's state must equal
the model's through get, count, exact search and a search that probes every list (exact for a
Flat model). A reopening drops what was not persisted (with a warning), so the model keeps its
durable copy."""

import shutil
import tempfile

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from annvq import Collection

DIM = 8
NLIST = 4
MAX_ID = 40
IDS = st.integers(0, MAX_ID)


def vectors(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


class CollectionModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="annvq-model-")
        self.path = f"{self.dir}/c"
        # trains once 24 points are persisted: sequences cross the threshold both ways
        self.col = Collection.create(self.path, DIM, spec=f"IVF{NLIST},Flat", train_threshold=24)
        self.model: dict[int, tuple[np.ndarray, dict]] = {}
        self.durable = {}  # the model as of the last persist, compaction or snapshot
        self.snapshots = 0
        self.queries = vectors(12345, 3)

    def teardown(self):
        self.col.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(ids=st.lists(IDS, min_size=1, max_size=12, unique=True), seed=st.integers(0, 2**16))
    def upsert(self, ids, seed):
        # a vector per (seed, id): two live points never share one, so neighbours have no ties
        X = np.concatenate([vectors(seed * 64 + i, 1) for i in ids])
        payloads = [{"seed": seed, "i": i} for i in range(len(ids))]
        assert self.col.upsert(ids, X, payloads) == len(ids)
        for i, (pid, x) in enumerate(zip(ids, X)):
            self.model[pid] = (x, payloads[i])

    @rule(ids=st.lists(IDS, max_size=6))
    def delete(self, ids):
        existing = {i for i in ids if i in self.model}
        assert self.col.delete(ids) == len(existing)
        for i in existing:
            del self.model[i]

    @rule(train=st.booleans())
    def persist(self, train):
        self.col.persist(train=train)
        self.durable = dict(self.model)

    @rule()
    def compact(self):
        self.col.compact()
        self.durable = dict(self.model)

    @rule()
    def snapshot(self):
        """A snapshot persists first, and opens as an equal, verified collection."""
        self.snapshots += 1
        info = self.col.snapshot(f"{self.dir}/snap{self.snapshots}")
        self.durable = dict(self.model)
        with Collection.open(info["path"], read_only=True) as snap:
            assert snap.verify() == [] and snap.count == len(self.model)
            assert sorted(p.id for p in snap.get(list(range(MAX_ID + 1)), with_vectors=False)) == sorted(self.model)

    @rule()
    def reopen(self):
        self.col.close()
        self.col = Collection.open(self.path)
        self.model = dict(self.durable)

    @invariant()
    def count_and_points_match(self):
        assert self.col.count == len(self.model)
        asked = list(range(MAX_ID + 1))
        got = {p.id: p for p in self.col.get(asked)}
        assert set(got) == set(self.model)
        for pid, (x, payload) in self.model.items():
            np.testing.assert_array_equal(got[pid].vector, x)
            assert got[pid].payload == payload

    @invariant()
    def searches_match_brute_force(self):
        k = 5
        ids = np.array(sorted(self.model), np.int64)
        if len(ids):
            X = np.stack([self.model[i][0] for i in ids])
            d2 = ((self.queries[:, None, :] - X[None]) ** 2).sum(-1)
            expected = ids[np.argsort(d2, axis=1, kind="stable")[:, :k]]
        for exact in (True, False):
            D, I = self.col.search(self.queries, k, exact=exact, nprobe=NLIST)
            n = min(k, len(ids))
            assert (I[:, n:] == -1).all()
            if n:
                np.testing.assert_array_equal(I[:, :n], expected[:, :n])


TestCollectionModel = CollectionModel.TestCase
TestCollectionModel.settings = settings(max_examples=40, stateful_step_count=25, deadline=None,
                                        suppress_health_check=[HealthCheck.too_slow])
