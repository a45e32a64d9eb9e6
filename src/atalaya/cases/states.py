"""The states of a case and the transitions between them (pure: no store, no clock).

The way a Spanish case goes from a lead to the court's outcome::

    triage → request_drafted → sent_to_court → authorised | refused
    authorised → sent_to_isp → isp_answered
    isp_answered → search_authorised → search_done      (when a search is needed)
    isp_answered | search_done → charged | archived | referred

`archived` (closed, nothing more to do) and `referred` (handed to another
unit, court or country) are also reachable from the states where the unit
itself holds the next step and can decide to stop:

- triage: the lead is not worth a request, or belongs elsewhere;
- request_drafted: the draft is dropped before it reaches a court;
- refused: the judge said no; the case ends there or goes to whoever can
  take it further;
- isp_answered: the subscriber data is missing, expired, or points to
  another jurisdiction;
- search_done: the search found nothing to charge, or the matter goes on
  elsewhere.

They are not reachable from sent_to_court, authorised, sent_to_isp or
search_authorised: a court or an ISP holds the next step there, and closing
the case then would lose from sight an order in flight. Their answer is
recorded first (a refusal, an ISP's "no data" answer), then the case is
closed. charged, archived and referred are final.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from atalaya.errors import N_, AtalayaError, Listed


class State(StrEnum):
    TRIAGE = "triage"
    REQUEST_DRAFTED = "request_drafted"
    SENT_TO_COURT = "sent_to_court"
    AUTHORISED = "authorised"
    REFUSED = "refused"
    SENT_TO_ISP = "sent_to_isp"
    ISP_ANSWERED = "isp_answered"
    SEARCH_AUTHORISED = "search_authorised"
    SEARCH_DONE = "search_done"
    CHARGED = "charged"
    ARCHIVED = "archived"
    REFERRED = "referred"


INITIAL = State.TRIAGE

_CLOSE = frozenset({State.ARCHIVED, State.REFERRED})

TRANSITIONS: Mapping[State, frozenset[State]] = {
    State.TRIAGE: frozenset({State.REQUEST_DRAFTED}) | _CLOSE,
    State.REQUEST_DRAFTED: frozenset({State.SENT_TO_COURT}) | _CLOSE,
    State.SENT_TO_COURT: frozenset({State.AUTHORISED, State.REFUSED}),
    State.AUTHORISED: frozenset({State.SENT_TO_ISP}),
    State.REFUSED: _CLOSE,
    State.SENT_TO_ISP: frozenset({State.ISP_ANSWERED}),
    State.ISP_ANSWERED: frozenset({State.SEARCH_AUTHORISED, State.CHARGED}) | _CLOSE,
    State.SEARCH_AUTHORISED: frozenset({State.SEARCH_DONE}),
    State.SEARCH_DONE: frozenset({State.CHARGED}) | _CLOSE,
    State.CHARGED: frozenset(),
    State.ARCHIVED: frozenset(),
    State.REFERRED: frozenset(),
}

FINAL = frozenset(s for s, targets in TRANSITIONS.items() if not targets)

# The transition that puts a case's request before a court: from then on
# the observations it pins count as requested (atalaya.cases.deadlines),
# whatever the court and the case do next.
REQUEST_SENT = State.SENT_TO_COURT

# How the web pages name each state (Spanish, like the rest of the UI).
LABELS: Mapping[State, str] = {
    State.TRIAGE: "En valoración",
    State.REQUEST_DRAFTED: "Solicitud redactada",
    State.SENT_TO_COURT: "Enviada al juzgado",
    State.AUTHORISED: "Autorizada",
    State.REFUSED: "Denegada",
    State.SENT_TO_ISP: "Enviada al operador",
    State.ISP_ANSWERED: "Respuesta del operador",
    State.SEARCH_AUTHORISED: "Entrada y registro autorizada",
    State.SEARCH_DONE: "Entrada y registro practicada",
    State.CHARGED: "Acusación",
    State.ARCHIVED: "Archivado",
    State.REFERRED: "Remitido",
}


class TransitionError(AtalayaError):
    """A transition the state machine does not allow (nothing is written)."""


def parse_state(text: str) -> State:
    """A state from its name ("sent_to_court", "sent-to-court"); AtalayaError otherwise."""
    name = text.strip().lower().replace("-", "_")
    try:
        return State(name)
    except ValueError:
        raise AtalayaError(
            N_("unknown case state %(text)r: use one of %(names)s"), text=text, names=Listed(State)
        ) from None


def allowed(current: State) -> tuple[State, ...]:
    """The states a case in `current` may move to, in the order of the flow."""
    order = list(State)
    return tuple(sorted(TRANSITIONS[current], key=order.index))


def check_transition(current: State, target: State) -> State:
    """`target` when a case in `current` may move there; TransitionError otherwise."""
    if target in TRANSITIONS[current]:
        return target
    if current in FINAL:
        raise TransitionError(
            N_("the case is %(state)s, a final state: it cannot move"), state=current
        )
    raise TransitionError(
        N_(
            "a case cannot go from %(state)s to %(target)s; "
            "from %(state)s it can go to: %(options)s"
        ),
        state=current,
        target=target,
        options=Listed(allowed(current)),
    )
