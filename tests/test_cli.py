"""The CLI commands, driven in-process with click's CliRunner: every command's happy path and
every user error (one clear line, non-zero exit, no traceback)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import COMMANDS, cli
from naive import clustered, exact_knn

SPEC = "IVF8,Flat"
DIM = 16


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def ok(*args, input=None):
    result = run(*args, input=input)
    assert result.exit_code == 0, result.output
    return result


def fails(*args, code=1, message="", input=None):
    """The command exits with ``code`` and a one-line message containing ``message``, no traceback."""
    result = run(*args, input=input)
    assert result.exit_code == code, result.output
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    X, Q = clustered(2000, DIM, seed=3), clustered(20, DIM, seed=4)
    np.save(d / "base.npy", X)
    np.save(d / "queries.npy", Q)
    np.save(d / "wrong_dim.npy", clustered(5, DIM + 1, seed=5))
    return d, X, Q


@pytest.fixture(scope="module")
def built(data):
    d, X, _ = data
    out = d / "col"
    result = ok("build", d / "base.npy", "--out", out, "--spec", SPEC, "--store-vectors", "--quiet")
    assert "2,000 vectors" in result.output and "bytes/vector" in result.output
    return out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_imports_and_has_help(name):
    """Lazy loading hides import errors until a command runs (click docs): run each --help."""
    assert f"Usage: cli {name}" in ok(name, "--help").output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_has_examples(name):
    assert f"annvq {name}" in ok(name, "--help").output.split("Examples:")[1]


def test_build_prints_summary_and_persists(built, data):
    result = ok("info", built, "--json")
    stats = json.loads(result.output)
    assert (stats["count"], stats["dim"], stats["metric"], stats["spec"]) == (2000, DIM, "l2", SPEC)
    assert stats["trained"]


def test_query_all_lists_equals_exact_knn(built, data):
    _, X, Q = data
    result = ok("query", built, "--vector-file", data[0] / "queries.npy", "-k", 5, "--nprobe", 8, "--format", "json")
    found = np.array([row["ids"] for row in json.loads(result.output)])
    np.testing.assert_array_equal(found, exact_knn(X, Q, 5))


def test_query_exact_flag_and_csv(built, data):
    _, X, Q = data
    result = ok("query", built, "--vector-file", data[0] / "queries.npy", "-k", 3, "--exact", "--format", "csv")
    lines = result.output.strip().splitlines()
    assert lines[0] == "query,rank,id,distance" and len(lines) == 1 + 3 * len(Q)
    q, rank, i, dist = lines[1].split(",")
    assert (q, rank, int(i)) == ("0", "0", exact_knn(X, Q[:1], 1)[0, 0])
    assert float(dist) == pytest.approx(np.linalg.norm(X[int(i)] - Q[0]), rel=1e-4)


def test_query_stdin_table(built, data):
    _, X, Q = data
    text = "\n".join(" ".join(map(str, q)) for q in Q[:2].tolist())
    result = ok("query", built, "--stdin", "-k", 2, "--nprobe", 8, input=text)
    lines = result.output.strip().splitlines()
    assert lines[0].split() == ["query", "rank", "id", "distance"] and len(lines) == 5
    assert int(lines[1].split()[2]) == exact_knn(X, Q[:1], 1)[0, 0]


def test_query_rerank(built, data):
    _, X, Q = data
    result = ok("query", built, "--vector-file", data[0] / "queries.npy", "-k", 5, "--nprobe", 8,
                "--rerank", 2, "--format", "json")
    found = np.array([row["ids"] for row in json.loads(result.output)])
    np.testing.assert_array_equal(found, exact_knn(X, Q, 5))


def test_info_table(built):
    result = ok("info", built)
    assert "count" in result.output and "2,000" in result.output and SPEC in result.output


def test_verify_healthy(built):
    assert "ok" in ok("verify", built).output


def test_compact_then_verify(tmp_path, data):
    out = tmp_path / "c"
    ok("build", data[0] / "base.npy", "--out", out, "--spec", SPEC, "-q")
    result = ok("compact", out)
    assert "segment(s)" in result.output
    ok("verify", out)
    assert json.loads(ok("info", out, "--json").output)["count"] == 2000


def test_verify_reports_corruption(tmp_path, data):
    out = tmp_path / "c"
    ok("build", data[0] / "base.npy", "--out", out, "--spec", SPEC, "-q")
    victim = max(out.glob("seg-*.arrow"))  # the newest segment, the one the manifest names
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.write_bytes(bytes(raw))
    result = fails("verify", out, message="problem(s) found")
    assert "problem:" in result.stdout


def test_build_parquet_with_id_and_vector_columns(tmp_path, data):
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, X, Q = data
    ids = np.arange(len(X), dtype=np.int64) * 10 + 7
    table = pa.table({"id": ids, "label": np.zeros(len(X)),
                      "emb": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), DIM)})
    pq.write_table(table, tmp_path / "docs.parquet")
    out = tmp_path / "docs"
    ok("build", tmp_path / "docs.parquet", "--out", out, "--spec", SPEC, "--ids-col", "id",
       "--vector-col", "emb", "--metric", "cosine", "--train-size", 500, "--threads", 1, "--seed", 3, "-q")
    result = ok("query", out, "--vector-file", data[0] / "queries.npy", "-k", 3, "--nprobe", 8, "--format", "json")
    found = np.array([row["ids"] for row in json.loads(result.output)])
    np.testing.assert_array_equal(found, ids[exact_knn(X, Q, 3, "cosine")])


def test_training_sample_draws_distinct_rows_across_chunks(data):
    from annvq.io import sample_rows

    d, X, _ = data
    sample = sample_rows(d / "base.npy", 500, seed=1, chunk_rows=300)  # the 2000 rows span 7 chunks
    where = {row.tobytes(): i for i, row in enumerate(X)}
    picked = [where[row.tobytes()] for row in sample]  # KeyError if a row is not one of X's
    assert len(set(picked)) == 500 and picked == sorted(picked)
    assert max(picked) >= 1800 and min(picked) < 200  # drawn from the whole file, not its head
    np.testing.assert_array_equal(sample_rows(d / "base.npy", 5000, chunk_rows=300), X)


def test_build_and_query_hdf5_use_train_and_test_sets(tmp_path, data):
    import h5py

    _, X, Q = data
    with h5py.File(tmp_path / "ann.hdf5", "w") as f:
        f["train"], f["test"] = X, Q
    out = tmp_path / "h"
    ok("build", tmp_path / "ann.hdf5", "--out", out, "--spec", SPEC, "-q")
    result = ok("query", out, "--vector-file", tmp_path / "ann.hdf5", "-k", 4, "--nprobe", 8, "--format", "json")
    found = np.array([row["ids"] for row in json.loads(result.output)])
    np.testing.assert_array_equal(found, exact_knn(X, Q, 4))


# --- user errors -------------------------------------------------------------------------------
def test_build_missing_file(tmp_path):
    fails("build", tmp_path / "nope.npy", "--out", tmp_path / "c", code=2, message="does not exist")


def test_build_unknown_spec_leaves_nothing(tmp_path, data):
    fails("build", data[0] / "base.npy", "--out", tmp_path / "c", "--spec", "IVF8,Bogus7", message="Unknown codec")
    assert not (tmp_path / "c").exists()


def test_build_unparsable_spec(tmp_path, data):
    fails("build", data[0] / "base.npy", "--out", tmp_path / "c", "--spec", "IVF8,Flat,Flat",
          message="Cannot parse index spec")


def test_build_into_existing_collection(built, data):
    fails("build", data[0] / "base.npy", "--out", built, "--spec", SPEC, message="already")
    assert json.loads(ok("info", built, "--json").output)["count"] == 2000


def test_build_too_few_vectors_for_nlist(tmp_path, data):
    fails("build", data[0] / "base.npy", "--out", tmp_path / "c", "--spec", "IVF4096,Flat",
          message="at least 4096")
    assert not (tmp_path / "c").exists()


def test_build_bad_file_leaves_nothing(tmp_path):
    X = clustered(100, DIM, seed=6)
    X[70, 3] = np.nan
    np.save(tmp_path / "nan.npy", X)
    fails("build", tmp_path / "nan.npy", "--out", tmp_path / "c", "--spec", "Flat", message="NaN")
    assert not (tmp_path / "c").exists()


def test_build_unknown_vector_column(tmp_path, data):
    fails("build", data[0] / "base.npy", "--out", tmp_path / "c", "--vector-col", "emb", message="key")


@pytest.mark.parametrize("flag, value, message", [
    ("--metric", "hamming", "'--metric'"),
    ("--train-size", "0", "'--train-size'"),
    ("--threads", "0", "'--threads'"),
    ("--seed", "x", "'--seed'"),
])
def test_build_bad_flag_values(tmp_path, data, flag, value, message):
    fails("build", data[0] / "base.npy", "--out", tmp_path / "c", flag, value, code=2, message=message)


def test_build_too_many_threads(tmp_path, data):
    fails("build", data[0] / "base.npy", "--out", tmp_path / "c", "--threads", 100000, code=2,
          message="threads")


def test_build_requires_out(data):
    fails("build", data[0] / "base.npy", code=2, message="--out")


def test_query_wrong_dimension(built, data):
    fails("query", built, "--vector-file", data[0] / "wrong_dim.npy", message="dimension")


def test_query_stdin_ragged(built):
    fails("query", built, "--stdin", input="1 2 3\n4 5\n", message="one length")


def test_query_stdin_not_numbers(built):
    fails("query", built, "--stdin", input="a b c\n", message="numeric")


@pytest.mark.parametrize("args, message", [
    (["-k", "0"], "'-k'"),
    (["--nprobe", "0"], "'--nprobe'"),
    (["--rerank", "-1"], "'--rerank'"),
    (["--format", "xml"], "'--format'"),
])
def test_query_bad_flag_values(built, data, args, message):
    fails("query", built, "--vector-file", data[0] / "queries.npy", *args, code=2, message=message)


def test_query_nprobe_above_nlist(built, data):
    fails("query", built, "--vector-file", data[0] / "queries.npy", "--nprobe", 9, message="nprobe")


def test_query_unknown_search_param(built, data):
    fails("query", built, "--vector-file", data[0] / "queries.npy", "--params", "m=4", message="m")


def test_query_needs_exactly_one_source(built, data):
    fails("query", built, code=2, message="exactly one")
    fails("query", built, "--stdin", "--vector-file", data[0] / "queries.npy", code=2, message="exactly one",
          input="[1]")


def test_query_exact_needs_kept_vectors(tmp_path, data):
    out = tmp_path / "c"
    ok("build", data[0] / "base.npy", "--out", out, "--spec", SPEC, "-q")
    fails("query", out, "--vector-file", data[0] / "queries.npy", "--exact", message="--store-vectors")


def test_query_missing_collection(tmp_path, data):
    fails("query", tmp_path / "none", "--stdin", code=2, message="does not exist", input="[1]")


@pytest.mark.parametrize("command", ["info", "verify", "compact", "query"])
def test_not_a_collection(tmp_path, command):
    extra = ["--stdin"] if command == "query" else []
    result = fails(command, tmp_path, *extra, input="[1, 2]")
    assert len(result.stderr.strip().splitlines()) == 1


def test_verbose_shows_the_exception(tmp_path):
    result = run("-v", "info", tmp_path)
    assert result.exit_code == 1 and result.exception is not None
    assert "Error:" not in result.stderr


def test_build_duplicate_ids_refused(tmp_path, data):
    import pyarrow as pa
    import pyarrow.parquet as pq

    X = data[1][:100]
    table = pa.table({"id": np.arange(100) % 50, "emb": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), DIM)})
    pq.write_table(table, tmp_path / "dup.parquet")
    fails("build", tmp_path / "dup.parquet", "--out", tmp_path / "c", "--ids-col", "id", "--spec", "Flat",
          message="duplicates")
    assert not (tmp_path / "c").exists()


# --- query --filter -------------------------------------------------------------------------------
# `annvq build` stores no payloads, so the filtered collection is made with the library.
LABEL_2 = '{"must": [{"key": "label", "match": {"value": 2}}]}'


@pytest.fixture(scope="module")
def labelled(data):
    """A collection of the 2000 base vectors with payload {"label": id % 5}, indexed as integer."""
    from annvq import Collection

    d, X, _ = data
    out = d / "labelled"
    with Collection.create(out, DIM, spec=SPEC, payload_indexes={"label": "integer"}) as col:
        col.upsert(np.arange(len(X)), X, [{"label": i % 5} for i in range(len(X))])
        col.train()
    return out


def test_query_filter_json_table_csv(labelled, data):
    d, X, Q = data
    base = ["query", labelled, "--vector-file", d / "queries.npy", "-k", 5, "--nprobe", 8]
    rows = json.loads(ok(*base, "--filter", LABEL_2, "--format", "json").output)
    ids = np.flatnonzero(np.arange(len(X)) % 5 == 2)
    truth = ids[exact_knn(X[ids], Q, 5)]
    np.testing.assert_array_equal(np.array([row["ids"] for row in rows]), truth)
    assert all(row["found"] == 5 and row["strategy"] for row in rows)
    table = ok(*base, "--filter", LABEL_2).output.strip().splitlines()
    assert len(table) == 2 + 5 * len(Q) and all(int(line.split()[2]) % 5 == 2 for line in table[1:-1])
    assert table[-1].startswith(f"filter matches 400 point(s); found 5 of k=5 for each of {len(Q)} queries; "
                                "strategy ")
    csv = ok(*base, "--filter", LABEL_2, "--format", "csv")
    lines = csv.stdout.splitlines()
    assert lines[0] == "query,rank,id,distance" and len(lines) == 1 + 5 * len(Q)
    assert "filter matches 400 point(s)" in csv.stderr


def test_query_filter_from_file_and_fewer_than_k(labelled, data, tmp_path):
    d, _, Q = data
    (tmp_path / "f.json").write_text('{"must": [{"has_id": [3, 7]}], '
                                     '"must_not": [{"key": "label", "match": {"value": 3}}]}')
    result = ok("query", labelled, "--stdin", "-k", 4, "--filter", f"@{tmp_path / 'f.json'}",
                input=json.dumps(Q[0].tolist()))
    lines = result.output.strip().splitlines()
    assert [int(line.split()[2]) for line in lines[1:-1]] == [7]  # 3 has label 3
    assert "filter matches 1 point(s); found 1 of k=4; strategy" in lines[-1]


def test_query_filter_on_built_collection_by_id(built, data):
    """A collection without payload indexes can still be filtered by id."""
    d, _, _ = data
    rows = json.loads(ok("query", built, "--vector-file", d / "queries.npy", "-k", 3, "--format", "json",
                         "--filter", '{"must": [{"has_id": [10, 20, 30, 40]}]}').output)
    assert all(set(row["ids"]) <= {10, 20, 30, 40} and row["found"] == 3 for row in rows)


@pytest.mark.parametrize("value, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "a filter is a JSON object"),
    ("@/no/such/filter.json", "cannot read"),
    ('{"must": [{"key": "colour", "match": {"value": 1}}]}', "'colour' has no payload index"),
    ('{"must": [{"key": "label", "match": {"value": "two"}}]}', "'two' does not fit field 'label'"),
    ('{"must": [{"key": "label", "rang": {"gt": 1}}]}', "unknown"),
    ('{"should": {"must": ' * 400 + "{}" + "}" * 800, "nest at most 32 levels"),
])
def test_query_bad_filter_is_a_usage_error(labelled, data, value, message):
    result = fails("query", labelled, "--vector-file", data[0] / "queries.npy", "--filter", value, code=2,
                   message=message)
    assert "Invalid value for '--filter'" in result.stderr


# --- the main job's fallbacks (the end-to-end run is in test_main_job.py) ------------------------
def test_demo_falls_back_to_generated_data_without_fashion_mnist(monkeypatch, tmp_path, capsys):
    import bench.datasets
    from cli.demo_cmd import DEFAULT_DATASET, FALLBACK_DATASET, prepare_dataset

    asked = []

    def prepare(name, out_dir="datasets", *, quiet=False):
        asked.append(name)
        if name == DEFAULT_DATASET:
            raise bench.datasets.DatasetError("Fashion-MNIST not found; install it with apt-get")
        return tmp_path / f"{name}.hdf5"

    monkeypatch.setattr(bench.datasets, "prepare", prepare)
    assert prepare_dataset(None, tmp_path, quiet=True) == tmp_path / f"{FALLBACK_DATASET}.hdf5"
    assert asked == [DEFAULT_DATASET, FALLBACK_DATASET]
    assert "apt-get" in capsys.readouterr().err
    with pytest.raises(bench.datasets.DatasetError):  # a dataset named explicitly never falls back
        prepare_dataset(DEFAULT_DATASET, tmp_path, quiet=True)


def test_demo_spec_falls_back_to_flat_without_saq(monkeypatch):
    import annvq.quantizers
    from cli.demo_cmd import DEFAULT_SPEC, FALLBACK_SPEC, choose_spec

    assert choose_spec(None, 784, "l2") == DEFAULT_SPEC
    monkeypatch.setattr(annvq.quantizers, "CODECS", [p for p in annvq.quantizers.CODECS if p[0] == "Flat"])
    assert choose_spec(None, 784, "l2") == FALLBACK_SPEC
    assert choose_spec("IVF8,SAQ4", 784, "l2") == "IVF8,SAQ4"  # an explicit spec is left to the build
