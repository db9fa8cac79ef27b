"""A collection's file layout (docs/format.md): the names and arrays of its model, segment and
tombstone files, the manifest body that lists them, and reading a committed body back as a State.

Kept apart from `annvq.collection`, which decides what to write; this module knows how it is laid
out on disk, so the format lives in one place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import CorruptFileError
from ..index import Index
from ..segments import Part, Segment, State
from . import arrow, manifest

#: files at most this large are checksummed on open too (manifest, model, tombstones, payload
#: index columns)
HASH_ON_OPEN = 64 << 20


def model_file(seq: int) -> str:
    return f"model-{seq:06d}.arrow"


def segment_file(seq: int) -> str:
    return f"seg-{seq:06d}.arrow"


def tombstone_file(seq: int) -> str:
    return f"tomb-{seq:06d}.arrow"


def columns_file(seq: int) -> str:
    return f"fields-{seq:06d}.arrow"


def payload_indexes(config: dict) -> dict[str, str]:
    """The collection's declared payload indexes ({field: kind}; none before format 1.1)."""
    return config.get("payload_indexes", {})


# --- writing -----------------------------------------------------------------------------------
@dataclass
class Written:
    """The files one commit wrote, in sequence order, and their manifest entries."""

    next_seq: int
    files: dict = field(default_factory=dict)  # name -> {"size", "sha256"[, "rows"]}
    model: str | None = None  # the new model file; None keeps the old one
    segments: list = field(default_factory=list)  # {"file", "rows"[, "fields"]} of every new segment
    columns: dict = field(default_factory=dict)  # kept segment -> its rewritten payload index file
    tombstones: str | None = None
    tombstone_segments: list = field(default_factory=list)  # segments the tombstone rows belong to


def write_files(directory: str, config: dict, seq: int, *, model: Index | None = None,
                segments: list[Segment] = (), reindexed: list[Segment] = (), dead: list[Part] = ()) -> Written:
    """Durably write, from sequence number ``seq`` on, the model (when given), every new segment
    with its payload index columns, the columns of ``reindexed`` persisted segments, and one
    tombstone file for the ``dead`` parts (their deleted rows concatenated, with counts)."""
    out = Written(seq)
    header = {"dim": config["dim"], "metric": config["metric"], "spec": config["spec"]}

    def write(name: str, arrays: dict, kind: str, extra: dict | None = None) -> None:
        out.files[name] = manifest.durable_write(
            directory, name, lambda p: arrow.write_arrays(p, arrays, dict(header, kind=kind), extra))

    if model is not None:
        meta, arrays = model.state()
        out.model = model_file(out.next_seq)
        write(out.model, arrays, "model", {"model": meta})
        out.next_seq += 1
    def write_columns(segment: Segment, of: str) -> str:
        name = columns_file(out.next_seq)
        write(name, dict(segment.columns), "fields", {"rows": segment.rows, "segment": of})
        out.files[name]["rows"] = segment.rows
        out.next_seq += 1
        return name

    for segment in segments:
        name = segment_file(out.next_seq)
        write(name, segment.arrays(), "segment", {"rows": segment.rows})
        out.files[name]["rows"] = segment.rows
        out.next_seq += 1
        entry = {"file": name, "rows": segment.rows}
        if payload_indexes(config):
            entry["fields"] = write_columns(segment, name)
        out.segments.append(entry)
    for segment in reindexed:
        out.columns[segment.name] = write_columns(segment, segment.name) if payload_indexes(config) else None
    if dead:
        out.tombstones = tombstone_file(out.next_seq)
        rows = np.concatenate([np.flatnonzero(p.deleted) for p in dead])
        counts = np.array([p.n_deleted for p in dead], np.int64)
        write(out.tombstones, {"rows": rows, "counts": counts}, "tombstones")
        out.files[out.tombstones]["rows"] = len(rows)
        out.tombstone_segments = [p.segment.name for p in dead]
        out.next_seq += 1
    return out


# --- manifest body -----------------------------------------------------------------------------
def empty_body(config: dict) -> dict:
    """The manifest body of a new collection: no model, no segments."""
    return {"version": 1, "collection": config, "model": None, "segments": [], "tombstones": None,
            "files": {}, "next_seq": 1}


def next_body(old: dict, config: dict, kept: list[Part], written: Written) -> dict:
    """The manifest body after ``old``: the ``kept`` persisted segments, then the new ones, the
    new model or the old one, the new tombstones; ``files`` lists exactly the files it needs."""
    model = written.model or old["model"]
    segments = []
    for p in kept:
        entry = {"file": p.segment.name, "rows": p.segment.rows}
        fields = written.columns.get(p.segment.name, p.segment.columns_file)
        if fields:
            entry["fields"] = fields
        segments.append(entry)
    segments += written.segments
    keep = {model} | {e[key] for e in segments for key in ("file", "fields") if key in e}
    files = dict(written.files)
    files.update({n: e for n, e in old["files"].items() if n in keep and n not in files})
    return {"version": old["version"] + 1, "collection": config, "model": model,
            "segments": segments, "tombstones": written.tombstones,
            "tombstone_segments": written.tombstone_segments, "files": files, "next_seq": written.next_seq}


def files_bytes(body: dict) -> int:
    """Bytes of every file the body lists: its size on disk, and what a State of it maps."""
    return sum(e["size"] for e in body["files"].values())


# --- reading -----------------------------------------------------------------------------------
def read_model(directory: str, name: str) -> Index:
    arrays, _, extra = arrow.read_arrays(os.path.join(directory, name))
    return Index.from_state(extra["model"], arrays)


def read_segment(directory: str, entry: dict, schema: dict[str, str]) -> Segment:
    """The segment of a manifest entry, mapped, with its payload index columns when the
    collection declares any; CorruptFileError when a file disagrees with the entry or schema."""
    arrays, _, _ = arrow.read_arrays(os.path.join(directory, entry["file"]))
    segment = Segment.from_arrays(arrays, entry["file"])
    if segment.rows != entry["rows"]:
        raise CorruptFileError(f"{entry['file']} holds {segment.rows} rows; the manifest says {entry['rows']}.")
    if not schema:
        return segment
    if "fields" not in entry:
        raise CorruptFileError(f"{entry['file']} has no payload index file, but the collection indexes "
                               f"{sorted(schema)}.")
    columns, _, _ = arrow.read_arrays(os.path.join(directory, entry["fields"]))
    if set(columns) != set(schema) or any(len(c) != segment.rows for c in columns.values()):
        raise CorruptFileError(f"{entry['fields']} does not hold the payload indexes {sorted(schema)} "
                               f"over the {segment.rows} rows of {entry['file']}.")
    return segment.with_columns(columns, entry["fields"])


def read_state(directory: str) -> State:
    """The committed state, memory-mapped. A concurrent writer may commit and collect the files
    of the manifest being read: retry while CURRENT keeps moving."""
    for attempt in range(5):
        current = manifest.read_current(directory)
        try:
            return state_of(directory, manifest.load(directory))
        except CorruptFileError:
            if attempt == 4 or manifest.read_current(directory) == current:
                raise


def state_of(directory: str, body: dict) -> State:
    """The State a manifest body describes: sizes checked, small files checksummed, the model,
    segments and payload index columns mapped, the tombstones applied; CorruptFileError names a
    damaged file."""
    files = body["files"]
    manifest.check_sizes(directory, files)
    fields = [e["fields"] for e in body["segments"] if "fields" in e]
    for name in [body["model"], body["tombstones"], *fields]:
        small = name and files[name]["size"] <= HASH_ON_OPEN
        if small and manifest.sha256_file(os.path.join(directory, name)) != files[name]["sha256"]:
            raise CorruptFileError(
                f"{os.path.join(directory, name)} fails its sha256 check: the file is damaged.")
    model = read_model(directory, body["model"]) if body["model"] else None
    schema = payload_indexes(body["collection"])
    parts = [Part(read_segment(directory, entry, schema)) for entry in body["segments"]]
    if body["tombstones"]:
        arrays, _, _ = arrow.read_arrays(os.path.join(directory, body["tombstones"]))
        # rows of every segment named in "tombstone_segments", concatenated; counts split them
        index = {p.segment.name: i for i, p in enumerate(parts)}
        bounds = np.concatenate([[0], np.cumsum(arrays["counts"])])
        if len(bounds) != len(body["tombstone_segments"]) + 1 or bounds[-1] != len(arrays["rows"]):
            raise CorruptFileError(f"{body['tombstones']} does not match the manifest's tombstone list.")
        for j, name in enumerate(body["tombstone_segments"]):
            i = index[name]
            parts[i] = parts[i].kill(arrays["rows"][bounds[j]:bounds[j + 1]])
    return State(model, tuple(parts), body, mapped_bytes=files_bytes(body))
