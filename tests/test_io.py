"""annvq.io: round trips for every format, and one test per way a vector file can be bad."""

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from annvq.errors import InvalidFileError, InvalidParameterError
from annvq.io import (inspect_vectors, iter_vector_chunks, read_ids, read_rows, read_vectors, write_bvecs,
                      write_fvecs, write_ivecs)

N, DIM = 1000, 8


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)


def fixed_list(X):
    return pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), X.shape[1])


def write_arrow_file(path, table, chunk=None):
    with pa.ipc.new_file(path, table.schema) as w:
        w.write_table(table, max_chunksize=chunk)


def write_arrow_stream(path, table):
    with pa.ipc.new_stream(path, table.schema) as w:
        w.write_table(table)


def write_hdf5(path, **arrays):
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f[key] = value


WRITERS = {
    "npy": lambda p, X: np.save(p, X),
    "fvecs": write_fvecs,
    "hdf5": lambda p, X: write_hdf5(p, train=X, test=X[:3]),
    "parquet": lambda p, X: pq.write_table(pa.table({"id": np.arange(len(X)), "emb": fixed_list(X)}), p,
                                           row_group_size=300),
    "arrow": lambda p, X: write_arrow_file(p, pa.table({"emb": fixed_list(X)}), chunk=333),
    "feather": lambda p, X: feather.write_feather(pa.table({"emb": fixed_list(X)}), p),
}


@pytest.mark.parametrize("ext", sorted(WRITERS))
def test_round_trip(tmp_path, X, ext):
    path = tmp_path / f"v.{ext}"
    WRITERS[ext](path, X)
    assert inspect_vectors(path) == (N, DIM)
    Y = read_vectors(path)
    assert Y.dtype == np.float32 and Y.flags.c_contiguous
    np.testing.assert_array_equal(Y, X)
    chunks = list(iter_vector_chunks(path, chunk_rows=128))
    assert all(1 <= len(c) <= 128 for c in chunks)
    np.testing.assert_array_equal(np.concatenate(chunks), X)


def test_list_float_column_and_stream_format(tmp_path, X):
    lists = pa.array([list(r) for r in X], type=pa.list_(pa.float32()))
    pq.write_table(pa.table({"emb": lists}), tmp_path / "l.parquet", row_group_size=250)
    write_arrow_stream(tmp_path / "s.arrow", pa.table({"emb": lists}))
    for name in ("l.parquet", "s.arrow"):
        np.testing.assert_array_equal(read_vectors(tmp_path / name), X)
        np.testing.assert_array_equal(np.concatenate(list(iter_vector_chunks(tmp_path / name, chunk_rows=100))), X)


def test_bvecs_and_ivecs_round_trip(tmp_path, X):
    B = (np.abs(X) * 30).astype(np.uint8)
    I = (X * 1000).astype(np.int32)
    write_bvecs(tmp_path / "b.bvecs", B)
    write_ivecs(tmp_path / "i.ivecs", I)
    np.testing.assert_array_equal(read_vectors(tmp_path / "b.bvecs"), B.astype(np.float32))
    np.testing.assert_array_equal(read_vectors(tmp_path / "i.ivecs"), I.astype(np.float32))
    assert inspect_vectors(tmp_path / "i.ivecs") == (N, DIM)


def test_hdf5_key_selects_dataset(tmp_path, X):
    write_hdf5(tmp_path / "a.hdf5", train=X, test=X[:3] * 2, neighbors=np.arange(30, dtype=np.int32).reshape(3, 10))
    np.testing.assert_array_equal(read_vectors(tmp_path / "a.hdf5", key="test"), X[:3] * 2)
    assert inspect_vectors(tmp_path / "a.hdf5", key="neighbors") == (3, 10)


def test_named_column_and_ids(tmp_path, X):
    table = pa.table({"id": np.arange(N) * 7, "a": fixed_list(X), "b": fixed_list(2 * X)})
    pq.write_table(table, tmp_path / "t.parquet")
    write_arrow_file(tmp_path / "t.arrow", table)
    for name in ("t.parquet", "t.arrow"):
        np.testing.assert_array_equal(read_vectors(tmp_path / name, key="b"), 2 * X)
        ids = read_ids(tmp_path / name, "id")
        assert ids.dtype == np.int64
        np.testing.assert_array_equal(ids, np.arange(N) * 7)


# --- bad files: each raises InvalidFileError naming the file and the problem ---------------------
def assert_bad(path, match, **kwargs):
    with pytest.raises(InvalidFileError, match=match) as info:
        read_vectors(path, **kwargs)
    assert str(path) in str(info.value)
    return info


def test_missing_file(tmp_path):
    assert_bad(tmp_path / "nope.fvecs", "no such file")


def test_unknown_extension(tmp_path):
    (tmp_path / "v.csv").write_text("1,2,3\n")
    assert_bad(tmp_path / "v.csv", "unknown vector file extension '.csv'")


@pytest.mark.parametrize("ext", ["npy", "fvecs", "bvecs", "hdf5", "parquet", "arrow"])
def test_zero_byte_file_is_empty(tmp_path, ext):
    (tmp_path / f"e.{ext}").write_bytes(b"")
    assert_bad(tmp_path / f"e.{ext}", "empty")


def test_file_with_zero_rows(tmp_path):
    np.save(tmp_path / "e.npy", np.zeros((0, 8), np.float32))
    pq.write_table(pa.table({"emb": fixed_list(np.zeros((0, 4), np.float32))}), tmp_path / "e.parquet")
    write_hdf5(tmp_path / "e.hdf5", train=np.zeros((0, 4), np.float32))
    for name in ("e.npy", "e.parquet", "e.hdf5"):
        assert_bad(tmp_path / name, "holds no vectors")


def test_wrong_shape(tmp_path):
    np.save(tmp_path / "one.npy", np.zeros(5, np.float32))
    np.save(tmp_path / "three.npy", np.zeros((2, 3, 4), np.float32))
    write_hdf5(tmp_path / "one.hdf5", train=np.zeros(5, np.float32))
    assert_bad(tmp_path / "one.npy", r"2-D .* shape \(5,\)")
    assert_bad(tmp_path / "three.npy", r"2-D .* shape \(2, 3, 4\)")
    assert_bad(tmp_path / "one.hdf5", r"2-D .* shape \(5,\)")


def test_scalar_column_is_wrong_shape(tmp_path):
    pq.write_table(pa.table({"x": np.arange(5.0)}), tmp_path / "s.parquet")
    assert_bad(tmp_path / "s.parquet", "must be a fixed-size list or list")


def test_ragged_fvecs(tmp_path, X):
    write_fvecs(tmp_path / "r.fvecs", X[:10])
    raw = bytearray((tmp_path / "r.fvecs").read_bytes())
    row_bytes = 4 + 4 * DIM
    raw[6 * row_bytes:6 * row_bytes + 4] = np.int32(DIM - 1).tobytes()  # row 6 claims 7 dims
    (tmp_path / "r.fvecs").write_bytes(bytes(raw))
    assert_bad(tmp_path / "r.fvecs", "ragged rows: row 6 declares dimension 7")


def test_ragged_fvecs_with_misaligned_size(tmp_path, X):
    a, b = tmp_path / "a.fvecs", tmp_path / "b.fvecs"
    write_fvecs(a, X[:5])
    write_fvecs(b, X[:5, :3])
    (tmp_path / "m.fvecs").write_bytes(a.read_bytes() + b.read_bytes())
    assert_bad(tmp_path / "m.fvecs", "ragged rows: row 5 declares dimension 3")


def test_ragged_list_column(tmp_path, X):
    rows = [list(r) for r in X[:600]]
    rows[517] = rows[517][:5]
    pq.write_table(pa.table({"emb": pa.array(rows, type=pa.list_(pa.float32()))}), tmp_path / "r.parquet",
                   row_group_size=200)
    assert_bad(tmp_path / "r.parquet", "ragged rows: column 'emb' row 517 has 5 values")


def test_null_row(tmp_path, X):
    rows = [list(r) for r in X[:10]]
    rows[4] = None
    pq.write_table(pa.table({"emb": pa.array(rows, type=pa.list_(pa.float32()))}), tmp_path / "n.parquet")
    assert_bad(tmp_path / "n.parquet", "row 4 is null")


def test_non_numeric(tmp_path):
    np.save(tmp_path / "s.npy", np.array([["a", "b"], ["c", "d"]]))
    np.save(tmp_path / "o.npy", np.array([[1, None]], dtype=object), allow_pickle=True)
    np.save(tmp_path / "b.npy", np.ones((3, 2), dtype=bool))
    write_hdf5(tmp_path / "s.hdf5", train=np.array([[b"ab", b"cd"]]))
    pq.write_table(pa.table({"emb": pa.array([["a", "b"]], type=pa.list_(pa.string()))}), tmp_path / "s.parquet")
    for name in ("s.npy", "b.npy", "s.hdf5"):
        assert_bad(tmp_path / name, "must be numeric")
    assert_bad(tmp_path / "o.npy", "must be numeric")
    assert_bad(tmp_path / "s.parquet", "must hold numbers")


@pytest.mark.parametrize("ext", sorted(WRITERS))
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf_names_row(tmp_path, X, ext, bad):
    Y = X.copy()
    Y[700, 3] = bad
    path = tmp_path / f"v.{ext}"
    WRITERS[ext](path, Y)
    assert_bad(path, "row 700 contains NaN or Inf")
    chunks = iter_vector_chunks(path, chunk_rows=256)
    np.testing.assert_array_equal(next(chunks), X[:256])  # rows before the bad one still stream
    with pytest.raises(InvalidFileError, match="row 700"):
        list(chunks)


def test_truncated_fvecs(tmp_path, X):
    write_fvecs(tmp_path / "t.fvecs", X[:10])
    raw = (tmp_path / "t.fvecs").read_bytes()
    (tmp_path / "t.fvecs").write_bytes(raw[:-7])
    assert_bad(tmp_path / "t.fvecs", r"truncated.*row 9 is incomplete")
    (tmp_path / "h.fvecs").write_bytes(raw[:3])
    assert_bad(tmp_path / "h.fvecs", "truncated")


def test_truncated_npy_and_hdf5(tmp_path, X):
    np.save(tmp_path / "t.npy", X)
    write_hdf5(tmp_path / "t.hdf5", train=X)
    for name in ("t.npy", "t.hdf5"):
        raw = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(raw[:len(raw) // 2])
    assert_bad(tmp_path / "t.npy", "truncated")
    with pytest.raises(InvalidFileError, match="t.hdf5"):
        read_vectors(tmp_path / "t.hdf5")


def test_corrupt_header(tmp_path):
    (tmp_path / "g.fvecs").write_bytes(np.int32(-3).tobytes() + b"\0" * 12)
    (tmp_path / "g.parquet").write_bytes(b"not a parquet file at all")
    assert_bad(tmp_path / "g.fvecs", "declares dimension -3")
    assert_bad(tmp_path / "g.parquet", "not a readable .parquet file")


def test_missing_key_or_column(tmp_path, X):
    write_hdf5(tmp_path / "a.hdf5", train=X)
    pq.write_table(pa.table({"a": fixed_list(X), "b": fixed_list(X)}), tmp_path / "two.parquet")
    assert_bad(tmp_path / "a.hdf5", r"no dataset 'test'; the file has \['train'\]", key="test")
    assert_bad(tmp_path / "two.parquet", "no column 'c'", key="c")
    assert_bad(tmp_path / "two.parquet", "cannot tell which column")
    np.save(tmp_path / "k.npy", X)
    assert_bad(tmp_path / "k.npy", "has no named datasets or columns", key="train")


def test_bad_id_column(tmp_path, X):
    pq.write_table(pa.table({"id": np.arange(N) * 0.5, "emb": fixed_list(X)}), tmp_path / "f.parquet")
    pq.write_table(pa.table({"id": pa.array([1, None] + list(range(N - 2))), "emb": fixed_list(X)}),
                   tmp_path / "n.parquet")
    with pytest.raises(InvalidFileError, match="must hold integers"):
        read_ids(tmp_path / "f.parquet", "id")
    with pytest.raises(InvalidFileError, match="1 null"):
        read_ids(tmp_path / "n.parquet", "id")
    with pytest.raises(InvalidFileError, match="no column 'key'"):
        read_ids(tmp_path / "f.parquet", "key")


def test_chunk_rows_must_be_positive(tmp_path, X):
    np.save(tmp_path / "v.npy", X)
    with pytest.raises(ValueError, match=r"'chunk_rows'.*\[1, inf\).*Got 0"):
        iter_vector_chunks(tmp_path / "v.npy", chunk_rows=0)


@pytest.mark.parametrize("ext", sorted(WRITERS))
def test_read_rows_reads_any_range_checked(tmp_path, X, ext):
    Y = X.copy()
    Y[700, 3] = np.nan
    path = tmp_path / f"v.{ext}"
    WRITERS[ext](path, Y)
    for start, stop in ((0, 1), (290, 710 - 10), (299, 301), (999, 1000)):  # across row groups and batches
        rows = read_rows(path, start, stop)
        assert rows.dtype == np.float32 and rows.flags.c_contiguous
        np.testing.assert_array_equal(rows, X[start:stop])
    with pytest.raises(InvalidFileError, match="row 700 contains NaN"):
        read_rows(path, 650, 800)
    for start, stop in ((5, 5), (-1, 3), (990, 1001)):
        with pytest.raises(InvalidParameterError, match=f"rows \\[{start}, {stop}\\) are not a non-empty range"):
            read_rows(path, start, stop)
