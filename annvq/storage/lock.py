"""The exclusive writer lock: one process (and one Collection object) writes a collection at a time.

``fcntl.flock`` on ``LOCK`` is tied to the open file, so the kernel releases it when the holder
exits or is killed; no stale lock survives a crash.
"""

from __future__ import annotations

import fcntl
import os

from ..errors import CollectionLockedError

LOCK = "LOCK"


class WriterLock:
    """Holds ``directory/LOCK`` exclusively until ``release``; refuses at once if it is taken."""

    def __init__(self, directory: str):
        self.path = os.path.join(directory, LOCK)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 64, 0).decode(errors="replace").strip() or "another writer"
            os.close(self._fd)
            self._fd = None
            raise CollectionLockedError(
                f"{directory} is being written by {holder}; open it with read_only=True, or close "
                "the other writer first."
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"pid {os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
