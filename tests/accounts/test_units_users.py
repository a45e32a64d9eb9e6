"""Creating units and users, and what is refused."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from atalaya.accounts import (
    Role,
    add_unit,
    add_user,
    find_user,
    get_unit,
    list_units,
    list_users,
    login,
    set_disabled,
    set_password,
    unlock_user,
)
from atalaya.accounts.roles import AccessDeniedError, Permission, has_permission, require
from atalaya.errors import AtalayaError
from tests.accounts.helpers import FAST, PASSWORD, T0


def test_units(engine: Engine) -> None:
    with engine.begin() as conn:
        made = add_unit(conn, " Madrid ", ["28", " 28", "45"], " desk ", T0)
        assert (
            made.jurisdiction == ("28", "45") and made.name == "Madrid" and made.contact == "desk"
        )
        with pytest.raises(AtalayaError, match="already exists"):
            add_unit(conn, "Madrid", [], "x", T0)
        with pytest.raises(AtalayaError, match="province code"):
            add_unit(conn, "Bad", ["28; DROP"], "x", T0)
        with pytest.raises(AtalayaError, match="contact"):
            add_unit(conn, "Mute", ["28"], "  ", T0)
        add_unit(conn, "Aragón", [], "desk", T0)
    with engine.connect() as conn:
        assert [u.name for u in list_units(conn)] == ["Aragón", "Madrid"]
        assert get_unit(conn, "Madrid") == made
        with pytest.raises(AtalayaError, match="no unit"):
            get_unit(conn, "Nowhere")


def test_users(engine: Engine) -> None:
    with engine.begin() as conn:
        add_unit(conn, "Madrid", ["28"], "desk", T0)
        user = add_user(conn, "Ana.Lopez", "Madrid", "Analyst", PASSWORD, T0, FAST)
        assert user.username == "ana.lopez" and user.role is Role.ANALYST
        with pytest.raises(AtalayaError, match="already exists"):
            add_user(conn, "ANA.LOPEZ", "Madrid", "analyst", PASSWORD, T0, FAST)
        with pytest.raises(AtalayaError, match="unknown role"):
            add_user(conn, "bob", "Madrid", "root", PASSWORD, T0, FAST)
        with pytest.raises(AtalayaError, match="no unit"):
            add_user(conn, "bob", "Nowhere", "analyst", PASSWORD, T0, FAST)
        with pytest.raises(AtalayaError, match="username"):
            add_user(conn, "bob smith", "Madrid", "analyst", PASSWORD, T0, FAST)
        with pytest.raises(AtalayaError, match="at least 12"):
            add_user(conn, "bob", "Madrid", "analyst", "short", T0, FAST)
        add_user(conn, "eva", "Madrid", "auditor", PASSWORD, T0, FAST)
    with engine.connect() as conn:
        assert [(u.username, u.role.value) for u in list_users(conn)] == [
            ("ana.lopez", "analyst"),
            ("eva", "auditor"),
        ]
        assert find_user(conn, "nobody") is None
    with engine.begin() as conn:
        assert set_disabled(conn, "eva", True).disabled
        assert not set_disabled(conn, "eva", False).disabled
        assert unlock_user(conn, "eva").failed_logins == 0
        set_password(conn, "eva", "another long password", T0, FAST)
    session, _ = login(engine, "eva", "another long password", "127.0.0.1", T0, FAST)
    assert session.user.role is Role.AUDITOR


def test_roles() -> None:
    assert has_permission("auditor", Permission.READ_AUDIT)
    assert not has_permission("analyst", Permission.READ_AUDIT)
    assert not has_permission("administrator", Permission.VIEW_LEADS)
    assert has_permission("supervisor", Permission.CLAIM_LEADS)
    assert not has_permission("nonsense", Permission.VIEW_LEADS)
    require("analyst", Permission.VIEW_LEADS)
    with pytest.raises(AccessDeniedError):
        require("auditor", Permission.CHANGE_LEADS)
