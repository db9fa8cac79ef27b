"""On-disk storage for collections: Arrow IPC array files, crash-safe manifests, the writer lock,
the file layout (layout.py) and whole-version verify/snapshot (snapshot.py)."""

from .arrow import FORMAT_VERSION, read_arrays, write_arrays
from .lock import WriterLock
from .manifest import collect_garbage, commit, durable_write, load, verify_files

__all__ = ["FORMAT_VERSION", "WriterLock", "collect_garbage", "commit", "durable_write", "load",
           "read_arrays", "verify_files", "write_arrays"]
