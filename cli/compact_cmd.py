"""``annvq compact``: merge segments and drop deleted points."""

from __future__ import annotations

import click

from .main import user_errors
from .options import collection_dir


@click.command("compact")
@collection_dir
@user_errors
def compact(collection):
    """Merge the segments of the collection at DIR into one and purge deleted points.

    Searches get faster with fewer segments; disk space of deleted points is reclaimed.

    \b
    Examples:
      annvq compact db/fmnist
    """
    from annvq.collection import Collection

    with Collection.open(collection) as col:
        before = col.stats()
        col.compact()
        after = col.stats()
    click.echo(f"{collection}: {before['segments']} -> {after['segments']} segment(s), "
               f"{before['deleted']:,} deleted point(s) purged, "
               f"{before['bytes_on_disk']:,} -> {after['bytes_on_disk']:,} bytes on disk")
