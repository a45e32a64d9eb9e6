"""What every sub-command shares: the store it works on, output and progress.

Sub-command groups live beside the stage they drive (`hashsets/cli.py`, …)
and take their database from the root command through `store_engine(ctx)`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from sqlalchemy import Engine

from atalaya.config import Settings
from atalaya.errors import AtalayaError
from atalaya.store import create_store_engine, redact_url
from atalaya.store.engine import database_error_reason, sqlite_file
from atalaya.store.migrate import check_not_newer, current_revision, head_revision

# Data goes to stdout; progress and messages to stderr, so pipes stay clean.
out = Console(highlight=False, soft_wrap=True)
# soft_wrap: an error stays one line however narrow the terminal or log.
err = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class CliState:
    settings: Settings
    _engine: Engine | None = None

    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_store_engine(self.settings.database_url)
        return self._engine


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState(Settings.load())
    return root.obj


def store_engine(ctx: typer.Context) -> Engine:
    """The engine of an initialised store; a clear error if `atalaya init` is due."""
    st = state(ctx)
    path = sqlite_file(st.settings.database_url)
    if path is not None and not path.exists():
        # Connecting would create an empty file where the operator mistyped a path.
        raise AtalayaError(
            f"no database at {path} (nothing created): check --db, "
            "or run 'atalaya init' to create one there"
        )
    engine = st.engine()
    try:
        current = current_revision(engine)
    except Exception as exc:
        url = redact_url(st.settings.database_url)
        raise AtalayaError(f"cannot open database {url}: {database_error_reason(exc)}") from exc
    head = head_revision(engine)
    if current != head:
        check_not_newer(engine)
        url = redact_url(st.settings.database_url)
        what = "not initialised" if current is None else f"at schema {current}, not {head}"
        raise AtalayaError(f"database {url} is {what}: run 'atalaya init' first")
    return engine


def parse_instant(value: str | None, option: str) -> datetime | None:
    """An ISO date or time from option `option` as aware UTC; None stays None."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise AtalayaError(
            f"{option} {value!r} is not a date or time (use 2026-11-23 or 2026-11-23T10:00:00Z)"
        ) from exc
    # A time without a zone is UTC, the zone every record is kept in.
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00+01:00 is in year 0 in UTC: no datetime holds it.
        raise AtalayaError(
            f"{option} {value!r} is outside the years 1 to 9999 once in UTC"
        ) from None


def print_json(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")


def progress(*, transfer: bool = False, disable: bool = False) -> Progress:
    """A progress display on stderr; `transfer` shows bytes and speed."""
    columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
    if transfer:
        columns += [TransferSpeedColumn()]
    else:
        columns += [MofNCompleteColumn()]
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*columns, console=err, disable=disable, transient=False)
