"""The indexed matcher gives exactly what testing each workflow with ``matches`` gives."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from typing import Any

import pytest

from workflow_service.conditions import OPERATORS, matches, resolve
from workflow_service.matching import WorkflowIndex, compile_path


class Status(enum.StrEnum):
    ACTIVE = "active"


@dataclass(frozen=True)
class Flow:
    id: int
    conditions: tuple[Any, ...]


FIELDS = ["a", "b", "c.d", "c", "tags", "tags.0", "tags.1", "event.actor", "event", "missing"]
NAN = float("nan")
SCALARS: list[Any] = [0, 1, 2, 1.0, 0.0, -0.0, 2.5, True, False, None, "", "x", "y", "1"]
SCALARS += ["active", "ACTIVE", "2026-01-01", NAN, 10**20, float(10**20)]


def scalar(rng: random.Random) -> Any:
    return rng.choice(SCALARS)


def value(rng: random.Random) -> Any:
    """Anything a condition's value or an event's field may hold (and a few it should not)."""
    roll = rng.random()
    if roll < 0.6:
        return scalar(rng)
    if roll < 0.85:
        return [scalar(rng) for _ in range(rng.randint(0, 3))]
    if roll < 0.9:
        return [[scalar(rng)], {"k": scalar(rng)}]  # unhashable items
    if roll < 0.95:
        return {"d": scalar(rng), "k": scalar(rng)}
    return Status.ACTIVE  # equal to "active", hashed differently


def condition(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.005:
        return {"field": "a", "op": "unknown", "value": 1}
    if roll < 0.01:
        return {"op": "eq", "value": 1}  # no field
    op = rng.choice(["eq", "eq", "eq", "in", "in", *OPERATORS])
    made = {"field": rng.choice(FIELDS), "op": op}
    if rng.random() < 0.9:  # a condition may leave its value out
        made["value"] = value(rng)
    return made


def event_data(rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    data: dict[str, Any] = {}
    for name in ("a", "b", "tags"):
        if rng.random() < 0.8:
            data[name] = value(rng)
    if rng.random() < 0.7:
        data["c"] = {"d": value(rng)} if rng.random() < 0.8 else value(rng)
    envelope = {"actor": value(rng)} if rng.random() < 0.7 else {}
    return data, envelope


def expected(workflows: list[Flow], data, envelope) -> Any:
    try:
        return [w for w in workflows if matches(w.conditions, data, envelope)]
    except Exception as exc:  # noqa: BLE001 - the same error is expected of the index
        return type(exc)


def indexed(index: WorkflowIndex[Flow], data, envelope) -> Any:
    try:
        return index.match(data, envelope)
    except Exception as exc:  # noqa: BLE001
        return type(exc)


@pytest.mark.parametrize("seed", range(4))
def test_the_index_matches_exactly_what_matches_does(seed):
    rng = random.Random(seed)
    cases = 0
    hits = 0
    for _ in range(150):
        workflows = [
            Flow(i, tuple(condition(rng) for _ in range(rng.randint(0, 3))))
            for i in range(rng.randint(0, 40))
        ]
        index = WorkflowIndex(workflows)
        for _ in range(20):
            data, envelope = event_data(rng)
            want = expected(workflows, data, envelope)
            assert indexed(index, data, envelope) == want, (workflows, data, envelope)
            cases += 1
            hits += isinstance(want, list) and len(want) > 0
    # The cases are not all trivial: many events match some workflows.
    assert cases == 3000 and hits > cases // 4


def test_a_workflow_is_found_through_its_equality_conditions_only_once():
    workflows = [
        Flow(0, ({"field": "a", "op": "in", "value": [1, True, 1.0, "x"]},)),
        Flow(1, ({"field": "a", "op": "eq", "value": 1}, {"field": "b", "op": "gt", "value": 2})),
        Flow(2, ({"field": "b", "op": "lt", "value": 5},)),
        Flow(3, ({"field": "a", "op": "eq", "value": [1]},)),
    ]
    index = WorkflowIndex(workflows)
    assert [w.id for w in index.match({"a": 1, "b": 3})] == [0, 1, 2]
    assert [w.id for w in index.match({"a": True, "b": 1})] == [0, 2]
    assert [w.id for w in index.match({"a": [1], "b": 9})] == [3]
    assert index.match({}) == []


def test_a_str_enum_value_matches_as_its_string():
    workflows = [Flow(0, ({"field": "status", "op": "eq", "value": "active"},))]
    assert WorkflowIndex(workflows).match({"status": Status.ACTIVE}) == workflows


def test_an_unknown_operator_raises_as_matches_does():
    workflows = [Flow(0, ({"field": "a", "op": "near", "value": 1},))]
    with pytest.raises(KeyError):
        matches(workflows[0].conditions, {"a": 1})
    with pytest.raises(KeyError):
        WorkflowIndex(workflows).match({"a": 1})


@pytest.mark.parametrize("path", ["a", "c.d", "tags.0", "tags.9", "event.actor", "event", "x.y"])
def test_a_compiled_path_reads_what_resolve_reads(path):
    data = {"a": 1, "c": {"d": [2]}, "tags": ["t"], "event": "in data", "x": 3}
    envelope = {"actor": "alice"}
    assert compile_path(path)(data, envelope) is resolve(path, data, envelope)
