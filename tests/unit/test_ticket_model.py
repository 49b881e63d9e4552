"""Work orders (报修): the transition table, and which photos are accepted."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterpay.kernel.errors import InvalidInput
from meterpay.tickets.model import (
    FINAL,
    MAX_PHOTO_BYTES,
    TRANSITIONS,
    BadPhoto,
    IllegalTicketMove,
    TicketState,
    checked_request,
    move,
    moves_from,
    photo_type,
)

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 8

states = st.sampled_from(list(TicketState))


def test_the_usual_life_of_a_ticket_is_open_assigned_in_progress_done() -> None:
    state = TicketState.OPEN
    for to in (TicketState.ASSIGNED, TicketState.IN_PROGRESS, TicketState.DONE):
        state = move(state, to)
    assert state is TicketState.DONE


@given(states, states)
def test_a_move_is_allowed_exactly_when_the_table_lists_it(
    state: TicketState, to: TicketState
) -> None:
    if to in TRANSITIONS[state]:
        assert move(state, to) is to
    else:
        with pytest.raises(IllegalTicketMove):
            move(state, to)


@given(st.lists(states, max_size=12))
def test_no_path_leaves_a_final_state(path: list[TicketState]) -> None:
    state = TicketState.OPEN
    for to in path:
        if to not in TRANSITIONS[state]:
            continue
        was_final = state in FINAL
        state = move(state, to)
        assert not was_final


def test_done_and_cancelled_are_final_and_anything_unfinished_can_be_cancelled() -> None:
    assert {TicketState.DONE, TicketState.CANCELLED} == FINAL
    for state in set(TicketState) - FINAL:
        assert TicketState.CANCELLED in moves_from(state)
    assert moves_from(TicketState.DONE) == []


def test_a_ticket_can_be_reassigned_but_not_reopened() -> None:
    assert move(TicketState.ASSIGNED, TicketState.ASSIGNED) is TicketState.ASSIGNED
    with pytest.raises(IllegalTicketMove):
        move(TicketState.DONE, TicketState.OPEN)
    with pytest.raises(IllegalTicketMove):
        move(TicketState.OPEN, TicketState.DONE)


@pytest.mark.parametrize(
    ("data", "media_type"), [(JPEG, "image/jpeg"), (PNG, "image/png"), (WEBP, "image/webp")]
)
def test_photos_are_told_by_their_first_bytes(data: bytes, media_type: str) -> None:
    assert photo_type(data) == media_type


@pytest.mark.parametrize(
    "data",
    [
        b"GIF89a" + b"\x00" * 10,
        b"%PDF-1.7",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"RIFF\x10\x00\x00\x00WAVEfmt ",
        b"",
    ],
)
def test_anything_but_jpeg_png_or_webp_is_refused(data: bytes) -> None:
    with pytest.raises(BadPhoto):
        photo_type(data)


def test_a_photo_over_5_mb_is_refused_and_one_at_the_limit_is_not() -> None:
    assert photo_type(JPEG + b"\x00" * (MAX_PHOTO_BYTES - len(JPEG))) == "image/jpeg"
    with pytest.raises(BadPhoto, match="5 MB"):
        photo_type(JPEG + b"\x00" * (MAX_PHOTO_BYTES - len(JPEG) + 1))


def test_a_request_needs_words_and_at_most_three_photos() -> None:
    assert checked_request("  插座没电  ", [PNG]) == ("插座没电", ["image/png"])
    with pytest.raises(InvalidInput):
        checked_request("   ", [])
    with pytest.raises(BadPhoto):
        checked_request("漏水", [PNG, PNG, PNG, PNG])
