"""The audit log: append-only, keyed hash chain of every view, change, export and login.

API (importable from `atalaya.audit`):
- `log_event(engine, action, *, actor, outcome="ok", object_type=None,
  object_id=None, details=None, at=None) -> AuditEntry`: append one record
  in its own transaction (the usual call from a request handler; log
  refusals too, with outcome "denied").
- `record(conn, action, …)`: the same inside the caller's transaction
  (on SQLite, before any read in that transaction).
- `Actor(user_id, username, unit, client_address, role)`; from a session:
  `session.actor(client_ip)`. `Action` names the usual actions (login,
  login_failed, logout, view, search, map_query, change, export,
  audit_read…); `Outcome` ok | denied | error.
- `read_audit(engine, reader, AuditQuery(...)) -> [AuditEntry]`: only for
  `reader.role` "auditor" (the records of `reader.unit` only) or
  "national_auditor" (every record); the read is itself logged, a refusal
  raises `AuditAccessDeniedError` and is logged as denied.
  `AuditEntry.as_dict()`.
- `verify(engine, anchors=(), keyring="configured") -> VerifyResult(ok,
  records, first_bad_seq, reason, head_seq, head_hash, key_id)`.

Purposes (`atalaya.audit.purpose`, LED art. 25): every read of personal
data says what it is for, `triage` or `case:N`, in its details (`purpose`;
disclosures add `recipient`). `use_purpose(p)` declares it for the current
context (the web app does so per request from the session), and `record`
then adds it to every record that does not name one. CLI reading commands
take `PurposeOption` / `RecipientOption` and `read_details(purpose)` /
`disclosure_details(purpose, recipient)` from `atalaya.audit.purpose_cli`.

Keys (`atalaya.audit.keys`): with ATALAYA_AUDIT_KEY_FILE set, every record
is signed (HMAC-SHA256) with the newest key of that file, kept outside the
database; `record` writes an `audit_key` record whenever the chain moves to
a new key, and refuses to extend a chain it cannot sign (AuditKeyError).
`start_signing(conn)` moves it at once (`atalaya audit rotate-key`).
"""

from atalaya.audit.encoding import AuditEncodingError, AuditFields
from atalaya.audit.log import (
    AUDIT_READER_ROLES,
    AUDITOR_ROLE,
    NATIONAL_AUDITOR_ROLE,
    Action,
    Actor,
    AuditAccessDeniedError,
    AuditEntry,
    AuditQuery,
    Outcome,
    log_event,
    read_audit,
    read_records,
    record,
)
from atalaya.audit.verify import VerifyResult, verify

__all__ = [
    "AUDITOR_ROLE",
    "AUDIT_READER_ROLES",
    "NATIONAL_AUDITOR_ROLE",
    "Action",
    "Actor",
    "AuditAccessDeniedError",
    "AuditEncodingError",
    "AuditEntry",
    "AuditFields",
    "AuditQuery",
    "Outcome",
    "VerifyResult",
    "log_event",
    "read_audit",
    "read_records",
    "record",
    "verify",
]
