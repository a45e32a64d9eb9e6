"""What a lenient parser forgave, as a short bounded record.

A torrent or magnet link that an observer refuses is an offender missed, so
the parsers accept what the identity does not depend on and say so here. The
text partly comes from whoever made the file or link: each note is cut to a
fixed length, quotes that text through `shown` (bounded, control characters
escaped), and repeats of one kind are counted, not listed, so a hostile input
of a million odd paths still yields a few short lines.
"""

from __future__ import annotations

from typing import Final

MAX_NOTES: Final = 32
MAX_NOTE_CHARS: Final = 200
MAX_SHOWN_CHARS: Final = 60


def shown(value: bytes | str) -> str:
    """A peer-written value as a note may quote it: its start, escaped by `repr`."""
    if isinstance(value, bytes):
        text = value[:MAX_SHOWN_CHARS].decode(errors="replace")
        more = len(value) > MAX_SHOWN_CHARS
    else:
        text = value[:MAX_SHOWN_CHARS]
        more = len(value) > MAX_SHOWN_CHARS
    return repr(text) + ("..." if more else "")


class Notes:
    """Collects notes by kind: the first detail of each kind and how often it recurred."""

    def __init__(self) -> None:
        self._kinds: dict[str, tuple[str, int]] = {}

    def add(self, kind: str, detail: str = "") -> None:
        """Record one forgiven fault; `kind` is a fixed phrase from the code."""
        seen = self._kinds.get(kind)
        if seen is not None:
            self._kinds[kind] = (seen[0], seen[1] + 1)
        elif len(self._kinds) < MAX_NOTES:
            self._kinds[kind] = (detail, 1)

    def __contains__(self, kind: str) -> bool:
        return kind in self._kinds

    def freeze(self) -> tuple[str, ...]:
        """The notes, one line per kind, each at most `MAX_NOTE_CHARS` long."""
        lines = []
        for kind, (detail, count) in self._kinds.items():
            tail = f" (x{count})" if count > 1 else ""
            line = f"{kind}: {detail}" if detail else kind
            room = MAX_NOTE_CHARS - len(tail)
            if len(line) > room:
                line = line[: room - 3] + "..."
            lines.append(line + tail)
        return tuple(lines)
