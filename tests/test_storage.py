"""annvq.storage: Arrow array files, crash-safe manifests, recovery, garbage collection, the lock."""

import json
import os

import numpy as np
import pyarrow as pa
import pytest

from annvq.errors import CollectionLockedError, CorruptFileError, StorageError, UnsupportedFormatError
from annvq.storage import arrow, manifest
from annvq.storage.lock import WriterLock

HEADER = {"kind": "test", "dim": 4, "metric": "l2", "spec": "Flat"}


def test_arrays_round_trip_every_shape_and_dtype(tmp_path):
    arrays = {
        "f32": np.arange(12, dtype=np.float32).reshape(3, 4),
        "i64": np.array([5, -1, 7], np.int64),
        "u8": np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        "empty": np.zeros((0, 0), np.float32),
        "mask": np.array([True, False, True]),
        "text": pa.array(['{"a":1}', None], pa.large_string()),
    }
    size = arrow.write_arrays(tmp_path / "a.arrow", arrays, HEADER, {"note": [1, 2]})
    assert size == os.path.getsize(tmp_path / "a.arrow")
    out, header, extra = arrow.read_arrays(tmp_path / "a.arrow")
    for name in ["f32", "i64", "u8", "empty", "mask"]:
        assert out[name].dtype == arrays[name].dtype and out[name].shape == arrays[name].shape
        np.testing.assert_array_equal(out[name], arrays[name])
        assert not out[name].flags.writeable
    assert out["text"].to_pylist() == ['{"a":1}', None]
    assert extra == {"note": [1, 2]}
    assert header["kind"] == "test" and header["format_version"] == arrow.FORMAT_VERSION
    assert header["writer"].startswith("annvq ") and header["spec"] == "Flat"


def test_read_is_zero_copy(tmp_path):
    codes = np.random.default_rng(0).integers(0, 255, (20000, 64), dtype=np.uint8)
    arrow.write_arrays(tmp_path / "c.arrow", {"codes": codes}, HEADER)
    before = pa.total_allocated_bytes()
    out, _, _ = arrow.read_arrays(tmp_path / "c.arrow")
    allocated = pa.total_allocated_bytes() - before
    assert allocated < 4096, f"reading a {codes.nbytes}-byte array allocated {allocated} bytes"
    np.testing.assert_array_equal(out["codes"], codes)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_arrow_file_is_refused(tmp_path, damage):
    path = tmp_path / "d.arrow"
    arrow.write_arrays(path, {"x": np.arange(1000, dtype=np.int64)}, HEADER)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\0" * len(data))
    with pytest.raises(CorruptFileError, match="d.arrow"):
        arrow.read_arrays(path)


def test_newer_major_format_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(arrow, "FORMAT_VERSION", "2.0")
    arrow.write_arrays(tmp_path / "n.arrow", {"x": np.zeros(3)}, HEADER)
    monkeypatch.undo()
    with pytest.raises(UnsupportedFormatError, match="format version 2.0"):
        arrow.read_arrays(tmp_path / "n.arrow")


def _commit(directory, version, files=None):
    return manifest.commit(str(directory), {"version": version, "files": files or {}, "payload": version})


def test_commit_and_load_newest(tmp_path):
    for v in (1, 2, 3):
        _commit(tmp_path, v)
    assert (tmp_path / "CURRENT").read_text().strip() == "MANIFEST-000003.json"
    body = manifest.load(str(tmp_path))
    assert body["payload"] == 3 and body["format_version"] == arrow.FORMAT_VERSION


def test_load_falls_back_when_newest_manifest_is_damaged(tmp_path):
    _commit(tmp_path, 1)
    _commit(tmp_path, 2)
    path = tmp_path / "MANIFEST-000002.json"
    path.write_text(path.read_text().replace('"payload": 2', '"payload": 9'))  # bit-level change
    body = manifest.load(str(tmp_path))
    assert body["payload"] == 1 and "checksum" in body["fallback_from"][0]


def test_load_ignores_uncommitted_manifest_and_temp_files(tmp_path):
    _commit(tmp_path, 1)
    # a crash after writing MANIFEST-2 but before switching CURRENT, plus stray temp files
    body = json.loads((tmp_path / "MANIFEST-000001.json").read_text())
    (tmp_path / "MANIFEST-000002.json").write_text(json.dumps(dict(body, version=2)))
    (tmp_path / "seg-000009.arrow.tmp-abc").write_bytes(b"partial")
    (tmp_path / "CURRENT.tmp-def").write_bytes(b"MANIFEST-000002.json")
    assert manifest.load(str(tmp_path))["payload"] == 1
    removed = manifest.collect_garbage(str(tmp_path), 3)
    assert sorted(removed) == ["CURRENT.tmp-def", "MANIFEST-000002.json", "seg-000009.arrow.tmp-abc"]


def test_no_readable_manifest_raises(tmp_path):
    _commit(tmp_path, 1)
    (tmp_path / "MANIFEST-000001.json").write_text("{not json")
    with pytest.raises(CorruptFileError, match="No readable manifest"):
        manifest.load(str(tmp_path))


def test_gc_keeps_versions_and_their_files(tmp_path):
    for v in range(1, 6):
        name = f"seg-{v:06d}.arrow"
        entry = manifest.durable_write(str(tmp_path), name, lambda p, v=v: manifest.write_bytes(p, bytes([v]) * 10))
        # each version references its own file and the previous one
        files = {name: entry}
        if v > 1:
            prev = f"seg-{v - 1:06d}.arrow"
            files[prev] = {"size": 10, "sha256": manifest.sha256_file(str(tmp_path / prev))}
        _commit(tmp_path, v, files)
    manifest.collect_garbage(str(tmp_path), 2)
    left = sorted(os.listdir(tmp_path))
    assert left == ["CURRENT", "MANIFEST-000004.json", "MANIFEST-000005.json",
                    "seg-000003.arrow", "seg-000004.arrow", "seg-000005.arrow"]


def test_durable_write_failure_leaves_destination_and_no_temp(tmp_path, monkeypatch):
    manifest.durable_write(str(tmp_path), "f", lambda p: manifest.write_bytes(p, b"old"))

    def full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(manifest.os, "replace", full)
    with pytest.raises(StorageError, match="No space left"):
        manifest.durable_write(str(tmp_path), "f", lambda p: manifest.write_bytes(p, b"new"))
    assert (tmp_path / "f").read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f"]


def test_verify_files_names_each_problem(tmp_path):
    files = {}
    for name in ["a", "b", "c"]:
        files[name] = manifest.durable_write(str(tmp_path), name, lambda p: manifest.write_bytes(p, b"x" * 100))
    (tmp_path / "a").unlink()
    (tmp_path / "b").write_bytes(b"x" * 50)
    (tmp_path / "c").write_bytes(b"y" + b"x" * 99)
    problems = manifest.verify_files(str(tmp_path), files)
    assert [p.split(":")[0] for p in problems] == ["a", "b", "c"]
    assert "missing" in problems[0] and "size" in problems[1] and "sha256" in problems[2]


def test_check_sizes_refuses_truncated_file(tmp_path):
    entry = manifest.durable_write(str(tmp_path), "s", lambda p: manifest.write_bytes(p, b"z" * 64))
    manifest.check_sizes(str(tmp_path), {"s": entry})
    (tmp_path / "s").write_bytes(b"z" * 63)
    with pytest.raises(CorruptFileError, match="63 bytes"):
        manifest.check_sizes(str(tmp_path), {"s": entry})


def test_writer_lock_is_exclusive_and_released(tmp_path):
    lock = WriterLock(str(tmp_path))
    with pytest.raises(CollectionLockedError, match=f"pid {os.getpid()}"):
        WriterLock(str(tmp_path))
    lock.release()
    WriterLock(str(tmp_path)).release()
