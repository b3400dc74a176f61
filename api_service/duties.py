"""Separation of duties, shared by every entity type: whoever created, owns or sent an
entity to review never makes its decision, by any path (themselves or through a
workflow's approval the workflow service acts on)."""

from __future__ import annotations

from collections.abc import Sequence

from api_service.errors import SeparationOfDuties
from shared.auth import Principal


def is_service(principal: Principal) -> bool:
    return "service" in principal.roles


def _and_join(words: list[str]) -> str:
    return " and ".join([", ".join(words[:-1]), words[-1]] if words[1:] else words)


def check_separation_of_duties(
    principal: Principal,
    deciders: Sequence[str],
    duties: Sequence[tuple[str, str | None]],
    *,
    noun: str,
    target: str,
    verb: str,
    decided: str = "decided",
) -> None:
    """Refuse a decision its decider may not make.

    A person decides for themselves; the workflow service decides for the people who
    decided in it (``deciders``, from ``X-Decided-By``) and must name them. Nobody named
    in ``duties`` (``("created", "alice")``...) may be one of them.
    """
    if is_service(principal):
        if not deciders:
            raise SeparationOfDuties(
                f"The workflow service moves a {noun} to {target} only for the people "
                f"who {decided} it (X-Decided-By); none were named."
            )
        people = list(deciders)
    else:
        people = [principal.sub]
    for person in people:
        did = [what for what, who in duties if who and who == person]
        if did:
            raise SeparationOfDuties(
                f"{person} {_and_join(did)} this {noun}, so someone else must {verb} it."
            )
