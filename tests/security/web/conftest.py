"""The web tests' seeded world and signed-in clients, for the attacker's web tests."""

from tests.web.conftest import (
    anonymous,
    app,
    client_for,
    db_seed,
    places_read_once,
    web_settings,
    world,
)

__all__ = [
    "anonymous",
    "app",
    "client_for",
    "db_seed",
    "places_read_once",
    "web_settings",
    "world",
]
