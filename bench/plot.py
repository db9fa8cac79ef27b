"""Recall@k vs QPS plot (log QPS), one Pareto frontier per algorithm, one colour per family."""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402

from . import results  # noqa: E402

MARKERS = "osD^vP<X>*ph"
#: small enough for a committed PNG (well under 200 KB at this size)
SIZE_IN, DPI = (10, 6), 90


def plot(paths, out, *, title: str | None = None) -> Path:
    """Write the recall/QPS PNG for the records of ``paths``; returns ``out``."""
    records = results.load(paths)
    if not records:
        raise ValueError(f"no results in {paths}")
    groups = results.by_algorithm(records)
    families = sorted({r["family"] for r in records})
    colours = dict(zip(families, itertools.cycle(plt.get_cmap("tab10").colors)))
    markers = {f: itertools.cycle(MARKERS) for f in families}
    fig, ax = plt.subplots(figsize=SIZE_IN, dpi=DPI)
    for algorithm in sorted(groups, key=lambda a: (groups[a][0]["family"], a)):
        family = groups[algorithm][0]["family"]
        front = results.pareto_frontier(groups[algorithm])
        ax.plot([r["recall"] for r in front], [r["qps"] for r in front], marker=next(markers[family]),
                color=colours[family], markersize=4, linewidth=1.2, label=algorithm)
    first = records[0]
    ax.set_yscale("log")
    ax.set_xlabel(f"recall@{first['count']}")
    ax.set_ylabel("queries per second (log)")
    ax.set_title(title or f"{first['dataset']}, {first['mode']} queries, {first['threads']} thread(s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out
