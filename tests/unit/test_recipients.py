"""The recipient grammar steps share (README, "Recipients"): ``user:<id>`` or a bare id,
``role:<name>``, ``owner``, ``initiator``, ``policy_owners``."""

from __future__ import annotations

import pytest

from workflow_service.steps.recipients import parse_recipient


@pytest.mark.parametrize(
    ("spec", "kind", "value"),
    [
        ("alice", "user", "alice"),
        ("user:alice@example.org", "user", "alice@example.org"),
        ("  bob  ", "user", "bob"),
        ("role:approver", "role", "approver"),
        ("owner", "owner", ""),
        ("initiator", "initiator", ""),
        ("policy_owners", "policy_owners", ""),
    ],
)
def test_each_form_parses_to_its_kind(spec, kind, value):
    parsed = parse_recipient(spec)
    assert (parsed.kind, parsed.value) == (kind, value)


def test_a_parsed_recipient_reads_back_in_its_canonical_form():
    assert [str(parse_recipient(s)) for s in ("alice", "role:editor", "owner")] == [
        "user:alice",
        "role:editor",
        "owner",
    ]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("", "non-empty"),
        (None, "non-empty"),
        ("role:wizard", "unknown role"),
        ("user:", "a user id is"),
        ("user:-x", "a user id is"),
        ("team:x", "no known form"),
        ("a b", "no known form"),
        ("x" * 65, "no known form"),
    ],
)
def test_anything_else_is_refused_saying_why(spec, says):
    with pytest.raises(ValueError, match=says):
        parse_recipient(spec)
