"""Paging: the ``limit`` parameter and the opaque keyset cursor a list hands back.

A cursor is URL-safe base64 of compact JSON naming the last row's sort keys; a list
decodes it with the keys it expects, so another list's cursor, or a forged one, is a
400 rather than a wrong page.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
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
