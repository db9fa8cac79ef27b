"""Build times of annvq SAQ beside rabitqlib and faiss on the same centroids, at a thread count.

    python -m bench.build_time [--threads 2] [--rounds 5] [--only "annvq SAQ4" "rabitqlib nbits=4"]

The indexes and wrappers are `bench.saq_vs_rabitq`'s. The shared k-means runs once, outside
every build's time (``prepare_fit``); ``set_threads`` caps numba, OpenMP and BLAS, and every
wrapper passes the same count to its library. Builds are interleaved (each index once per
round), after one untimed round that compiles and loads everything, so load from other
processes hits all of them alike; the table gives each index's best and median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from tqdm.auto import tqdm

from .algorithms.base import set_threads
from .datasets import load
from .saq_vs_rabitq import INDEXES


def build_times(dataset: str, nlist: int, names: list[str], threads: int, rounds: int,
                quiet: bool = False) -> dict[str, list[float]]:
    """Seconds of every timed build, per index name, interleaved over ``rounds`` rounds."""
    set_threads(threads)
    ds = load(dataset, quiet=quiet)
    makers = {name: INDEXES[name][0] for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in tqdm(range(rounds + 1), desc="rounds", disable=quiet or None):
        for name, make in makers.items():
            algo = make(ds.dim, ds.metric, nlist)
            algo.prepare_fit(ds.train)
            start = time.perf_counter()
            algo.fit(ds.train)
            if r:  # round 0 compiles and warms
                times[name].append(time.perf_counter() - start)
            algo.done()
    return times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.build_time", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist-784-euclidean")
    parser.add_argument("--nlist", type=int, default=1024, help="coarse lists, shared by every index")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", nargs="+", default=["annvq SAQ4", "rabitqlib nbits=4"],
                        help=f"index names, of: {', '.join(n for n in INDEXES if not n.endswith('m=4'))}")
    parser.add_argument("--out", help="also write the times as JSON here")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    unknown = [n for n in args.only if n not in INDEXES or n.endswith("m=4")]
    if unknown:
        parser.error(f"unknown index {unknown[0]!r}")
    times = build_times(args.dataset, args.nlist, args.only, args.threads, args.rounds, args.quiet)
    print(f"\n{args.dataset}, IVF{args.nlist} shared centroids, {args.threads} threads, {args.rounds} rounds\n")
    print("| index | best (s) | median (s) | every round (s) |")
    print("|---|---:|---:|---|")
    for name, ts in times.items():
        print(f"| {name} | {min(ts):.2f} | {statistics.median(ts):.2f} | {' / '.join(f'{t:.2f}' for t in ts)} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(times, f, indent=1)


if __name__ == "__main__":
    main()
