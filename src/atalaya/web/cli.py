"""`atalaya serve`: the web application on one address and port."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from atalaya.console import err, store_engine
from atalaya.web.settings import (
    DEFAULT_QUERY_TIMEOUT,
    FORWARDED_ALLOW_IPS_ENV,
    TILE_ATTRIBUTION_ENV,
    TILE_URL_ENV,
    WebSettings,
)


def serve_command(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (loopback unless behind a proxy).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    tile_url: Annotated[
        str | None,
        typer.Option(
            "--tile-url",
            envvar=TILE_URL_ENV,
            help="Tile server URL template, e.g. https://tiles.example/{z}/{x}/{y}.png "
            "[default: none, the map is drawn from the boundaries offline].",
            show_default=False,
        ),
    ] = None,
    tile_attribution: Annotated[
        str | None,
        typer.Option(
            "--tile-attribution", envvar=TILE_ATTRIBUTION_ENV, help="Credit line for the tiles."
        ),
    ] = None,
    secure_cookies: Annotated[
        bool,
        typer.Option(
            "--secure-cookies",
            help="Mark cookies Secure and send HSTS: set when a TLS proxy is in front.",
        ),
    ] = False,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            "--forwarded-allow-ips",
            envvar=FORWARDED_ALLOW_IPS_ENV,
            help="Addresses or networks of the reverse proxy in front, comma-separated: "
            "requests from them are credited to the client their X-Forwarded-For names "
            "(for logins, rate limits and the audit log) [default: none, trust no header].",
            show_default=False,
        ),
    ] = None,
    query_timeout: Annotated[
        float,
        typer.Option(
            "--query-timeout",
            min=0.1,
            max=3600,
            help="Seconds any one database statement of a request may run; longer ones answer 503.",
        ),
    ] = DEFAULT_QUERY_TIMEOUT,
) -> None:
    """Serve the map, the leads and the audit log over HTTP (sign in with `atalaya users`)."""
    # Imported here: the server and the application's modules load for `serve`,
    # not with every `atalaya` command.
    import uvicorn  # noqa: PLC0415

    from atalaya.web.app import create_app  # noqa: PLC0415

    engine = store_engine(ctx)
    settings = WebSettings.load(
        tile_url=tile_url,
        tile_attribution=tile_attribution,
        secure_cookies=secure_cookies,
        forwarded_allow_ips=forwarded_allow_ips,
        query_timeout=query_timeout,
    )
    app = create_app(engine, settings)
    shown = f"[{host}]" if ":" in host else host
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not secure_cookies:
        err.print(
            f"note: listening on {host} without --secure-cookies: put a TLS proxy in front "
            "and pass --secure-cookies"
        )
    err.print(f"serving on http://{shown}:{port}/ (Ctrl-C stops)")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
        # Client addresses go into the audit log: uvicorn trusts no forwarding
        # header; the application does, from --forwarded-allow-ips only.
        proxy_headers=False,
    )
