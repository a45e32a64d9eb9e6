"""Roles and what each may do: least privilege, one role per user."""

from __future__ import annotations

from enum import StrEnum

from atalaya.audit.log import AUDITOR_ROLE, NATIONAL_AUDITOR_ROLE
from atalaya.errors import AtalayaError


class Role(StrEnum):
    ANALYST = "analyst"
    SUPERVISOR = "supervisor"
    AUDITOR = AUDITOR_ROLE  # reads the audit records of the own unit's users
    NATIONAL_AUDITOR = NATIONAL_AUDITOR_ROLE  # reads every audit record
    ADMINISTRATOR = "administrator"


class Permission(StrEnum):
    VIEW_LEADS = "view_leads"  # map, list, a lead's page: the unit's own leads only
    CHANGE_LEADS = "change_leads"  # override a score, change status
    CLAIM_LEADS = "claim_leads"  # claim a lead for the unit, release a claim
    # Approve or refuse an override that would make a lead urgent for the unit.
    APPROVE_OVERRIDES = "approve_overrides"
    READ_AUDIT = "read_audit"
    MANAGE_USERS = "manage_users"


PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ANALYST: frozenset({Permission.VIEW_LEADS, Permission.CHANGE_LEADS}),
    Role.SUPERVISOR: frozenset(
        {
            Permission.VIEW_LEADS,
            Permission.CHANGE_LEADS,
            Permission.CLAIM_LEADS,
            Permission.APPROVE_OVERRIDES,
        }
    ),
    # Auditors read who did what, not the leads themselves.
    Role.AUDITOR: frozenset({Permission.READ_AUDIT}),
    Role.NATIONAL_AUDITOR: frozenset({Permission.READ_AUDIT}),
    Role.ADMINISTRATOR: frozenset({Permission.MANAGE_USERS}),
}


class AccessDeniedError(AtalayaError):
    """The user's role does not allow what was asked."""


def parse_role(text: str) -> Role:
    try:
        return Role(text.strip().lower())
    except ValueError as exc:
        names = "|".join(r.value for r in Role)
        raise AtalayaError(f"unknown role {text!r}: use one of {names}") from exc


def has_permission(role: str, permission: Permission) -> bool:
    try:
        return permission in PERMISSIONS[Role(role)]
    except ValueError:
        return False


def require(role: str, permission: Permission) -> None:
    """Raise AccessDeniedError unless `role` has `permission`."""
    if not has_permission(role, permission):
        raise AccessDeniedError(f"the {role} role may not {permission.value.replace('_', ' ')}")
