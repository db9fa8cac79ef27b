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
