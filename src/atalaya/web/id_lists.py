"""Lists of ids a form or URL names (`lead=1&lead=2`, `case=3`): bounded, numbers only.

A bulk action works on at most one page of the list; an id list longer than
that, or one with anything but digits in it, is refused as a whole, with one
line that says why, before anything is read or written.
"""

from __future__ import annotations

from atalaya.errors import N_, AtalayaError

# Leads (or cases) one request may name: a page of the list is at most this
# long, and one transaction opening them stays short.
MAX_IDS = 200
MAX_ID_DIGITS = 19


class IdListError(AtalayaError):
    """An id list that is empty, too long, or holds something that is not a number."""


def parse_ids(values: list[str]) -> list[int]:
    """The ids, in their order, each once.

    IdListError when there are none, more than MAX_IDS, or one is not a
    number (its first characters quoted, for the page to show escaped).
    """
    if not values:
        raise IdListError(N_("nothing selected: select at least one"))
    if len(values) > MAX_IDS:
        raise IdListError(
            N_("%(count)s selected; at most %(most)s at a time"), count=len(values), most=MAX_IDS
        )
    ids: list[int] = []
    for value in values:
        text = value.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= MAX_ID_DIGITS):
            raise IdListError(N_("“%(value)s” is not a lead or case number"), value=value[:20])
        ids.append(int(text))
    return list(dict.fromkeys(ids))
