"""The purpose of a consultation of personal data (Law Enforcement Directive art. 25).

Every audited read of personal data says what it was for: the case it
serves (`case:12`) or `triage` (looking through leads to decide which to
take up). Disclosures (exports, documents) also name their recipient. Both
go into the record's `details` (`purpose`, `recipient`): details are part of
the hashed encoding already, so no new field and no new encoding version is
needed, and records written before purposes existed verify as they are.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar, Token
from typing import Any

from atalaya.errors import N_, AtalayaError

PURPOSE_ENV = "ATALAYA_PURPOSE"
RECIPIENT_ENV = "ATALAYA_RECIPIENT"
TRIAGE = "triage"
PURPOSE_KEY = "purpose"
RECIPIENT_KEY = "recipient"
MAX_RECIPIENT = 200
_CASE = re.compile(r"case:([1-9][0-9]{0,9})")
MAX_CASE_ID = 2**31 - 1
PURPOSE_HINT = f"--purpose case:N (the case it is for) or --purpose {TRIAGE}"


# The purpose of the request or command being served, when it declared one:
# `atalaya.audit.log.record` adds it to every record made meanwhile (the web
# app sets it from the session for each request; each request runs in its own
# copy of the context, so it never leaks into another).
_current: ContextVar[str | None] = ContextVar("atalaya_purpose", default=None)


def use_purpose(purpose: str | None) -> Token[str | None]:
    """Declare the purpose of what this context reads from now on (None: none declared)."""
    return _current.set(None if purpose is None else parse_purpose(purpose))


def current_purpose() -> str | None:
    return _current.get()


class PurposeError(AtalayaError):
    """A purpose or recipient that is missing or not well formed."""


def parse_purpose(text: str) -> str:
    """`text` as a purpose ("triage" or "case:N"); PurposeError otherwise."""
    value = text.strip().lower() if isinstance(text, str) else ""
    if value == TRIAGE:
        return TRIAGE
    found = _CASE.fullmatch(value)
    if found is not None and int(found.group(1)) <= MAX_CASE_ID:
        return value
    shown = text[:40] if isinstance(text, str) else repr(text)
    raise PurposeError(
        N_("purpose %(shown)r is not %(triage)r or 'case:N'"), shown=shown, triage=TRIAGE
    )


def purpose_case(purpose: str) -> int | None:
    """The case id a purpose names; None for triage."""
    found = _CASE.fullmatch(purpose)
    return int(found.group(1)) if found is not None else None


def required_purpose(given: str | None, environ: dict[str, str] | None = None) -> str:
    """The purpose of a command-line read: `given`, else $ATALAYA_PURPOSE, else an error.

    The error is the one line a user needs: what to pass.
    """
    env = os.environ if environ is None else environ
    value = given if given is not None else env.get(PURPOSE_ENV)
    if value is None or not value.strip():
        raise PurposeError(
            f"reading personal data needs a purpose: pass {PURPOSE_HINT} (or set {PURPOSE_ENV})"
        )
    return parse_purpose(value)


def check_recipient(recipient: str | None, *, required: bool = True) -> str | None:
    """A disclosure's recipient, trimmed; PurposeError when required and missing."""
    value = (recipient or "").strip()
    if not value:
        if required:
            raise PurposeError(
                N_("a disclosure needs its recipient: pass --recipient 'WHO' (a court, a unit)")
            )
        return None
    if len(value) > MAX_RECIPIENT or any(ord(c) < 32 for c in value):
        raise PurposeError(
            N_("the recipient must be one line of at most %(most)s characters"), most=MAX_RECIPIENT
        )
    return value


def purpose_details(purpose: str, recipient: str | None = None) -> dict[str, Any]:
    """The details entries a read (and a disclosure) adds to its audit record."""
    out: dict[str, Any] = {PURPOSE_KEY: parse_purpose(purpose)}
    if recipient is not None:
        out[RECIPIENT_KEY] = check_recipient(recipient)
    return out
