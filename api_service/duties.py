"""Separation of duties, shared by every entity type: whoever created, owns or sent an
entity to review never makes its decision, by any path (themselves or through a
workflow's approval the workflow service acts on)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import peewee

from api_service.errors import SeparationOfDuties
from api_service.models import database
from shared.auth import Principal
from shared.db import is_postgres


def is_service(principal: Principal) -> bool:
    return "service" in principal.roles


def former_holders(
    version_model: Any, entity_field: str, entity_id: Any, field: str, current: str | None
) -> list[str]:
    """Who held ``field`` (an owner, assessor or collector) in an earlier version of the
    entity and holds it no longer, sorted: a hand-over before a decision does not let
    them decide on their own work.

    Read from the version snapshots in the database (the field only, never a snapshot's
    content)."""
    column = version_model.snapshot
    if is_postgres(database.obj):
        value = peewee.fn.json_extract_path_text(peewee.Cast(column, "json"), field)
    else:
        value = peewee.fn.json_extract(column, f"$.{field}")
    query = (
        version_model.select(value)
        .where(getattr(version_model, entity_field) == entity_id)
        .distinct()
        .tuples()
    )
    return sorted(who for (who,) in query if who and who != current)


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
