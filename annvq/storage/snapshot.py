"""Whole-version file work on one committed manifest: verify every file it lists (full checksum
pass) and snapshot them (a durable, checked copy in another directory, CURRENT pointed at it)."""

from __future__ import annotations

import functools
import os
import shutil

from ..errors import CollectionExistsError, CorruptFileError
from . import arrow, manifest


def verify(directory: str, body: dict) -> list[str]:
    """One line per problem with the committed version ``body`` in ``directory``: a manifest
    skipped on open, a damaged manifest, a missing, resized, altered or unreadable file."""
    problems = [f"newer manifest skipped: {e}" for e in body.get("fallback_from", [])]
    try:
        manifest.read_manifest(directory, manifest.manifest_name(body["version"]))
    except CorruptFileError as exc:
        problems.append(f"{manifest.manifest_name(body['version'])}: {exc}")
    problems += manifest.verify_files(directory, body["files"])
    for name in body["files"]:
        if not any(p.startswith(name + ":") for p in problems):
            try:
                arrow.read_arrays(os.path.join(directory, name))
            except CorruptFileError as exc:
                problems.append(f"{name}: {exc}")
    return problems


def copy(directory: str, body: dict, dest: str) -> dict:
    """Copy the files of the committed version ``body`` and its manifest to the empty or new
    directory ``dest``, each durably and checked against its sha256, then point CURRENT there;
    returns {"path", "files": {name: sha256}}."""
    if os.path.isdir(dest) and os.listdir(dest):
        raise CollectionExistsError(f"Snapshot destination {dest} is not empty.")
    os.makedirs(dest, exist_ok=True)
    name = manifest.manifest_name(body["version"])
    out = {}
    for f in [*body["files"], name]:
        copy = functools.partial(shutil.copyfile, os.path.join(directory, f))
        entry = manifest.durable_write(dest, f, copy)
        if f in body["files"] and entry["sha256"] != body["files"][f]["sha256"]:
            raise CorruptFileError(f"{os.path.join(directory, f)} changed on disk: run verify().")
        out[f] = entry["sha256"]
    manifest.point_current(dest, name)
    return {"path": dest, "files": out}
