"""Benchmark datasets in the exact ann-benchmarks HDF5 layout, built locally.

Each file holds ``train`` and ``test`` (float32), ``neighbors`` (int32, the 100 nearest train
rows of every test row, best first) and ``distances`` (float32, their true distances), with
attributes ``distance`` ("euclidean" or "angular"), ``point_type`` ("float"), ``dimension`` and
``type`` ("dense"). Angular distance is the cosine distance ``1 - cos``, as in ann-benchmarks.

    >>> path = prepare("random-xs-20-euclidean")      # datasets/random-xs-20-euclidean.hdf5
    >>> ds = load("random-xs-20-euclidean")
    >>> ds.train.shape, ds.neighbors.shape
    ((9000, 20), (1000, 100))

Ground truth is exact: faiss ``IndexFlat`` ranks each block of train rows in float32, and the
best ``count + GT_MARGIN`` candidates are re-scored in float64 before the running top-``count``
is merged, so neither BLAS cancellation nor float32 ties decide who is in the top 100.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annvq.errors import AnnvqError
from annvq.io import read_vectors

from .metrics import distances_to

COUNT = 100
#: candidates beyond COUNT taken from the float32 ranking and re-scored exactly
GT_MARGIN = 32
#: test rows per faiss search call while computing ground truth
GT_QUERY_BLOCK = 1024
#: train rows generated, written and searched at a time (bounds memory for 10M-row sets)
TRAIN_CHUNK = 65536
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: sha256 of the decompressed idx files (header + pixels), as Debian's dataset-fashion-mnist ships them
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "test": ("t10k-images-idx3-ubyte.gz", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
}
#: the same for the class labels (idx1 files, one byte 0-9 per image, in the images' order)
FASHION_MNIST_LABELS = {
    "train": ("train-labels-idx1-ubyte.gz", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "test": ("t10k-labels-idx1-ubyte.gz", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}
SYNTHETIC = re.compile(r"synthetic-(\d+)-(\d+)-(euclidean|angular)")
SYNTHETIC_QUERIES = 10000
SYNTHETIC_CENTERS = 256
SYNTHETIC_SEED = 20240601


class DatasetError(AnnvqError, ValueError):
    """An unknown dataset name, a missing source or an unreadable dataset file."""


@dataclass(frozen=True)
class DatasetInfo:
    """One catalogue entry: sizes, metric, where the data comes from and how to build it."""

    name: str
    n_train: int
    n_test: int
    dim: int
    metric: str
    source: str
    #: () -> (train chunks in order, test rows), both float32
    build: Callable[[], tuple[Iterator[np.ndarray], np.ndarray]]


@dataclass
class Dataset:
    """A prepared dataset in memory (the four arrays of its HDF5 file)."""

    name: str
    train: np.ndarray
    test: np.ndarray
    neighbors: np.ndarray
    distances: np.ndarray
    metric: str

    @property
    def dim(self) -> int:
        return self.train.shape[1]

    @property
    def index_metric(self) -> str:
        """The annvq metric with the same neighbours: ``l2`` or ``cosine``."""
        return {"euclidean": "l2", "angular": "cosine"}[self.metric]


# --- sources -----------------------------------------------------------------------------------
def _chunks(X: np.ndarray) -> Iterator[np.ndarray]:
    for start in range(0, len(X), TRAIN_CHUNK):
        yield X[start:start + TRAIN_CHUNK]


def _read_idx(path: Path, sha256: str) -> bytes:
    """The decompressed bytes of a gzipped idx file, checked against its sha256."""
    raw = gzip.decompress(path.read_bytes())
    if hashlib.sha256(raw).hexdigest() != sha256:
        raise DatasetError(f"{path}: contents differ from the published Fashion-MNIST file (sha256 mismatch).")
    return raw


def _read_idx_images(path: Path, sha256: str) -> np.ndarray:
    """An idx3 ubyte image file (magic 0x00000803, big-endian dims) as float32 (n, rows*cols)."""
    raw = _read_idx(path, sha256)
    n, rows, cols = np.frombuffer(raw, dtype=">u4", count=3, offset=4)
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(int(n), int(rows * cols)).astype(np.float32)


def _debian_package(package: str, paths: list[Path]) -> None:
    """Install Debian's ``package`` (as root, where apt-get exists) unless ``paths`` all exist."""
    if not all(p.exists() for p in paths):
        command = ["apt-get", "install", "-y", package]
        if os.geteuid() == 0 and shutil.which("apt-get"):
            subprocess.run(command, check=False)
        if not all(p.exists() for p in paths):
            raise DatasetError(f"{paths[0].parent} not found; install Debian's package with: sudo {' '.join(command)}")


def _fashion_mnist_paths() -> dict[str, Path]:
    paths = {part: FASHION_MNIST_DIR / fn for part, (fn, _) in FASHION_MNIST_FILES.items()}
    _debian_package("dataset-fashion-mnist", list(paths.values()))
    return paths


def fashion_mnist_labels(part: str = "train") -> np.ndarray:
    """The class (0-9) of every Fashion-MNIST image of ``part`` ("train" or "test") as uint8,
    from Debian's idx1 label file: row i labels row i of the dataset's ``train`` (``test``),
    which is built from the image file in its order."""
    fn, sha256 = FASHION_MNIST_LABELS[part]
    path = FASHION_MNIST_DIR / fn
    if not path.exists():
        raise DatasetError(f"{path} not found; install Debian's package with: "
                           f"sudo apt-get install -y dataset-fashion-mnist")
    raw = _read_idx(path, sha256)
    magic, n = np.frombuffer(raw, dtype=">u4", count=2)
    if magic != 0x801 or len(raw) != 8 + n:
        raise DatasetError(f"{path}: not an idx1 ubyte label file (magic {magic:#x}, {len(raw) - 8} of {n} labels).")
    return np.frombuffer(raw, dtype=np.uint8, offset=8).copy()


def _fashion_mnist():
    paths = _fashion_mnist_paths()
    train, test = (_read_idx_images(paths[part], FASHION_MNIST_FILES[part][1]) for part in ("train", "test"))
    return _chunks(train), test


def _python_docs(n_train: int, n_test: int):
    """Sentences of Debian's Python documentation embedded by WordLlama (bench/text_embeddings.py)."""
    def build():
        from . import text_embeddings

        _debian_package(text_embeddings.PYTHON_DOCS_PACKAGE, [text_embeddings.PYTHON_DOCS_DIR / "index.html"])
        train, test = text_embeddings.build(n_train, n_test)
        return _chunks(train), test
    return build


def make_blobs(n_samples: int, n_features: int, centers: int, random_state: int) -> np.ndarray:
    """scikit-learn's ``make_blobs`` (center_box=(-10, 10), cluster_std=1, shuffle=True) in numpy.

    Draws from ``np.random.RandomState`` in the same order as scikit-learn: uniform centres,
    then each centre's normal block, then one in-place shuffle of the row order, so the rows
    equal scikit-learn's for the same seed without depending on it.
    """
    rng = np.random.RandomState(random_state)
    means = rng.uniform(-10.0, 10.0, size=(centers, n_features))
    sizes = np.full(centers, n_samples // centers)
    sizes[:n_samples % centers] += 1
    X = np.concatenate([rng.normal(loc=means[i], scale=1.0, size=(sizes[i], n_features)) for i in range(centers)])
    order = np.arange(n_samples)
    rng.shuffle(order)
    return X[order]


def train_test_split(X: np.ndarray, test_fraction: float, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's ``train_test_split(X, test_size=fraction, random_state=seed)`` in numpy.

    ShuffleSplit draws one permutation: its first ceil(fraction * n) entries are the test rows.
    """
    n_test = int(np.ceil(test_fraction * len(X)))
    perm = np.random.RandomState(random_state).permutation(len(X))
    return X[perm[n_test:]], X[perm[:n_test]]


def _random_float(n_samples: int, dim: int, centers: int):
    """ann-benchmarks ``random_float``: blobs with random_state=1, then a 90/10 split, seed 1."""
    def build():
        X = make_blobs(n_samples, dim, centers, random_state=1)
        train, test = train_test_split(X, 0.1, random_state=1)
        return _chunks(train.astype(np.float32)), test.astype(np.float32)
    return build


def _synthetic_model(dim: int):
    """Cluster means, per-direction scales decaying as 1/sqrt(j+1), and a random rotation."""
    rng = np.random.default_rng([SYNTHETIC_SEED, dim, 0])
    scale = 1.0 / np.sqrt(np.arange(1, dim + 1))
    means = rng.standard_normal((SYNTHETIC_CENTERS, dim)) * scale * 2.0
    weights = rng.dirichlet(np.ones(SYNTHETIC_CENTERS))
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    return means, scale, weights, rotation


def _synthetic_rows(model, n: int, rng: np.random.Generator) -> np.ndarray:
    means, scale, weights, rotation = model
    labels = rng.choice(len(means), size=n, p=weights)
    X = means[labels] + rng.standard_normal((n, len(scale))) * scale
    return (X @ rotation).astype(np.float32)


def _synthetic(n: int, dim: int):
    """Clustered rows with a decaying spectrum, drawn chunk by chunk from per-chunk seeds."""
    def build():
        model = _synthetic_model(dim)
        test = _synthetic_rows(model, SYNTHETIC_QUERIES, np.random.default_rng([SYNTHETIC_SEED, dim, 2]))
        chunks = (_synthetic_rows(model, min(TRAIN_CHUNK, n - start),
                                  np.random.default_rng([SYNTHETIC_SEED, dim, 1, start // TRAIN_CHUNK]))
                  for start in range(0, n, TRAIN_CHUNK))
        return chunks, test
    return build


CATALOGUE: dict[str, DatasetInfo] = {
    info.name: info for info in [
        DatasetInfo("fashion-mnist-784-euclidean", 60000, 10000, 784, "euclidean",
                    "Debian dataset-fashion-mnist (Zalando Fashion-MNIST idx files)", _fashion_mnist),
        DatasetInfo("pydocs-256-angular", 50000, 5000, 256, "angular",
                    "sentences of Debian python3.11-doc, embedded by WordLlama's bundled 256-d model",
                    _python_docs(50000, 5000)),
        *[DatasetInfo(f"random-{size}-{dim}-{metric}", n - n // 10, n // 10, dim, metric,
                      f"generated: ann-benchmarks random_float, make_blobs({n}, {dim}, centers={centers})",
                      _random_float(n, dim, centers))
          for size, n, dim, centers in [("xs", 10000, 20, 100), ("s", 100000, 100, 1000)]
          for metric in ("euclidean", "angular")],
    ]
}


def list_datasets() -> list[DatasetInfo]:
    """The fixed catalogue; ``synthetic-N-D-METRIC`` names are resolved on demand by :func:`info`."""
    return list(CATALOGUE.values())


def info(name: str) -> DatasetInfo:
    """The catalogue entry for ``name``, including any ``synthetic-N-D-euclidean|angular``."""
    if name in CATALOGUE:
        return CATALOGUE[name]
    if m := SYNTHETIC.fullmatch(name):
        n, dim = int(m.group(1)), int(m.group(2))
        if n < 1 or dim < 1:
            raise DatasetError(f"{name}: synthetic datasets need N >= 1 rows and D >= 1 dimensions.")
        return DatasetInfo(name, n, SYNTHETIC_QUERIES, dim, m.group(3),
                           f"generated: {SYNTHETIC_CENTERS} clusters, spectrum 1/sqrt(j), random rotation",
                           _synthetic(n, dim))
    raise DatasetError(
        f"Unknown dataset {name!r}; known: {', '.join(CATALOGUE)}, or synthetic-N-D-euclidean|angular."
    )


# --- ground truth ------------------------------------------------------------------------------
class GroundTruth:
    """Exact top-``count`` neighbours of ``test``, accumulated over train blocks in order."""

    def __init__(self, test: np.ndarray, metric: str, count: int):
        self.test, self.metric, self.count = test, metric, count
        self.queries = _normalized(test) if metric == "angular" else test
        self.distances = np.full((len(test), count), np.inf)
        self.neighbors = np.full((len(test), count), -1, dtype=np.int64)

    def add(self, block: np.ndarray, offset: int, progress=None) -> None:
        """Merge the neighbours found in train rows ``offset : offset + len(block)``."""
        import faiss

        dim = block.shape[1]
        index = faiss.IndexFlatIP(dim) if self.metric == "angular" else faiss.IndexFlatL2(dim)
        index.add(_normalized(block) if self.metric == "angular" else np.ascontiguousarray(block))
        depth = min(self.count + GT_MARGIN, len(block))
        for a in range(0, len(self.test), GT_QUERY_BLOCK):
            b = min(a + GT_QUERY_BLOCK, len(self.test))
            _, cand = index.search(self.queries[a:b], depth)
            exact = distances_to(self.metric, self.test[a:b], block, cand)
            D = np.concatenate([self.distances[a:b], exact], axis=1)
            I = np.concatenate([self.neighbors[a:b], np.where(cand >= 0, cand + offset, -1)], axis=1)
            keep = np.argsort(D, axis=1, kind="stable")[:, :self.count]
            self.distances[a:b] = np.take_along_axis(D, keep, axis=1)
            self.neighbors[a:b] = np.take_along_axis(I, keep, axis=1)
            if progress is not None:
                progress.update((b - a) * len(block))


def _normalized(X: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(X / np.linalg.norm(X, axis=1, keepdims=True), dtype=np.float32)


# --- files -------------------------------------------------------------------------------------
def dataset_path(name: str, out_dir="datasets") -> Path:
    return Path(out_dir) / f"{name}.hdf5"


def is_valid(path: Path, entry: DatasetInfo) -> bool:
    """True when ``path`` is a complete ann-benchmarks file with the catalogue's shapes."""
    import h5py

    count = min(COUNT, entry.n_train)
    try:
        with h5py.File(path, "r") as f:
            return (f.attrs.get("distance") == entry.metric and int(f.attrs.get("dimension", -1)) == entry.dim
                    and f.attrs.get("point_type") == "float" and f.attrs.get("type") == "dense"
                    and f["train"].shape == (entry.n_train, entry.dim)
                    and f["test"].shape == (entry.n_test, entry.dim)
                    and f["neighbors"].shape == (entry.n_test, count) and f["neighbors"].dtype == np.int32
                    and f["distances"].shape == (entry.n_test, count) and f["distances"].dtype == np.float32)
    except (OSError, KeyError):
        return False


def prepare(name: str, out_dir="datasets", *, quiet: bool = False) -> Path:
    """Build ``out_dir/name.hdf5`` unless a valid one is there; returns its path.

    Train rows are written and searched block by block, so memory holds one block, the test
    rows and the running top-100. The file appears only when complete (temp file, then rename).
    """
    import h5py
    from tqdm.auto import tqdm

    entry = info(name)
    path = dataset_path(name, out_dir)
    if path.exists() and is_valid(path, entry):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    chunks, test = entry.build()
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["type"] = "dense"
            f.attrs["distance"] = entry.metric
            f.attrs["dimension"] = entry.dim
            f.attrs["point_type"] = "float"
            train = f.create_dataset("train", (entry.n_train, entry.dim), dtype=np.float32)
            f.create_dataset("test", data=test)
            gt = GroundTruth(test, entry.metric, min(COUNT, entry.n_train))
            row = 0
            with tqdm(total=entry.n_train * len(test), unit="pair", unit_scale=True,
                      desc=f"ground truth {name}", disable=quiet) as bar:
                for block in chunks:
                    train[row:row + len(block)] = block
                    gt.add(block, row, bar)
                    row += len(block)
            f.create_dataset("neighbors", data=gt.neighbors.astype(np.int32))
            f.create_dataset("distances", data=gt.distances.astype(np.float32))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load(name_or_path, *, out_dir="datasets", quiet: bool = False) -> Dataset:
    """A dataset by catalogue name (prepared into ``out_dir`` on first use) or by .hdf5 path."""
    import h5py

    path = Path(name_or_path)
    if not (path.suffix in (".hdf5", ".h5") or path.exists()):
        path = prepare(str(name_or_path), out_dir, quiet=quiet)
    train, test = read_vectors(path, key="train"), read_vectors(path, key="test")
    with h5py.File(path, "r") as f:
        missing = {"neighbors", "distances"} - set(f.keys())
        if missing:
            raise DatasetError(f"{path}: not an ann-benchmarks file: no {sorted(missing)} dataset(s).")
        metric = f.attrs.get("distance", "euclidean")
        if metric not in ("euclidean", "angular"):
            raise DatasetError(f"{path}: distance {metric!r} is not supported (euclidean or angular).")
        neighbors, distances = f["neighbors"][:].astype(np.int32), f["distances"][:].astype(np.float32)
    return Dataset(path.stem, train, test, neighbors, distances, str(metric))
