"""Time zones of places, so that every time can be shown in UTC and local time."""

from __future__ import annotations

from datetime import datetime
from importlib import metadata
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from timezonefinder import TimezoneFinder


class PlaceTimeZones:
    """The IANA time zone at a point (timezonefinder's boundaries, loaded once)."""

    def __init__(self) -> None:
        self._finder: TimezoneFinder | None = None

    def at(self, latitude: float, longitude: float) -> str | None:
        if self._finder is None:
            # Imported here: timezonefinder (and h3) load only when a point is
            # placed, not with every command that shows a local time.
            from timezonefinder import TimezoneFinder  # noqa: PLC0415

            self._finder = TimezoneFinder(in_memory=True)
        name = self._finder.timezone_at(lat=latitude, lng=longitude)
        return name if isinstance(name, str) else None

    @staticmethod
    def describe() -> dict[str, str]:
        return {
            "kind": "timezones",
            "package": f"timezonefinder@{metadata.version('timezonefinder')}",
            "data": f"timezonefinder-data@{metadata.version('timezonefinder-data')}",
        }


def local_time(utc: datetime, time_zone: str | None) -> datetime | None:
    """`utc` in the named zone; None if the zone is unknown or `utc` is naive."""
    if time_zone is None or utc.tzinfo is None:
        return None
    try:
        return utc.astimezone(ZoneInfo(time_zone))
    except (ZoneInfoNotFoundError, ValueError):
        return None
