"""Crash-safe commits: durable file writes, numbered manifests, the CURRENT pointer, recovery, GC.

A commit writes every new file as ``name.tmp-*`` -> fsync -> ``os.replace`` -> fsync(directory),
then ``MANIFEST-<n>.json`` the same way, then switches ``CURRENT`` (same protocol), so a crash at
any point leaves either the old or the new state. Open reads ``CURRENT``; when the manifest it
names is unreadable it falls back to the newest older manifest that reads cleanly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import uuid
from typing import Callable

from ..errors import CorruptFileError, StorageError
from .arrow import FORMAT_VERSION, check_format_version, writer_name

log = logging.getLogger(__name__)

CURRENT = "CURRENT"
MANIFEST_RE = re.compile(r"MANIFEST-(\d{6,})\.json")
TMP_MARK = ".tmp-"
HASH_CHUNK = 1 << 22


def manifest_name(version: int) -> str:
    return f"MANIFEST-{version:06d}.json"


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(HASH_CHUNK):
            h.update(block)
    return h.hexdigest()


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_write(directory: str, name: str, write: Callable[[str], object]) -> dict:
    """Write ``directory/name`` via ``write(temp_path)``, crash-safely; returns its manifest entry.

    Any OSError (disk full, permission denied) removes the temp file and raises StorageError;
    the destination is then untouched.
    """
    final = os.path.join(directory, name)
    tmp = os.path.join(directory, f"{name}{TMP_MARK}{uuid.uuid4().hex[:12]}")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        entry = {"size": os.path.getsize(tmp), "sha256": sha256_file(tmp)}
        os.replace(tmp, final)
        fsync_dir(directory)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise StorageError(f"Could not write {final}: {exc}. The last committed state is intact.") from exc
    return entry


def write_bytes(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _body_checksum(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def commit(directory: str, body: dict) -> dict:
    """Write the next manifest holding ``body`` (files, segments, ...) and point CURRENT at it.

    The manifest gets ``format_version``, ``writer`` and a ``checksum`` of its own content.
    Returns the manifest as committed; durable when this returns.
    """
    body = dict(body, format_version=FORMAT_VERSION, writer=writer_name())
    body.pop("checksum", None)
    body["checksum"] = _body_checksum(body)
    name = manifest_name(body["version"])
    text = json.dumps(body, indent=1, sort_keys=True).encode()
    durable_write(directory, name, lambda p: write_bytes(p, text))
    point_current(directory, name)
    return body


def point_current(directory: str, manifest_file: str) -> None:
    """Switch CURRENT to ``manifest_file``: the commit point."""
    durable_write(directory, CURRENT, lambda p: write_bytes(p, (manifest_file + "\n").encode()))


def read_manifest(directory: str, name: str) -> dict:
    """One manifest, checked against its own checksum; CorruptFileError when it does not read."""
    path = os.path.join(directory, name)
    try:
        with open(path, "rb") as f:
            body = json.loads(f.read())
    except FileNotFoundError:
        raise CorruptFileError(f"{path} is missing.") from None
    except (OSError, ValueError) as exc:
        raise CorruptFileError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(body, dict) or "checksum" not in body:
        raise CorruptFileError(f"{path} is not an annvq manifest.")
    check_format_version(body.get("format_version", "?"), path)
    checksum = body.pop("checksum")
    if _body_checksum(body) != checksum:
        raise CorruptFileError(f"{path} fails its checksum: the manifest is damaged.")
    return body


def manifest_versions(directory: str) -> list[int]:
    """Versions of the manifests present, newest first."""
    names = (MANIFEST_RE.fullmatch(n) for n in os.listdir(directory))
    return sorted((int(m.group(1)) for m in names if m), reverse=True)


def read_current(directory: str) -> str | None:
    try:
        with open(os.path.join(directory, CURRENT), "rb") as f:
            name = f.read().decode("ascii", "replace").strip()
    except FileNotFoundError:
        return None
    return name if MANIFEST_RE.fullmatch(name) else None


def load(directory: str) -> dict:
    """The committed manifest: the one CURRENT names, else the newest older one that reads.

    Newer manifests than CURRENT's are never used: they belong to a commit that did not finish.
    UnsupportedFormatError propagates at once (falling back would hide it).
    """
    current = read_current(directory)
    versions = manifest_versions(directory)
    if current is not None:
        top = int(MANIFEST_RE.fullmatch(current).group(1))
        versions = [v for v in versions if v <= top]
    errors = []
    for version in versions:
        try:
            body = read_manifest(directory, manifest_name(version))
        except CorruptFileError as exc:
            errors.append(str(exc))
            continue
        if errors:
            log.warning("Falling back to %s: %s", manifest_name(version), "; ".join(errors))
        body["fallback_from"] = errors
        return body
    raise CorruptFileError(
        f"No readable manifest in {directory}" + (f": {'; '.join(errors)}" if errors else ".")
    )


def check_sizes(directory: str, files: dict) -> None:
    """Refuse a committed file that is missing or whose size differs from its manifest entry."""
    for name, entry in files.items():
        path = os.path.join(directory, name)
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            raise CorruptFileError(f"{path} is missing (listed in the manifest).") from None
        if size != entry["size"]:
            raise CorruptFileError(
                f"{path} has {size} bytes but the manifest lists {entry['size']}: it is truncated or damaged."
            )


def verify_files(directory: str, files: dict) -> list[str]:
    """A full checksum pass: one line per missing, resized or altered file."""
    problems = []
    for name, entry in sorted(files.items()):
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            problems.append(f"{name}: missing")
        elif os.path.getsize(path) != entry["size"]:
            problems.append(f"{name}: size {os.path.getsize(path)} != {entry['size']} in the manifest")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{name}: sha256 mismatch (contents changed)")
    return problems


def collect_garbage(directory: str, keep_versions: int) -> list[str]:
    """Delete manifests older than the newest ``keep_versions`` (and any newer than CURRENT's: a
    commit that never finished), files no kept manifest references, and stray temp files.
    Call only while holding the writer lock."""
    versions = manifest_versions(directory)
    current = read_current(directory)
    top = int(MANIFEST_RE.fullmatch(current).group(1)) if current else (versions[0] if versions else 0)
    kept = [v for v in versions if v <= top][:keep_versions]
    referenced = {CURRENT, "LOCK"}
    for version in kept:
        try:
            referenced |= set(read_manifest(directory, manifest_name(version))["files"])
        except CorruptFileError:
            pass
        referenced.add(manifest_name(version))
    removed = []
    for name in os.listdir(directory):
        if name in referenced:
            continue
        if TMP_MARK in name or MANIFEST_RE.fullmatch(name) or name.endswith(".arrow"):
            try:
                os.unlink(os.path.join(directory, name))
                removed.append(name)
            except OSError as exc:
                log.warning("Could not remove %s: %s", name, exc)
    return removed
