"""Screenshots of the map and of a lead page for the README: the real application in Chromium.

    python -m atalaya.web.screenshot --db sqlite:///demo-run/atalaya.db --out docs/map.png
    python -m atalaya.web.screenshot --db ... --lead top --out docs/img/lead.png

Serves the application on a free loopback port, signs in, opens the map on
the week up to the latest lead (or --from/--to), or with --lead the page of
one lead (an id, or `top`: the highest score the user's unit sees), and
saves the page. Sign in
as an existing user (--username, password in $ATALAYA_PASSWORD), or let
--create-user make a throwaway analyst in a unit covering every province,
disabled again once the picture is taken. Needs Debian's chromium and
Playwright (a development dependency).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Engine

from atalaya.accounts import add_unit, add_user, find_user, get_unit, set_disabled
from atalaya.config import Settings
from atalaya.errors import AtalayaError
from atalaya.leads import latest_activity
from atalaya.store import create_store_engine
from atalaya.store.migrate import current_revision, head_revision
from atalaya.web.app import create_app
from atalaya.web.live import serving
from atalaya.web.settings import WebSettings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
SCREENSHOT_UNIT = "Screenshots"
SCREENSHOT_USER = "screenshot"
# INE province codes 01..52: a unit that sees every Spanish lead.
ALL_PROVINCES = tuple(f"{n:02d}" for n in range(1, 53))
WAIT_MS = 30_000


def _window(engine: Engine) -> tuple[date, date]:
    with engine.connect() as conn:
        latest = latest_activity(conn)
    if latest is None:
        raise AtalayaError("the store has no leads: run 'atalaya enrich' and 'atalaya leads build'")
    end = latest.date()
    return end - timedelta(days=6), end


def _throwaway_user(engine: Engine, now: datetime) -> tuple[str, str]:
    password = secrets.token_urlsafe(24)
    username = f"{SCREENSHOT_USER}-{secrets.token_hex(3)}"
    with engine.begin() as conn:
        try:
            get_unit(conn, SCREENSHOT_UNIT)
        except AtalayaError:
            add_unit(
                conn,
                SCREENSHOT_UNIT,
                ALL_PROVINCES,
                "(account for README screenshots; holds no cases)",
                now,
            )
        add_user(conn, username, SCREENSHOT_UNIT, "analyst", password, now)
    return username, password


def take(
    engine: Engine,
    out: Path,
    username: str,
    password: str,
    window: tuple[date, date],
    *,
    width: int = 1400,
    height: int = 900,
    locale: str = "es-ES",
    lead: str | None = None,
) -> None:
    """Sign in as `username` and save the map page, or `lead`'s page, to `out` (PNG)."""
    try:
        # A development dependency: only this script needs it.
        from playwright.sync_api import sync_playwright  # noqa: PLC0415
    except ImportError as exc:
        raise AtalayaError("Playwright is missing: pip install -e '.[dev]'") from exc

    app = create_app(engine, WebSettings.load())
    query = urlencode({"from": window[0].isoformat(), "to": window[1].isoformat()})
    with serving(app) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            # The browser's language picks the pages' (Spanish by default).
            page = browser.new_page(viewport={"width": width, "height": height}, locale=locale)
            page.set_default_timeout(WAIT_MS)
            # The whole target as one value: unencoded, its "&to=" would be
            # the login page's own parameter and the window's end lost.
            page.goto(f"{base}/login?{urlencode({'next': f'/?{query}'})}")
            page.fill("#username", username)
            page.fill("#password", password)
            with page.expect_navigation():
                page.click("#sign-in")
            if page.locator("#login-error").count():
                raise AtalayaError(f"cannot sign in as {username}: check the password")
            page.wait_for_selector('#map-status[data-state="ready"]')
            if lead is not None:
                page.goto(f"{base}/leads/{_lead_id(page, lead, query)}?{query}")
                if page.locator("#lead-sightings").count() == 0:
                    raise AtalayaError(f"lead {lead} is not one this user's unit holds")
            # Let the base map's canvas (or the day chart) finish its last frame.
            page.wait_for_timeout(500)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
        finally:
            browser.close()


def _lead_id(page: Any, lead: str, query: str) -> int:
    """`lead` as an id; `top`: the highest score in the list the map page shows."""
    if lead.isdigit():
        return int(lead)
    if lead != "top":
        raise AtalayaError(f"--lead takes a lead id or 'top', not {lead!r}")
    answer = page.evaluate(
        """async (query) => (await fetch(`/api/leads?${query}&sort=-score`, {
            headers: {Accept: 'application/json'}})).json()""",
        query,
    )
    leads = answer.get("leads", []) if isinstance(answer, dict) else []
    if not leads:
        raise AtalayaError("no lead in the window to show: give --from/--to or a lead id")
    return int(leads[0]["id"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="database URL [default: ATALAYA_DATABASE_URL or atalaya.db]")
    parser.add_argument("--out", type=Path, default=Path("docs/map.png"))
    parser.add_argument("--username", help="sign in as this user (password: $ATALAYA_PASSWORD)")
    parser.add_argument(
        "--create-user", action="store_true", help="make a throwaway analyst, disabled after"
    )
    parser.add_argument("--from", dest="since", type=date.fromisoformat)
    parser.add_argument("--to", dest="until", type=date.fromisoformat)
    parser.add_argument("--locale", default="es-ES", help="browser language [default: es-ES]")
    parser.add_argument(
        "--lead", help="a lead's page instead of the map: its id, or 'top' (highest score)"
    )
    args = parser.parse_args(argv)
    if not args.create_user and not args.username:
        parser.error("give --username (with $ATALAYA_PASSWORD) or --create-user")
    engine = create_store_engine(Settings.load(args.db).database_url)
    try:
        if current_revision(engine) != head_revision(engine):
            raise AtalayaError("the database is not at the current schema: run 'atalaya init'")
        since, until = _window(engine)
        window = (args.since or since, args.until or until)
        now = datetime.now(UTC)
        if args.create_user:
            username, password = _throwaway_user(engine, now)
        else:
            username, password = args.username, os.environ.get("ATALAYA_PASSWORD", "")
        try:
            take(engine, args.out, username, password, window, locale=args.locale, lead=args.lead)
        finally:
            if args.create_user:
                with engine.begin() as conn:
                    if find_user(conn, username) is not None:
                        set_disabled(conn, username, True)
    except AtalayaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    shown = f"lead {args.lead}" if args.lead else "map"
    print(f"{shown} of {window[0]} to {window[1]} saved to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
