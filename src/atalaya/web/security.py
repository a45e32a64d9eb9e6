"""Response headers every answer carries, and the cookies the application sets.

The Content-Security-Policy allows scripts and styles from this origin only
(no inline script: pages pass data to scripts in `application/json` blocks),
images from here, `data:` URLs (Leaflet's and Geoman's icons) and the tile
server when one is configured, and no framing. Pages and APIs are never
cached: they hold case data.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "atalaya_session"
LOGIN_CSRF_COOKIE = "atalaya_login_csrf"
_ASSET_PATHS = ("/static/", "/lib/")


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

    def __init__(self, app: ASGIApp, *, tile_origin: str | None) -> None:
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

    @classmethod
    def factory(cls, *, tile_origin: str | None) -> Callable[[ASGIApp], ASGIApp]:
        """Wrap an application later, with these settings."""

        def wrap(app: ASGIApp) -> ASGIApp:
            return cls(app, tile_origin=tile_origin)

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
