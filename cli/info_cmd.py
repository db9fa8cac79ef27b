"""``annvq info``: what a collection holds and how big it is."""

from __future__ import annotations

import json

import click

from .main import user_errors
from .options import collection_dir


@click.command("info")
@collection_dir
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as one JSON object.")
@user_errors
def info(collection, as_json):
    """Show a collection's spec, metric, dimension, counts, segments, sizes and payload indexes
    (the fields `annvq query --filter` can use).

    \b
    Examples:
      annvq info db/fmnist
      annvq info db/fmnist --json | jq .count
    """
    from annvq.collection import Collection

    with Collection.open(collection, read_only=True) as col:
        stats = {"path": str(col.path), **col.stats(), "payload_indexes": col.payload_indexes}
    if as_json:
        click.echo(json.dumps(stats))
        return
    width = max(map(len, stats))
    for name, value in stats.items():
        shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
        if name == "payload_indexes":
            shown = ", ".join(f"{field} ({kind})" for field, kind in value.items()) or "none"
        click.echo(f"{name:<{width}}  {shown}")
