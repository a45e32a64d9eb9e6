"""Observation: networks watched for listed files, sightings recorded with proof.

The read API other stages use; the modules stay importable on their own.
"""

from atalaya.observe import registry
from atalaya.observe.registry import Network, UnknownNetworkError, get_network, label_of
from atalaya.observe.sightings import Sighting, iter_export_rows, sightings_by_id
from atalaya.observe.transcripts import load_transcripts
from atalaya.observe.watchlist import WatchTarget, load_targets

__all__ = [
    "Network",
    "Sighting",
    "UnknownNetworkError",
    "WatchTarget",
    "get_network",
    "iter_export_rows",
    "label_of",
    "load_targets",
    "load_transcripts",
    "registry",
    "sightings_by_id",
]
