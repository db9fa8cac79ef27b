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


def read_filter(ctx, param, value):
    """--filter: a JSON object given inline or, as ``@FILE``, in a file; checked against the
    collection's payload indexes once it is open (`check_filter`)."""
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise click.BadParameter(f"cannot read {value[1:]!r}: {why}.") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}.") from None
    except RecursionError:
        raise click.BadParameter("the JSON is nested too deeply.") from None
    if not isinstance(obj, dict):
        raise click.BadParameter('a filter is a JSON object such as {"must": [{"key": "label", "match": '
                                 f'{{"value": 3}}}}]}}; got {type(obj).__name__}.')
    return obj


def check_filter(col, query_filter: dict) -> int:
    """How many points pass ``query_filter``; a filter the collection refuses (unknown key, field
    without a payload index, wrong value type) is a usage error naming the problem."""
    from annvq.filters import InvalidFilterError

    try:
        return col.count_matching(query_filter)
    except InvalidFilterError as exc:
        raise click.BadParameter(str(exc), param_hint="'--filter'") from None


def filter_summary(hits, k: int, matching: int) -> str:
    """One line: how many points pass the filter, how many each query found, the strategy."""
    found = hits.found.tolist()
    nq = len(found)
    if min(found) == max(found):
        got = f"found {found[0]} of k={k}" + (f" for each of {nq} queries" if nq > 1 else "")
    else:
        short = sum(f < k for f in found)
        got = f"found {min(found)} to {max(found)} of k={k} per query ({short} of {nq} queries have fewer)"
    return f"filter matches {matching:,} point(s); {got}; strategy {hits.strategy}"


def _rows(D, I):
    """(query, rank, id, distance) for every found neighbour; -1 padding is left out."""
    for q, (dists, ids) in enumerate(zip(D.tolist(), I.tolist())):
        for rank, (d, i) in enumerate(zip(dists, ids)):
            if i >= 0:
                yield q, rank, i, d


def format_results(D, I, fmt: str, hits=None) -> str:
    """The results as a table, CSV or JSON; with ``hits`` (a filtered query) every JSON object
    also carries ``found`` and ``strategy``."""
    rows = list(_rows(D, I))
    if fmt == "json":
        out = [{"query": q, "ids": [], "distances": []} for q in range(len(I))]
        for q, _, i, d in rows:
            out[q]["ids"].append(i)
            out[q]["distances"].append(d)
        if hits is not None:
            for q, n in enumerate(hits.found.tolist()):
                out[q].update(found=n, strategy=hits.strategy)
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
@click.option("--filter", "query_filter", callback=read_filter, default=None, metavar="JSON|@FILE",
              help="Only points whose payload passes this filter (Qdrant's language, on indexed "
                   "payload fields), as JSON or @file.json. Also prints how many were found and the strategy.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="Output format.")
@user_errors
def query(collection, vector_file, vector_col, from_stdin, k, nprobe, rerank, exact, params, query_filter, fmt):
    """Find the k nearest neighbours of each query vector in the collection at DIR.

    Distances are Euclidean for l2 collections (ascending), inner product or cosine similarity
    for ip and cosine (descending). With --filter, the table ends with a line saying how many
    points match, how many each query found and how the search ran (CSV: on stderr; JSON: in
    each query's object).

    \b
    Examples:
      annvq query db/fmnist --vector-file datasets/fashion-mnist-784-euclidean.hdf5 -k 10 --nprobe 16
      echo '[0.1, 0.5, 0.2]' | annvq query db/tiny --stdin --format json
      annvq query db/docs --vector-file q.npy --rerank 4 --format csv > hits.csv
      annvq query db/docs --vector-file q.npy --filter '{"must": [{"key": "lang", "match": {"value": "en"}}]}'
      annvq query db/docs --vector-file q.npy --filter @filter.json --format json
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
        filtered = query_filter is not None
        matching = check_filter(col, query_filter) if filtered else None
        hits = col.query(Q, k, nprobe=nprobe, rerank=rerank, exact=exact, params=params, filter=query_filter)
    click.echo(format_results(hits.distances, hits.ids, fmt, hits if filtered else None))
    if filtered and fmt != "json":
        click.echo(filter_summary(hits, k, matching), err=fmt == "csv")
