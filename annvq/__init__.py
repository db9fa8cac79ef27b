"""annvq: an approximate-nearest-neighbour vector database over compressed codes."""

from .collection import Collection, Point
from .errors import (AnnvqError, DimensionMismatchError, InvalidFileError, InvalidParameterError,
                     InvalidSpecError, InvalidVectorsError, NotTrainedError)
from .index import Index
from .ivf import InvertedLists
from .spec import IndexSpec, parse_spec

__version__ = "0.1.0"

__all__ = [
    "AnnvqError", "Collection", "DimensionMismatchError", "Index", "IndexSpec", "InvalidFileError",
    "InvalidParameterError", "InvalidSpecError", "InvalidVectorsError", "InvertedLists",
    "NotTrainedError", "Point", "parse_spec", "__version__",
]
