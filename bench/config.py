"""Algorithm definitions from ann-benchmarks-format YAML configs.

    float:                      # point type
      euclidean:                # metric ("any" applies to every metric)
      - name: annvq             # family: what --algorithms selects, one plot colour
        constructor: AnnvqIVF   # wrapper class (bench.algorithms registry)
        module: bench.algorithms.annvq_ivf
        base_args: ['@metric']  # '@metric', '@dimension', '@count' are substituted (also in args)
        disabled: false
        run_groups:
          saq:
            args: [[IVF1024,SAQ4, IVF1024,SAQ2]]   # build arguments: one build per combination
            query_args: [[1, 4, 16, 64]]           # search arguments: one measurement each

A list whose elements are lists expands to their cartesian product (ann-benchmarks'
``_generate_combinations``); a dict expands per key the same way, into keyword arguments.
"""

from __future__ import annotations

import fnmatch
import itertools
from dataclasses import dataclass
from pathlib import Path

import yaml

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class Definition:
    """One build of one algorithm and the query arguments measured on it."""

    name: str
    constructor: str
    args: tuple
    kwargs: dict
    #: positional tuples, or dicts of keyword arguments, for ``set_query_arguments``
    query_args: tuple


def default_config(dataset: str) -> Path:
    """``configs/{family}.yml`` for a dataset named ``{family}-{dim}-{metric}``, else default.yml."""
    family = "-".join(dataset.split("-")[:-2]) or dataset
    path = CONFIG_DIR / f"{family}.yml"
    return path if path.exists() else CONFIG_DIR / "default.yml"


def combinations(args) -> list:
    """ann-benchmarks' expansion: lists -> list of positional tuples, dicts -> list of dicts."""
    if isinstance(args, dict):
        options = [[(k, x) for x in v] if isinstance(v, list) else [(k, v)] for k, v in args.items()]
        return [dict(c) for c in itertools.product(*options)]
    options = [x if isinstance(x, list) else [x] for x in (args or [])]
    return [tuple(c) for c in itertools.product(*options)]


def _substitute(args, metric: str, dim: int, count: int):
    """Replace ``@metric``, ``@dimension`` and ``@count``: whole values become the value itself,
    and inside a longer string the text is replaced (``RR@dimension,IVF1024,RaBitQ4``)."""
    names = {"@dimension": dim, "@metric": metric, "@count": count}
    if isinstance(args, list):
        return [_substitute(a, metric, dim, count) for a in args]
    if isinstance(args, dict):
        return {k: _substitute(v, metric, dim, count) for k, v in args.items()}
    if isinstance(args, str):
        if args in names:
            return names[args]
        for name, value in names.items():
            args = args.replace(name, str(value))
    return args


def selected(name: str, constructor: str, patterns: list[str] | None) -> bool:
    """True when a definition matches one of the ``--algorithms`` patterns (name or constructor,
    shell-style wildcards allowed); every definition matches when no pattern is given."""
    return not patterns or any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(constructor, p) for p in patterns)


def load_definitions(path, metric: str, dim: int, count: int = 10, *,
                     algorithms: list[str] | None = None, point_type: str = "float") -> list[Definition]:
    """The enabled definitions of a config for a metric, filtered by ``algorithms`` patterns."""
    config = yaml.safe_load(Path(path).read_text()) or {}
    entries = [*config.get(point_type, {}).get("any", []), *config.get(point_type, {}).get(metric, [])]
    out = []
    for entry in entries:
        if entry.get("disabled") or not selected(entry["name"], entry["constructor"], algorithms):
            continue
        base = _substitute(entry.get("base_args", []), metric, dim, count)
        for group in entry.get("run_groups", {}).values():
            queries = tuple(combinations(group.get("query_args", [])))
            for build in combinations(_substitute(group.get("args", []), metric, dim, count)):
                args, kwargs = (tuple(base), build) if isinstance(build, dict) else (tuple(base) + build, {})
                out.append(Definition(entry["name"], entry["constructor"], args, kwargs, queries))
    return out
