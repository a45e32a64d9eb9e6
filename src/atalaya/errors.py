"""Errors that reach the operator as one clear line.

The command line prints them in English; the web pages show them in the
page's language. An error that a page may show is raised with its message
marked by `N_` and the values in it named::

    raise TransitionError(
        N_("the case is %(state)s, a final state: it cannot move"), state=current
    )

`str(exc)` is then the English text with the values filled in, exactly what
the command line prints; the web translates `exc.template` through its
catalogue (scripts/i18n-update.sh extracts the N_() strings of the modules
that raise such errors) and shows identifiers among `exc.params` (a case
state, a role) by their labels. Any stage may import this module: it imports
nothing of Atalaya.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar


class Msgid(str):
    """English text marked with `N_`: the key of its translations."""

    __slots__ = ()


def N_(text: str) -> Msgid:  # noqa: N802 (the gettext convention)
    """Marks a message for the web pages' catalogue; it stays English here."""
    return Msgid(text)


class Listed(tuple[Any, ...]):
    """Several values in one placeholder, shown joined by ", " (the web labels each)."""

    __slots__ = ()
    joiner: ClassVar[str] = ", "

    def __new__(cls, values: Iterable[Any]) -> Listed:
        return super().__new__(cls, tuple(values))

    def __str__(self) -> str:
        return self.joiner.join(str(v) for v in self)


class Alternatives(Listed):
    """Values of which one is meant: "a or b" (the web words the "or")."""

    __slots__ = ()
    joiner: ClassVar[str] = " or "


class AtalayaError(Exception):
    """An error the command line prints as one line, without a traceback.

    The message must say what went wrong and, where possible, what to do.
    Raised as `AtalayaError(N_("... %(name)s ..."), name=value)` it can also
    be shown translated (see the module docstring): `template` is then the
    marked message and `params` its values; otherwise `template` is None.
    """

    template: Msgid | None
    params: Mapping[str, object]

    def __init__(self, *args: object, **params: object) -> None:
        template = args[0] if len(args) == 1 and isinstance(args[0], Msgid) else None
        if params and template is None:
            raise TypeError("named values go with one message marked by N_()")
        self.template = template
        self.params = dict(params)
        if template is not None:
            super().__init__(template % params if params else str(template))
        else:
            super().__init__(*args)
