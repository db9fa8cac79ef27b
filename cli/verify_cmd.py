"""``annvq verify``: a full checksum pass over a collection's files."""

from __future__ import annotations

import click

from .main import user_errors
from .options import collection_dir


@click.command("verify")
@collection_dir
@user_errors
def verify(collection):
    """Check every file of the collection at DIR against its manifest (sizes and sha256).

    Prints "ok" and exits 0 when healthy; otherwise lists each problem and exits 1.

    \b
    Examples:
      annvq verify db/fmnist
      annvq verify db/fmnist || annvq info db/fmnist
    """
    from annvq.collection import Collection

    with Collection.open(collection, read_only=True) as col:
        problems = col.verify()
    if problems:
        for problem in problems:
            click.echo(f"problem: {problem}")
        raise click.ClickException(f"{collection}: {len(problems)} problem(s) found.")
    click.echo(f"{collection}: ok")
