"""Payload filters in Qdrant's language, parsed once into a predicate and evaluated column-wise.

    {"must":     [{"key": "label", "match": {"value": 3}},
                  {"key": "price", "range": {"gte": 10, "lt": 20}}],
     "should":   [{"key": "tag", "match": {"any": ["a", "b"]}}, {"has_id": [1, 2]}],
     "must_not": [{"key": "sold", "match": {"value": true}}, {"is_empty": {"key": "tag"}}]}

A point passes when every ``must`` condition holds, at least one ``should`` holds (when any is
given) and no ``must_not`` holds. Conditions:

* ``{"key": f, "match": {"value": v}}``: f equals v (keyword, integer or bool fields);
* ``{"key": f, "match": {"any": [v, ...]}}``: f is one of the values;
* ``{"key": f, "match": {"except": [v, ...]}}``: f has a value and it is none of these;
* ``{"key": f, "range": {"gt"|"gte"|"lt"|"lte": x, ...}}``: f within the bounds (integer, float);
* ``{"has_id": [id, ...]}``: the point's id is one of these;
* ``{"is_empty": {"key": f}}``: f is absent or null;
* a nested filter (``must`` / ``should`` / ``must_not``) as a condition.

A point without a value for f fails every condition on f except ``is_empty``, so ``must_not``
keeps it. Only indexed fields (`annvq.payload_index`) can be filtered on: a condition on another
field is refused, naming the field, rather than parsing every payload at search time. Parsing
checks keys, types and fields against the collection's indexes; evaluation
(`Predicate.mask`) is pyarrow.compute over whole columns.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import InvalidFilterError


def _bools(array: pa.Array) -> np.ndarray:
    """A numpy bool mask from an Arrow boolean result, null counted as False."""
    return pc.fill_null(array, False).to_numpy(zero_copy_only=False)


@dataclass(frozen=True)
class Match:
    """The field's value is among ``values`` (negate: it has a value and it is not)."""

    field: str
    values: tuple
    negate: bool = False

    def mask(self, columns: Mapping[str, pa.Array], ids: np.ndarray) -> np.ndarray:
        column = columns[self.field]
        if not self.values:  # any of nothing: no point; except nothing: every point with a value
            return _bools(pc.is_valid(column)) if self.negate else np.zeros(len(ids), bool)
        values = pa.array(self.values, column.type)
        hit = pc.equal(column, values[0]) if len(values) == 1 else pc.is_in(column, value_set=values)
        if self.negate:
            hit = pc.and_(pc.invert(hit), pc.is_valid(column))
        return _bools(hit)


@dataclass(frozen=True)
class Range:
    """The field's value within the bounds that are set."""

    field: str
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    def mask(self, columns: Mapping[str, pa.Array], ids: np.ndarray) -> np.ndarray:
        column = columns[self.field]
        bounds = [(op, getattr(self, op)) for op in ("gt", "gte", "lt", "lte") if getattr(self, op) is not None]
        if pa.types.is_integer(column.type):
            lo, hi = _integer_interval(bounds)
            if lo > hi:
                return np.zeros(len(ids), bool)
            hit = pc.and_(pc.greater_equal(column, pa.scalar(lo, pa.int64())),
                          pc.less_equal(column, pa.scalar(hi, pa.int64())))
        else:
            hit = pc.is_valid(column)
            for op, value in bounds:
                op, value = _float_bound(op, value)
                hit = pc.and_(hit, _COMPARE[op](column, pa.scalar(value, pa.float64())))
        return _bools(hit)


_COMPARE = {"gt": pc.greater, "gte": pc.greater_equal, "lt": pc.less, "lte": pc.less_equal}
INT64_MIN, INT64_MAX = -2**63, 2**63 - 1


def _integer_interval(bounds) -> tuple[int, int]:
    """[lo, hi]: the integers that satisfy every (op, bound), int or float, computed exactly (an
    int64 column compared with a float bound would be cast to float64, losing values past 2**53)."""
    lo, hi = INT64_MIN, INT64_MAX
    for op, x in bounds:
        if isinstance(x, float) and math.isinf(x):  # +inf: nothing above, everything below; -inf the reverse
            x = INT64_MAX + 1 if x > 0 else INT64_MIN - 1
        if op == "gt":
            lo = max(lo, math.floor(x) + 1)
        elif op == "gte":
            lo = max(lo, math.ceil(x))
        elif op == "lt":
            hi = min(hi, math.ceil(x) - 1)
        else:
            hi = min(hi, math.floor(x))
    return lo, hi


def _float_bound(op: str, x) -> tuple[str, float]:
    """The comparison of a float64 value with the number x, as a comparison with a float: exact
    when x is a float; an int that no float equals lies between two adjacent floats, so "> x" is
    ">= the float above" and "< x" is "<= the float below"."""
    try:
        f = float(x)
    except OverflowError:  # an int beyond every float: compare with the infinity on its side
        f = math.inf if x > 0 else -math.inf
    if f == x:
        return op, f
    below, above = (float(np.nextafter(f, -np.inf)), f) if f > x else (f, float(np.nextafter(f, np.inf)))
    return ("gte", above) if op in ("gt", "gte") else ("lte", below)


@dataclass(frozen=True)
class HasId:
    ids: tuple

    def mask(self, columns: Mapping[str, pa.Array], ids: np.ndarray) -> np.ndarray:
        return np.isin(ids, np.fromiter(self.ids, np.int64, len(self.ids)))


@dataclass(frozen=True)
class IsEmpty:
    field: str

    def mask(self, columns: Mapping[str, pa.Array], ids: np.ndarray) -> np.ndarray:
        return _bools(pc.is_null(columns[self.field]))


@dataclass(frozen=True)
class Bool:
    """must (all), should (at least one, when any), must_not (none)."""

    must: tuple = ()
    should: tuple = ()
    must_not: tuple = ()

    def mask(self, columns: Mapping[str, pa.Array], ids: np.ndarray) -> np.ndarray:
        out = np.ones(len(ids), bool)
        for cond in self.must:
            out &= cond.mask(columns, ids)
        if self.should:
            any_should = np.zeros(len(ids), bool)
            for cond in self.should:
                any_should |= cond.mask(columns, ids)
            out &= any_should
        for cond in self.must_not:
            out &= ~cond.mask(columns, ids)
        return out


Predicate = Match | Range | HasId | IsEmpty | Bool

_CLAUSES = ("must", "should", "must_not")
#: filters nest at most this deep (deeper is refused, not a RecursionError)
MAX_DEPTH = 32


def _fail(where: str, message: str) -> InvalidFilterError:
    return InvalidFilterError(f"filter{where}: {message}")


def _check_keys(obj, allowed: set, where: str, what: str) -> dict:
    if not isinstance(obj, Mapping):
        raise _fail(where, f"{what} must be an object; got {type(obj).__name__}.")
    unknown = set(obj) - allowed
    if unknown:
        raise _fail(where, f"unknown key(s) {sorted(unknown)} in {what}; expected some of {sorted(allowed)}.")
    return dict(obj)


def _value(value, kind: str, field: str, where: str):
    """A match value checked against the field's kind (bools are not integers)."""
    ok = {"keyword": isinstance(value, str), "bool": isinstance(value, bool),
          "integer": isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63,
          "float": False}[kind]
    if not ok:
        raise _fail(where, f"{value!r} does not fit field {field!r}, indexed as {kind}.")
    return value


def _number(value, where: str) -> float | int:
    """A range bound: any int, or a float other than NaN (infinities bound nothing or everything)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise _fail(where, f"range bounds must be numbers; got {value!r}.")
    return value


def _field(cond: dict, schema: Mapping[str, str], where: str) -> tuple[str, str]:
    field = cond.get("key")
    if not isinstance(field, str):
        raise _fail(where, f"'key' must be a payload field name; got {field!r}.")
    if field not in schema:
        known = ", ".join(sorted(schema)) or "none"
        raise _fail(where, f"field {field!r} has no payload index (indexed fields: {known}); "
                           f"declare one to filter on it (Collection.create_payload_index, or "
                           f"PUT /v1/collections/{{name}}/payload-indexes/{field}).")
    return field, schema[field]


def _match(cond: dict, schema, where: str) -> Match:
    field, kind = _field(cond, schema, where)
    if kind == "float":
        raise _fail(where, f"field {field!r} is a float: filter it with 'range', not 'match'.")
    spec = _check_keys(cond["match"], {"value", "any", "except"}, where + ".match", "'match'")
    if len(spec) != 1:
        raise _fail(where, "'match' takes exactly one of 'value', 'any' or 'except'.")
    (how, value), = spec.items()
    if how == "value":
        return Match(field, (_value(value, kind, field, where + ".match.value"),))
    if not isinstance(value, (list, tuple)):
        raise _fail(where, f"'match.{how}' must be a list of values; got {type(value).__name__}.")
    values = tuple(dict.fromkeys(_value(v, kind, field, f"{where}.match.{how}[{i}]") for i, v in enumerate(value)))
    return Match(field, values, negate=how == "except")


def _range(cond: dict, schema, where: str) -> Range:
    field, kind = _field(cond, schema, where)
    if kind not in ("integer", "float"):
        raise _fail(where, f"field {field!r} is a {kind}: 'range' needs an integer or float field.")
    bounds = _check_keys(cond["range"], {"gt", "gte", "lt", "lte"}, where + ".range", "'range'")
    if not bounds:
        raise _fail(where, "'range' needs at least one of gt, gte, lt, lte.")
    return Range(field, **{b: _number(v, f"{where}.range.{b}") for b, v in bounds.items()})


def _condition(cond, schema, where: str, depth: int) -> Predicate:
    if not isinstance(cond, Mapping):
        raise _fail(where, f"a condition must be an object; got {type(cond).__name__}.")
    if not cond or set(cond) & set(_CLAUSES):  # {} is the empty filter: every point, as in Qdrant
        return _filter(cond, schema, where, depth + 1)
    if "has_id" in cond:
        _check_keys(cond, {"has_id"}, where, "a has_id condition")
        ids = cond["has_id"]
        if not isinstance(ids, (list, tuple)) or not all(
                isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 2**63 for i in ids):
            raise _fail(where, "'has_id' must be a list of point ids (integers >= 0).")
        return HasId(tuple(sorted(set(ids))))
    if "is_empty" in cond:
        _check_keys(cond, {"is_empty"}, where, "an is_empty condition")
        inner = _check_keys(cond["is_empty"], {"key"}, where + ".is_empty", "'is_empty'")
        return IsEmpty(_field(inner, schema, where + ".is_empty")[0])
    if "match" in cond:
        _check_keys(cond, {"key", "match"}, where, "a match condition")
        return _match(cond, schema, where)
    if "range" in cond:
        _check_keys(cond, {"key", "range"}, where, "a range condition")
        return _range(cond, schema, where)
    raise _fail(where, f"unknown condition {sorted(cond)}; expected key+match, key+range, has_id, "
                       f"is_empty or a nested filter.")


def _filter(obj, schema, where: str, depth: int = 1) -> Bool:
    if depth > MAX_DEPTH:
        raise _fail(where, f"filters nest at most {MAX_DEPTH} levels deep.")
    obj = _check_keys(obj, set(_CLAUSES), where, "a filter")
    clauses = {}
    for clause in _CLAUSES:
        conds = obj.get(clause, [])
        if isinstance(conds, Mapping):  # one condition without the list, as Qdrant accepts
            conds = [conds]
        if not isinstance(conds, (list, tuple)):
            raise _fail(f"{where}.{clause}", f"must be a list of conditions; got {type(conds).__name__}.")
        clauses[clause] = tuple(_condition(c, schema, f"{where}.{clause}[{i}]", depth)
                                for i, c in enumerate(conds))
    return Bool(**clauses)


def parse_filter(obj, schema: Mapping[str, str]) -> Bool | None:
    """The predicate of a filter (a dict, or its JSON text), checked against the payload indexes
    ``schema`` ({field: kind}); None for no filter (None or {})."""
    if obj is None:
        return None
    if isinstance(obj, (str, bytes)):
        try:
            obj = json.loads(obj)
        except ValueError as exc:
            raise InvalidFilterError(f"filter is not valid JSON: {exc}.") from None
    pred = _filter(obj, schema, "")
    return pred if (pred.must or pred.should or pred.must_not) else None

