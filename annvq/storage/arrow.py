"""Named numpy arrays in one Arrow IPC file, written uncompressed and read back memory-mapped.

Each array becomes one column holding a single ``large_list`` row of its flat values; the field
metadata keeps its shape and dtype, so arrays of any shape and length share one file and come back
as read-only numpy views of the mapped pages (no copy). JSON strings (payloads) are stored the same
way as a ``large_list<large_string>`` column and read back as a pyarrow ``LargeStringArray``;
any other Arrow array (payload index columns) likewise, marked ``arrow``, and read back as is.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from ..errors import CorruptFileError, UnsupportedFormatError

#: major.minor: a reader refuses a newer major version and reads any minor version of its own.
FORMAT_VERSION = "1.1"
FORMAT_MAJOR = int(FORMAT_VERSION.split(".")[0])
#: schema metadata keys every annvq file carries
HEADER_KEYS = ("format_version", "writer", "kind", "dim", "metric", "spec")


def writer_name() -> str:
    from .. import __version__

    return f"annvq {__version__}"


def check_format_version(version: str, what: str) -> None:
    """Refuse files from a newer major format (the minor part only adds optional fields)."""
    try:
        major = int(str(version).split(".")[0])
    except ValueError:
        raise CorruptFileError(f"{what} has an unreadable format_version {version!r}.") from None
    if major > FORMAT_MAJOR:
        raise UnsupportedFormatError(
            f"{what} was written with format version {version}, newer than the {FORMAT_VERSION} this "
            f"annvq reads: upgrade annvq to open it."
        )


def _column(name: str, value) -> tuple[pa.Array, dict]:
    if isinstance(value, pa.Array):  # already Arrow: payload JSON texts, payload index columns
        values, meta = value, {"dtype": "json" if name == "payloads" else "arrow"}
    else:
        arr = np.ascontiguousarray(value)
        if arr.dtype == bool:
            arr = arr.view(np.uint8)
        values = pa.array(arr.reshape(-1))
        meta = {"dtype": np.asarray(value).dtype.str, "shape": json.dumps(list(arr.shape))}
    column = pa.LargeListArray.from_arrays(pa.array([0, len(values)], pa.int64()), values)
    return column, meta


def write_arrays(path: str | os.PathLike, arrays: dict, header: dict, extra: dict | None = None) -> int:
    """Write named arrays (numpy, or pyarrow arrays) to ``path``; returns the byte size.

    ``header`` gives the values of HEADER_KEYS other than format_version and writer; ``extra`` is
    any JSON-able metadata stored under the ``annvq`` key.
    """
    columns, fields = [], []
    for name, value in arrays.items():
        column, meta = _column(name, value)
        columns.append(column)
        fields.append(pa.field(name, column.type, metadata=meta))
    meta = {"format_version": FORMAT_VERSION, "writer": writer_name(), **header}
    meta = {k: str(v) for k, v in meta.items()}
    meta["annvq"] = json.dumps(extra or {})
    schema = pa.schema(fields, metadata=meta)
    table = pa.Table.from_arrays(columns, schema=schema)
    with pa.OSFile(os.fspath(path), "wb") as sink, ipc.new_file(sink, schema) as writer:
        writer.write_table(table)
    return os.path.getsize(path)


def read_arrays(path: str | os.PathLike) -> tuple[dict, dict, dict]:
    """(arrays, header, extra) from a file written by ``write_arrays``.

    Numeric arrays are read-only numpy views of the memory map; nothing is copied, so opening
    costs the same for any file size. A file that is not a well-formed annvq Arrow file raises
    CorruptFileError naming it.
    """
    path = os.fspath(path)
    try:
        source = pa.memory_map(path, "r")
        reader = ipc.open_file(source)
        table = reader.read_all()
    except FileNotFoundError:
        raise CorruptFileError(f"{path} is missing.") from None
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise CorruptFileError(f"{path} is not a readable Arrow IPC file: {exc}") from None
    raw = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    if "format_version" not in raw or "kind" not in raw:
        raise CorruptFileError(f"{path} has no annvq header (format_version, kind).")
    check_format_version(raw["format_version"], path)
    try:
        extra = json.loads(raw.pop("annvq", "{}"))
        arrays = {}
        for field, column in zip(table.schema, table.columns):
            meta = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
            values = column.chunk(0).values
            if meta.get("dtype") in ("json", "arrow"):
                arrays[field.name] = values
                continue
            flat = values.to_numpy(zero_copy_only=True)
            dtype = np.dtype(meta["dtype"])
            if dtype == bool:
                flat = flat.view(bool)
            arrays[field.name] = flat.reshape(json.loads(meta["shape"]))
    except (KeyError, ValueError, IndexError, pa.ArrowException) as exc:
        raise CorruptFileError(f"{path} has a malformed column: {exc}") from None
    return arrays, raw, extra
