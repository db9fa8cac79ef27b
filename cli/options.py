"""Option bundles shared by several commands, as decorators (click's "reusable options" pattern),
plus the small helpers that apply them. Nothing heavy is imported at module level."""

from __future__ import annotations

import click

METRICS = ("l2", "ip", "cosine")


def _compose(*decorators):
    """Apply click decorators in the order written (the first one lists first in --help)."""
    def apply(func):
        for decorator in reversed(decorators):
            func = decorator(func)
        return func
    return apply


def collection_dir(func):
    """The DIR argument: an existing collection directory."""
    return click.argument("collection", metavar="DIR",
                          type=click.Path(exists=True, file_okay=False))(func)


quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bars; only the summary.")

threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=None,
    help="Worker threads for numba kernels and faiss (default: all cores).")

spec_option = click.option(
    "--spec", default="IVF1024,SAQ4", show_default=True,
    help="Index spec: [OPQ{M},][IVF{nlist},]CODEC[,Rerank], e.g. IVF1024,SAQ4 or IVF256,Flat.")

metric_option = click.option(
    "--metric", type=click.Choice(METRICS), default="l2", show_default=True,
    help="Distance: l2 (Euclidean), ip (inner product) or cosine.")

search_options = _compose(
    click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
                 help="Neighbours per query."),
    click.option("--nprobe", type=click.IntRange(min=1), default=None,
                 help="Lists scanned per query (default 1; more is slower and more exact)."),
    click.option("--rerank", type=click.IntRange(min=0), default=None,
                 help="Re-score k*R candidates exactly from stored vectors (needs --store-vectors)."),
    click.option("--exact", is_flag=True, help="Brute-force search over stored vectors (ground truth)."),
    click.option("--params", default=None, metavar="NAME=V,...",
                 help="Codec search knobs, e.g. 'm=4' for SAQ."),
)


def set_threads(threads: int | None) -> None:
    """Cap numba's, OpenMP's and BLAS's thread pools; None leaves their defaults (all cores)."""
    if threads is None:
        return
    import numba

    from annvq.threads import set_threads as cap

    if threads > numba.config.NUMBA_NUM_THREADS:
        raise click.BadParameter(
            f"at most {numba.config.NUMBA_NUM_THREADS} threads on this machine; got {threads}.",
            param_hint="'--threads'")
    cap(threads)


def require_ray() -> None:
    """A clear error when a --ray option is used without the Ray extra installed."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise click.ClickException("--ray needs Ray: pip install 'annvq[ray]'.")


def require_ray_serve() -> None:
    """A clear error when --ray-serve is used without Ray Serve's dependencies installed."""
    import importlib

    require_ray()
    try:  # Ray ships the module; its serve extra ships the packages the module imports
        importlib.import_module("ray.serve")
    except ImportError as exc:
        raise click.ClickException(f"--ray-serve needs Ray Serve ({exc}): pip install 'annvq[ray]'.") from None
