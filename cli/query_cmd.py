"""``annvq query``: search a collection with vectors from a file or stdin."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .main import user_errors
from .options import collection_dir, search_options


def parse_vectors_text(text: str):
    """Query vectors typed or piped in: a JSON array (one vector or a list of them), or one vector
    per line as JSON or numbers separated by commas or spaces."""
    import numpy as np

    from annvq.errors import InvalidVectorsError

    text = text.strip()
    try:
        rows = json.loads(text)
    except json.JSONDecodeError:
        try:
            rows = [json.loads(line) if line.lstrip().startswith("[")
                    else [float(x) for x in line.replace(",", " ").split()]
                    for line in text.splitlines() if line.strip()]
        except ValueError as exc:
            raise InvalidVectorsError(f"stdin is not a list of numeric vectors: {exc}") from None
    if not isinstance(rows, list) or not rows:
        raise InvalidVectorsError("stdin holds no query vectors: give a JSON array or one vector per line.")
    if not isinstance(rows[0], list):
        rows = [rows]
    lengths = {len(r) if isinstance(r, list) else -1 for r in rows}
    if len(lengths) != 1 or -1 in lengths:
        raise InvalidVectorsError("stdin rows must be vectors of one length (the collection's dimension).")
    try:
        return np.asarray(rows, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise InvalidVectorsError(f"stdin is not a list of numeric vectors: {exc}") from None


def _rows(D, I):
    """(query, rank, id, distance) for every found neighbour; -1 padding is left out."""
    for q, (dists, ids) in enumerate(zip(D.tolist(), I.tolist())):
        for rank, (d, i) in enumerate(zip(dists, ids)):
            if i >= 0:
                yield q, rank, i, d


def format_results(D, I, fmt: str) -> str:
    rows = list(_rows(D, I))
    if fmt == "json":
        out = [{"query": q, "ids": [], "distances": []} for q in range(len(I))]
        for q, _, i, d in rows:
            out[q]["ids"].append(i)
            out[q]["distances"].append(d)
        return json.dumps(out)
    if fmt == "csv":
        return "\n".join(["query,rank,id,distance", *(f"{q},{r},{i},{d:.6g}" for q, r, i, d in rows)])
    lines = [f"{'query':>5}  {'rank':>4}  {'id':>12}  distance"]
    lines += [f"{q:>5}  {r:>4}  {i:>12}  {d:.6g}" for q, r, i, d in rows]
    return "\n".join(lines)


@click.command("query")
@collection_dir
@click.option("--vector-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Query vectors: any file annvq reads (HDF5: the test set).")
@click.option("--vector-col", default=None, help="Column or HDF5 dataset of --vector-file holding the queries.")
@click.option("--stdin", "from_stdin", is_flag=True,
              help="Read queries from stdin: JSON arrays or one vector per line.")
@search_options
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="Output format.")
@user_errors
def query(collection, vector_file, vector_col, from_stdin, k, nprobe, rerank, exact, params, fmt):
    """Find the k nearest neighbours of each query vector in the collection at DIR.

    Distances are Euclidean for l2 collections (ascending), inner product or cosine similarity
    for ip and cosine (descending).

    \b
    Examples:
      annvq query db/fmnist --vector-file datasets/fashion-mnist-784-euclidean.hdf5 -k 10 --nprobe 16
      echo '[0.1, 0.5, 0.2]' | annvq query db/tiny --stdin --format json
      annvq query db/docs --vector-file q.npy --rerank 4 --format csv > hits.csv
    """
    if bool(vector_file) == from_stdin:
        raise click.UsageError("Give exactly one of --vector-file F or --stdin.")
    from annvq.collection import Collection
    from annvq.io import HDF5_SUFFIXES, read_vectors

    if from_stdin:
        Q = parse_vectors_text(sys.stdin.read())
    else:
        key = vector_col or ("test" if Path(vector_file).suffix in HDF5_SUFFIXES else None)
        Q = read_vectors(vector_file, key=key)
    with Collection.open(collection, read_only=True) as col:
        if exact and not col.store_vectors:
            raise click.ClickException(f"--exact needs the raw vectors, which {collection} does not store: "
                                       "build it with --store-vectors.")
        D, I = col.search(Q, k, nprobe=nprobe, rerank=rerank, exact=exact, params=params)
    click.echo(format_results(D, I, fmt))
