"""Paging: the ``limit`` parameter and the opaque keyset cursor a list hands back.

A cursor is URL-safe base64 of compact JSON naming the last row's sort keys; a list
decodes it with the keys it expects, so another list's cursor, or a forged one, is a
400 rather than a wrong page. A list declares its sort keys and their types once as a
:class:`Keyset`, which encodes a row's position and decodes a request's cursor back to
typed values (one 400 for anything else).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.http.input import bad_parameter


def encode_cursor(position: Mapping[str, Any]) -> str:
    """An opaque cursor for a list position (URL-safe base64 of compact JSON)."""
    raw = json.dumps(position, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str, keys: Iterable[str], name: str = "cursor") -> dict[str, Any]:
    """The position a cursor encodes; 400 when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        position = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        position = None
    if not isinstance(position, dict) or set(position) != set(keys):
        raise bad_parameter(name, f"'{name}' is not a cursor returned by this API.")
    return position


def parse_limit(req, *, default: int = 50, maximum: int = 200, name: str = "limit") -> int:
    raw = req.get_param(name)
    if raw is None or raw == "":
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise bad_parameter(name, f"'{name}' must be an integer, got {raw!r}.") from None
    if not 1 <= limit <= maximum:
        raise bad_parameter(name, f"'{name}' must be between 1 and {maximum}, got {limit}.")
    return limit


#: Largest magnitude of an integer key: the databases' 64-bit integers (a larger one is
#: the caller's 400, not a database error).
_MAX_INT = 2**63


def _not_ours(name: str) -> Exception:
    return bad_parameter(name, f"'{name}' is not a cursor returned by this API.")


def _encode_key(kind: type, value: Any) -> Any:
    if kind is datetime:
        return value.isoformat()
    if kind is uuid.UUID:
        return str(value)
    return value


def _decode_key(kind: type, value: Any) -> Any:
    """The typed key; raises ValueError or TypeError when ``value`` is not one."""
    if kind is datetime:
        if not isinstance(value, str):
            raise TypeError(value)
        return datetime.fromisoformat(value)
    if kind is uuid.UUID:
        if not isinstance(value, str):
            raise TypeError(value)
        return uuid.UUID(value)
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool) or abs(value) >= _MAX_INT:
            raise ValueError(value)
        return value
    if not isinstance(value, str):
        raise TypeError(value)
    return value


@dataclass(frozen=True)
class Keyset:
    """A list's keyset cursor: its sort keys, in order, with their types.

    ``Keyset(("t", datetime), ("i", uuid.UUID))`` pages by creation time, then id; a
    cursor is :meth:`encode` of the last row's keys, and :meth:`after` reads it back
    from a request as a tuple of typed values (None without one).
    """

    keys: tuple[tuple[str, type], ...]

    def __init__(self, *keys: tuple[str, type]):
        for key, kind in keys:
            if kind not in (datetime, uuid.UUID, int, str):
                raise TypeError(f"key {key!r}: a keyset key is datetime, UUID, int or str")
        object.__setattr__(self, "keys", keys)

    def encode(self, *values: Any) -> str:
        return encode_cursor(
            {name: _encode_key(kind, v) for (name, kind), v in zip(self.keys, values, strict=True)}
        )

    def decode(self, raw: str, name: str = "cursor") -> tuple[Any, ...]:
        position = decode_cursor(raw, [k for k, _ in self.keys], name)
        try:
            return tuple(_decode_key(kind, position[key]) for key, kind in self.keys)
        except (TypeError, ValueError, AttributeError):
            raise _not_ours(name) from None

    def after(self, req, name: str = "cursor") -> tuple[Any, ...] | None:
        """The position of the request's ``name`` parameter; None when it has none."""
        raw = req.get_param(name)
        return self.decode(raw, name) if raw else None
