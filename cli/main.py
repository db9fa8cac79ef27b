"""The root ``annvq`` group. Commands live one per module and are imported only when invoked,
so ``annvq --help`` stays fast (numba, faiss and pyarrow load inside the commands)."""

from __future__ import annotations

import functools
import importlib
import logging

import click

# command name -> "module:attribute"
COMMANDS = {
    "bench": "cli.bench_cmd:bench",
    "build": "cli.build_cmd:build",
    "compact": "cli.compact_cmd:compact",
    "demo": "cli.demo_cmd:demo",
    "info": "cli.info_cmd:info",
    "query": "cli.query_cmd:query",
    "verify": "cli.verify_cmd:verify",
    "datasets": "cli.datasets_cmd:datasets",
    "serve": "cli.serve_cmd:serve",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (click docs, "Lazy Loading")."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"],
                                                "auto_envvar_prefix": "ANNVQ"})
@click.option("-v", "--verbose", is_flag=True, help="Show details (tracebacks, debug logs).")
@click.version_option(package_name="annvq")
@click.pass_context
def cli(ctx, verbose):
    """annvq: an approximate-nearest-neighbour vector database over compressed codes.

    \b
    Examples:
      annvq datasets prepare random-xs-20-euclidean
      annvq build datasets/fashion-mnist-784-euclidean.hdf5 --out db/fmnist --spec IVF1024,SAQ4
      annvq serve db --port 8000
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING)


def user_errors(func):
    """Turn annvq's own errors into one clear line on stderr and exit 1 (tracebacks with -v)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from annvq.errors import AnnvqError  # here, so --help never loads numba and faiss

        try:
            return func(*args, **kwargs)
        except (AnnvqError, FileNotFoundError, PermissionError) as exc:
            ctx = click.get_current_context(silent=True)
            if ctx and ctx.find_root().obj and ctx.find_root().obj.get("verbose"):
                raise
            raise click.ClickException(str(exc)) from exc

    return wrapper
