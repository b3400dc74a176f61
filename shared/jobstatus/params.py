"""Query parameters both services' ``/jobs`` listings take alike."""

from __future__ import annotations

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
