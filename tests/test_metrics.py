"""bench.metrics: ann-benchmarks k-nn recall on hand-made cases, and the distance recomputation."""

import numpy as np
import pytest

from bench.metrics import distances_to, knn_recall, recall_at_k


def test_exact_match_is_full_recall():
    true = np.array([[1.0, 2.0, 3.0], [0.5, 0.6, 0.7]])
    mean, per_query = knn_recall(true, true, 3)
    assert mean == 1.0
    np.testing.assert_array_equal(per_query, [1.0, 1.0])


def test_threshold_is_kth_true_distance_plus_epsilon():
    true = np.array([[1.0, 2.0, 3.0]])
    # k = 2: threshold 2.001; 2.0009 is inside, 2.0011 is not
    assert knn_recall(true, np.array([[1.0, 2.0009]]), 2)[0] == 1.0
    assert knn_recall(true, np.array([[1.0, 2.0011]]), 2)[0] == 0.5
    # a wider epsilon admits it
    assert knn_recall(true, np.array([[1.0, 2.0011]]), 2, epsilon=0.01)[0] == 1.0


def test_ties_at_the_kth_distance_count():
    # another point at the same distance as the true 2nd neighbour is just as good
    true = np.array([[1.0, 1.0, 2.0]])
    assert knn_recall(true, np.array([[1.0, 1.0]]), 2)[0] == 1.0


def test_only_first_k_found_are_scored_and_missing_never_count():
    true = np.array([[1.0, 2.0, 3.0, 4.0]])
    found = np.array([[1.0, np.inf, np.nan, 0.5]])  # the 4th is beyond k = 3
    mean, per_query = knn_recall(true, found, 3)
    assert mean == pytest.approx(1 / 3)
    np.testing.assert_allclose(per_query, [1 / 3])


def test_mean_over_queries():
    true = np.array([[1.0, 2.0], [1.0, 2.0]])
    found = np.array([[1.0, 2.0], [5.0, 6.0]])
    mean, per_query = knn_recall(true, found, 2)
    assert mean == 0.5
    np.testing.assert_array_equal(per_query, [1.0, 0.0])


def test_k_out_of_range():
    true = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"k must be in \[1, 3\]"):
        knn_recall(true, true, 4)
    with pytest.raises(ValueError, match="k must be"):
        knn_recall(true, true, 0)


def test_distances_euclidean_and_angular_by_hand():
    X = np.array([[3.0, 4.0], [0.0, 1.0], [-2.0, 0.0], [1.0, 1.0]])
    Q = np.array([[0.0, 0.0], [1.0, 0.0]])
    d = distances_to("euclidean", Q, X, np.array([[0, 2], [1, -1]]))
    np.testing.assert_allclose(d, [[5.0, 2.0], [np.sqrt(2.0), np.inf]])
    # cosine distance 1 - cos: orthogonal 1, opposite 2, 45 degrees 1 - 1/sqrt(2)
    a = distances_to("angular", Q[1:], X, np.array([[1, 2, 3]]))
    np.testing.assert_allclose(a, [[1.0, 2.0, 1.0 - 1.0 / np.sqrt(2.0)]])


def test_distances_match_numpy_in_blocks(monkeypatch):
    import bench.metrics

    monkeypatch.setattr(bench.metrics, "BLOCK_VALUES", 50)  # forces many small blocks
    rng = np.random.default_rng(3)
    X, Q = rng.standard_normal((200, 6)), rng.standard_normal((17, 6))
    ids = rng.integers(0, 200, size=(17, 5))
    expected = np.linalg.norm(X[ids] - Q[:, None, :], axis=2)
    np.testing.assert_allclose(distances_to("euclidean", Q, X, ids), expected)


def test_unknown_metric():
    with pytest.raises(ValueError, match="euclidean, angular"):
        distances_to("l2", np.zeros((1, 2)), np.zeros((3, 2)), np.zeros((1, 1), int))


def test_recall_at_k_recomputes_distances():
    X = np.array([[0.0], [1.0], [2.0], [3.0], [-1.0]])
    Q = np.array([[0.1]])
    true = np.sort(np.abs(X[:, 0] - 0.1))[None, :]   # [0.1, 0.9, 1.1, 1.9, 2.9]
    assert recall_at_k(X, Q, true, np.array([[0, 1]]), 2, "euclidean")[0] == 1.0
    assert recall_at_k(X, Q, true, np.array([[1, 0]]), 2, "euclidean")[0] == 1.0   # order is irrelevant
    assert recall_at_k(X, Q, true, np.array([[0, 4]]), 2, "euclidean")[0] == 0.5   # -1.0 is 3rd nearest
    assert recall_at_k(X, Q, true, np.array([[0, -1]]), 2, "euclidean")[0] == 0.5  # missing result
