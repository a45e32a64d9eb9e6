"""Users, units and roles: who may log in, what they may see, and their sessions.

API for the web application (everything below is importable from
`atalaya.accounts`; times are aware UTC datetimes passed in as `now`):

Sessions (take an Engine: they run their own transactions)
- `login(engine, username, password, client_ip, now, policy=DEFAULT_POLICY)
  -> (Session, token)`: sets the cookie to `token`. Raises `LoginError`
  (show `str(err)`, one generic message; `err.reason` is for logs only) or
  its subclasses `LoginThrottledError` (too many failures from `client_ip`;
  `retry_after`) and `LoginBusyError` (every Argon2 slot stayed taken).
  Logs `login` / `login_failed` in the audit log itself.
- `session_user(engine, token, now) -> Session | None`: the session for a
  cookie, None when unknown, expired (absolute or idle) or the user is
  disabled. `Session.user` is a `User` (id, username, unit_id, unit_name,
  role…); `Session.actor(client_ip)` is the `atalaya.audit.Actor` to log with.
- `logout(engine, token, now, client_ip=None) -> bool` (logs `logout`).
- `csrf_token(session) -> str` for forms/fetch headers;
  `check_csrf(session, token) -> bool` (constant time) on every
  state-changing request.

Roles: `Role` (analyst, supervisor, auditor, administrator), `Permission`,
`has_permission(role, perm)`, `require(role, perm)` (raises `AccessDeniedError`).

Lead visibility (take a Connection, read only). A unit holds a lead when any
of the lead's presences lies in one of its provinces, or when it claimed the
lead (or a lead merged into it: claims follow the lineage, see
`atalaya.leads.history`).
- `visible_lead_ids_clause(unit_id, lead_id=None)`: add to every lead query,
  `select(lead).where(visible_lead_ids_clause(u))`, or for another table
  `.where(visible_lead_ids_clause(u, lead_presence.c.lead_id))`.
- `unit_holds(conn, unit_id, lead_id) -> bool` for a lead's page (answer
  404 when False, so a guessed URL tells nothing).
- `conflicts_for(conn, unit_id, lead_ids) -> {lead_id: [Contact(unit, contact)]}`.
- `conflict_clause(unit_id)`: leads another unit also holds (for a filter).
- `units_holding(conn, lead_id) -> [Holder]`, `claim_lead`, `release_claim`
  (both raise `LeadMovedError`, an AtalayaError, for a lead merged away).

Units and users (take a Connection, the caller commits): `add_unit`,
`list_units`, `get_unit`, `add_user`, `list_users`, `find_user`,
`get_user`, `set_disabled`, `unlock_user`, `set_password`.
Policy values: `AccountPolicy` / `DEFAULT_POLICY`.
"""

from atalaya.accounts.passwords import PasswordPolicyError, hash_password, verify_password
from atalaya.accounts.policy import DEFAULT_POLICY, AccountPolicy
from atalaya.accounts.roles import (
    AccessDeniedError,
    Permission,
    Role,
    has_permission,
    parse_role,
    require,
)
from atalaya.accounts.sessions import (
    LoginBusyError,
    LoginError,
    LoginThrottledError,
    Session,
    check_csrf,
    csrf_token,
    login,
    logout,
    session_user,
    token_hash,
)
from atalaya.accounts.units import Unit, add_unit, get_unit, list_units
from atalaya.accounts.users import (
    User,
    add_user,
    find_user,
    get_user,
    list_users,
    set_disabled,
    set_password,
    unlock_user,
)
from atalaya.accounts.visibility import (
    Contact,
    Holder,
    claim_lead,
    conflict_clause,
    conflicts_for,
    release_claim,
    unit_holds,
    units_holding,
    visible_lead_ids_clause,
)

__all__ = [
    "DEFAULT_POLICY",
    "AccessDeniedError",
    "AccountPolicy",
    "Contact",
    "Holder",
    "LoginBusyError",
    "LoginError",
    "LoginThrottledError",
    "PasswordPolicyError",
    "Permission",
    "Role",
    "Session",
    "Unit",
    "User",
    "add_unit",
    "add_user",
    "check_csrf",
    "claim_lead",
    "conflict_clause",
    "conflicts_for",
    "csrf_token",
    "find_user",
    "get_unit",
    "get_user",
    "has_permission",
    "hash_password",
    "list_units",
    "list_users",
    "login",
    "logout",
    "parse_role",
    "release_claim",
    "require",
    "session_user",
    "set_disabled",
    "set_password",
    "token_hash",
    "unit_holds",
    "units_holding",
    "unlock_user",
    "verify_password",
    "visible_lead_ids_clause",
]
