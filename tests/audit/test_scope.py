"""Who reads which audit records: a unit's auditor its unit's, a national auditor all (issue 10).

Records hold free-text reasons that can name people: an auditor of one unit
read every unit's before.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from atalaya.audit import (
    Action,
    Actor,
    AuditAccessDeniedError,
    AuditQuery,
    log_event,
    read_audit,
    read_records,
)

AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
ANA = Actor(user_id=1, username="ana", unit="Madrid", client_address="127.0.0.1", role="analyst")
BEA = Actor(user_id=2, username="bea", unit="Barcelona", client_address="127.0.0.2", role="analyst")
EVA = Actor(user_id=3, username="eva", unit="Madrid", client_address="127.0.0.3", role="auditor")
NINA = Actor(
    user_id=4, username="nina", unit="Central", client_address="127.0.0.4", role="national_auditor"
)


def _seed(engine: Engine) -> None:
    log_event(engine, Action.VIEW, actor=ANA, object_type="lead", object_id=1, at=AT)
    log_event(
        engine,
        Action.CHANGE,
        actor=BEA,
        object_type="lead",
        object_id=2,
        details={"reason": "the suspect's neighbour, Mr X, says so"},
        at=AT,
    )
    # No unit: the command line, a login under an unknown name.
    log_event(engine, Action.CHANGE, details={"via": "cli"}, at=AT)
    log_event(engine, Action.LOGIN_FAILED, actor=Actor(client_address="127.0.0.9"), at=AT)


def test_a_units_auditor_reads_its_units_records_only(engine: Engine) -> None:
    _seed(engine)
    seen = read_audit(engine, EVA, at=AT)
    assert [(e.fields.username, e.fields.action) for e in seen] == [("ana", "view")]
    # Asking for another unit's user or unit gives nothing.
    assert read_audit(engine, EVA, AuditQuery(username="bea"), at=AT) == []
    assert read_audit(engine, EVA, AuditQuery(unit="Barcelona"), at=AT) == []
    with engine.connect() as conn:
        reads = read_records(conn, AuditQuery(action="audit_read"))
    assert [r.fields.details["scope"] for r in reads] == ["unit", "unit", "unit"]
    assert reads[2].fields.details["filters"] == {"unit": "Barcelona", "limit": 1000}


def test_a_national_auditor_reads_every_record(engine: Engine) -> None:
    _seed(engine)
    seen = read_audit(engine, NINA, at=AT)
    assert [(e.fields.username, e.fields.action) for e in seen] == [
        ("ana", "view"),
        ("bea", "change"),
        (None, "change"),
        (None, "login_failed"),
    ]
    with engine.connect() as conn:
        read = read_records(conn, AuditQuery(newest_first=True, limit=1))[0].fields
    assert (read.action, read.details["scope"]) == ("audit_read", "all")


@pytest.mark.parametrize(
    "reader",
    [
        ANA,
        Actor(username="x", unit=None, role="auditor"),  # an auditor of no unit
        Actor(username="y", unit="Madrid", role="administrator"),
    ],
)
def test_others_are_refused(engine: Engine, reader: Actor) -> None:
    _seed(engine)
    with pytest.raises(AuditAccessDeniedError):
        read_audit(engine, reader, at=AT)
