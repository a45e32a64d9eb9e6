"""Writing and reading the audit log.

Appends are serialised on the chain's head row (`audit_head`): PostgreSQL
locks it with SELECT … FOR UPDATE; SQLite has one writer, which a first
statement that writes (a no-op UPDATE of the head) takes for the whole
transaction, as BEGIN IMMEDIATE would. So two writers never build on the
same head, whatever process they run in.
"""

from __future__ import annotations

import getpass
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, and_, or_, select, update

from atalaya.audit.encoding import (
    AuditEncodingError,
    AuditFields,
    check_fields,
    format_time,
    normalise_details,
    record_hash,
)
from atalaya.audit.keys import (
    AUDIT_KEY_FILE_ENV,
    AuditKey,
    AuditKeyError,
    Keyring,
    configured_keyring,
)
from atalaya.audit.purpose import PURPOSE_KEY, current_purpose
from atalaya.audit.shown import shows
from atalaya.errors import AtalayaError
from atalaya.store.tables import audit_head, audit_record
from atalaya.store.times import utc

# The roles allowed to read the log; atalaya.accounts.roles uses these values.
# A unit's auditor reads the records of its own unit's users (the unit named
# in the record); a national auditor reads every record, including those of
# no unit (the command line, logins of unknown users).
AUDITOR_ROLE = "auditor"
NATIONAL_AUDITOR_ROLE = "national_auditor"
AUDIT_READER_ROLES = frozenset({AUDITOR_ROLE, NATIONAL_AUDITOR_ROLE})
DEFAULT_READ_LIMIT = 1000
MAX_READ_LIMIT = 100_000
READ_BATCH = 2000


class Action(StrEnum):
    """Actions the application records (`record` accepts any [a-z0-9_] name)."""

    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    VIEW = "view"
    SEARCH = "search"
    MAP_QUERY = "map_query"
    CHANGE = "change"
    EXPORT = "export"
    AUDIT_READ = "audit_read"
    USER_ADD = "user_add"
    USER_DISABLE = "user_disable"
    UNIT_ADD = "unit_add"
    UNIT_CHANGE = "unit_change"
    LEAD_CLAIM = "lead_claim"
    LEAD_RELEASE = "lead_release"
    REQUEST = "request"  # a request that failed inside the application (outcome error)
    AUDIT_KEY = "audit_key"  # records from here on are signed with the key it names


# Actions whose records name the leads they showed (atalaya.audit.shown).
SHOWING_ACTIONS = (Action.SEARCH.value, Action.MAP_QUERY.value, Action.EXPORT.value)


class Outcome(StrEnum):
    OK = "ok"
    DENIED = "denied"
    ERROR = "error"


class AuditAccessDeniedError(AtalayaError):
    """Someone who is not an auditor asked to read the audit log (the attempt is logged)."""


@dataclass(frozen=True)
class Actor:
    """Who did something, as the audit log records it.

    `role` is not recorded; `read_audit` uses it to authorise. Commands run
    from the CLI without a user have every field None.
    """

    user_id: int | None = None
    username: str | None = None
    unit: str | None = None
    client_address: str | None = None
    role: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One stored record: its fields and its hash."""

    fields: AuditFields
    hash: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, `at` as in the hash (UTC, microseconds, Z)."""
        data = asdict(self.fields)
        data["at"] = format_time(self.fields.at)
        data["hash"] = self.hash
        return data


def local_details() -> dict[str, Any]:
    """Who ran a CLI command, as far as the machine knows: for records without a user."""
    try:
        os_user = getpass.getuser()
    except (OSError, KeyError):
        os_user = None
    return {"via": "cli", "os_user": os_user}


def lock_chain(conn: Connection) -> tuple[int, str]:
    """Take the chain's write lock for this transaction; the head's (seq, hash).

    On SQLite this must come before any read in the transaction (a read
    first pins a snapshot another writer may invalidate); `record` and
    `log_event` call it first.
    """
    if conn.dialect.name == "sqlite":
        conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=audit_head.c.seq))
        query = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
    else:
        query = (
            select(audit_head.c.seq, audit_head.c.hash)
            .where(audit_head.c.id == 1)
            .with_for_update()
        )
    row = conn.execute(query).one_or_none()
    if row is None:
        raise AtalayaError("the audit log has no head row: run 'atalaya init'")
    return int(row.seq), str(row.hash)


def record(
    conn: Connection,
    action: str,
    *,
    actor: Actor | None = None,
    outcome: str = Outcome.OK,
    object_type: str | None = None,
    object_id: str | int | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Append one record in the caller's transaction; it counts once that commits.

    `action` is an `Action` or another lower-case name; `outcome` ok, denied
    or error; `details` plain JSON (no personal data beyond what the action
    needs). `at` defaults to now. On SQLite call it before any read in the
    transaction, or use `log_event`. Raises AuditEncodingError (a ValueError)
    for fields that do not fit.
    """
    actor = actor or Actor()
    moment = utc(at) if at is not None else datetime.now(UTC)
    clean = normalise_details(details)
    declared = current_purpose()
    if declared is not None and PURPOSE_KEY not in clean:
        # What this request or command was for (LED art. 25; atalaya.audit.purpose).
        clean[PURPOSE_KEY] = declared
    # Check what we can before taking the lock.
    check_fields(
        AuditFields(
            seq=1,
            at=moment,
            action=str(action),
            outcome=str(outcome),
            prev_hash="0" * 64,
            user_id=actor.user_id,
            username=actor.username,
            unit=actor.unit,
            client_address=actor.client_address,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            details=clean,
        )
    )
    head_seq, head_hash = lock_chain(conn)
    key, head_seq, head_hash = _signing_key(conn, head_seq, head_hash, moment)
    fields = AuditFields(
        seq=head_seq + 1,
        at=moment,
        action=str(action),
        outcome=str(outcome),
        prev_hash=head_hash,
        user_id=actor.user_id,
        username=actor.username,
        unit=actor.unit,
        client_address=actor.client_address,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        details=clean,
    )
    return _append(conn, fields, key)


def _append(conn: Connection, fields: AuditFields, key: AuditKey | None) -> AuditEntry:
    digest = record_hash(fields, None if key is None else key.secret)
    conn.execute(
        audit_record.insert().values(
            seq=fields.seq,
            at=fields.at,
            user_id=fields.user_id,
            username=fields.username,
            unit=fields.unit,
            client_address=fields.client_address,
            action=fields.action,
            object_type=fields.object_type,
            object_id=fields.object_id,
            outcome=fields.outcome,
            details=fields.details,
            prev_hash=fields.prev_hash,
            hash=digest,
        )
    )
    conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=fields.seq, hash=digest))
    # Hashes are content-addressed: the same hash means the same record and key.
    _written_under.clear()
    _written_under[digest] = None if key is None else key.id
    return AuditEntry(fields, digest)


# The last hash this process wrote -> the id of its key (None: unkeyed), so
# that a process that writes in a row need not read its own last record back.
_written_under: dict[str, str | None] = {}
_UNKNOWN = "?"


def _head_key(
    conn: Connection, head_seq: int, head_hash: str, keyring: Keyring | None
) -> str | None:
    """The id of the key the chain's last record was signed with.

    None for an unkeyed record (or no record yet), `_UNKNOWN` when no key
    at hand gives its hash.
    """
    if head_seq == 0:
        return None
    if head_hash in _written_under:
        return _written_under[head_hash]
    row = (
        conn.execute(select(audit_record).where(audit_record.c.seq == head_seq))
        .mappings()
        .one_or_none()
    )
    if row is None or row["hash"] != head_hash:
        return _UNKNOWN
    fields = entry_from_row(row).fields
    try:
        if record_hash(fields) == head_hash:
            return None
        for key in keyring.keys if keyring is not None else ():
            if record_hash(fields, key.secret) == head_hash:
                return key.id
    except AuditEncodingError:
        pass
    return _UNKNOWN


def _signing_key(
    conn: Connection,
    head_seq: int,
    head_hash: str,
    at: datetime,
    context: dict[str, Any] | None = None,
) -> tuple[AuditKey | None, int, str]:
    """The key the next record is signed with, and the head it extends.

    With a key file, a chain not yet under its newest key gets an
    `audit_key` record first (signed with that key, naming it), so that
    `verify` knows from where each key applies. Without one, a keyed chain
    is not extended: an unkeyed record in it would read as a forgery.
    Either way a last record that no key at hand explains stops the write.
    """
    keyring = configured_keyring()
    chain = _head_key(conn, head_seq, head_hash, keyring)
    if keyring is None:
        if chain is not None:
            raise AuditKeyError(
                f"the audit log is signed with a key (or its last record was altered): set "
                f"{AUDIT_KEY_FILE_ENV} to the key file; 'atalaya audit verify' checks the log"
            )
        return None, head_seq, head_hash
    current = keyring.current
    if chain == current.id:
        return current, head_seq, head_hash
    if chain == _UNKNOWN or (chain is not None and keyring.index(chain) is None):
        raise AuditKeyError(
            f"the audit log's last record is signed with no key in {AUDIT_KEY_FILE_ENV}: the "
            "key file is out of date (another process rotated the key) or the log was "
            "altered ('atalaya audit verify' checks it)"
        )
    entry = _append(
        conn,
        AuditFields(
            seq=head_seq + 1,
            at=at,
            action=Action.AUDIT_KEY.value,
            outcome=Outcome.OK.value,
            prev_hash=head_hash,
            details={**(context or {}), "key_id": current.id, "previous_key_id": chain},
        ),
        current,
    )
    return current, entry.fields.seq, entry.hash


def start_signing(
    conn: Connection, at: datetime | None = None, context: dict[str, Any] | None = None
) -> AuditEntry | None:
    """Bring the chain under the key file's newest key now; its `audit_key` record, if one was due.

    `atalaya audit rotate-key` calls it after adding a key, so the change
    is on record before anything else is written.
    """
    head_seq, head_hash = lock_chain(conn)
    before = head_seq
    moment = utc(at) if at is not None else datetime.now(UTC)
    _key, head_seq, _head_hash = _signing_key(
        conn, head_seq, head_hash, moment, normalise_details(context)
    )
    if head_seq == before:
        return None
    row = conn.execute(select(audit_record).where(audit_record.c.seq == head_seq)).mappings().one()
    return entry_from_row(row)


def log_event(
    engine: Engine,
    action: str,
    *,
    actor: Actor | None = None,
    outcome: str = Outcome.OK,
    object_type: str | None = None,
    object_id: str | int | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """`record` in a transaction of its own, committed on return.

    The usual call from a request handler: the record stands even when the
    request's own work fails or is refused (log outcome denied/error).
    """
    with engine.begin() as conn:
        return record(
            conn,
            action,
            actor=actor,
            outcome=outcome,
            object_type=object_type,
            object_id=object_id,
            details=details,
            at=at,
        )


def entry_from_row(row: RowMapping) -> AuditEntry:
    """An AuditEntry from an audit_record row (times normalised to aware UTC)."""
    details = row["details"]
    fields = AuditFields(
        seq=int(row["seq"]),
        at=utc(row["at"]),
        action=row["action"],
        outcome=row["outcome"],
        prev_hash=row["prev_hash"],
        user_id=row["user_id"],
        username=row["username"],
        unit=row["unit"],
        client_address=row["client_address"],
        object_type=row["object_type"],
        object_id=row["object_id"],
        details=details if isinstance(details, dict) else {"_not_an_object": details},
    )
    return AuditEntry(fields, row["hash"])


@dataclass(frozen=True)
class AuditQuery:
    """Filters for reading the log; all optional, combined with AND."""

    since: datetime | None = None
    until: datetime | None = None
    username: str | None = None
    unit: str | None = None  # records of this unit only (a unit auditor's scope)
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    after_seq: int | None = None  # paging: records with a larger seq
    before_seq: int | None = None  # paging newest first: records with a smaller seq
    lead_id: int | None = None  # records about this lead or that showed it
    limit: int = DEFAULT_READ_LIMIT
    newest_first: bool = False

    def describe(self) -> dict[str, Any]:
        """The filters as JSON, for the audit_read record."""
        out: dict[str, Any] = {}
        for key in (
            "username",
            "unit",
            "action",
            "object_type",
            "object_id",
            "after_seq",
            "before_seq",
            "lead_id",
        ):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        for key in ("since", "until"):
            value = getattr(self, key)
            if value is not None:
                out[key] = format_time(utc(value))
        out["limit"] = self.limit
        return out


def read_records(conn: Connection, query: AuditQuery | None = None) -> list[AuditEntry]:
    """Records matching `query`, oldest first unless `newest_first`.

    No authorisation and nothing logged: `read_audit` is the call for
    anything a person asked to see.
    """
    query = query or AuditQuery()
    if not 1 <= query.limit <= MAX_READ_LIMIT:
        raise AtalayaError(f"the audit read limit must be between 1 and {MAX_READ_LIMIT}")
    stmt = select(audit_record)
    if query.since is not None:
        stmt = stmt.where(audit_record.c.at >= utc(query.since))
    if query.until is not None:
        stmt = stmt.where(audit_record.c.at < utc(query.until))
    if query.username is not None:
        stmt = stmt.where(audit_record.c.username == query.username)
    if query.unit is not None:
        stmt = stmt.where(audit_record.c.unit == query.unit)
    if query.action is not None:
        stmt = stmt.where(audit_record.c.action == query.action)
    if query.object_type is not None:
        stmt = stmt.where(audit_record.c.object_type == query.object_type)
    if query.object_id is not None:
        stmt = stmt.where(audit_record.c.object_id == query.object_id)
    if query.after_seq is not None:
        stmt = stmt.where(audit_record.c.seq > query.after_seq)
    if query.before_seq is not None:
        stmt = stmt.where(audit_record.c.seq < query.before_seq)
    order = audit_record.c.seq.desc() if query.newest_first else audit_record.c.seq
    if query.lead_id is None:
        stmt = stmt.order_by(order).limit(query.limit)
        return [entry_from_row(row) for row in conn.execute(stmt).mappings()]
    # Which leads a record showed is in its details, as ranges: the
    # database narrows to the actions that show leads, Python decides.
    lead_id = query.lead_id
    stmt = stmt.where(
        or_(
            and_(audit_record.c.object_type == "lead", audit_record.c.object_id == str(lead_id)),
            audit_record.c.action.in_(SHOWING_ACTIONS),
        )
    ).order_by(order)
    found: list[AuditEntry] = []
    last: int | None = None
    # Pages by seq rather than a streamed cursor: the caller may write to
    # this connection before the rows run out (read_audit does).
    while True:
        page = stmt
        if last is not None:
            page = page.where(
                audit_record.c.seq < last if query.newest_first else audit_record.c.seq > last
            )
        rows = conn.execute(page.limit(READ_BATCH)).mappings().all()
        for row in rows:
            entry = entry_from_row(row)
            last = entry.fields.seq
            about = entry.fields.object_type == "lead" and entry.fields.object_id == str(lead_id)
            if about or shows(entry.fields.details, lead_id):
                found.append(entry)
                if len(found) == query.limit:
                    return found
        if len(rows) < READ_BATCH:
            return found


def read_audit(
    engine: Engine,
    reader: Actor,
    query: AuditQuery | None = None,
    *,
    at: datetime | None = None,
    context: dict[str, Any] | None = None,
) -> list[AuditEntry]:
    """What an auditor asked to see, with the read itself logged.

    `reader.role` must be an auditor's: anyone else gets AuditAccessDeniedError
    and an `audit_read` record with outcome denied. A unit's auditor
    (`auditor`) sees only the records of `reader.unit`, whatever `query`
    asks; a `national_auditor` sees every record. The read is recorded
    (filters, scope and count, plus `context`) in the same transaction that
    reads.
    """
    asked = query or AuditQuery()
    if reader.role == AUDITOR_ROLE and reader.unit:
        # Another unit's records are outside the scope: none of them.
        outside = asked.unit is not None and asked.unit != reader.unit
        query, scope = replace(asked, unit=reader.unit), "unit"
    elif reader.role == NATIONAL_AUDITOR_ROLE:
        query, scope, outside = asked, "all", False
    else:
        log_event(
            engine,
            Action.AUDIT_READ,
            actor=reader,
            outcome=Outcome.DENIED,
            details={**(context or {}), "filters": asked.describe(), "role": reader.role},
            at=at,
        )
        raise AuditAccessDeniedError("only auditors may read the audit log")
    with engine.begin() as conn:
        # The lock first: on SQLite a read before the first write can fail.
        lock_chain(conn)
        entries = [] if outside else read_records(conn, query)
        record(
            conn,
            Action.AUDIT_READ,
            actor=reader,
            details={
                **(context or {}),
                "filters": asked.describe(),
                "scope": scope,
                "records": len(entries),
            },
            at=at,
        )
    return entries


__all__ = [
    "AUDITOR_ROLE",
    "AUDIT_READER_ROLES",
    "NATIONAL_AUDITOR_ROLE",
    "Action",
    "Actor",
    "AuditAccessDeniedError",
    "AuditEncodingError",
    "AuditEntry",
    "AuditQuery",
    "Outcome",
    "entry_from_row",
    "local_details",
    "lock_chain",
    "log_event",
    "read_audit",
    "read_records",
    "record",
    "start_signing",
]
