"""Workflow conditions: ``{"field", "op", "value"}`` tests against a trigger's data.

Fields are dotted paths into the event's ``data`` (``owner``, ``changes.status.new``);
a path starting with ``event.`` reads the envelope instead (``event.actor``,
``event.event_type``). A missing field never raises: ordering operators are false on
it, ``ne`` and ``not_in`` are true, ``exists`` says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

MISSING: Any = object()


def resolve(path: str, data: Mapping[str, Any], envelope: Mapping[str, Any]) -> Any:
    """The value at dotted ``path``, or :data:`MISSING`. List items by index (``tags.0``)."""
    parts = path.split(".")
    current: Any = data
    if parts[0] == "event" and len(parts) > 1:
        current, parts = envelope, parts[1:]
    for part in parts:
        if isinstance(current, Mapping):
            if part not in current:
                return MISSING
            current = current[part]
        elif isinstance(current, list) and part.isdigit():
            index = int(part)
            if index >= len(current):
                return MISSING
            current = current[index]
        else:
            return MISSING
    return current


def _ordered(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def check(actual: Any, expected: Any) -> bool:
        if actual is MISSING or actual is None:
            return False
        numbers = (int, float)
        if isinstance(actual, bool) or isinstance(expected, bool):
            return False
        if isinstance(actual, numbers) and isinstance(expected, numbers):
            return compare(actual, expected)
        if isinstance(actual, str) and isinstance(expected, str):
            # ISO dates and times order correctly as strings.
            return compare(actual, expected)
        return False

    return check


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    if isinstance(actual, list | Mapping):
        try:
            return expected in actual
        except TypeError:
            return False
    return False


def _exists(actual: Any, expected: Any) -> bool:
    present = actual is not MISSING and actual is not None
    return present == (True if expected is None else bool(expected))


def _in(actual: Any, expected: Any) -> bool:
    return actual is not MISSING and isinstance(expected, list) and actual in expected


OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda actual, expected: actual is not MISSING and actual == expected,
    "ne": lambda actual, expected: actual is MISSING or actual != expected,
    "in": _in,
    "not_in": lambda actual, expected: not _in(actual, expected),
    "gt": _ordered(lambda a, b: a > b),
    "gte": _ordered(lambda a, b: a >= b),
    "lt": _ordered(lambda a, b: a < b),
    "lte": _ordered(lambda a, b: a <= b),
    "contains": _contains,
    "exists": _exists,
}


def matches(
    conditions: Iterable[Mapping[str, Any]],
    data: Mapping[str, Any],
    envelope: Mapping[str, Any] | None = None,
) -> bool:
    """True when every condition holds (an empty list always matches)."""
    envelope = envelope or {}
    for condition in conditions:
        actual = resolve(condition["field"], data, envelope)
        if not OPERATORS[condition["op"]](actual, condition.get("value")):
            return False
    return True
