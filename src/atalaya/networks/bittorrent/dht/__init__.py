"""Mainline DHT (BEP 5, 32, 42, 43, 51): routing table, tokens, rate limits, the sans-I/O node."""

from atalaya.networks.bittorrent.dht.node import (
    DEFAULT_INCOMING,
    DEFAULT_OUTGOING,
    LAB_OUTGOING,
    MIN_VOTERS,
    AnnounceReceived,
    DhtNode,
    Event,
    ExternalAddressChanged,
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
    "DEFAULT_INCOMING",
    "DEFAULT_OUTGOING",
    "LAB_OUTGOING",
    "MIN_VOTERS",
    "AnnounceReceived",
    "DhtNode",
    "Event",
    "ExternalAddressChanged",
    "InfohashesSampled",
    "LookupFinished",
    "LookupKind",
    "LookupLimitError",
    "LookupStats",
    "NodeConfig",
    "NodeStats",
    "PeersFound",
]
