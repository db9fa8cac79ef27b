"""``annvq datasets``: list the benchmark catalogue and prepare its ann-benchmarks HDF5 files."""

from __future__ import annotations

import click

from .main import user_errors
from .options import quiet_option


@click.group()
def datasets():
    """Benchmark datasets in the ann-benchmarks HDF5 format (train, test, neighbors, distances).

    \b
    Examples:
      annvq datasets list
      annvq datasets prepare fashion-mnist-784-euclidean
      annvq datasets prepare synthetic-1000000-128-euclidean --out /data
    """


@datasets.command("list")
@click.option("--out", default="datasets", show_default=True, type=click.Path(file_okay=False),
              help="Folder searched for prepared files.")
def list_cmd(out):
    """Show every dataset: sizes, metric, source and whether it is prepared in --out."""
    from bench.datasets import dataset_path, list_datasets

    rows = [(d.name, f"{d.n_train:,}", f"{d.n_test:,}", str(d.dim), d.metric,
             "yes" if dataset_path(d.name, out).exists() else "no", d.source) for d in list_datasets()]
    header = ("name", "train", "test", "dim", "distance", "prepared", "source")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    click.echo("\nAlso: synthetic-N-D-euclidean|angular (e.g. synthetic-1000000-128-euclidean): "
               "N clustered rows with a decaying spectrum, 10,000 queries, generated in chunks.")


@datasets.command("prepare")
@click.argument("name")
@click.option("--out", default="datasets", show_default=True, type=click.Path(file_okay=False),
              help="Folder the .hdf5 file is written to.")
@quiet_option
@user_errors
def prepare_cmd(name, out, quiet):
    """Build NAME's HDF5 file with exact top-100 ground truth (kept if already valid); print its path."""
    from bench.datasets import prepare

    click.echo(str(prepare(name, out, quiet=quiet)))
