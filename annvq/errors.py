"""Exceptions raised by annvq. Every one is a ValueError or RuntimeError subclass with a message
that names the problem, so callers can catch broadly or precisely."""


class AnnvqError(Exception):
    """Base class of every annvq error."""


class InvalidVectorsError(AnnvqError, ValueError):
    """Vectors with the wrong shape, dtype or non-finite values."""


class DimensionMismatchError(InvalidVectorsError):
    """Vectors whose dimension differs from the index's."""


class InvalidParameterError(AnnvqError, ValueError):
    """A parameter outside its allowed range (k < 1, nprobe > nlist, bits out of range...)."""


class InvalidSpecError(AnnvqError, ValueError):
    """An index spec string that cannot be parsed or built."""


class NotTrainedError(AnnvqError, ValueError):
    """Adding to or searching an index that has not been trained."""


class InvalidFileError(AnnvqError, ValueError):
    """A vector file that cannot be read: missing, empty, ragged, non-numeric or corrupt."""


class CollectionNotFoundError(AnnvqError, LookupError):
    """No collection at the given path or name."""


class CollectionExistsError(AnnvqError, FileExistsError):
    """Creating a collection where one already exists."""


class CollectionLockedError(AnnvqError, RuntimeError):
    """Another process holds the collection's writer lock."""


class ReadOnlyError(AnnvqError, PermissionError):
    """A write to a collection opened read-only."""


class CorruptFileError(InvalidFileError):
    """A stored file whose size or checksum does not match its manifest."""


class UnsupportedFormatError(AnnvqError, RuntimeError):
    """A collection written by a newer major format version than this annvq reads."""


class StorageError(AnnvqError, OSError):
    """Writing a collection's files failed (disk full, permission denied); the last committed
    state is intact and still opens."""


class CollectionClosedError(AnnvqError, RuntimeError):
    """Using a collection after close()."""


class UnsupportedOperationError(AnnvqError, RuntimeError):
    """An operation this kind of collection does not offer (e.g. retraining a sharded cluster)."""


class ShardUnavailableError(AnnvqError, RuntimeError):
    """A shard of a sharded collection gave no answer in time (dead, restarting or overloaded)."""


class InvalidFilterError(InvalidParameterError):
    """A filter that is malformed, names an unindexed field or compares it with the wrong type."""


#: The stable code of each error, most specific first: what the REST service answers in
#: ``{"error": {"code"}}`` and what `annvq.Client` raises back. A closed collection is one dropped
#: while a request ran, hence "collection_not_found".
CODES: dict[type[AnnvqError], str] = {
    CollectionNotFoundError: "collection_not_found",
    CollectionExistsError: "collection_exists",
    CollectionLockedError: "collection_locked",
    CollectionClosedError: "collection_not_found",
    ReadOnlyError: "read_only",
    DimensionMismatchError: "dimension_mismatch",
    InvalidVectorsError: "invalid_vectors",
    InvalidFilterError: "invalid_filter",
    InvalidParameterError: "invalid_parameter",
    InvalidSpecError: "invalid_spec",
    NotTrainedError: "not_trained",
    CorruptFileError: "corrupt_file",
    UnsupportedFormatError: "unsupported_format",
    InvalidFileError: "invalid_file",
    StorageError: "storage_error",
    UnsupportedOperationError: "unsupported",
    ShardUnavailableError: "shard_unavailable",
    AnnvqError: "bad_request",
}
