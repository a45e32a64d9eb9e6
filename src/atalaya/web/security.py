"""Response headers every answer carries, the cookies the application sets,
and the client address behind a trusted proxy.

The Content-Security-Policy allows scripts and styles from this origin only
(no inline script: pages pass data to scripts in `application/json` blocks),
images from here, `data:` URLs (Leaflet's and Geoman's icons) and the tile
server when one is configured, and no framing. Pages and APIs are never
cached: they hold case data. Behind TLS (`--secure-cookies`) every answer
also tells the browser to use HTTPS only (HSTS).

Behind a reverse proxy every request comes from the proxy's address: one
attacker would throttle everyone's logins and the audit log would name the
proxy as every client. With `--forwarded-allow-ips` naming the proxy, a
request from it is credited to the address its X-Forwarded-For names; a
request from anywhere else keeps its own address whatever headers it sends.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "atalaya_session"
LOGIN_CSRF_COOKIE = "atalaya_login_csrf"
_ASSET_PATHS = ("/static/", "/lib/")
HSTS = b"max-age=31536000"
# X-Forwarded-For entries read, from the right: each proxy adds one.
MAX_FORWARDED_HOPS = 16
MAX_FORWARDED_BYTES = 4096

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_trusted_proxies(text: str) -> tuple[Network, ...]:
    """Addresses and networks (CIDR) separated by commas; ValueError names a bad one."""
    networks: list[Network] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"{item[:60]!r} is not an IP address or network such as 127.0.0.1 or 10.0.0.0/8"
            ) from None
    if not networks:
        raise ValueError("name at least one proxy address, e.g. 127.0.0.1")
    return tuple(networks)


def _address(text: str) -> Address | None:
    """An X-Forwarded-For entry as an address (a port, brackets dropped), or None."""
    text = text.strip()
    if text.startswith("["):  # [2001:db8::1]:443
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # 192.0.2.1:443
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, nets: Sequence[Network]
) -> bool:
    return any(address.version == n.version and address in n for n in nets)


def forwarded_client(peer: str, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    """The address a request is credited to.

    `peer` unless it is a trusted proxy; then the right-most X-Forwarded-For
    entry that is not itself a trusted proxy (each proxy appends the address
    it received from, so entries to the left of it are the client's to
    invent). An entry that is not an address stops the walk at the last
    proxy: nothing a client writes is ever taken for its address.
    """
    peer_address = _address(peer)
    if peer_address is None or not _trusted(peer_address, trusted):
        return peer
    joined = ",".join(forwarded_for)
    if not joined.strip() or len(joined) > MAX_FORWARDED_BYTES:
        return peer
    credited = str(peer_address)
    for entry in reversed(joined.split(",")[-MAX_FORWARDED_HOPS:]):
        address = _address(entry)
        if address is None:
            return credited
        credited = str(address)
        if not _trusted(address, trusted):
            return credited
    return credited


class TrustedProxy:
    """ASGI middleware: the client address behind the proxies in `trusted`."""

    def __init__(self, app: ASGIApp, *, trusted: Sequence[Network]) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] in ("http", "websocket") and client:
            values = [
                value.decode("latin-1")
                for name, value in scope.get("headers", [])
                if name.lower() == b"x-forwarded-for"
            ]
            credited = forwarded_client(str(client[0]), values, self.trusted)
            if credited != client[0]:
                scope = {**scope, "client": (credited, 0)}
        await self.app(scope, receive, send)


def content_security_policy(tile_origin: str | None) -> str:
    images = "'self' data:" + (f" {tile_origin}" if tile_origin else "")
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {images}",
            "connect-src 'self'",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


class SecurityHeaders:
    """ASGI middleware adding the headers to every HTTP response."""

    def __init__(self, app: ASGIApp, *, tile_origin: str | None, hsts: bool = False) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", content_security_policy(tile_origin).encode()),
            (b"referrer-policy", b"no-referrer"),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"cross-origin-resource-policy", b"same-origin"),
            (b"permissions-policy", b"geolocation=(), camera=(), microphone=(), payment=()"),
        ]
        if hsts:
            self.headers.append((b"strict-transport-security", HSTS))

    @classmethod
    def factory(
        cls,
        *,
        tile_origin: str | None,
        hsts: bool = False,
        trusted_proxies: Sequence[Network] = (),
    ) -> Callable[[ASGIApp], ASGIApp]:
        """Wrap an application later: these headers, outside them the trusted proxy."""

        def wrap(app: ASGIApp) -> ASGIApp:
            headed: ASGIApp = cls(app, tile_origin=tile_origin, hsts=hsts)
            return TrustedProxy(headed, trusted=trusted_proxies) if trusted_proxies else headed

        return wrap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        # Libraries and the application's own scripts may be cached; pages
        # and APIs hold case data and must not be.
        path = scope.get("path", "")
        cache = b"public, max-age=3600" if path.startswith(_ASSET_PATHS) else b"no-store"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in self.headers if n not in names]
                if b"cache-control" not in names:
                    headers.append((b"cache-control", cache))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
