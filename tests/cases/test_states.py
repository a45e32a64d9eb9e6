"""The case state machine: the flow, what closes a case, and out-of-order moves."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atalaya.cases.states import (
    FINAL,
    INITIAL,
    TRANSITIONS,
    State,
    TransitionError,
    allowed,
    check_transition,
    parse_state,
)
from atalaya.errors import AtalayaError

FLOW = [
    State.TRIAGE,
    State.REQUEST_DRAFTED,
    State.SENT_TO_COURT,
    State.AUTHORISED,
    State.SENT_TO_ISP,
    State.ISP_ANSWERED,
    State.SEARCH_AUTHORISED,
    State.SEARCH_DONE,
    State.CHARGED,
]


def test_the_whole_flow_is_allowed_step_by_step() -> None:
    state = INITIAL
    for target in FLOW[1:]:
        state = check_transition(state, target)
    assert state is State.CHARGED and state in FINAL


def test_charges_without_a_search_and_a_refusal_that_ends_the_case() -> None:
    assert check_transition(State.ISP_ANSWERED, State.CHARGED) is State.CHARGED
    assert check_transition(State.SENT_TO_COURT, State.REFUSED) is State.REFUSED
    assert check_transition(State.REFUSED, State.ARCHIVED) is State.ARCHIVED


@pytest.mark.parametrize(
    "state",
    [State.TRIAGE, State.REQUEST_DRAFTED, State.REFUSED, State.ISP_ANSWERED, State.SEARCH_DONE],
)
def test_the_unit_can_close_where_it_holds_the_next_step(state: State) -> None:
    assert {State.ARCHIVED, State.REFERRED} <= TRANSITIONS[state]


@pytest.mark.parametrize(
    "state",
    [State.SENT_TO_COURT, State.AUTHORISED, State.SENT_TO_ISP, State.SEARCH_AUTHORISED],
)
def test_no_closing_while_a_court_or_an_isp_holds_the_next_step(state: State) -> None:
    with pytest.raises(TransitionError, match=f"cannot go from {state.value} to archived"):
        check_transition(state, State.ARCHIVED)


def test_out_of_order_names_where_the_case_can_go() -> None:
    with pytest.raises(TransitionError) as info:
        check_transition(State.TRIAGE, State.SENT_TO_ISP)
    assert str(info.value) == (
        "a case cannot go from triage to sent_to_isp; from triage it can go to: "
        "request_drafted, archived, referred"
    )
    with pytest.raises(TransitionError, match="archived, a final state"):
        check_transition(State.ARCHIVED, State.TRIAGE)


def test_parse_state_accepts_dashes_and_case_and_names_the_states_otherwise() -> None:
    assert parse_state(" Sent-To-Court ") is State.SENT_TO_COURT
    with pytest.raises(AtalayaError, match="unknown case state 'closed': use one of triage"):
        parse_state("closed")


def test_every_state_is_reachable_from_triage_and_can_end() -> None:
    reached = {INITIAL}
    frontier = [INITIAL]
    while frontier:
        for target in TRANSITIONS[frontier.pop()]:
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(State)
    # No cycles: a case always moves towards an end.
    order: dict[State, int] = {}

    def depth(state: State) -> int:
        if state not in order:
            order[state] = 1 + max((depth(t) for t in TRANSITIONS[state]), default=0)
        return order[state]

    assert depth(INITIAL) == 9


@given(st.lists(st.sampled_from(list(State)), max_size=30))
def test_random_sequences_move_only_along_allowed_edges(targets: list[State]) -> None:
    """A case fed any sequence of targets ends where the accepted ones lead,
    and a refused target leaves it where it was."""
    state = INITIAL
    path = [state]
    for target in targets:
        try:
            state = check_transition(state, target)
        except TransitionError:
            assert target not in TRANSITIONS[path[-1]]
            assert state is path[-1]
            continue
        assert target in allowed(path[-1])
        path.append(state)
    for before, after in itertools.pairwise(path):
        assert after in TRANSITIONS[before]
    assert len(path) == len(set(path))  # never back to a state it left
    if path[-1] in FINAL:
        assert allowed(path[-1]) == ()
