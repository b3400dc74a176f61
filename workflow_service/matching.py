"""Matching an event against many workflows without testing each one.

:func:`workflow_service.conditions.matches` tests one workflow's conditions; an event
tested against every active workflow of its trigger costs as much as there are
workflows. :class:`WorkflowIndex` is built once per cache entry: each condition
compiled (its path split once, its operator looked up once), and each workflow filed
under one of its equality conditions (``eq``, or ``in`` with a list of values) in a
dict ``field -> value -> workflows``. An event looks up its own value of each indexed
field, tests only the other conditions of the workflows it finds there, and tests in
full the workflows with nothing to index. The answer is exactly what ``matches``
gives for every workflow, in the entry's order.

Only values whose equality agrees with their hash are used as keys or looked up:
``str``, ``int``, ``float`` (not NaN), ``bool`` and ``None``, by exact type (a ``str``
enum hashes its name, not its value). An event value of any other type is compared
the slow way against every workflow filed under that field.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from workflow_service.conditions import MISSING, OPERATORS, matches

Getter = Callable[[Mapping[str, Any], Mapping[str, Any]], Any]
_KEY_TYPES = (str, int, float, bool, type(None))


class HasConditions(Protocol):
    @property
    def conditions(self) -> Sequence[Mapping[str, Any]]: ...


W = TypeVar("W", bound=HasConditions)


def compile_path(path: str) -> Getter:
    """A getter equivalent to ``resolve(path, data, envelope)``."""
    parts = path.split(".")
    from_envelope = parts[0] == "event" and len(parts) > 1
    if from_envelope:
        parts = parts[1:]
    steps = tuple((part, int(part) if part.isdigit() else None) for part in parts)

    def get(data: Mapping[str, Any], envelope: Mapping[str, Any]) -> Any:
        current: Any = envelope if from_envelope else data
        for part, index in steps:
            if isinstance(current, Mapping):
                if part not in current:
                    return MISSING
                current = current[part]
            elif isinstance(current, list) and index is not None:
                if index >= len(current):
                    return MISSING
                current = current[index]
            else:
                return MISSING
        return current

    return get


def _is_key(value: Any) -> bool:
    if type(value) not in _KEY_TYPES:
        return False
    return not (type(value) is float and math.isnan(value))


@dataclass(slots=True)
class _Check:
    field: str
    test: Callable[[Any, Any], bool]
    value: Any


@dataclass(slots=True)
class _Compiled:
    """One workflow: its position in the entry, and its conditions ready to test."""

    position: int
    checks: tuple[_Check, ...]
    #: Without the condition the workflow is filed under (for a hit on that value).
    rest: tuple[_Check, ...]
    #: Conditions that do not compile (no field, unknown operator): tested by ``matches``.
    raw: Sequence[Mapping[str, Any]] | None = None


def _compile(position: int, conditions: Sequence[Mapping[str, Any]]) -> tuple[_Compiled, Any]:
    """The compiled workflow and the (field, keys) it is filed under, or None."""
    checks = []
    for condition in conditions:
        if (
            not isinstance(condition, Mapping)
            or not isinstance(condition.get("field"), str)
            or condition.get("op") not in OPERATORS
        ):
            # Let ``matches`` raise (or not) exactly where it does today.
            return _Compiled(position, (), (), raw=conditions), None
        checks.append(
            _Check(condition["field"], OPERATORS[condition["op"]], condition.get("value"))
        )
    for i, condition in enumerate(conditions):
        op, value = condition["op"], condition.get("value")
        if op == "eq" and _is_key(value):
            keys = [value]
        elif op == "in" and isinstance(value, list) and value and all(map(_is_key, value)):
            keys = value
        else:
            continue
        rest = tuple(checks[:i] + checks[i + 1 :])
        return _Compiled(position, tuple(checks), rest), (condition["field"], keys)
    return _Compiled(position, tuple(checks), tuple(checks)), None


class WorkflowIndex(Generic[W]):
    """The workflows of one cache entry, ready to be matched against events."""

    def __init__(self, workflows: Sequence[W]):
        self.workflows = list(workflows)
        self._getters: dict[str, Getter] = {}
        #: field -> value -> workflows filed under that value (each once per value).
        self._index: dict[str, dict[Any, list[_Compiled]]] = {}
        #: field -> every workflow filed under it (for values that cannot be looked up).
        self._filed: dict[str, list[_Compiled]] = {}
        self._scan: list[_Compiled] = []
        for position, workflow in enumerate(self.workflows):
            compiled, filed = _compile(position, workflow.conditions)
            for check in compiled.checks:
                if check.field not in self._getters:
                    self._getters[check.field] = compile_path(check.field)
            if filed is None:
                self._scan.append(compiled)
                continue
            field, keys = filed
            by_value = self._index.setdefault(field, {})
            for key in keys:
                bucket = by_value.setdefault(key, [])
                if not bucket or bucket[-1] is not compiled:  # [1, True] is one key
                    bucket.append(compiled)
            self._filed.setdefault(field, []).append(compiled)

    def __len__(self) -> int:
        return len(self.workflows)

    def match(self, data: Mapping[str, Any], envelope: Mapping[str, Any] | None = None) -> list[W]:
        """The workflows whose conditions all hold for the event, in entry order."""
        envelope = envelope or {}
        values: dict[str, Any] = {}

        def value_of(field: str) -> Any:
            if field in values:
                return values[field]
            value = values[field] = self._getters[field](data, envelope)
            return value

        def holds(checks: tuple[_Check, ...]) -> bool:
            return all(check.test(value_of(check.field), check.value) for check in checks)

        positions: list[int] = []
        for field, by_value in self._index.items():
            actual = value_of(field)
            if actual is MISSING:
                continue  # neither eq nor in holds on a missing field
            if _is_key(actual):
                for compiled in by_value.get(actual, ()):
                    if holds(compiled.rest):
                        positions.append(compiled.position)
            else:
                for compiled in self._filed[field]:
                    if holds(compiled.checks):
                        positions.append(compiled.position)
        for compiled in self._scan:
            if compiled.raw is not None:
                if matches(compiled.raw, data, envelope):
                    positions.append(compiled.position)
            elif holds(compiled.checks):
                positions.append(compiled.position)
        positions.sort()
        return [self.workflows[p] for p in positions]
