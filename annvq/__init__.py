"""annvq: an approximate-nearest-neighbour vector database over compressed codes."""

from .collection import Collection, Point
from .client import Client, RemoteCollection, ServiceError
from .errors import (AnnvqError, DimensionMismatchError, InvalidFileError, InvalidParameterError,
                     InvalidSpecError, InvalidVectorsError, NotTrainedError)
from .hits import Hits
from .index import Index
from .ivf import InvertedLists
from .plan import SearchPlan
from .spec import IndexSpec, parse_spec

__version__ = "0.1.0"

__all__ = [
    "AnnvqError", "Client", "Collection", "DimensionMismatchError", "Hits", "Index", "IndexSpec", "InvalidFileError",
    "InvalidParameterError", "InvalidSpecError", "InvalidVectorsError", "InvertedLists",
    "NotTrainedError", "Point", "RemoteCollection", "SearchPlan", "ServiceError", "parse_spec", "__version__",
]
