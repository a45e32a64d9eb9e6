"""What a BitTorrent run will use, worked out before it starts.

The local addresses (every address of both families unless the operator
binds some), the DHT port, the fence, and where the DHT starts from: the
nodes the operator names (a lab, a private test network), or else the
public routers plus the contacts saved by the last run. `atalaya watch
bittorrent --check` prints this plan and stops; a real run refuses to start
when the plan has nothing to start from, with one line that says why.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from atalaya.errors import AtalayaError
from atalaya.networks.bittorrent.dht.node import NodeConfig
from atalaya.networks.bittorrent.krpc import Address
from atalaya.observe.bittorrent.bootstrap import (
    DEFAULT_ROUTERS,
    HostPort,
    Resolved,
    parse_hostport,
    resolve,
)
from atalaya.observe.bittorrent.dht_state import DhtState, load_state
from atalaya.observe.bittorrent.fence import Network, fence_admits

DEFAULT_DHT_PORT = 6881


@dataclass(frozen=True)
class LaunchPlan:
    binds: dict[int, str]  # family -> address; empty: every local address
    families: tuple[int, ...]
    port: int
    fence: tuple[Network, ...] | None
    use_dht: bool
    from_routers: bool  # False: the operator named the bootstrap nodes
    resolved: Resolved
    bootstrap: tuple[Address, ...]
    fenced_out: tuple[Address, ...]
    state_path: Path | None
    state: DhtState
    trackers: tuple[str, ...]

    @property
    def saved_contacts(self) -> int:
        return sum(len(v) for f, v in self.state.nodes.items() if f in self.families)

    def problem(self) -> str | None:
        """Why a run with this plan would watch nothing, in one line; None when it can run."""
        if not self.use_dht or self.bootstrap:
            return None
        if self.from_routers:
            names = ", ".join(str(n) for n, _ in self.resolved.by_name) or ", ".join(
                DEFAULT_ROUTERS
            )
            why = (
                "none of the DHT bootstrap routers resolves"
                if not self.resolved.addresses
                else ("every DHT router address is outside --allow-network")
            )
            return (
                f"{why} ({names}) and no contacts are saved from an earlier run: "
                "check the network and DNS, or name a node with --dht-bootstrap HOST:PORT"
            )
        return "no --dht-bootstrap node is inside --allow-network: nothing to start the DHT from"


def parse_binds(texts: Sequence[str]) -> dict[int, str]:
    """`--bind` values by family; AtalayaError for a non-address or two of one family."""
    binds: dict[int, str] = {}
    for text in texts:
        try:
            addr = ipaddress.ip_address(text.strip().strip("[]"))
        except ValueError:
            raise AtalayaError(
                f"--bind {text!r}: expected a local IPv4 or IPv6 address, e.g. 192.0.2.10"
            ) from None
        if addr.version in binds:
            raise AtalayaError(
                f"--bind {text!r}: already binding IPv{addr.version} to {binds[addr.version]}; "
                "give at most one address per family"
            )
        binds[addr.version] = str(addr)
    return binds


async def plan_launch(
    *,
    binds: dict[int, str],
    port: int,
    fence: tuple[Network, ...] | None,
    bootstrap: Sequence[str],
    trackers: Sequence[str],
    state_path: Path | None,
    use_dht: bool = True,
) -> LaunchPlan:
    """Resolve the bootstrap nodes (bounded in time) and read the saved state."""
    families = tuple(sorted(binds)) if binds else (4, 6)
    names: list[HostPort] = [parse_hostport(text) for text in bootstrap]
    from_routers = not names
    if from_routers:
        names = [parse_hostport(r) for r in DEFAULT_ROUTERS]
    resolved = Resolved((), (), ())
    if use_dht:
        resolved = await resolve(names, families=families)
        if not from_routers and resolved.failed:
            raise AtalayaError(f"--dht-bootstrap {resolved.failed[0]}")
    state = load_state(state_path) if state_path is not None and use_dht else DhtState()
    candidates = list(resolved.addresses)
    for family in families:
        candidates += state.nodes.get(family, [])
    candidates = list(dict.fromkeys(candidates))
    inside = tuple(a for a in candidates if fence_admits(fence, a[0]))
    outside = tuple(a for a in candidates if a not in inside)
    return LaunchPlan(
        binds=binds,
        families=families,
        port=port,
        fence=fence,
        use_dht=use_dht,
        from_routers=from_routers,
        resolved=resolved,
        bootstrap=inside,
        fenced_out=outside,
        state_path=state_path,
        state=state,
        trackers=tuple(trackers),
    )


def describe(plan: LaunchPlan) -> list[str]:
    """What `--check` prints: every choice the run would make, one per line."""
    lines = []
    if plan.binds:
        where = ", ".join(_hostport(ip, plan.port) for _, ip in sorted(plan.binds.items()))
    else:
        where = f"0.0.0.0:{plan.port} and [::]:{plan.port} (every local address)"
    if plan.use_dht:
        chosen = " (port chosen at start)" if plan.port == 0 else ""
        lines.append(f"DHT listens on (UDP): {where}{chosen}")
    else:
        lines.append("DHT: off (--no-dht)")
    sources = ", ".join(plan.binds.values()) or "the address the system routes from"
    lines.append(f"probes and trackers connect from: {sources}")
    external = plan.state.external_ip
    lines.append(
        f"external address: {external} (learnt by the last run)"
        if external
        else "external address: not known yet (learnt from DHT answers, BEP 42)"
    )
    if plan.use_dht:
        source = "public routers" if plan.from_routers else "--dht-bootstrap"
        for name, addrs in plan.resolved.by_name:
            shown = ", ".join(_hostport(ip, p) for ip, p in addrs)
            lines.append(f"bootstrap ({source}): {name} -> {shown}")
        for failure in plan.resolved.failed:
            lines.append(f"bootstrap ({source}): {failure}")
        if plan.state_path is not None:
            lines.append(
                f"saved state: {plan.state_path} ({plan.saved_contacts} contacts"
                + (f", saved {plan.state.saved_at}" if plan.state.saved_at else "")
                + ")"
            )
        for addr in plan.fenced_out[:5]:
            lines.append(f"not contacted (outside --allow-network): {_hostport(*addr)}")
    if plan.fence is None:
        lines.append(
            "allowed networks: any address that can be a peer (not unspecified, "
            "multicast or broadcast; never ourselves)"
        )
    else:
        lines.append("allowed networks: " + ", ".join(str(n) for n in plan.fence))
    out = NodeConfig().outgoing
    lines.append(
        f"DHT query rate: at most {out.per_ip_rate:g}/s to one address, {out.total_rate:g}/s in all"
    )
    lines.append(
        "sends: DHT ping/find_node/get_peers (and sample_infohashes with --discover), "
        "tracker announces saying we hold nothing, peer-wire handshakes and piece requests; "
        "never announce_peer, never a piece"
    )
    for tracker in plan.trackers:
        lines.append(f"tracker: {tracker}")
    return lines


def _hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
