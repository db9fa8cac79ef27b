"""Payload filters (annvq.filters) and index columns (annvq.payload_index) against a pure-Python oracle."""

import json
import math
import re

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annvq.errors import InvalidParameterError
from annvq.filters import MAX_DEPTH, InvalidFilterError, parse_filter
from annvq.payload_index import KINDS, columns

SCHEMA = {"tag": "keyword", "n": "integer", "x": "float", "flag": "bool"}
CLAUSES = ("must", "should", "must_not")
BOUNDS = ("gt", "gte", "lt", "lte")
INT64_MIN, INT64_MAX = -2**63, 2**63 - 1


# -- the oracle -------------------------------------------------------------------------------------

def _listed(conds):
    """A clause's conditions, accepting the single-condition form."""
    return [conds] if isinstance(conds, dict) else list(conds)


def _holds(cond, point_id, payload) -> bool:
    """Whether one condition holds for a point (payload a dict, never None)."""
    if not cond or any(clause in cond for clause in CLAUSES):  # {}: the empty filter
        return matches(cond, point_id, payload)
    if "has_id" in cond:
        return point_id in cond["has_id"]
    if "is_empty" in cond:
        return payload.get(cond["is_empty"]["key"]) is None
    value = payload.get(cond["key"])
    if value is None:
        return False
    if "match" in cond:
        (how, wanted), = cond["match"].items()
        return {"value": lambda: value == wanted, "any": lambda: value in wanted,
                "except": lambda: value not in wanted}[how]()
    limits = cond["range"]
    return all(op(value, limits[b]) for b, op in (("gt", lambda a, b: a > b), ("gte", lambda a, b: a >= b),
                                                  ("lt", lambda a, b: a < b), ("lte", lambda a, b: a <= b))
               if b in limits)


def matches(filter_dict, point_id, payload_dict) -> bool:
    """Whether a point passes a filter: every must, at least one should (when any), no must_not."""
    payload = payload_dict or {}
    must, should, must_not = (_listed(filter_dict.get(c, [])) for c in CLAUSES)
    return (all(_holds(c, point_id, payload) for c in must)
            and (not should or any(_holds(c, point_id, payload) for c in should))
            and not any(_holds(c, point_id, payload) for c in must_not))


# -- helpers ----------------------------------------------------------------------------------------

def encode(payloads):
    """Payload JSON texts as the collection stores them (compact, null for no payload)."""
    return pa.array([None if p is None else json.dumps(p, allow_nan=False, separators=(",", ":"))
                     for p in payloads], pa.large_string())


def evaluate(filt, ids, payloads, schema=SCHEMA) -> np.ndarray:
    """The engine's mask of a filter over points, every point matching when the filter is empty."""
    ids = np.asarray(ids, np.int64)
    pred = parse_filter(filt, schema)
    if pred is None:
        return np.ones(len(ids), bool)
    return pred.mask(columns(encode(payloads), ids, schema), ids)


def selected(filt, points) -> tuple[set, set]:
    """The ids of the (id, payload) points the oracle and the engine each select."""
    mask = evaluate(filt, [i for i, _ in points], [p for _, p in points])
    return {i for i, p in points if matches(filt, i, p)}, {i for (i, _), hit in zip(points, mask) if hit}


def refusal(filt, schema=SCHEMA) -> str:
    """The message of the InvalidFilterError a filter is refused with."""
    with pytest.raises(InvalidFilterError) as info:
        parse_filter(filt, schema)
    return str(info.value)


# -- strategies -------------------------------------------------------------------------------------

def _pick(*strategies):
    """One of these strategies, each as likely (st.one_of weighs the branches of nested one_ofs)."""
    return st.sampled_from(strategies).flatmap(lambda s: s)


def _mostly(pool, wide):
    """Values from a small pool (so conditions hit), one time in five from the whole domain."""
    return _pick(*[st.sampled_from(pool)] * 4, wide)


TAGS = _mostly(["a", "b", "é\U0001F600", "", "a\nb\x00"],
               st.text(st.characters(blacklist_categories=("Cs",)), max_size=4))
INTS = _mostly([0, 1, 2**53 + 1, INT64_MAX, INT64_MIN], st.integers(INT64_MIN, INT64_MAX))
FLOATS = _mostly([0.0, -0.0, 0.5, 3, float(2**53), 1e300],
                 st.floats(allow_nan=False, allow_infinity=False) | st.integers(-2**53, 2**53))
VALUES = {"tag": TAGS, "n": INTS, "x": FLOATS, "flag": st.booleans()}
OTHER = st.sampled_from([[1, "a"], {"n": "nested"}, "text", 1.5, None])
POINT_IDS = _mostly([0, 1, 2, 3, 5, 8], st.integers(0, INT64_MAX))


@st.composite
def payloads(draw):
    """None now and then, else a dict whose fields are absent, null or a value of their kind."""
    if draw(st.integers(0, 7)) == 0:
        return None
    how = {f: draw(st.sampled_from(["absent", "null", "value", "value", "value"])) for f in (*VALUES, "other")}
    return {f: None if h == "null" else draw(VALUES.get(f, OTHER)) for f, h in how.items() if h != "absent"}


def _match(field):
    """A match condition on a field: value, any or except, over values of its kind."""
    lists = st.lists(VALUES[field], max_size=3)
    return _pick(VALUES[field].map(lambda v: {"value": v}), lists.map(lambda v: {"any": v}),
                 lists.map(lambda v: {"except": v})).map(lambda m: {"key": field, "match": m})


def _range(field, bounds):
    """A range condition on a field with one or two bounds."""
    return st.dictionaries(st.sampled_from(BOUNDS), bounds, min_size=1, max_size=2).map(
        lambda r: {"key": field, "range": r})


# Range bounds: the fields' own values (so bounds fall on them), fractions, floats next to the int64
# limits and 2**53, ints past int64 and every float, and the infinities, on either numeric field.
NUMBERS = _pick(INTS, FLOATS, st.floats(allow_nan=False), st.integers(-2**70, 2**70), st.sampled_from(
    [0.5, -0.5, 1.5, float(2**53), float(2**63), -float(2**63), 2**63, INT64_MIN - 1, 10**400, math.inf, -math.inf]))
LEAVES = _pick(
    _match("tag"), _match("n"), _match("flag"), _range("n", NUMBERS), _range("x", NUMBERS),
    st.lists(POINT_IDS, max_size=3).map(lambda ids: {"has_id": ids}),
    st.sampled_from(sorted(SCHEMA)).map(lambda f: {"is_empty": {"key": f}}),
)


@st.composite
def filters(draw, depth: int = 3, nested: bool = False):
    """Filters nesting bool filters up to ``depth`` levels below this one (nested: one clause at least)."""
    cond = LEAVES if depth == 0 else _pick(LEAVES, LEAVES, filters(depth - 1, nested=True))
    clauses = draw(st.sets(st.sampled_from(CLAUSES), min_size=int(nested)))
    return {c: draw(_pick(cond, st.lists(cond, max_size=2))) for c in CLAUSES if c in clauses}


POINTS = st.integers(1, 16).flatmap(lambda n: st.lists(st.tuples(POINT_IDS, payloads()), min_size=n, max_size=n))


# -- the property -----------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(points=POINTS, filt=filters(), as_text=st.booleans(), offset=st.integers(0, 2))
def test_mask_equals_oracle(points, filt, as_text, offset):
    """Any filter over any points (texts possibly a slice) selects exactly the oracle's points."""
    ids = np.array([i for i, _ in points], np.int64)
    payloads = [p for _, p in points]
    texts = pa.concat_arrays([pa.array(['{"n":"not read"}'] * offset, pa.large_string()),
                              encode(payloads)]).slice(offset)
    pred = parse_filter(json.dumps(filt) if as_text else filt, SCHEMA)
    got = np.ones(len(ids), bool) if pred is None else pred.mask(columns(texts, ids, SCHEMA), ids)
    assert got.dtype == bool and got.tolist() == [matches(filt, i, p) for i, p in points]


@settings(max_examples=300, deadline=None)
@given(points=POINTS, cond=LEAVES, clause=st.sampled_from(CLAUSES))
def test_single_condition_equals_oracle(points, cond, clause):
    """One condition in one clause, where boundary and null cases are not masked by other conditions."""
    filt = {clause: [cond]}
    got = evaluate(filt, [i for i, _ in points], [p for _, p in points])
    assert got.tolist() == [matches(filt, i, p) for i, p in points]


@settings(max_examples=100, deadline=None)
@given(payloads=st.lists(payloads(), max_size=12))
def test_columns_hold_each_payload_value(payloads):
    """Each index column holds every point's value of its kind (ints as floats in float fields)."""
    cols = columns(encode(payloads), np.arange(len(payloads), dtype=np.int64), SCHEMA)
    for field, kind in SCHEMA.items():
        assert cols[field].type == KINDS[kind] and len(cols[field]) == len(payloads)
        want = [(p or {}).get(field) for p in payloads]
        assert cols[field].to_pylist() == [float(v) if kind == "float" and v is not None else v for v in want]


def test_oracle_spot_checks():
    """The oracle itself on hand-worked cases."""
    assert matches({}, 1, None)
    assert not matches({"must": {"key": "n", "range": {"gt": 0}}}, 1, {"n": None})
    assert matches({"must_not": {"key": "n", "range": {"gt": 0}}}, 1, None)
    assert not matches({"must": {"key": "tag", "match": {"except": []}}}, 1, {})
    assert not matches({"should": {"key": "tag", "match": {"any": []}}}, 1, {"tag": "a"})
    assert matches({"should": [], "must": {"should": [{"has_id": [2]}, {"is_empty": {"key": "x"}}]}}, 1, {})


# -- each operator on each kind it allows -----------------------------------------------------------

EXAMPLES = [
    (0, {"tag": "a", "n": 1, "x": 0.5, "flag": True}),
    (1, {"tag": "b", "n": -5, "x": -2.0, "flag": False}),
    (2, {"tag": "a", "n": INT64_MAX, "x": 3, "flag": None}),
    (3, {"n": INT64_MIN, "other": [1, 2]}),
    (4, None),
    (5, {"tag": "é\U0001F600", "n": 0, "x": 1e300, "flag": False}),
    (6, {"tag": None, "n": None, "x": None, "flag": None}),
]


@pytest.mark.parametrize("cond, expected", [
    ({"key": "tag", "match": {"value": "a"}}, {0, 2}),
    ({"key": "tag", "match": {"value": "é\U0001F600"}}, {5}),
    ({"key": "tag", "match": {"value": ""}}, set()),
    ({"key": "n", "match": {"value": INT64_MAX}}, {2}),
    ({"key": "n", "match": {"value": INT64_MIN}}, {3}),
    ({"key": "n", "match": {"value": 0}}, {5}),
    ({"key": "flag", "match": {"value": True}}, {0}),
    ({"key": "flag", "match": {"value": False}}, {1, 5}),
    ({"key": "tag", "match": {"any": ["b", "é\U0001F600", "zz", "b"]}}, {1, 5}),
    ({"key": "n", "match": {"any": [1, 0, 42]}}, {0, 5}),
    ({"key": "flag", "match": {"any": [True, False]}}, {0, 1, 5}),
    ({"key": "tag", "match": {"any": []}}, set()),
    ({"key": "tag", "match": {"except": ["a"]}}, {1, 5}),
    ({"key": "n", "match": {"except": [1, INT64_MIN]}}, {1, 2, 5}),
    ({"key": "flag", "match": {"except": [True]}}, {1, 5}),
    ({"key": "tag", "match": {"except": []}}, {0, 1, 2, 5}),
    ({"key": "n", "range": {"gt": 0}}, {0, 2}),
    ({"key": "n", "range": {"gte": 0}}, {0, 2, 5}),
    ({"key": "n", "range": {"lt": 0}}, {1, 3}),
    ({"key": "n", "range": {"lte": -5}}, {1, 3}),
    ({"key": "n", "range": {"gt": -5, "lt": 2}}, {0, 5}),
    ({"key": "n", "range": {"gte": INT64_MAX}}, {2}),
    ({"key": "n", "range": {"lte": INT64_MIN}}, {3}),
    ({"key": "x", "range": {"gt": 0}}, {0, 2, 5}),
    ({"key": "x", "range": {"lte": 0.5}}, {0, 1}),
    ({"key": "x", "range": {"gte": 3}}, {2, 5}),
    ({"key": "x", "range": {"gt": 0.25, "lt": 0.75}}, {0}),
    ({"key": "x", "range": {"lt": math.inf}}, {0, 1, 2, 5}),
    ({"key": "x", "range": {"gt": 2.0, "lt": 2.0}}, set()),
    ({"has_id": [0, 4, 99]}, {0, 4}),
    ({"has_id": []}, set()),
    ({"is_empty": {"key": "tag"}}, {3, 4, 6}),
    ({"is_empty": {"key": "n"}}, {4, 6}),
    ({"is_empty": {"key": "x"}}, {3, 4, 6}),
    ({"is_empty": {"key": "flag"}}, {2, 3, 4, 6}),
    ({"should": [{"has_id": [1]}, {"key": "flag", "match": {"value": True}}]}, {0, 1}),
    ({"must_not": {"is_empty": {"key": "flag"}}}, {0, 1, 5}),
    ({"must": [{"should": []}]}, set(range(7))),
])
def test_each_condition_as_must(cond, expected):
    """One condition under ``must`` (single-condition form) selects the expected points."""
    assert selected({"must": cond}, EXAMPLES) == (expected, expected)


@pytest.mark.parametrize("filt, expected", [
    ({"must_not": [{"key": "tag", "match": {"value": "a"}}]}, {1, 3, 4, 5, 6}),
    ({"must_not": {"key": "n", "range": {"gt": -100}}}, {3, 4, 6}),
    ({"should": [{"has_id": [6]}, {"key": "n", "range": {"lt": -1}}], "must_not": {"has_id": [3]}}, {1, 6}),
    ({"must": [{"key": "tag", "match": {"value": "a"}}, {"key": "flag", "match": {"value": True}}]}, {0}),
    ({"must": {"must_not": {"should": [{"has_id": [0]}, {"is_empty": {"key": "n"}}]}}}, {1, 2, 3, 5}),
    ({"should": [], "must": [], "must_not": []}, set(range(7))),
    ({}, set(range(7))),
    ({"must": [{}]}, set(range(7))),  # an empty nested filter is every point, as in Qdrant
    ({"must_not": [{}]}, set()),
])
def test_clauses_combine(filt, expected):
    """must, should and must_not combine as documented; an empty filter selects every point."""
    assert selected(filt, EXAMPLES) == (expected, expected)


def test_empty_filters_parse_to_none():
    """No filter, {} and filters with only empty clauses are None (every point matches)."""
    for filt in (None, {}, "{}", {"must": []}, {"must": [], "should": [], "must_not": []}):
        assert parse_filter(filt, SCHEMA) is None
    assert parse_filter({"must": {"should": []}}, SCHEMA) is not None


def test_filter_as_json_text_or_bytes():
    """A filter given as JSON text or bytes means the same as the dict."""
    filt = {"must": {"key": "tag", "match": {"any": ["a", "b"]}}}
    assert parse_filter(json.dumps(filt), SCHEMA) == parse_filter(filt, SCHEMA)
    assert parse_filter(json.dumps(filt).encode(), SCHEMA) == parse_filter(filt, SCHEMA)


def test_no_payloads_fail_every_field_condition_but_is_empty():
    """With texts=None every field is empty: is_empty and has_id hold, field conditions fail."""
    ids = np.arange(3, dtype=np.int64)
    cols = columns(None, ids, SCHEMA)
    for cond, hit in (({"is_empty": {"key": "n"}}, True), ({"key": "n", "range": {"lt": 1}}, False),
                      ({"key": "tag", "match": {"except": ["a"]}}, False), ({"has_id": [0, 1, 2]}, True)):
        assert parse_filter({"must": cond}, SCHEMA).mask(cols, ids).tolist() == [hit] * 3


# -- refusals ---------------------------------------------------------------------------------------

def _nested(depth):
    """A filter nesting ``depth`` levels of must."""
    filt = {"must": []}
    for _ in range(depth - 1):
        filt = {"must": [filt]}
    return filt


@pytest.mark.parametrize("filt, needles", [
    ({"must": [], "filter": []}, ["unknown key", "'filter'"]),
    ([{"must": []}], ["must be an object", "list"]),
    ({"must": 3}, ["filter.must", "must be a list"]),
    ({"must": [3]}, ["filter.must[0]", "a condition must be an object"]),
    ({"must": [{"key": "tag", "equals": "a"}]}, ["unknown condition", "'equals'"]),
    ({"must": [{"key": "tag", "match": {"value": "a"}, "boost": 2}]}, ["unknown key", "'boost'"]),
    ({"must": [{"has_id": [1], "key": "tag"}]}, ["unknown key", "'key'", "has_id"]),
    ({"must": [{"is_empty": {"key": "tag", "or": 1}}]}, ["unknown key", "'or'"]),
    ({"must": {"key": "price", "range": {"gt": 1}}}, ["'price'", "no payload index", "flag, n, tag, x"]),
    ({"must": {"key": "price", "match": {"value": 1}}}, ["'price'", "no payload index"]),
    ({"should": {"is_empty": {"key": "price"}}}, ["filter.should[0].is_empty", "'price'"]),
    ({"must": {"key": 3, "match": {"value": 1}}}, ["'key'", "3"]),
    ({"must": {"match": {"value": 1}}}, ["'key'", "None"]),
    ({"must": {"key": "n", "match": {"value": "3"}}}, ["'3'", "'n'", "integer"]),
    ({"must": {"key": "n", "match": {"value": True}}}, ["True", "'n'", "integer"]),
    ({"must": {"key": "n", "match": {"value": 1.0}}}, ["1.0", "'n'", "integer"]),
    ({"must": {"key": "n", "match": {"value": 2**63}}}, [str(2**63), "'n'", "integer"]),
    ({"must": {"key": "flag", "match": {"value": 1}}}, ["1", "'flag'", "bool"]),
    ({"must": {"key": "tag", "match": {"value": 1}}}, ["'tag'", "keyword"]),
    ({"must": {"key": "tag", "match": {"any": ["a", 1]}}}, ["match.any[1]", "'tag'", "keyword"]),
    ({"must": {"key": "n", "match": {"except": [1, None]}}}, ["match.except[1]", "'n'"]),
    ({"must": {"key": "tag", "match": {"any": "a"}}}, ["'match.any' must be a list"]),
    ({"must": {"key": "x", "match": {"value": 1.5}}}, ["'x'", "float", "'range'"]),
    ({"must": {"key": "tag", "match": {"value": "a", "any": ["b"]}}}, ["exactly one"]),
    ({"must": {"key": "tag", "match": {"any": ["a"], "except": ["b"]}}}, ["exactly one"]),
    ({"must": {"key": "tag", "match": {}}}, ["exactly one"]),
    ({"must": {"key": "tag", "match": {"text": "a"}}}, ["unknown key", "'text'"]),
    ({"must": {"key": "tag", "match": "a"}}, ["'match' must be an object"]),
    ({"must": {"key": "tag", "range": {"gt": 1}}}, ["'tag'", "keyword", "integer or float"]),
    ({"must": {"key": "flag", "range": {"gt": 0}}}, ["'flag'", "bool", "integer or float"]),
    ({"must": {"key": "n", "range": {}}}, ["at least one of gt, gte, lt, lte"]),
    ({"must": {"key": "n", "range": {"gt": 1, "between": 2}}}, ["unknown key", "'between'"]),
    ({"must": {"key": "n", "range": {"gt": "1"}}}, ["range.gt", "must be numbers", "'1'"]),
    ({"must": {"key": "x", "range": {"lt": math.nan}}}, ["range.lt", "must be numbers", "nan"]),
    ({"must": {"key": "x", "range": {"gte": True}}}, ["range.gte", "must be numbers", "True"]),
    ({"must": {"key": "n", "range": {"lte": None}}}, ["range.lte", "must be numbers", "None"]),
    ({"must": {"has_id": [1, -1]}}, ["'has_id'", "integers >= 0"]),
    ({"must": {"has_id": [1.0]}}, ["'has_id'", "integers >= 0"]),
    ({"must": {"has_id": [True]}}, ["'has_id'", "integers >= 0"]),
    ({"must": {"has_id": ["1"]}}, ["'has_id'", "integers >= 0"]),
    ({"must": {"has_id": [2**63]}}, ["'has_id'", "integers >= 0"]),
    ({"must": {"has_id": 1}}, ["'has_id'", "list"]),
    ("{\"must\": [", ["not valid JSON"]),
    ("[1, 2", ["not valid JSON"]),
    (_nested(MAX_DEPTH + 1), [f"at most {MAX_DEPTH} levels"]),
])
def test_refusals_name_the_problem(filt, needles):
    """Malformed filters raise InvalidFilterError (an InvalidParameterError) naming the key or field."""
    message = refusal(filt)
    for needle in needles:
        assert needle in message, (needle, message)


def test_refusal_is_an_invalid_parameter_error_and_nesting_limit_is_inclusive():
    """InvalidFilterError is caught as InvalidParameterError; MAX_DEPTH levels still parse."""
    with pytest.raises(InvalidParameterError, match=re.escape("'price'")):
        parse_filter({"must": {"key": "price", "match": {"value": 1}}}, SCHEMA)
    assert parse_filter(_nested(MAX_DEPTH), SCHEMA) is not None


def test_unindexed_field_refused_with_empty_schema():
    """With no payload indexes at all, the message says none are indexed."""
    message = refusal({"must": {"key": "tag", "match": {"value": "a"}}}, {})
    assert "'tag'" in message and "indexed fields: none" in message


# -- payload_index.columns --------------------------------------------------------------------------

def column_of(field, values, ids=None):
    """The column of one field over payloads {field: value} (ids 0.. unless given)."""
    ids = np.arange(len(values), dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
    return columns(encode([{field: v} for v in values]), ids, {field: SCHEMA[field]})[field]


def test_float_fields_accept_ints():
    """A float field takes JSON ints as floats."""
    col = column_of("x", [3, -2**53, 0.5, None])
    assert col.type == pa.float64() and col.to_pylist() == [3.0, float(-2**53), 0.5, None]


def test_integer_field_takes_the_int64_extremes():
    """The int64 limits fit an integer field exactly."""
    assert column_of("n", [INT64_MIN, INT64_MAX, 0]).to_pylist() == [INT64_MIN, INT64_MAX, 0]


@pytest.mark.parametrize("field, bad", [
    ("n", 1.5), ("n", 1.0), ("n", "3"), ("n", True), ("n", [1]), ("n", {"a": 1}), ("n", 2**63),
    ("n", INT64_MIN - 1),
    ("tag", 3), ("tag", 1.5), ("tag", True), ("tag", ["a"]),
    ("flag", 1), ("flag", "true"),
    ("x", "1.5"), ("x", True), ("x", [1.0]),
])
def test_columns_refuse_values_of_another_kind(field, bad):
    """A value that does not fit its field's kind is refused, naming the point id and field."""
    good = {"n": 1, "tag": "a", "flag": False, "x": 0.5}[field]
    with pytest.raises(InvalidParameterError) as info:
        column_of(field, [good, bad, good], ids=[40, 41, 42])
    message = str(info.value)
    assert "point 41" in message and repr(field) in message and SCHEMA[field] in message, message


def test_columns_from_a_slice():
    """A texts array with a non-zero offset yields the slice's values, and errors name its ids."""
    texts = encode([{"n": "bad"}, {"n": 1, "tag": "é"}, None, {"n": 2}, {"n": "also bad"}])
    cols = columns(texts.slice(1, 3), np.array([7, 8, 9]), SCHEMA)
    assert cols["n"].to_pylist() == [1, None, 2] and cols["tag"].to_pylist() == ["é", None, None]
    with pytest.raises(InvalidParameterError, match="point 9 "):
        columns(texts.slice(3), np.array([8, 9]), SCHEMA)


def test_columns_without_payloads_are_null():
    """texts=None, all-null texts (sliced or not) and zero rows give typed null columns."""
    ids = np.arange(4, dtype=np.int64)
    all_null = pa.array([None] * 4, pa.large_string())
    sliced = pa.concat_arrays([encode([{"n": 1}]), all_null]).slice(1)
    for texts in (None, all_null, sliced):
        cols = columns(texts, ids, SCHEMA)
        assert set(cols) == set(SCHEMA)
        for field, kind in SCHEMA.items():
            assert cols[field].type == KINDS[kind] and cols[field].to_pylist() == [None] * 4
    assert {f: len(c) for f, c in columns(None, ids[:0], SCHEMA).items()} == dict.fromkeys(SCHEMA, 0)
    assert columns(encode([{"n": 1}]), ids[:1], {}) == {}


def test_columns_read_raw_unicode_and_ignore_other_fields():
    """Unescaped unicode keywords read back exactly; unindexed fields of any type are ignored."""
    texts = pa.array([json.dumps({"tag": "é\u2028\U0001F600", "other": [{"n": "x"}]}, ensure_ascii=False),
                      json.dumps({"tag": "a\nb\"\\", "n": [1, 2, 3], "x": "nope"}, ensure_ascii=False)],
                     pa.large_string())
    cols = columns(texts, np.array([0, 1]), {"tag": "keyword"})
    assert cols["tag"].to_pylist() == ["é\u2028\U0001F600", "a\nb\"\\"]


# -- bounds that cannot be compared in float64 ------------------------------------------------------

BIG_N = [(0, {"n": 2**53}), (1, {"n": 2**53 + 1}), (2, {"n": INT64_MAX}), (3, {"n": INT64_MIN}), (4, {"n": 3})]
BIG_X = [(0, {"x": float(2**53)}), (1, {"x": float(2**53 + 2)}), (2, {"x": 1e19}), (3, {"x": -1e19}), (4, {"x": 3.0})]


@pytest.mark.parametrize("points, bounds, expected", [
    (BIG_N, {"gt": float(2**53)}, {1, 2}),
    (BIG_N, {"gte": 2.5}, {0, 1, 2, 4}),
    (BIG_N, {"lt": 3.0}, {3}),
    (BIG_N, {"lte": 3.5}, {3, 4}),
    (BIG_N, {"gt": float(2**63)}, set()),
    (BIG_N, {"lte": float(2**63)}, {0, 1, 2, 3, 4}),
    (BIG_N, {"gt": -float(2**63)}, {0, 1, 2, 4}),
    (BIG_N, {"lt": 2**64, "gt": INT64_MIN - 1}, {0, 1, 2, 3, 4}),
    (BIG_N, {"gt": 10**400}, set()),
    (BIG_N, {"lt": -math.inf}, set()),
    (BIG_N, {"gt": 3, "lt": 3}, set()),
    (BIG_X, {"gte": 2**53 + 1}, {1, 2}),
    (BIG_X, {"gt": 2**53}, {1, 2}),
    (BIG_X, {"lte": 2**53 + 1}, {0, 3, 4}),
    (BIG_X, {"lt": INT64_MAX}, {0, 1, 3, 4}),
    (BIG_X, {"gt": INT64_MIN}, {0, 1, 2, 4}),
    (BIG_X, {"lt": 10**400, "gt": -10**400}, {0, 1, 2, 3, 4}),
    (BIG_X, {"gte": 10**400}, set()),
    (BIG_X, {"gt": 3}, {0, 1, 2}),
])
def test_range_bounds_compare_exactly(points, bounds, expected):
    """Bounds past 2**53, at and past the int64 limits and fractional ones compare exactly on both kinds."""
    assert selected({"must": {"key": next(iter(points[0][1])), "range": bounds}}, points) == (expected, expected)


def test_float_bound_on_integer_field_with_large_values():
    """A float bound on an integer field compares exactly whatever the column's magnitudes."""
    filt = {"must": {"key": "n", "range": {"gt": 0.5}}}
    assert evaluate(filt, [0, 1], [{"n": 2**62}, {"n": 1}]).tolist() == [True, True]


def test_large_int_bound_on_float_field():
    """An int bound beyond 2**53 on a float field compares exactly."""
    filt = {"must": {"key": "x", "range": {"lt": INT64_MAX}}}
    assert evaluate(filt, [0, 1], [{"x": 1.5}, {"x": 1e19}]).tolist() == [True, False]


@pytest.mark.parametrize("field, bounds", [("n", {"lt": 2**64}), ("n", {"gt": INT64_MIN - 1}), ("x", {"lt": 10**400})])
def test_int_bound_outside_int64(field, bounds):
    """A bound outside int64 is refused as InvalidFilterError or evaluated exactly, never an OverflowError."""
    points = [(0, {field: 1}), (1, {})]
    filt = {"must": {"key": field, "range": bounds}}
    try:
        got = evaluate(filt, [i for i, _ in points], [p for _, p in points])
    except InvalidFilterError:
        return
    assert got.tolist() == [matches(filt, i, p) for i, p in points]
