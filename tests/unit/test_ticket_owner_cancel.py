"""Work orders (报修): the owner may withdraw their own request only before work on it
starts; staff keep every cancel the transition table allows."""

from __future__ import annotations

import pytest

from meterpay.tickets.model import (
    OWNER_MAY_CANCEL,
    TRANSITIONS,
    IllegalTicketMove,
    TicketState,
    TooLateToCancel,
    cancelled_by_owner,
)


@pytest.mark.parametrize("state", [TicketState.OPEN, TicketState.ASSIGNED])
def test_an_owner_cancels_a_request_that_is_open_or_assigned(state: TicketState) -> None:
    assert cancelled_by_owner(state) is TicketState.CANCELLED


@pytest.mark.parametrize(
    "state", [TicketState.IN_PROGRESS, TicketState.DONE, TicketState.CANCELLED]
)
def test_once_work_has_started_or_the_ticket_is_closed_the_owner_cannot_cancel(
    state: TicketState,
) -> None:
    with pytest.raises(TooLateToCancel, match="please call the property office") as refused:
        cancelled_by_owner(state)
    assert isinstance(refused.value, IllegalTicketMove)  # a 409, like any illegal move
    assert refused.value.code == "too_late_to_cancel"


def test_every_owner_cancel_is_a_move_the_table_allows() -> None:
    assert all(TicketState.CANCELLED in TRANSITIONS[s] for s in OWNER_MAY_CANCEL)
    assert TicketState.CANCELLED in TRANSITIONS[TicketState.IN_PROGRESS]  # staff still can
