"""The `atalaya` command: one sub-command group per stage of the flow."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterable
from typing import Annotated

import typer
from rich.text import Text
from sqlalchemy.exc import DBAPIError

from atalaya import __version__
from atalaya.accounts.cli import units_app, users_app
from atalaya.audit.cli import app as audit_app
from atalaya.cases.cli import app as cases_app
from atalaya.cases.cli import deadlines_command
from atalaya.cases.funnel_cli import funnel_command
from atalaya.cases.requests_cli import app as requests_app
from atalaya.cases.retention_cli import app as retention_app
from atalaya.config import Settings
from atalaya.console import CliState, err, state
from atalaya.enrich.cli import app as enrich_app
from atalaya.errors import AtalayaError
from atalaya.evidence.cli import app as evidence_app
from atalaya.hashsets.cli import app as hashsets_app
from atalaya.hashsets.cli import match_command
from atalaya.lab.cli import app as lab_app
from atalaya.leads.cli import app as leads_app
from atalaya.observe import registry
from atalaya.observe.cli import build_watch_app, sightings_app
from atalaya.observe.fleet_cli import fleet_app
from atalaya.observe.registry import Network
from atalaya.store import redact_url, upgrade
from atalaya.store.engine import database_error_reason
from atalaya.web.cli import serve_command


def _version(value: bool) -> None:
    if value:
        typer.echo(f"atalaya {__version__}")
        raise typer.Exit


def root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="ATALAYA_DATABASE_URL",
            help="Database URL (default: SQLite file atalaya.db here).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    ctx.obj = CliState(Settings.load(db))


def init(ctx: typer.Context) -> None:
    """Create the database schema, or upgrade it to this version."""
    st = state(ctx)
    upgrade(st.engine())
    err.print(f"database ready: {redact_url(st.settings.database_url)}")


def build_app(networks: Iterable[Network]) -> typer.Typer:
    """The command line, with `atalaya watch <name>` for each of `networks`."""
    app = typer.Typer(
        name="atalaya",
        help="Watch P2P networks for known hashes and turn sightings into cases.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(root)
    app.add_typer(hashsets_app, name="hashsets")
    app.command("match")(match_command)
    app.add_typer(lab_app, name="lab")
    app.add_typer(sightings_app, name="sightings")
    app.add_typer(build_watch_app(networks), name="watch")
    app.add_typer(fleet_app, name="fleet")
    app.add_typer(enrich_app, name="enrich")
    app.add_typer(leads_app, name="leads")
    app.command("serve")(serve_command)
    app.add_typer(users_app, name="users")
    app.add_typer(units_app, name="units")
    app.add_typer(audit_app, name="audit")
    app.add_typer(cases_app, name="cases")
    app.command("deadlines")(deadlines_command)
    app.add_typer(requests_app, name="requests")
    app.add_typer(retention_app, name="retention")
    app.command("funnel")(funnel_command)
    app.add_typer(evidence_app, name="evidence")
    app.command()(init)
    return app


@functools.cache
def _app_for(networks: tuple[Network, ...]) -> typer.Typer:
    return build_app(networks)


def current_app() -> typer.Typer:
    """The command line for the networks registered now (built once per registry)."""
    return _app_for(registry.networks())


app = current_app()


def _database_error(exc: DBAPIError) -> str:
    # The driver's first line says what happened (refused, locked, auth);
    # the SQL and SQLAlchemy's link add nothing an operator can act on.
    reason = database_error_reason(exc)
    return f"database error: {reason} (check --db / ATALAYA_DATABASE_URL and the server)"


def main() -> None:
    """Entry point: errors become one line on stderr and a non-zero exit."""
    try:
        # Standalone mode: usage errors and exit codes are Typer's to report.
        current_app()()
    except AtalayaError as exc:
        err.print(Text.assemble(("error: ", "bold red"), str(exc)))
        sys.exit(2)
    except DBAPIError as exc:
        err.print(Text.assemble(("error: ", "bold red"), _database_error(exc)))
        sys.exit(2)
    except BrokenPipeError:
        # The reader went away (`atalaya match … | head`): not an error.
        # Point stdout at devnull so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except Exception as exc:
        # A bug, not an operator error: still one line, the traceback on request.
        if os.environ.get("ATALAYA_DEBUG"):
            raise
        message = str(exc).strip().replace("\n", " ")
        err.print(
            Text.assemble(
                ("error: ", "bold red"),
                f"internal error {type(exc).__name__}: {message} "
                "(ATALAYA_DEBUG=1 shows the traceback)",
            )
        )
        sys.exit(70)


if __name__ == "__main__":
    main()
