"""The opaque keyset cursor every list hands back: what it encodes comes back, and
anything that is not one of ours is a 400 naming the parameter."""

from __future__ import annotations

import base64
import json

import falcon
import pytest

from shared.http import decode_cursor, encode_cursor


def test_a_cursor_decodes_to_the_position_it_encodes():
    position = {"created_at": "2026-03-01T12:00:00Z", "id": "p-1"}
    cursor = encode_cursor(position)
    assert decode_cursor(cursor, ["id", "created_at"]) == position


def test_a_cursor_is_url_safe_and_unpadded():
    # Positions whose JSON length is not a multiple of 3 would end in "=" padding.
    for n in range(1, 10):
        cursor = encode_cursor({"id": "x" * n, "title": "a/b+c?"})
        assert "=" not in cursor and "+" not in cursor and "/" not in cursor
        assert decode_cursor(cursor, ["id", "title"])["id"] == "x" * n


def test_values_json_cannot_hold_are_encoded_as_text():
    from datetime import date

    cursor = encode_cursor({"due": date(2026, 3, 1), "id": 7})
    assert decode_cursor(cursor, ["due", "id"]) == {"due": "2026-03-01", "id": 7}


def test_another_lists_cursor_is_refused():
    cursor = encode_cursor({"seq": 10})
    with pytest.raises(falcon.HTTPBadRequest) as refused:
        decode_cursor(cursor, ["created_at", "id"])
    assert "cursor" in refused.value.description


@pytest.mark.parametrize(
    "forged",
    [
        "",
        "not base64 !",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(json.dumps([1, 2]).encode()).decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_a_forged_cursor_is_a_400_naming_the_parameter(forged):
    with pytest.raises(falcon.HTTPBadRequest) as refused:
        decode_cursor(forged, ["id"], name="after")
    assert "'after'" in refused.value.description
