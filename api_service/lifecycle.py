"""The policy lifecycle: which status may follow which, and who may move it there."""

from __future__ import annotations

from shared.lifecycles import POLICY

STATUSES = POLICY.statuses
TRANSITIONS = POLICY.transitions

#: Roles that may make a move; a move not listed here is open to editors (and admins
#: and the workflow service). Approving is a decision, so an editor cannot make it:
#: otherwise whoever writes a policy could approve it.
_DECISION_ROLES = ("approver", "service")
_EDITOR_ROLES = ("editor", "service")
MOVE_ROLES: dict[tuple[str, str], tuple[str, ...]] = {
    ("in_review", "approved"): _DECISION_ROLES,
    ("in_review", "draft"): ("editor", "approver", "service"),
}


#: Moves to these statuses are decisions: separation of duties applies (whoever
#: created, owns or submitted the policy never makes them).
DECISIONS = frozenset({"approved"})
#: Statuses whose content may not change: reviewers decide on the version they were
#: asked about, so an edit must withdraw the policy to draft first.
FROZEN = frozenset({"in_review"})
#: The status whose move records who submitted the policy.
SUBMITTED = "in_review"


def allowed_targets(status: str) -> tuple[str, ...]:
    return TRANSITIONS.get(status, ())


def roles_for(old: str, new: str) -> tuple[str, ...]:
    """Roles (besides admin) that may move a policy from ``old`` to ``new``."""
    return MOVE_ROLES.get((old, new), _EDITOR_ROLES)
