"""The keyset cursor every api list uses: what it encodes and what it refuses."""

from __future__ import annotations

import uuid
from datetime import datetime

import falcon
import pytest

from shared.http import Keyset, encode_cursor

CREATED = Keyset(("t", datetime), ("i", uuid.UUID))
VERSION = Keyset(("v", int))


def test_a_position_round_trips_with_its_types():
    at, row = datetime(2026, 3, 1, 12, 30, 5, 123456), uuid.uuid4()
    assert CREATED.decode(CREATED.encode(at, row)) == (at, row)
    assert VERSION.decode(VERSION.encode(7)) == (7,)


def test_the_cursor_is_the_compact_json_lists_have_always_sent():
    # Cursors handed out before lists declared their keysets still read back.
    at, row = datetime(2026, 3, 1, 12, 30), uuid.uuid4()
    assert CREATED.encode(at, row) == encode_cursor({"t": at.isoformat(), "i": str(row)})


@pytest.mark.parametrize(
    "cursor",
    [
        "nope",
        encode_cursor({"v": 3}),  # another list's cursor
        encode_cursor({"t": "yesterday", "i": str(uuid.uuid4())}),
        encode_cursor({"t": "2026-03-01T12:30:00", "i": 5}),
    ],
)
def test_a_cursor_that_is_not_this_lists_is_a_400(cursor):
    with pytest.raises(falcon.HTTPBadRequest) as refused:
        CREATED.decode(cursor)
    assert refused.value.title == "Invalid parameter 'cursor'"
    assert refused.value.description == "'cursor' is not a cursor returned by this API."


@pytest.mark.parametrize("value", ["1", True, 2**63, 1.5])
def test_an_integer_key_is_an_integer_a_database_holds(value):
    with pytest.raises(falcon.HTTPBadRequest):
        VERSION.decode(encode_cursor({"v": value}))


def test_a_key_type_it_cannot_encode_is_refused_when_declared():
    with pytest.raises(TypeError):
        Keyset(("x", float))
