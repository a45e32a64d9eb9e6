"""Units (agencies): who they are, the provinces they cover, how to reach them."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from atalaya.errors import AtalayaError
from atalaya.store.tables import unit, unit_province
from atalaya.store.times import utc

_PROVINCE = re.compile(r"[0-9A-Z]{1,10}")
# Until a unit sets its own: the score from which the default weights call a
# lead urgent (about one lead in thirty over six months of the benchmark store).
DEFAULT_URGENT_SCORE = 60.0


@dataclass(frozen=True)
class Unit:
    id: int
    name: str
    # Province codes as in lead.province_code (INE two-digit codes in Spain).
    jurisdiction: tuple[str, ...]
    # Shown to another unit holding the same lead, and nothing else about this one.
    contact: str
    created_at: datetime
    # A lead is urgent for this unit when its score in force is at least this.
    urgent_score: float = DEFAULT_URGENT_SCORE


def parse_province(code: str) -> str:
    wanted = code.strip().upper()
    if not _PROVINCE.fullmatch(wanted):
        raise AtalayaError(
            f"province code {code!r} is not a code like 28 (INE codes, as leads carry them)"
        )
    return wanted


def add_unit(
    conn: Connection, name: str, provinces: Iterable[str], contact: str, now: datetime
) -> Unit:
    """Create a unit; AtalayaError if the name is taken or a field is empty."""
    name = name.strip()
    contact = contact.strip()
    if not name or len(name) > 200:
        raise AtalayaError("a unit needs a name of 1 to 200 characters")
    if not contact:
        raise AtalayaError("a unit needs a contact line (who other units should call)")
    codes = sorted({parse_province(p) for p in provinces})
    try:
        with conn.begin_nested():
            unit_id = conn.execute(
                unit.insert()
                .values(name=name, contact=contact, created_at=utc(now))
                .returning(unit.c.id)
            ).scalar_one()
    except IntegrityError as exc:
        raise AtalayaError(f"a unit named {name!r} already exists") from exc
    if codes:
        conn.execute(
            unit_province.insert(), [{"unit_id": unit_id, "province_code": c} for c in codes]
        )
    return Unit(int(unit_id), name, tuple(codes), contact, utc(now))


def list_units(conn: Connection) -> list[Unit]:
    """Every unit, by name."""
    codes: dict[int, list[str]] = {}
    for row in conn.execute(
        select(unit_province.c.unit_id, unit_province.c.province_code).order_by(
            unit_province.c.province_code
        )
    ):
        codes.setdefault(int(row.unit_id), []).append(row.province_code)
    return [
        Unit(
            int(r.id),
            r.name,
            tuple(codes.get(int(r.id), ())),
            r.contact,
            utc(r.created_at),
            float(r.urgent_score),
        )
        for r in conn.execute(select(unit).order_by(unit.c.name))
    ]


def get_unit(conn: Connection, name: str) -> Unit:
    """The unit called `name`; AtalayaError when there is none."""
    row = conn.execute(select(unit).where(unit.c.name == name.strip())).one_or_none()
    if row is None:
        raise AtalayaError(f"no unit named {name!r} ('atalaya units list' shows them)")
    codes = conn.execute(
        select(unit_province.c.province_code)
        .where(unit_province.c.unit_id == row.id)
        .order_by(unit_province.c.province_code)
    ).scalars()
    return Unit(
        int(row.id),
        row.name,
        tuple(codes),
        row.contact,
        utc(row.created_at),
        float(row.urgent_score),
    )


def check_urgent_score(score: float) -> float:
    """A threshold from 0 to 100; AtalayaError otherwise."""
    if not (math.isfinite(score) and 0 <= score <= 100):
        raise AtalayaError(f"an urgency threshold is a score from 0 to 100, not {score:g}")
    return float(score)


def set_urgent_score(conn: Connection, name: str, score: float) -> tuple[Unit, float]:
    """Set the unit's urgency threshold; returns the unit as it is now and the old threshold."""
    check_urgent_score(score)
    before = get_unit(conn, name)
    conn.execute(update(unit).where(unit.c.id == before.id).values(urgent_score=score))
    return replace(before, urgent_score=score), before.urgent_score
