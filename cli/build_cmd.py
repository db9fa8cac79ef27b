"""``annvq build``: a vector file in, a persisted collection out, in bounded memory.

The file is read twice in chunks: once to draw the training sample, once to add every vector, so
peak memory is the sample plus one persist batch, never the whole file.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import click

from .main import user_errors
from .options import metric_option, quiet_option, require_ray, set_threads, spec_option, threads_option

#: default number of training vectors (k-means itself samples about 50 x nlist of them)
DEFAULT_TRAIN_SIZE = 100_000
#: rows read per chunk, and rows buffered before each persist (one segment each, merged at the end)
CHUNK_ROWS = 65_536
PERSIST_ROWS = 131_072


@dataclass
class BuildReport:
    path: Path
    count: int
    dim: int
    spec: str
    metric: str
    train_seconds: float
    add_seconds: float
    bytes_on_disk: int

    @property
    def seconds(self) -> float:
        return self.train_seconds + self.add_seconds

    def summary(self) -> str:
        raw = 4 * self.dim
        per_vector = self.bytes_on_disk / max(self.count, 1)
        return "\n".join([
            f"built {self.path}: {self.count:,} vectors, dim {self.dim}, {self.spec} ({self.metric})",
            f"  bytes/vector: {per_vector:,.1f} on disk, ids and model included "
            f"(raw float32: {raw:,}; compression {raw / per_vector:.1f}x)",
            f"  build time: {self.seconds:.1f} s (train {self.train_seconds:.1f} s, "
            f"add {self.add_seconds:.1f} s), {self.count / max(self.seconds, 1e-9):,.0f} vectors/s",
        ])


def build_collection(src, out, *, spec: str, metric: str, ids_col: str | None = None,
                     vector_col: str | None = None, train_size: int | None = None, seed: int = 0,
                     store_vectors: bool = False, quiet: bool = False) -> BuildReport:
    """Create a collection at ``out`` from the vectors in ``src``: train on a sample, upsert in
    chunks, persist. A failed build removes the directory it created."""
    import numpy as np
    from tqdm.auto import tqdm

    from annvq.collection import Collection
    from annvq.io import inspect_vectors, iter_vector_chunks, read_ids, sample_rows
    from annvq.validation import as_ids

    out = Path(out)
    n, dim = inspect_vectors(src, key=vector_col)
    # Checked whole up front: upserts chunk by chunk would let a later duplicate replace an earlier id.
    ids = as_ids(read_ids(src, ids_col), n, name=f"{src}: column {ids_col!r}") if ids_col else None
    existed = out.exists() and any(out.iterdir())
    col = Collection.create(out, dim, metric=metric, spec=spec, store_vectors=store_vectors, seed=seed)
    try:
        t0 = time.perf_counter()
        size = min(n, train_size or DEFAULT_TRAIN_SIZE)
        if not quiet:
            click.echo(f"training {spec} on {size:,} of {n:,} vectors ...", err=True)
        col.train(sample_rows(src, size, key=vector_col, seed=seed, chunk_rows=CHUNK_ROWS))
        t1 = time.perf_counter()
        done = buffered = 0
        # The bar counts encoded, persisted rows: upserts only buffer, persist() does the work.
        with tqdm(total=n, unit="vec", desc="encode+persist", disable=quiet, smoothing=0) as bar:
            for chunk in iter_vector_chunks(src, key=vector_col, chunk_rows=CHUNK_ROWS):
                chunk_ids = (ids[done:done + len(chunk)] if ids is not None
                             else np.arange(done, done + len(chunk), dtype=np.int64))
                col.upsert(chunk_ids, chunk)
                done += len(chunk)
                buffered += len(chunk)
                if buffered >= PERSIST_ROWS or done == n:
                    col.persist()
                    bar.update(buffered)
                    buffered = 0
        if col.stats()["segments"] > 1:
            col.compact()
        t2 = time.perf_counter()
        stats = col.stats()
    except BaseException:
        col.close()
        if not existed:
            shutil.rmtree(out, ignore_errors=True)
        raise
    col.close()
    return BuildReport(out, stats["count"], dim, col.spec, metric, t1 - t0, t2 - t1, stats["bytes_on_disk"])


@click.command("build")
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out", required=True, type=click.Path(),
              help="Directory of the new collection (must not hold one already).")
@spec_option
@metric_option
@click.option("--ids-col", default=None, help="Column (Parquet/Arrow) holding int64 ids; default 0..n-1.")
@click.option("--vector-col", default=None,
              help="Column (Parquet/Arrow) or HDF5 dataset holding the vectors (HDF5 default: train).")
@click.option("--train-size", type=click.IntRange(min=1), default=None,
              help=f"Vectors sampled for training (default: all, at most {DEFAULT_TRAIN_SIZE:,}).")
@threads_option
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for sampling and k-means.")
@click.option("--store-vectors", "--keep-vectors", "store_vectors", is_flag=True,
              help="Also store raw float32 vectors (for --rerank, --exact and get with vectors).")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS|local",
              help="Build a sharded cluster on Ray (pip install annvq[ray]): 'local' starts Ray here, "
                   "else the address of a running cluster (Ray tasks read and encode the file in chunks: "
                   "the file and --out must be on storage every Ray node reaches).")
@click.option("--shards", type=click.IntRange(min=1), default=None,
              help="Shards of a --ray build (one Ray actor and one collection directory each).")
@quiet_option
@user_errors
def build(src, out, spec, metric, ids_col, vector_col, train_size, threads, seed, store_vectors, ray_address,
          shards, quiet):
    """Build a collection from a vector file (.npy, .fvecs, .bvecs, .hdf5, .parquet, .arrow).

    Trains on a random sample, then adds every vector in chunks with a progress bar, persists,
    and prints the size and build time.

    \b
    Examples:
      annvq build datasets/fashion-mnist-784-euclidean.hdf5 --out db/fmnist
      annvq build emb.parquet --out db/docs --vector-col embedding --ids-col id --metric cosine
      annvq build base.fvecs --out db/sift --spec IVF4096,SAQ2 --train-size 200000 --threads 8
      annvq build base.fvecs --out db/sift4 --ray local --shards 4 --threads 1
    """
    if (ray_address is None) != (shards is None):
        raise click.UsageError("--ray and --shards go together: a sharded build needs both.")
    if ray_address is not None:
        click.echo(build_on_ray(src, out, ray_address, shards, spec=spec, metric=metric, ids_col=ids_col,
                                vector_col=vector_col, train_size=train_size, seed=seed,
                                store_vectors=store_vectors, threads=threads, quiet=quiet))
        return
    set_threads(threads)
    report = build_collection(src, out, spec=spec, metric=metric, ids_col=ids_col,
                              vector_col=vector_col, train_size=train_size, seed=seed,
                              store_vectors=store_vectors, quiet=quiet)
    click.echo(report.summary())


def build_on_ray(src, out, address: str, shards: int, *, threads: int | None, quiet: bool, **options) -> str:
    """Build a sharded cluster (`annvq.distributed.build_sharded`); returns the summary. Each
    shard's kernels get ``threads`` threads (default: all cores of its node)."""
    from annvq.distributed import build_sharded, connect

    require_ray()

    connect(address)
    if not quiet:
        click.echo(f"training {options['spec']} and starting {shards} shards ...", err=True)
    made = build_sharded(src, out, shards=shards, threads=threads, quiet=quiet, **options)
    report = BuildReport(Path(made.path), made.count, made.dim, made.spec, made.metric, made.train_seconds,
                         made.start_seconds + made.add_seconds, made.bytes_on_disk)
    return (f"{report.summary()}\n  shards: {made.shards} (Ray), encoded by {made.tasks} Ray task{'s' * (made.tasks != 1)}, cluster "
            f"manifest in {made.path}/CLUSTER")
