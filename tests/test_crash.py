"""Crash safety: a writer process killed with SIGKILL at random moments and at every commit step,
then file damage (truncation, bit flips, missing files) that open and verify must catch."""

import json
import multiprocessing
import os
import random
import signal
import time

import numpy as np
import pytest

from annvq import Collection
from annvq.errors import CollectionLockedError, CorruptFileError

DIM = 8
ID_SPACE = 300
ROUNDS = int(os.environ.get("ANNVQ_CRASH_ROUNDS", "30"))


def vector(pid: int, version: int) -> np.ndarray:
    """The vector written for (id, version): the checker recomputes it to spot torn rows."""
    v = np.random.default_rng(pid).standard_normal(DIM).astype(np.float32)
    v[0], v[1] = divmod(version, 10 ** 6)  # exact in float32: (id, version) -> vector is one-to-one
    return v


def read_state(col: Collection) -> dict[int, int]:
    """id -> version of every live point, checking that vector and payload agree."""
    out = {}
    for p in col.get(np.arange(ID_SPACE)):
        version = p.payload["v"]
        np.testing.assert_array_equal(p.vector, vector(p.id, version), err_msg=f"id {p.id} torn")
        out[p.id] = version
    return out


def writer_main(path: str, log_path: str, seed: int, crash_at) -> None:
    """Random upserts, deletes, persists and compactions; logs the state each commit must leave.

    ``crash_at = (name, n)`` SIGKILLs this process at the n-th call of os.<name> (a commit step);
    otherwise the parent kills it at a random moment.
    """
    rng = random.Random(seed)
    if crash_at is not None:
        name, n = crash_at
        real, calls = getattr(os, name), [0]

        def hook(*args, **kwargs):
            calls[0] += 1
            if calls[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        setattr(os, name, hook)
    log = open(log_path, "a")

    def note(**event):
        log.write(json.dumps(event) + "\n")
        log.flush()

    col = Collection.open(path)
    state = read_state(col)
    note(event="ready")
    for step in range(10 ** 6):  # until killed: the parent or a crash point always ends it
        op = rng.random()
        if op < 0.45:
            ids = rng.sample(range(ID_SPACE), rng.randint(1, 25))
            version = seed * 10 ** 6 + step
            col.upsert(ids, np.stack([vector(i, version) for i in ids]), [{"v": version}] * len(ids))
            state.update({i: version for i in ids})
        elif op < 0.7:
            ids = rng.sample(range(ID_SPACE), rng.randint(1, 15))
            col.delete(ids)
            for i in ids:
                state.pop(i, None)
        else:
            action = "compact" if op > 0.9 else "persist"
            note(event=action, state=state)
            getattr(col, action)()
            note(event="done")


def expected_states(log_path: str, before: dict) -> list[dict]:
    """States the collection may be in: the last acknowledged commit, or the one in flight."""
    with open(log_path) as f:
        events = [json.loads(line) for line in f if line.endswith("\n")]
    acked, pending = before, None
    for event in events:
        if event["event"] in ("persist", "compact"):
            pending = {int(k): v for k, v in event["state"].items()}
        elif event["event"] == "done":
            acked, pending = pending, None
    return [acked] + ([pending] if pending is not None else [])


def test_sigkill_during_writes_never_loses_or_tears_committed_state(tmp_path):
    path = str(tmp_path / "c")
    Collection.create(path, DIM, spec="IVF4,Flat", train_threshold=150).close()
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["annvq.collection", "test_crash"])
    rng = random.Random(0)
    state = {}
    steps = ["replace", "fsync"]
    for round_no in range(ROUNDS):
        log_path = str(tmp_path / f"log-{round_no}")
        open(log_path, "w").close()
        crash_at = (steps[round_no % 2], rng.randint(1, 14)) if round_no % 3 != 2 else None
        proc = ctx.Process(target=writer_main, args=(path, log_path, round_no + 1, crash_at))
        proc.start()
        deadline = time.monotonic() + 60
        while "ready" not in open(log_path).read() and proc.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if round_no == 0 and proc.is_alive():
            with pytest.raises(CollectionLockedError):  # a second writer process is refused
                Collection.open(path)
        if crash_at is None:
            time.sleep(rng.uniform(0.0, 0.4))
            proc.kill()
        proc.join(60)
        assert proc.exitcode is not None, "writer did not finish"
        assert proc.exitcode == -signal.SIGKILL, f"round {round_no}: writer exited with {proc.exitcode}"
        allowed = expected_states(log_path, state)
        with Collection.open(path) as col:  # the kernel released the dead writer's lock
            state = read_state(col)
            assert state in allowed, (
                f"round {round_no} ({crash_at}): state matches no committed state; "
                f"{len(state)} live vs allowed sizes {[len(a) for a in allowed]}")
            assert col.count == len(state) and col.verify() == []
            assert not any(".tmp-" in f for f in os.listdir(path)), "stray temp files survived open"
            if state:
                ids = np.array(sorted(state))
                X = np.stack([vector(i, state[i]) for i in ids])
                D, I = col.search(X[:5], 1, exact=True)
                np.testing.assert_array_equal(I[:, 0], ids[:5])


# --- damage injection --------------------------------------------------------------------------
@pytest.fixture()
def built(tmp_path):
    """A trained collection with two segments, tombstones, payloads; closed, with its files."""
    X = np.random.default_rng(3).standard_normal((900, DIM)).astype(np.float32)
    path = tmp_path / "c"
    col = Collection.create(path, DIM, spec="IVF4,Flat", train_threshold=500)
    col.upsert(np.arange(600), X[:600], [{"i": i} for i in range(600)])
    col.persist()
    col.upsert(np.arange(600, 900), X[600:])
    col.delete(np.arange(0, 900, 5))
    col.persist()
    body = col._state.manifest
    col.close()
    kinds = {"model": body["model"], "tombstones": body["tombstones"],
             "segment": body["segments"][0]["file"], "manifest": f"MANIFEST-{body['version']:06d}.json"}
    return path, kinds, X


def flip(path, offset=None):
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["model", "tombstones", "segment"])
@pytest.mark.parametrize("damage", ["truncate", "missing"])
def test_open_refuses_truncated_or_missing_files(built, kind, damage):
    path, kinds, _ = built
    target = path / kinds[kind]
    with Collection.open(path, read_only=True) as col:  # opened before the damage
        if damage == "truncate":
            target.write_bytes(target.read_bytes()[:-100])
        else:
            target.unlink()
        problems = col.verify()
    assert len(problems) == 1 and problems[0].startswith(kinds[kind])
    with pytest.raises(CorruptFileError, match=kinds[kind]):
        Collection.open(path)


@pytest.mark.parametrize("kind", ["model", "tombstones"])
def test_open_refuses_bit_flipped_small_files(built, kind):
    path, kinds, _ = built
    flip(path / kinds[kind])
    with pytest.raises(CorruptFileError, match=f"{kinds[kind]} fails its sha256"):
        Collection.open(path)


def test_verify_names_bit_flipped_segment(built):
    path, kinds, X = built
    flip(path / kinds["segment"])
    with Collection.open(path, read_only=True) as col:
        problems = col.verify()
    assert problems == [f"{kinds['segment']}: sha256 mismatch (contents changed)"]


def test_damaged_newest_manifest_falls_back_to_previous_commit(built):
    path, kinds, _ = built
    flip(path / kinds["manifest"], offset=40)
    with Collection.open(path, read_only=True) as col:
        # the previous commit: 600 points, no tombstones
        assert col.count == 600 and col.stats()["deleted"] == 0
        problems = col.verify()
    assert any(kinds["manifest"] in p for p in problems)
