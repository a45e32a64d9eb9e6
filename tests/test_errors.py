"""AtalayaError: one English line for the command line, and a marked message
with named values for the pages to translate."""

from __future__ import annotations

import pickle

import pytest

from atalaya.cases.states import State, TransitionError, check_transition
from atalaya.errors import N_, Alternatives, AtalayaError, Listed, Msgid


def test_a_marked_message_prints_as_the_english_text() -> None:
    exc = AtalayaError(N_("case %(case)s is %(state)s: nothing to do"), case=7, state=State.CHARGED)
    assert str(exc) == "case 7 is charged: nothing to do"
    assert exc.template == "case %(case)s is %(state)s: nothing to do"
    assert isinstance(exc.template, Msgid)
    assert dict(exc.params) == {"case": 7, "state": State.CHARGED}


def test_a_plain_message_has_no_template() -> None:
    exc = AtalayaError("no such thing: 5% off")
    assert (str(exc), exc.template, dict(exc.params)) == ("no such thing: 5% off", None, {})
    assert str(AtalayaError(N_("100% sure"))) == "100% sure"  # no values: no formatting


def test_named_values_need_a_marked_message() -> None:
    with pytest.raises(TypeError):
        AtalayaError("case %(case)s", case=1)


def test_lists_read_as_they_did() -> None:
    assert str(Listed([State.TRIAGE, State.ARCHIVED])) == "triage, archived"
    assert str(Alternatives([State.CHARGED, State.SEARCH_DONE])) == "charged or search_done"


def test_the_transition_error_keeps_its_english_line_and_its_values() -> None:
    with pytest.raises(TransitionError) as caught:
        check_transition(State.TRIAGE, State.CHARGED)
    assert str(caught.value) == (
        "a case cannot go from triage to charged; from triage it can go to: "
        "request_drafted, archived, referred"
    )
    assert caught.value.params["state"] is State.TRIAGE


def test_a_marked_error_survives_pickling_as_its_english_line() -> None:
    exc = pickle.loads(pickle.dumps(AtalayaError(N_("case %(case)s"), case=3)))
    assert (str(exc), exc.template, dict(exc.params)) == ("case 3", "case %(case)s", {"case": 3})
