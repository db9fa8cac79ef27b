"""``annvq bench``: the ann-benchmarks-style recall/QPS suite (run, plot, report), the
quantization-error bench and the HTTP load generator. Each command delegates to ``bench/``."""

from __future__ import annotations

import click

from .main import user_errors
from .options import quiet_option


def _split(values) -> list[str] | None:
    """``--algorithms a,b --algorithms c`` -> [a, b, c]; nothing -> None (every algorithm)."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    return names or None


def _floats(value: str) -> list[float]:
    try:
        return [float(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"expected numbers separated by commas; got {value!r}.") from None


@click.group()
def bench():
    """Benchmarks: recall/QPS against faiss, hnswlib and rabitqlib; quantization error; HTTP load.

    \b
    Examples:
      annvq bench run --dataset fashion-mnist-784-euclidean --batch --runs 3
      annvq bench run --dataset random-xs-20-euclidean --algorithms annvq,hnswlib
      annvq bench plot results/fashion-mnist-784-euclidean-batch-t1-k10.json --out fmnist.png
      annvq bench report results/fashion-mnist-784-euclidean-batch-t1-k10.json
    """


@bench.command("run")
@click.option("--dataset", required=True, metavar="NAME|FILE",
              help="A catalogue name (prepared on first use) or an ann-benchmarks .hdf5 file.")
@click.option("--algorithms", multiple=True, metavar="NAME[,NAME...]",
              help="Config entries to run, by name or constructor, wildcards allowed (default: all).")
@click.option("--runs", type=click.IntRange(min=1), default=5, show_default=True,
              help="Timed passes per configuration; the fastest counts.")
@click.option("--batch", is_flag=True, help="All queries in one call (default: each query timed alone).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="Search threads (faiss, numba, hnswlib, rabitqlib).")
@click.option("--build-threads", type=click.IntRange(min=1), default=None,
              help="Threads while building (default: --threads); QPS is always at --threads.")
@click.option("--config", type=click.Path(exists=True, dir_okay=False), default=None,
              help="ann-benchmarks-format YAML (default: bench/configs/{family}.yml or default.yml).")
@click.option("-k", "--count", type=click.IntRange(1, 100), default=10, show_default=True,
              help="Neighbours per query (recall@k).")
@click.option("--queries", type=click.IntRange(min=1), default=None,
              help="Use only the first N test queries (recorded in the results file name).")
@click.option("--results", "results_dir", default="results", show_default=True,
              type=click.Path(file_okay=False), help="Where the JSON and CSV results go.")
@click.option("--datasets-dir", default="datasets", show_default=True, type=click.Path(file_okay=False),
              help="Where catalogue datasets are prepared.")
@quiet_option
@user_errors
def run_cmd(dataset, algorithms, runs, batch, threads, build_threads, config, count, queries,
            results_dir, datasets_dir, quiet):
    """Build and measure every selected configuration; skips those already in the results file."""
    from bench.runner import run

    path = run(dataset, algorithms=_split(algorithms), config=config, runs=runs, batch=batch,
               threads=threads, build_threads=build_threads, count=count, n_queries=queries,
               results_dir=results_dir, datasets_dir=datasets_dir, quiet=quiet)
    click.echo(str(path))


@bench.command("plot")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file to write.")
@click.option("--title", default=None, help="Plot title (default: dataset, mode, threads).")
def plot_cmd(results, out, title):
    """Recall vs QPS (log) from RESULTS JSON files: one Pareto frontier per algorithm."""
    from bench.plot import plot

    click.echo(str(plot(results, out, title=title)))


@bench.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Also write the table here.")
def report_cmd(results, out):
    """Markdown table from RESULTS JSON files: QPS at recall@k >= 0.90/0.95/0.99, bytes/vector."""
    from pathlib import Path

    from bench.report import report

    table = report(results)
    if out:
        Path(out).write_text(table)
    click.echo(table, nl=False)


@bench.command("error")
@click.option("--dataset", default="fashion-mnist-784-euclidean", show_default=True, metavar="NAME|FILE",
              help="A catalogue name or an ann-benchmarks .hdf5 file (angular ones are normalised: unit-vector squared L2).")
@click.option("--methods", default="SAQ,CAQ", show_default=True,
              help="Quantizers to compare, separated by commas: SAQ, CAQ, rabitqlib.")
@click.option("--bits", default="0.5,1,2,4,8", show_default=True, help="Bit budgets per dimension.")
@click.option("--nlist", type=click.IntRange(min=1), default=1024, show_default=True, help="IVF lists.")
@click.option("--nprobe", type=click.IntRange(min=1), default=32, show_default=True,
              help="Lists probed per query; every (query, candidate) pair in them is scored.")
@click.option("--queries", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Test queries used.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="Threads.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of k-means and the codecs.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Also write the rows as JSON.")
@quiet_option
@user_errors
def error_cmd(dataset, methods, bits, nlist, nprobe, queries, threads, seed, out, quiet):
    """Average relative error of the estimated squared L2 per method and bit budget, and encode time."""
    import json
    from pathlib import Path

    from bench.error import format_rows, run_error_bench

    try:
        rows = run_error_bench(dataset=dataset, nlist=nlist, nprobe=nprobe, bits=_floats(bits),
                               methods=_split([methods]), n_queries=queries, threads=threads, seed=seed,
                               quiet=quiet)
    except ValueError as exc:  # unknown method, non-euclidean data set
        raise click.BadParameter(str(exc)) from exc
    if out:
        Path(out).write_text(json.dumps(rows, indent=1))
    click.echo(format_rows(rows))


@bench.command("http")
@click.option("--url", default=None, help="A running server (default: start one on --data-dir).")
@click.option("--data-dir", default="bench-data/http", show_default=True, type=click.Path(file_okay=False),
              help="Data dir; the collection is built here from Fashion-MNIST when missing.")
@click.option("--collection", default="fmnist", show_default=True)
@click.option("--spec", default="IVF1024,SAQ4", show_default=True, help="Index spec of a new collection.")
@click.option("--clients", type=click.IntRange(min=1), default=4, show_default=True,
              help="Concurrent clients on loopback.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=20.0, show_default=True,
              help="Seconds per run (upper bound).")
@click.option("--max-requests", type=click.IntRange(min=1), default=20_000, show_default=True,
              help="Requests per run (upper bound).")
@click.option("--nprobe", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--writer", is_flag=True, help="Only the run with one writer upserting meanwhile.")
@click.option("--api-key", default=None, help="The server's API key, if it has one.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Also write the results as JSON.")
@quiet_option
def http_cmd(url, data_dir, collection, spec, clients, duration, max_requests, nprobe, k, writer,
             api_key, out, quiet):
    """Query throughput and p50/p99 latency over HTTP, alone and with one writer."""
    from bench import http_load

    argv = ["--data-dir", data_dir, "--collection", collection, "--spec", spec,
            "--clients", str(clients), "--duration", str(duration), "--max-requests", str(max_requests),
            "--nprobe", str(nprobe), "-k", str(k)]
    for flag, value in (("--url", url), ("--api-key", api_key), ("--out", out)):
        if value is not None:
            argv += [flag, value]
    http_load.main(argv + (["--writer"] if writer else []) + (["--quiet"] if quiet else []))
