"""Query parameters both services' ``/jobs`` listings take alike."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.http import Param, bad_parameter, parse_choice
from shared.jobstatus.store import TREE_STATES

TREE_STATE_PARAM = Param(
    "tree_state",
    description="Only root jobs (those no other job started: a write's, a manual run's) "
    "whose whole tree is in this state, e.g. failed somewhere below or waiting for a "
    "person. Not combined with 'state'.",
    schema={"enum": list(TREE_STATES)},
)


def parse_tree_state(req, state: str | None) -> str | None:
    """``?tree_state=``; it lists root jobs by their tree, so it takes no ``state``."""
    tree_state = parse_choice(req, "tree_state", TREE_STATES)
    if tree_state and state:
        raise bad_parameter(
            "tree_state",
            "'tree_state' and 'state' cannot be combined: 'tree_state' lists the jobs "
            "that no other job started by the state of everything below them.",
        )
    return tree_state


SEARCH_PARAMS = (
    Param("entity_id", description="Jobs about this entity (its id)."),
    Param("actor", description="Jobs of this actor (e.g. run_execution)."),
    Param(
        "q",
        description="Failed jobs whose error ('<type>: <message>') contains this text "
        "(case-insensitive; it needs a word of 3 or more letters or digits).",
    ),
    Param("since", description="Jobs created at or after this time (ISO 8601 with a zone)."),
    Param("until", description="Jobs created before this time (ISO 8601 with a zone)."),
)
_NAMES = tuple(p.name for p in SEARCH_PARAMS)


def _time(req: Any, name: str) -> int | None:
    value = req.get_param(name)
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad_parameter(name, f"'{name}' is not an ISO 8601 time.") from None
    if moment.tzinfo is None:
        raise bad_parameter(name, f"'{name}' needs a time zone, e.g. 2026-01-31T12:00:00Z.")
    return int(moment.timestamp() * 1000)


def search_filters(req: Any) -> dict[str, Any] | None:
    """The search filters of a request (None: it asks for no search)."""
    if not any(req.get_param(name) for name in _NAMES):
        return None
    filters: dict[str, Any] = {}
    for name in ("entity_id", "actor", "q"):
        value = req.get_param(name) or None
        if value is not None and len(value) > 200:
            raise bad_parameter(name, f"'{name}' is at most 200 characters.")
        filters[name] = value
    filters["since_ms"] = _time(req, "since")
    filters["until_ms"] = _time(req, "until")
    return filters
