"""The `atalaya` command: one sub-command group per stage of the flow."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterable
from importlib import import_module
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text
from sqlalchemy.exc import DBAPIError

from atalaya import __version__
from atalaya.config import Settings
from atalaya.console import CliState, err, state
from atalaya.errors import AtalayaError
from atalaya.store.engine import database_error_reason

if TYPE_CHECKING:
    from atalaya.observe.registry import Network

# The command line's parts, in the order `atalaya --help` lists them: a
# group (a Typer app) or a single command, and where it is defined. A run
# imports only the parts its arguments name (all of them for --help or an
# unknown name): the judicial documents' libraries alone took a second or
# two of every command's start-up.
_PARTS: tuple[tuple[str, str, str, str], ...] = (
    ("hashsets", "group", "atalaya.hashsets.cli", "app"),
    ("match", "command", "atalaya.hashsets.cli", "match_command"),
    ("lab", "group", "atalaya.lab.cli", "app"),
    ("sightings", "group", "atalaya.observe.cli", "sightings_app"),
    ("watch", "watch", "atalaya.observe.cli", "build_watch_app"),
    ("fleet", "group", "atalaya.observe.fleet_cli", "fleet_app"),
    ("enrich", "group", "atalaya.enrich.cli", "app"),
    ("leads", "group", "atalaya.leads.cli", "app"),
    ("serve", "command", "atalaya.web.cli", "serve_command"),
    ("users", "group", "atalaya.accounts.cli", "users_app"),
    ("units", "group", "atalaya.accounts.cli", "units_app"),
    ("audit", "group", "atalaya.audit.cli", "app"),
    ("cases", "group", "atalaya.cases.cli", "app"),
    ("deadlines", "command", "atalaya.cases.cli", "deadlines_command"),
    ("requests", "group", "atalaya.cases.requests_cli", "app"),
    ("retention", "group", "atalaya.cases.retention_cli", "app"),
    ("funnel", "command", "atalaya.cases.funnel_cli", "funnel_command"),
    ("evidence", "group", "atalaya.evidence.cli", "app"),
    ("init", "init", "", ""),
)
COMMAND_NAMES = frozenset(name for name, *_ in _PARTS)


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
    from atalaya.store import redact_url, upgrade  # noqa: PLC0415 - only this command needs it

    st = state(ctx)
    upgrade(st.engine())
    err.print(f"database ready: {redact_url(st.settings.database_url)}")


def build_app(networks: Iterable[Network], only: frozenset[str] | None = None) -> typer.Typer:
    """The command line, with `atalaya watch <name>` for each of `networks`.

    `only`: just these commands and groups (the rest are neither imported nor
    listed); every one when None.
    """
    app = typer.Typer(
        name="atalaya",
        help="Watch P2P networks for known hashes and turn sightings into cases.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(root)
    for name, kind, module, attribute in _PARTS:
        if only is not None and name not in only:
            continue
        if kind == "init":
            app.command()(init)
            continue
        part: Any = getattr(import_module(module), attribute)
        if kind == "watch":
            app.add_typer(part(networks), name=name)
        elif kind == "group":
            app.add_typer(part, name=name)
        else:
            app.command(name)(part)
    return app


@functools.cache
def _app_for(networks: tuple[Network, ...], only: frozenset[str] | None = None) -> typer.Typer:
    return build_app(networks, only)


def current_app() -> typer.Typer:
    """The command line for the networks registered now (built once per registry)."""
    from atalaya.observe import registry  # noqa: PLC0415 - its plug-ins are slow to import

    return _app_for(registry.networks())


def app_for_args(args: list[str]) -> typer.Typer:
    """The command line a run with `args` needs: the parts they name, else all.

    Any argument that is a command's name counts (a value that happens to be
    one only adds that part); none (`--help`, a typo) builds every part, so
    the help and the "no such command" error list them all.
    """
    named = COMMAND_NAMES.intersection(args)
    if not named:
        return current_app()
    if "watch" not in named:
        return _app_for((), frozenset(named))
    from atalaya.observe import registry  # noqa: PLC0415 - its plug-ins are slow to import

    return _app_for(registry.networks(), frozenset(named))


def __getattr__(name: str) -> Any:
    # `atalaya.cli.app`, the whole command line, built on first use.
    if name == "app":
        return current_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _database_error(exc: DBAPIError) -> str:
    # The driver's first line says what happened (refused, locked, auth);
    # the SQL and SQLAlchemy's link add nothing an operator can act on.
    reason = database_error_reason(exc)
    return f"database error: {reason} (check --db / ATALAYA_DATABASE_URL and the server)"


def main() -> None:
    """Entry point: errors become one line on stderr and a non-zero exit."""
    try:
        # Standalone mode: usage errors and exit codes are Typer's to report.
        app_for_args(sys.argv[1:])()
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
