"""The `--purpose` and `--recipient` options of commands that read or disclose personal data.

A reading command takes `purpose: PurposeOption` and puts
`read_details(purpose)` into its audit record's details before it reads
anything: without a purpose (option or $ATALAYA_PURPOSE) it stops with one
line saying what to pass. A disclosing command (an export) also takes
`recipient: RecipientOption` and uses `disclosure_details(purpose, recipient)`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlalchemy import Engine, select

from atalaya.audit.log import local_details
from atalaya.audit.purpose import (
    PURPOSE_ENV,
    PURPOSE_KEY,
    RECIPIENT_ENV,
    TRIAGE,
    PurposeError,
    check_recipient,
    purpose_case,
    purpose_details,
    required_purpose,
)
from atalaya.errors import N_
from atalaya.store.tables import case_file

PurposeOption = Annotated[
    str | None,
    typer.Option(
        "--purpose",
        envvar=PURPOSE_ENV,
        help=f"What this read of personal data is for: case:N or {TRIAGE} (audited).",
        show_default=False,
    ),
]
RecipientOption = Annotated[
    str | None,
    typer.Option(
        "--recipient",
        envvar=RECIPIENT_ENV,
        help="Who the exported data goes to (a court, a unit); audited.",
        show_default=False,
    ),
]


def read_details(purpose: str | None) -> dict[str, Any]:
    """The CLI's details of a read: who ran it and for what; PurposeError without a purpose.

    Checked before the store is opened; then `require_named_case` checks that
    a "case:N" names a case in the store (whether the acting user's unit holds
    it is for `atalaya.cases`).
    """
    return {**local_details(), **purpose_details(required_purpose(purpose))}


def disclosure_details(purpose: str | None, recipient: str | None) -> dict[str, Any]:
    """As `read_details`, plus the recipient, which a disclosure must name."""
    chosen = required_purpose(purpose)
    return {**local_details(), **purpose_details(chosen, check_recipient(recipient))}


def require_named_case(engine: Engine, details: dict[str, Any]) -> None:
    """PurposeError when the details' purpose is "case:N" and the store holds no case N.

    A read is never filed under a case that does not exist.
    """
    case_id = purpose_case(str(details.get(PURPOSE_KEY, "")))
    if case_id is None:
        return
    with engine.connect() as conn:
        found = conn.execute(select(case_file.c.id).where(case_file.c.id == case_id)).first()
    if found is None:
        raise PurposeError(
            N_("the purpose names case %(case)s, which does not exist: see 'atalaya cases list'"),
            case=case_id,
        )
