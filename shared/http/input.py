"""Request input: the JSON body read with a size and depth limit, validated by pydantic
models that refuse unknown fields, and path and query parameters checked before they
reach the domain."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any, TypeVar

import falcon
from pydantic import BaseModel, ConfigDict

from shared.http.errors import ApiError

DEFAULT_MAX_BODY_BYTES = 64 * 1024
#: needs, and far less than what makes storing or reading it back recurse too deep.
MAX_JSON_DEPTH = 32


class StrictModel(BaseModel):
    """Base of request models: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


def read_json(req, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Any:
    """The request's JSON body; 413 above ``max_bytes``, 415 or 400 when it is not JSON."""
    length = req.content_length
    if length is not None and length > max_bytes:
        raise falcon.HTTPContentTooLarge(
            title="Request body too large",
            description=f"The body is {length} bytes; the limit is {max_bytes} bytes.",
        )
    content_type = (req.content_type or "").split(";")[0].strip().lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise falcon.HTTPUnsupportedMediaType(
            title="Unsupported media type",
            description=f"Send the body as application/json, not {content_type}.",
        )
    raw = req.bounded_stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise falcon.HTTPContentTooLarge(
            title="Request body too large",
            description=f"The body exceeds the limit of {max_bytes} bytes.",
        )
    if not raw.strip():
        raise falcon.HTTPBadRequest(title="Missing body", description="A JSON body is required.")
    try:
        data = json.loads(raw, parse_constant=_no_constants)
    except NotJsonNumber as exc:
        raise falcon.HTTPBadRequest(
            title="Malformed JSON", description=f"{exc} is not a JSON number."
        ) from None
    except RecursionError:
        raise falcon.HTTPBadRequest(
            title="Malformed JSON", description="The body is nested too deeply."
        ) from None
    except UnicodeDecodeError:
        raise falcon.HTTPBadRequest(
            title="Malformed JSON", description="The body is not valid UTF-8."
        ) from None
    except json.JSONDecodeError as exc:
        raise falcon.HTTPBadRequest(
            title="Malformed JSON",
            description=f"The body is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}.",
        ) from None
    except ValueError:  # valid JSON that Python will not read: a 5000-digit number
        raise falcon.HTTPBadRequest(
            title="Malformed JSON", description="The body holds a number with too many digits."
        ) from None
    try:
        where = _nul_path(data, "body")
    except BodyTooDeep as exc:
        raise falcon.HTTPBadRequest(
            title="Malformed JSON",
            description=f"The body is nested more than {MAX_JSON_DEPTH} levels deep (at {exc}).",
        ) from None
    if where:
        raise falcon.HTTPBadRequest(
            title="Invalid character",
            description=f"{where} contains a NUL character (\\u0000), which no field accepts.",
        )
    return data


class NotJsonNumber(ValueError):
    """NaN or Infinity: Python's reader takes them, JSON (and other readers) do not."""


def _no_constants(name: str) -> Any:
    raise NotJsonNumber(name)


def _nul_path(value: Any, path: str, depth: int = 0) -> str | None:
    """Where in a parsed body a string holds NUL: databases refuse it (PostgreSQL text).

    Raises :class:`BodyTooDeep` past :data:`MAX_JSON_DEPTH` levels of nesting.
    """
    if isinstance(value, str):
        return path if "\x00" in value else None
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    if depth >= MAX_JSON_DEPTH:
        raise BodyTooDeep(path)
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return path
        found = _nul_path(item, f"{path}.{key}", depth + 1)
        if found:
            return found
    return None


class BodyTooDeep(ValueError):
    """A body nested deeper than :data:`MAX_JSON_DEPTH` (at the path it names)."""


M = TypeVar("M", bound=BaseModel)


def parse_body(model: type[M], data: Any) -> M:
    """Validate ``data`` against ``model``; a ValidationError becomes a 422 naming fields."""
    if not isinstance(data, dict):
        raise ApiError(
            falcon.HTTP_422,
            "Invalid request body",
            f"The body must be a JSON object, not {type(data).__name__}.",
            errors=[{"field": "body", "message": "must be a JSON object"}],
        )
    return model.model_validate(data)


def bad_parameter(name: str, description: str) -> falcon.HTTPBadRequest:
    return falcon.HTTPBadRequest(title=f"Invalid parameter '{name}'", description=description)


def parse_uuid(value: str, name: str) -> uuid.UUID:
    """A UUID path or query parameter; 400 naming ``name`` when it is not one."""
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise bad_parameter(name, f"'{name}' must be a UUID, got {value!r}.") from None


def parse_choice(req, name: str, choices: Iterable[str]) -> str | None:
    raw = req.get_param(name)
    if raw is None or raw == "":
        return None
    allowed = list(choices)
    if raw not in allowed:
        raise bad_parameter(name, f"'{name}' must be one of {', '.join(allowed)}; got {raw!r}.")
    return raw


#: Longest request target (path and query) the services read; longer is a 414. Gunicorn's
#: own request-line limit is lifted (deploy/gunicorn.conf.py) so this JSON answer is
#: the one a client gets, not gunicorn's HTML page.
MAX_URL_CHARS = 4096


class QueryGuard:
    """Falcon middleware: an over-long URL is a 414, and a path or query parameter
    holding NUL is a 400, not a database error."""

    def process_request(self, req, resp):
        target = req.env.get("RAW_URI") or req.relative_uri
        if len(target) > MAX_URL_CHARS:
            raise falcon.HTTPUriTooLong(
                title="URL too long",
                description=(
                    f"The URL has {len(target)} characters; at most {MAX_URL_CHARS} are read. "
                    "Send fewer or shorter query parameters."
                ),
            )
        if "\x00" in req.path:
            raise falcon.HTTPBadRequest(
                title="Invalid path",
                description="The path contains a NUL character (%00), which no id holds.",
            )
        for name, value in req.params.items():
            values = value if isinstance(value, list) else [value]
            if any("\x00" in v for v in values) or "\x00" in name:
                raise bad_parameter(name, f"Parameter {name!r} contains a NUL character.")
