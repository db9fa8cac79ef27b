"""Service settings: one frozen object built by `create_app` (from CLI flags and ANNVQ_* variables)
and read by handlers through `request.app.state.settings`, never a module-level global."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
# Upper bounds the service puts on one request's work, on top of the body size limit.
MAX_K = 10_000


@dataclass(frozen=True)
class Settings:
    """What the service needs to know: where collections live and what clients may do."""

    data_dir: Path
    api_key: str | None = None
    read_only: bool = False
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    threads: int | None = None  # worker threads for blocking handlers (None: anyio's default, 40)
    warmup: bool = True
    ray_address: str | None = None  # sharded clusters are served over Ray ("local" or an address)
    shard_timeout: float = 30.0  # seconds a search waits for a cluster's shards

    def __post_init__(self):
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if self.max_request_bytes < 1:
            raise ValueError(f"max_request_bytes must be >= 1; got {self.max_request_bytes}.")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1; got {self.threads}.")
        if not self.shard_timeout > 0:
            raise ValueError(f"shard_timeout must be > 0 seconds; got {self.shard_timeout}.")
        if self.api_key == "":
            object.__setattr__(self, "api_key", None)

    @property
    def snapshot_dir(self) -> Path:
        """Snapshots live beside the collections, in a directory no collection name can take."""
        return self.data_dir / ".snapshots"

