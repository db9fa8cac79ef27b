"""Recall@k vs QPS plot (log QPS), one Pareto frontier per algorithm, one colour per family."""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402

from . import results  # noqa: E402

MARKERS = "osD^vP<X>*ph"
LINESTYLES = ("-", "--", "-.", ":")
#: small enough for a committed PNG (well under 200 KB at this size)
SIZE_IN, DPI = (10, 6), 90


def shades(colour, n: int) -> list[tuple]:
    """n variants of one family colour, from darker to lighter, so its members stay apart."""
    base = np.asarray(colour[:3])
    out = []
    for t in np.linspace(-0.4, 0.4, n) if n > 1 else [0.0]:
        target = np.ones(3) if t > 0 else np.zeros(3)
        out.append(tuple(base + abs(t) * (target - base)))
    return out


def plot(paths, out, *, title: str | None = None) -> Path:
    """Write the recall/QPS PNG for the records of ``paths``; returns ``out``."""
    records = results.load(paths)
    if not records:
        raise ValueError(f"no results in {paths}")
    groups = results.by_algorithm(records)
    families = sorted({r["family"] for r in records})
    colours = dict(zip(families, itertools.cycle(plt.get_cmap("tab10").colors)))
    members = {f: sorted(a for a in groups if groups[a][0]["family"] == f) for f in families}
    fig, ax = plt.subplots(figsize=SIZE_IN, dpi=DPI)
    for family in families:
        for i, (algorithm, colour) in enumerate(zip(members[family], shades(colours[family], len(members[family])))):
            front = results.pareto_frontier(groups[algorithm])
            ax.plot([r["recall"] for r in front], [r["qps"] for r in front], color=colour,
                    marker=MARKERS[i % len(MARKERS)], linestyle=LINESTYLES[i % len(LINESTYLES)],
                    markersize=4, linewidth=1.2, label=algorithm)
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
