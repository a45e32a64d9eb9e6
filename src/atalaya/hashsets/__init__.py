"""Hash sets: reference lists imported, categorised and indexed for matching.

The read API other stages use; the modules stay importable on their own.
Reference data (which set holds which file, its hashes, its label) is read
through `lookup` only, whichever layout holds a record.
"""

from atalaya.hashsets import algorithms, lookup
from atalaya.hashsets.algorithms import HashFormatError, infohash_kind
from atalaya.hashsets.categories import Category, CategoryError, CategoryMap, parse_category_map
from atalaya.hashsets.index import Match, MatchIndex, fetch_details

__all__ = [
    "Category",
    "CategoryError",
    "CategoryMap",
    "HashFormatError",
    "Match",
    "MatchIndex",
    "algorithms",
    "fetch_details",
    "infohash_kind",
    "lookup",
    "parse_category_map",
]
