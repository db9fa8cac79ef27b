"""bench.datasets: the ann-benchmarks HDF5 layout, exact ground truth, generators and the CLI."""

import gzip
import hashlib

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import bench.datasets as bd
from bench import text_embeddings
from cli.main import cli


@pytest.fixture(scope="module")
def xs_path(tmp_path_factory):
    return bd.prepare("random-xs-20-euclidean", tmp_path_factory.mktemp("ds"), quiet=True)


def brute_force(train, test, metric, count):
    """numpy float64 oracle: (distances, neighbours) of the `count` nearest train rows."""
    X, Q = train.astype(np.float64), test.astype(np.float64)
    if metric == "angular":
        D = 1.0 - (Q / np.linalg.norm(Q, axis=1, keepdims=True)) @ (X / np.linalg.norm(X, axis=1, keepdims=True)).T
    else:
        D = np.sqrt(np.maximum((Q ** 2).sum(1)[:, None] - 2 * Q @ X.T + (X ** 2).sum(1)[None], 0))
    I = np.argsort(D, axis=1, kind="stable")[:, :count]
    return np.take_along_axis(D, I, axis=1), I


def test_hdf5_layout(xs_path):
    assert xs_path.name == "random-xs-20-euclidean.hdf5"
    with h5py.File(xs_path, "r") as f:
        assert sorted(f.keys()) == ["distances", "neighbors", "test", "train"]
        assert f.attrs["distance"] == "euclidean"
        assert f.attrs["point_type"] == "float"
        assert f.attrs["type"] == "dense"
        assert int(f.attrs["dimension"]) == 20
        assert f["train"].shape == (9000, 20) and f["train"].dtype == np.float32
        assert f["test"].shape == (1000, 20) and f["test"].dtype == np.float32
        assert f["neighbors"].shape == (1000, 100) and f["neighbors"].dtype == np.int32
        assert f["distances"].shape == (1000, 100) and f["distances"].dtype == np.float32
        assert (np.diff(f["distances"][:], axis=1) >= 0).all()  # best first


def test_ground_truth_equals_brute_force(xs_path):
    ds = bd.load(xs_path)
    D, I = brute_force(ds.train, ds.test, "euclidean", 100)
    np.testing.assert_array_equal(ds.neighbors, I)
    np.testing.assert_allclose(ds.distances, D, rtol=1e-6)


def test_random_matches_scikit_learn_make_blobs():
    # reference values printed by scikit-learn 1.9.1: make_blobs(10000, 20, centers=100,
    # random_state=1) and train_test_split(X, test_size=0.1, random_state=1)
    X = bd.make_blobs(10000, 20, 100, random_state=1)
    np.testing.assert_array_equal(X[0, :3], [-2.785944950282971, 10.897552948637466, -3.5260317003408828])
    np.testing.assert_array_equal(X[-1, :3], [-7.420760589575019, 3.1112791783667006, -8.03770404742297])
    train, test = bd.train_test_split(X, 0.1, random_state=1)
    assert train.shape == (9000, 20) and test.shape == (1000, 20)
    np.testing.assert_array_equal(train[0, :3], [7.330019858675588, 1.2125950021807395, 7.296783556762378])
    np.testing.assert_array_equal(test[0, :3], [0.3584016847254103, -4.008869763631276, 5.9403444645977235])


def test_prepare_is_idempotent_and_replaces_bad_files(xs_path):
    mtime = xs_path.stat().st_mtime_ns
    assert bd.prepare("random-xs-20-euclidean", xs_path.parent, quiet=True) == xs_path
    assert xs_path.stat().st_mtime_ns == mtime
    bad = xs_path.parent / "random-xs-20-angular.hdf5"
    with h5py.File(bad, "w") as f:  # an interrupted or foreign file: no ground truth
        f["train"] = np.zeros((9000, 20), np.float32)
    assert not bd.is_valid(bad, bd.info("random-xs-20-angular"))
    bd.prepare("random-xs-20-angular", xs_path.parent, quiet=True)
    ds = bd.load(bad)
    assert ds.metric == "angular" and ds.index_metric == "cosine"
    D, I = brute_force(ds.train, ds.test, "angular", 100)
    np.testing.assert_array_equal(ds.neighbors, I)
    np.testing.assert_allclose(ds.distances, D, atol=1e-6)
    assert not list(xs_path.parent.glob("*.tmp-*"))


def test_synthetic_in_chunks_is_exact_and_deterministic(tmp_path, monkeypatch):
    monkeypatch.setattr(bd, "TRAIN_CHUNK", 700)       # 3000 rows -> 5 generated/searched blocks
    monkeypatch.setattr(bd, "SYNTHETIC_QUERIES", 300)
    monkeypatch.setattr(bd, "GT_QUERY_BLOCK", 128)
    ds = bd.load("synthetic-3000-16-euclidean", out_dir=tmp_path, quiet=True)
    assert ds.train.shape == (3000, 16) and ds.test.shape == (300, 16)
    D, I = brute_force(ds.train, ds.test, "euclidean", 100)
    np.testing.assert_array_equal(ds.neighbors, I)
    np.testing.assert_allclose(ds.distances, D, rtol=1e-6)
    again = bd.load(bd.prepare("synthetic-3000-16-euclidean", tmp_path / "again", quiet=True))
    np.testing.assert_array_equal(again.train, ds.train)
    # decaying spectrum: the covariance's leading eigenvalue dwarfs the smallest
    eig = np.linalg.eigvalsh(np.cov(ds.train.T.astype(np.float64)))
    assert eig[-1] / eig[0] > 10


def test_small_synthetic_keeps_all_neighbours(tmp_path, monkeypatch):
    monkeypatch.setattr(bd, "SYNTHETIC_QUERIES", 20)
    ds = bd.load("synthetic-50-4-angular", out_dir=tmp_path, quiet=True)
    assert ds.neighbors.shape == (20, 50)  # count = min(100, N)
    np.testing.assert_array_equal(np.sort(ds.neighbors, axis=1), np.tile(np.arange(50), (20, 1)))


def test_unknown_dataset():
    with pytest.raises(bd.DatasetError, match="Unknown dataset 'sift-1b'.*synthetic-N-D"):
        bd.info("sift-1b")
    with pytest.raises(bd.DatasetError, match="N >= 1"):
        bd.info("synthetic-0-8-euclidean")


def test_fashion_mnist_missing_without_root_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setattr(bd, "FASHION_MNIST_DIR", tmp_path / "absent")
    monkeypatch.setattr(bd.os, "geteuid", lambda: 1000)
    with pytest.raises(bd.DatasetError, match="sudo apt-get install -y dataset-fashion-mnist"):
        bd.prepare("fashion-mnist-784-euclidean", tmp_path, quiet=True)


def test_python_docs_missing_without_root_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setattr(text_embeddings, "PYTHON_DOCS_DIR", tmp_path / "absent")
    monkeypatch.setattr(bd.os, "geteuid", lambda: 1000)
    with pytest.raises(bd.DatasetError, match="sudo apt-get install -y python3.11-doc"):
        bd.prepare("pydocs-256-angular", tmp_path, quiet=True)


PAGE = """<html><body><h1>Lists</h1>
<p>List comprehensions provide a concise way to create lists. Short one.</p>
<pre>squares = [x**2 for x in range(10)]  # code is not prose.</pre>
<p>Common applications are to make new lists where each element is the result of some operations.
New in version 3.2: this sentence repeats in every release.</p>
<div><p>List comprehensions provide a concise way to create lists.</p></div>
</body></html>"""


def test_text_sentences_are_the_distinct_prose_sentences(tmp_path):
    (tmp_path / "library").mkdir()
    (tmp_path / "_static").mkdir()
    (tmp_path / "library" / "lists.html").write_text(PAGE)
    (tmp_path / "_static" / "skip.html").write_text("<p>Static pages are not documentation text at all.</p>")
    assert text_embeddings.sentences(tmp_path) == [
        "Common applications are to make new lists where each element is the result of some operations.",
        "List comprehensions provide a concise way to create lists.",
    ]
    with pytest.raises(ValueError, match="yields 2 sentences, fewer than the 3 needed"):
        text_embeddings.build(2, 1, tmp_path)


def test_text_embeddings_come_from_the_bundled_model_and_carry_meaning():
    """WordLlama's wheel ships its weights: vectors without a download, and a paraphrase is
    nearer than an unrelated sentence."""
    X = text_embeddings.embed(["A list comprehension builds a new list from an iterable.",
                               "List comprehensions create lists from iterables.",
                               "The socket connection timed out while waiting for the server."])
    assert X.shape == (3, 256) and X.dtype == np.float32
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    assert X[0] @ X[1] > X[0] @ X[2] + 0.1


def test_idx_reader_checks_contents(tmp_path):
    pixels = np.arange(3 * 4 * 5, dtype=np.uint8)
    raw = b"\x00\x00\x08\x03" + np.array([3, 4, 5], dtype=">u4").tobytes() + pixels.tobytes()
    (tmp_path / "x.gz").write_bytes(gzip.compress(raw))
    X = bd._read_idx_images(tmp_path / "x.gz", hashlib.sha256(raw).hexdigest())
    assert X.dtype == np.float32
    np.testing.assert_array_equal(X, pixels.reshape(3, 20))
    with pytest.raises(bd.DatasetError, match="sha256 mismatch"):
        bd._read_idx_images(tmp_path / "x.gz", "0" * 64)


def test_cli_list_and_prepare(tmp_path, xs_path):
    runner = CliRunner()
    listed = runner.invoke(cli, ["datasets", "list", "--out", str(xs_path.parent)])
    assert listed.exit_code == 0, listed.output
    for name in ("fashion-mnist-784-euclidean", "random-xs-20-angular", "random-s-100-euclidean", "synthetic-N-D"):
        assert name in listed.output
    row = next(line for line in listed.output.splitlines() if line.startswith("random-xs-20-euclidean "))
    assert row.split()[1:6] == ["9,000", "1,000", "20", "euclidean", "yes"]
    done = runner.invoke(cli, ["datasets", "prepare", "random-xs-20-euclidean", "--out", str(xs_path.parent), "-q"])
    assert done.exit_code == 0, done.output
    assert done.output.strip() == str(xs_path)


def test_cli_unknown_name_is_one_line_error():
    result = CliRunner().invoke(cli, ["datasets", "prepare", "nope"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: Unknown dataset 'nope'")
