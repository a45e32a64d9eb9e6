"""The DHT state kept between runs, like libtorrent's and Transmission's `dht.dat`.

A restart that remembers its node id and a few hundred good contacts rejoins
the DHT without the public routers, and keeps the place in other nodes'
routing tables that its id earned. What is kept: per address family the node
id and the good contacts, the external address the network reported, and
when. It is read liberally (a damaged or foreign file is ignored with a
warning: the routers still work) and written atomically.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from atalaya.networks.bittorrent.krpc import Address

log = logging.getLogger(__name__)

STATE_VERSION = 1
MAX_STATE_BYTES = 1 << 20
MAX_SAVED_NODES = 300  # per family; libtorrent saves a few hundred too


@dataclass
class DhtState:
    node_ids: dict[int, bytes] = field(default_factory=dict)
    nodes: dict[int, list[Address]] = field(default_factory=dict)
    external_ip: str | None = None
    saved_at: str | None = None


def default_state_path() -> Path:
    """$XDG_STATE_HOME/atalaya/dht.json (~/.local/state/atalaya/dht.json)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "atalaya" / "dht.json"


def _address(item: object, family: int) -> Address | None:
    if not (isinstance(item, list) and len(item) == 2):
        return None
    ip, port = item
    if not isinstance(ip, str) or not isinstance(port, int) or not 0 < port < 65536:
        return None
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return None
    return (str(parsed), port) if parsed.version == family else None


def load_state(path: Path) -> DhtState:
    """The state in `path`; an empty one if there is none or it cannot be used."""
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return DhtState()
    except OSError as exc:
        log.warning("DHT state %s not read: %s", path, exc)
        return DhtState()
    try:
        if len(raw) > MAX_STATE_BYTES:
            raise ValueError("larger than 1 MiB")
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError("not an Atalaya DHT state file of this version")
    except ValueError as exc:
        log.warning("DHT state %s ignored: %s", path, exc)
        return DhtState()
    state = DhtState(
        saved_at=data.get("saved_at") if isinstance(data.get("saved_at"), str) else None
    )
    for family in (4, 6):
        entry = data.get(f"ipv{family}")
        if not isinstance(entry, dict):
            continue
        node_id = entry.get("node_id")
        with contextlib.suppress(ValueError, TypeError):
            if isinstance(node_id, str) and len(bytes.fromhex(node_id)) == 20:
                state.node_ids[family] = bytes.fromhex(node_id)
        nodes = entry.get("nodes")
        if isinstance(nodes, list):
            kept = [a for a in (_address(n, family) for n in nodes[:MAX_SAVED_NODES]) if a]
            state.nodes[family] = kept
    external = data.get("external_ip")
    with contextlib.suppress(ValueError, TypeError):
        if isinstance(external, str):
            state.external_ip = str(ipaddress.ip_address(external))
    return state


def save_state(path: Path, state: DhtState) -> None:
    """Write `state` to `path` atomically (a temporary file renamed over it)."""
    data: dict[str, object] = {
        "version": STATE_VERSION,
        "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "external_ip": state.external_ip,
    }
    for family in sorted(set(state.node_ids) | set(state.nodes)):
        node_id = state.node_ids.get(family)
        data[f"ipv{family}"] = {
            "node_id": node_id.hex() if node_id else None,
            "nodes": [[ip, port] for ip, port in state.nodes.get(family, [])[:MAX_SAVED_NODES]],
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
