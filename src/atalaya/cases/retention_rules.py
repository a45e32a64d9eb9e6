"""Retention rules (Law Enforcement Directive art. 5) as versioned, audited configuration.

The unit writes its rules in a TOML file::

    [observations]
    erase_after_days = 90     # sightings no lead or case was made of

    [leads]
    review_after_days = 30    # leads nobody acted on come up for review

    [cases]
    block_after_days = 365    # closed cases (charged, archived, referred) are blocked
    erase_after_days = 1825   # and erased

`atalaya retention rules set FILE` stores them as a new version (the table
is append-only) and writes an audit record naming it; the newest version is
the one `atalaya retention run` applies, and every erasure names it.

A day is 24 hours of elapsed UTC time, counted from the instant of the
observation or of the case's closing: the same instant gives the same
answer whatever zone it was written in, a leap day is one more day like
any other, and something exactly N days old is not yet older than N days.

Legal holds (`atalaya retention hold case:N|lead:N --reason`) stop any
blocking or erasure of what they cover until released; placing and
releasing one are audited too.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select

from atalaya.audit.log import Actor, record
from atalaya.errors import AtalayaError
from atalaya.store.engine import begin_write
from atalaya.store.tables import retention_hold, retention_rules
from atalaya.store.times import utc

RULES_ACTION = "retention_rules"
HOLD_ACTION = "retention_hold"
RELEASE_ACTION = "retention_release"
MAX_DAYS = 36_525  # a century: anything longer is a typo
MAX_RULES_FILE = 64 * 1024
MAX_REASON = 2000
HOLD_TYPES = ("case", "lead")
_TARGET = re.compile(r"(case|lead):([1-9][0-9]{0,18})")

# section -> key -> attribute
_FIELDS = {
    "observations": {"erase_after_days": "observation_erase_days"},
    "leads": {"review_after_days": "lead_review_days"},
    "cases": {"block_after_days": "case_block_days", "erase_after_days": "case_erase_days"},
}


class RetentionRulesError(AtalayaError):
    """Rules, a hold or a target that are not acceptable; nothing was written."""


@dataclass(frozen=True)
class RetentionRules:
    observation_erase_days: int
    lead_review_days: int
    case_block_days: int
    case_erase_days: int

    def __post_init__(self) -> None:
        for name in (
            "observation_erase_days",
            "lead_review_days",
            "case_block_days",
            "case_erase_days",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DAYS:
                raise RetentionRulesError(
                    f"{name.replace('_', ' ')} must be a whole number of days from 1 to {MAX_DAYS}"
                )
        if self.lead_review_days >= self.observation_erase_days:
            raise RetentionRulesError(
                "leads.review_after_days must be shorter than observations.erase_after_days: "
                "a lead must come up for review before its observations are erased"
            )
        if self.case_erase_days < self.case_block_days:
            raise RetentionRulesError(
                "cases.erase_after_days must not be shorter than cases.block_after_days"
            )

    def as_dict(self) -> dict[str, dict[str, int]]:
        """The rules as the TOML file has them (sections and keys)."""
        return {
            section: {key: getattr(self, attr) for key, attr in keys.items()}
            for section, keys in _FIELDS.items()
        }

    def digest(self) -> str:
        text = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("ascii")).hexdigest()


def cutoff(now: datetime, days: int) -> datetime:
    """The instant `days` days of elapsed time before `now` (aware, UTC).

    Something is older than `days` days when its instant is strictly before
    this. `now` must be timezone-aware: a naive time has no single instant.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise RetentionRulesError("retention needs a timezone-aware 'now'")
    return utc(now) - timedelta(days=days)


def rules_from_mapping(data: Mapping[str, Any]) -> RetentionRules:
    """Rules from the parsed TOML; every section and key required, no others."""
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise RetentionRulesError(f"unknown section [{unknown[0]}] in the retention rules")
    values: dict[str, Any] = {}
    for section, keys in _FIELDS.items():
        part = data.get(section)
        if not isinstance(part, Mapping):
            raise RetentionRulesError(f"the retention rules need a [{section}] section")
        extra = sorted(set(part) - set(keys))
        if extra:
            raise RetentionRulesError(f"unknown key {section}.{extra[0]} in the retention rules")
        for key, attr in keys.items():
            if key not in part:
                raise RetentionRulesError(f"the retention rules need {section}.{key}")
            values[attr] = part[key]
    return RetentionRules(**values)


def parse_rules(data: bytes) -> RetentionRules:
    """Rules from a TOML file's bytes; RetentionRulesError for anything else."""
    if len(data) > MAX_RULES_FILE:
        raise RetentionRulesError(f"a retention rules file is at most {MAX_RULES_FILE} bytes")
    try:
        parsed = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RetentionRulesError(f"the retention rules are not valid TOML: {exc}") from exc
    return rules_from_mapping(parsed)


@dataclass(frozen=True)
class StoredRules:
    version: int
    rules: RetentionRules
    sha256: str
    set_by: str
    set_at: datetime
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "rules": self.rules.as_dict(),
            "sha256": self.sha256,
            "set_by": self.set_by,
            "set_at": utc(self.set_at).isoformat(),
            "reason": self.reason,
        }


def current_rules(conn: Connection) -> StoredRules | None:
    """The newest version of the rules; None before any was set."""
    row = conn.execute(
        select(retention_rules).order_by(retention_rules.c.version.desc()).limit(1)
    ).first()
    if row is None:
        return None
    return StoredRules(
        version=int(row.version),
        rules=rules_from_mapping(row.rules),
        sha256=row.sha256,
        set_by=row.set_by,
        set_at=utc(row.set_at),
        reason=row.reason,
    )


def _text(value: str, what: str) -> str:
    text = value.strip()
    if not text:
        raise RetentionRulesError(f"{what} must be given (--reason)")
    if len(text) > MAX_REASON:
        raise RetentionRulesError(f"{what} is at most {MAX_REASON} characters")
    return text


def _who(actor: Actor, details: Mapping[str, Any] | None) -> str:
    if actor.username:
        return actor.username
    user = (details or {}).get("os_user")
    return f"cli:{user}" if isinstance(user, str) and user else "cli"


def set_rules(
    engine: Engine,
    rules: RetentionRules,
    *,
    reason: str,
    now: datetime,
    actor: Actor | None = None,
    context: Mapping[str, Any] | None = None,
) -> tuple[StoredRules, bool]:
    """Store `rules` as the next version, audited; (the version in force, whether it is new).

    The same rules as the newest version add nothing.
    """
    actor = actor or Actor()
    why = _text(reason, "the reason for the change")
    with begin_write(engine) as conn:
        existing = current_rules(conn)
        if existing is not None and existing.rules == rules:
            return existing, False
        version = 1 if existing is None else existing.version + 1
        stored = StoredRules(version, rules, rules.digest(), _who(actor, context), utc(now), why)
        record(
            conn,
            RULES_ACTION,
            actor=actor,
            object_type="retention_rules",
            object_id=version,
            details={
                **(context or {}),
                "version": version,
                "previous_version": None if existing is None else existing.version,
                "rules": rules.as_dict(),
                "sha256": stored.sha256,
                "reason": why,
            },
            at=now,
        )
        conn.execute(
            retention_rules.insert().values(
                version=version,
                rules=rules.as_dict(),
                sha256=stored.sha256,
                set_by=stored.set_by,
                set_at=stored.set_at,
                reason=why,
            )
        )
    return stored, True


def parse_target(text: str) -> tuple[str, int]:
    """ "case:N" or "lead:N" as (type, id); RetentionRulesError otherwise."""
    found = _TARGET.fullmatch(text.strip().lower())
    if found is None or int(found.group(2)) > 2**63 - 1:
        raise RetentionRulesError(f"{text[:40]!r} is not case:N or lead:N")
    return found.group(1), int(found.group(2))


@dataclass(frozen=True)
class Hold:
    id: int
    object_type: str
    object_id: int
    reason: str
    placed_by: str
    placed_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target": f"{self.object_type}:{self.object_id}",
            "reason": self.reason,
            "placed_by": self.placed_by,
            "placed_at": utc(self.placed_at).isoformat(),
        }


def active_holds(conn: Connection) -> list[Hold]:
    """The holds not released, oldest first."""
    rows = conn.execute(
        select(retention_hold)
        .where(retention_hold.c.released_at.is_(None))
        .order_by(retention_hold.c.id)
    )
    return [
        Hold(
            int(r.id),
            r.object_type,
            int(r.object_id),
            r.reason,
            r.placed_by,
            utc(r.placed_at),
        )
        for r in rows
    ]


def place_hold(
    engine: Engine,
    target: str,
    *,
    reason: str,
    now: datetime,
    actor: Actor | None = None,
    context: Mapping[str, Any] | None = None,
) -> Hold:
    """Put `target` ("case:N" / "lead:N") under a legal hold, audited.

    A second hold on what already has one is refused: release it first.
    """
    actor = actor or Actor()
    kind, object_id = parse_target(target)
    why = _text(reason, "the reason for the hold")
    with begin_write(engine) as conn:
        if any(h.object_type == kind and h.object_id == object_id for h in active_holds(conn)):
            raise RetentionRulesError(f"{kind}:{object_id} is already under a hold")
        who = _who(actor, context)
        record(
            conn,
            HOLD_ACTION,
            actor=actor,
            object_type=kind,
            object_id=object_id,
            details={**(context or {}), "reason": why},
            at=now,
        )
        hold_id = conn.execute(
            retention_hold.insert()
            .values(
                object_type=kind,
                object_id=object_id,
                reason=why,
                placed_by=who,
                placed_at=utc(now),
            )
            .returning(retention_hold.c.id)
        ).scalar_one()
    return Hold(int(hold_id), kind, object_id, why, who, utc(now))


def release_hold(
    engine: Engine,
    target: str,
    *,
    reason: str,
    now: datetime,
    actor: Actor | None = None,
    context: Mapping[str, Any] | None = None,
) -> Hold:
    """Release the hold on `target`, audited; RetentionRulesError when it has none."""
    actor = actor or Actor()
    kind, object_id = parse_target(target)
    why = _text(reason, "the reason for the release")
    with begin_write(engine) as conn:
        held = [h for h in active_holds(conn) if (h.object_type, h.object_id) == (kind, object_id)]
        if not held:
            raise RetentionRulesError(f"{kind}:{object_id} is not under a hold")
        record(
            conn,
            RELEASE_ACTION,
            actor=actor,
            object_type=kind,
            object_id=object_id,
            details={**(context or {}), "reason": why, "hold_id": held[0].id},
            at=now,
        )
        conn.execute(
            retention_hold.update()
            .where(retention_hold.c.id == held[0].id)
            .values(released_by=_who(actor, context), released_at=utc(now), release_reason=why)
        )
    return held[0]
