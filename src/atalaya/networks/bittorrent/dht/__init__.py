"""Mainline DHT (BEP 5, 42, 51): routing table, tokens, rate limits and the sans-I/O node."""

from atalaya.networks.bittorrent.dht.node import (
    AnnounceReceived,
    DhtNode,
    Event,
    InfohashesSampled,
    LookupFinished,
    LookupKind,
    LookupLimitError,
    LookupStats,
    NodeConfig,
    NodeStats,
    PeersFound,
)

__all__ = [
    "AnnounceReceived",
    "DhtNode",
    "Event",
    "InfohashesSampled",
    "LookupFinished",
    "LookupKind",
    "LookupLimitError",
    "LookupStats",
    "NodeConfig",
    "NodeStats",
    "PeersFound",
]
