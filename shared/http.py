"""HTTP plumbing both Falcon apps share: errors, input, metrics, probes, OpenAPI.

Every error answer is JSON ``{"title", "description"}`` (plus optional detail fields);
input is read with a size limit and validated by pydantic models that refuse unknown
fields; request metrics are labelled by route template; and the OpenAPI document is
built from the routes a service registers and its pydantic models, so it cannot drift
from the code.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import falcon
import peewee
import redis
from playhouse.pool import MaxConnectionsExceeded
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from shared.auth import principal_of
from shared.db import is_database_unavailable

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 64 * 1024
#: Deepest nesting of objects and arrays a body may have: far more than any request
#: needs, and far less than what makes storing or reading it back recurse too deep.
MAX_JSON_DEPTH = 32


# ------------------------------------------------------------------------------ errors


class ApiError(falcon.HTTPError):
    """An HTTP error with extra JSON fields beside title and description."""

    def __init__(self, status, title: str, description: str, /, **extra: Any):
        super().__init__(status, title=title, description=description)
        self.extra = extra


def error_body(title: str, description: str, /, **extra: Any) -> dict[str, Any]:
    return {"title": title, "description": description, **extra}


def _serialize_error(req, resp, exc: falcon.HTTPError) -> None:
    title = exc.title or str(exc.status)
    description = exc.description
    if description is None:
        if exc.status_code == 404:
            description = f"Nothing is served at {req.path}."
        elif exc.status_code == 405:
            description = f"{req.method} is not allowed on {req.path}."
        else:
            description = title
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps(error_body(title, description, **getattr(exc, "extra", {})))


def _field_name(loc: Sequence[Any], prefix: str) -> str:
    parts = [str(p) for p in loc]
    name = ".".join(parts)
    if prefix:
        return f"{prefix}.{name}" if name else prefix
    return name or "body"


def validation_errors(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """Pydantic errors as ``[{"field", "message"}]`` a caller can act on."""
    errors = []
    for err in exc.errors(include_url=False, include_input=False):
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        errors.append({"field": _field_name(err["loc"], prefix), "message": message})
    return errors


def _handle_validation_error(req, resp, exc: ValidationError, params) -> None:
    errors = validation_errors(exc)
    described = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    raise ApiError(
        falcon.HTTP_422,
        "Invalid request body",
        f"The request body failed validation: {described}.",
        errors=errors,
    )


def _handle_unexpected(req, resp, exc: Exception, params) -> None:
    if isinstance(exc, falcon.HTTPError | falcon.HTTPStatus):
        raise exc
    log.exception("unhandled error on %s %s", req.method, req.path)
    raise falcon.HTTPInternalServerError(
        title="Internal server error",
        description="The server failed to handle this request; it has been logged.",
    )


def _unavailable(req, exc: Exception, what: str, description: str) -> None:
    log.error("%s unavailable on %s %s: %s", what, req.method, req.path, exc)
    raise ApiError(falcon.HTTP_503, f"{what} unavailable", description)


def _handle_database_error(req, resp, exc: Exception, params) -> None:
    """503 when the database cannot be reached now; any other database error is a bug."""
    if not is_database_unavailable(exc):
        _handle_unexpected(req, resp, exc, params)
    _unavailable(req, exc, "Database", "The database could not be reached; retry shortly.")


def _handle_redis_error(req, resp, exc: Exception, params) -> None:
    """503 when Redis cannot be reached now; refused credentials are a configuration bug."""
    if isinstance(exc, redis.AuthenticationError):
        _handle_unexpected(req, resp, exc, params)
    _unavailable(
        req,
        exc,
        "Redis",
        "The queue and job-status store (Redis) could not be reached; retry shortly.",
    )


def install_error_handling(app: falcon.App) -> None:
    """JSON errors everywhere: HTTP errors, validation errors, unexpected exceptions.

    A database or Redis that cannot be reached now is a 503 (retry later), not a 500;
    other database errors (a missing table, a timeout, a deadlock) are 500s, logged
    with their traceback.
    """
    app.set_error_serializer(_serialize_error)
    app.add_error_handler(Exception, _handle_unexpected)
    app.add_error_handler(ValidationError, _handle_validation_error)
    app.add_error_handler(peewee.DatabaseError, _handle_database_error)
    app.add_error_handler(peewee.InterfaceError, _handle_database_error)
    app.add_error_handler(MaxConnectionsExceeded, _handle_database_error)
    app.add_error_handler(redis.ConnectionError, _handle_redis_error)
    app.add_error_handler(redis.TimeoutError, _handle_redis_error)


# ------------------------------------------------------------------------------- input


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


# ----------------------------------------------------------------------------- metrics


class RequestMetrics:
    """Falcon middleware: request count and latency per route template, method, status."""

    def __init__(self, registry: CollectorRegistry, prefix: str):
        self.requests = Counter(
            f"{prefix}_http_requests",
            "HTTP requests handled",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{prefix}_http_request_duration_seconds",
            "HTTP request latency",
            ["route", "method"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )

    def process_request(self, req, resp):
        req.context.started = time.perf_counter()

    def process_response(self, req, resp, resource, req_succeeded):
        started = getattr(req.context, "started", None)
        if started is None:
            return
        # Unknown paths share one label so scanners cannot blow up the label set.
        route = req.uri_template or "<unmatched>"
        self.latency.labels(route, req.method).observe(time.perf_counter() - started)
        self.requests.labels(route, req.method, str(resp.status_code)).inc()


class MetricsResource:
    """/metrics: counts across every tenant, so an ``operator`` token is required (a
    tenant's ``admin`` is not enough) unless ``public`` (METRICS_PUBLIC=true, for a
    port that only the scraper can reach)."""

    def __init__(self, registry: CollectorRegistry, *, public: bool = False):
        self.registry = registry
        self.auth_public = public
        self.docs = {
            "GET": Operation(
                "Prometheus metrics in the text exposition format",
                roles=() if public else ("operator",),
            )
        }

    def on_get(self, req, resp):
        """Prometheus metrics in the text exposition format."""
        if not self.auth_public:
            require_operator(req, "Metrics span every tenant")
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = generate_latest(self.registry)


def require_operator(req, why: str):
    """The caller if it holds ``operator`` (platform staff); 403 otherwise. A tenant's
    ``admin`` does not pass: what this guards spans tenants."""
    principal = principal_of(req)
    if "operator" not in principal.roles:
        raise falcon.HTTPForbidden(
            title="Forbidden", description=f"{why}: this needs the role operator."
        )
    return principal


# ---------------------------------------------------------------------------- headers


class SecurityHeaders:
    """Falcon middleware: every answer says ``X-Content-Type-Options: nosniff``, and
    answers that did not choose their own caching (the console's files do) are
    ``Cache-Control: no-store``, since API answers hold tenant data.

    Put it first in the middleware list: its ``process_response`` then runs last, over
    error answers too.
    """

    def process_response(self, req, resp, resource, req_succeeded):
        resp.set_header("X-Content-Type-Options", "nosniff")
        if resp.get_header("Cache-Control") is None:
            resp.set_header("Cache-Control", "no-store")


# ----------------------------------------------------------------------------- OpenAPI


@dataclass(frozen=True)
class Param:
    name: str
    location: str = "query"  # query | header | path
    description: str = ""
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


@dataclass(frozen=True)
class Operation:
    """What a responder accepts and answers, for the OpenAPI document."""

    summary: str = ""
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    roles: tuple[str, ...] = ()


_ERROR_SCHEMA = {
    "type": "object",
    "required": ["title", "description"],
    "properties": {
        "title": {"type": "string"},
        "description": {"type": "string"},
        # Detail some errors add: the fields that failed validation, the moves a
        # lifecycle allows, the version a stale write missed.
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "allowed": {"type": "array", "items": {"type": "string"}},
        "current_version": {"type": "integer"},
    },
}
_REASONS = {
    400: "Bad request",
    401: "Missing or invalid token",
    403: "Role not allowed",
    404: "Not found",
    409: "Conflict",
    412: "Precondition failed (stale version)",
    413: "Body too large",
    415: "Unsupported media type",
    422: "Validation error",
    503: "Unavailable: the database or Redis cannot be reached",
}
_PATH_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")


class ApiDocs:
    """Registers routes on a Falcon app and describes them in an OpenAPI 3.1 document.

    A resource may carry ``docs = {"GET": Operation(...), ...}``; a responder without
    an entry is still listed, with its docstring as summary, so every route appears.
    """

    def __init__(self, title: str, version: str, description: str = ""):
        self.info = {"title": title, "version": version, "description": description}
        self.routes: list[tuple[str, Any, str]] = []
        self._document: dict[str, Any] | None = None

    def add_route(self, app: falcon.App, template: str, resource: Any, suffix: str = "") -> None:
        if suffix:
            app.add_route(template, resource, suffix=suffix)
        else:
            app.add_route(template, resource)
        self.routes.append((template, resource, suffix))
        self._document = None

    def document(self) -> dict[str, Any]:
        if self._document is None:
            self._document = self._build()
        return self._document

    def _operations(self, resource: Any, suffix: str):
        docs = getattr(resource, "docs", None)
        if not isinstance(docs, Mapping):
            docs = {}
        for method in falcon.COMBINED_METHODS:
            name = f"on_{method.lower()}" + (f"_{suffix}" if suffix else "")
            responder = getattr(resource, name, None)
            if responder is None:
                continue
            op = docs.get(method)
            if op is None:
                op = Operation(summary=(responder.__doc__ or "").strip().split("\n")[0])
            yield method, op

    def _build(self) -> dict[str, Any]:
        models: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
        for _template, resource, suffix in self.routes:
            for _, op in self._operations(resource, suffix):
                if op.request:
                    models[(op.request, "validation")] = None
                if op.response:
                    models[(op.response, "serialization")] = None
        key_map, schemas = models_json_schema(
            list(models), ref_template="#/components/schemas/{model}"
        )
        paths: dict[str, dict[str, Any]] = {}
        for template, resource, suffix in self.routes:
            path = _PATH_PARAM.sub(r"{\1}", template)
            public = getattr(resource, "auth_public", False)
            item = paths.setdefault(path, {})
            for method, op in self._operations(resource, suffix):
                item[method.lower()] = self._operation(template, method, op, key_map, public)
        components: dict[str, Any] = {
            "schemas": {**schemas.get("$defs", {}), "Error": _ERROR_SCHEMA},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        }
        return {
            "openapi": "3.1.0",
            "info": self.info,
            "paths": paths,
            "components": components,
            "security": [{"bearer": []}],
        }

    def _operation(self, template, method, op: Operation, key_map, public: bool):
        summary = op.summary
        if op.roles:
            summary += f" (roles: {', '.join(op.roles)})"
        slug = re.sub(r"[^a-z0-9]+", "_", template.lower()).strip("_")
        out: dict[str, Any] = {"summary": summary, "operationId": f"{method.lower()}_{slug}"}
        declared = {p.name for p in op.params if p.location == "path"}
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PATH_PARAM.findall(template)
            if name not in declared
        ]
        for p in op.params:
            params.append(
                {
                    "name": p.name,
                    "in": p.location,
                    "required": p.required or p.location == "path",
                    "description": p.description,
                    "schema": dict(p.schema),
                }
            )
        if params:
            out["parameters"] = params
        if op.request:
            ref = key_map[(op.request, "validation")]
            out["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref}},
            }
        ok: dict[str, Any] = {"description": "Success"}
        if op.response:
            ok["content"] = {
                "application/json": {"schema": key_map[(op.response, "serialization")]}
            }
        responses: dict[str, Any] = {str(op.status): ok}
        codes = set(op.errors)
        if not public:
            codes |= {401, 503}
        if op.request:
            codes |= {400, 413, 415, 422}
        if op.roles:
            codes |= {403}
        for code in sorted(codes):
            responses[str(code)] = {
                "description": _REASONS.get(code, "Error"),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        out["responses"] = responses
        if public:
            out["security"] = []
        return out


class OpenAPIResource:
    auth_public = True

    def __init__(self, api_docs: ApiDocs):
        self.api_docs = api_docs

    def on_get(self, req, resp):
        """This API's OpenAPI 3.1 document."""
        resp.media = self.api_docs.document()


# ------------------------------------------------------------------------------ probes

ReadinessCheck = tuple[str, Callable[[], object]]  # a check raises to fail


class HealthResource:
    auth_public = True

    def on_get(self, req, resp):
        """Liveness: the process answers."""
        resp.media = {"status": "ok"}


class ReadinessResource:
    """Readiness: every named check passes (a check raises to fail).

    The answer is public, so it says only ``ok`` or ``failed`` per check; what failed
    and why (hosts, ports, error text) goes to the log.
    """

    auth_public = True
    docs = {"GET": Operation("Readiness: 503 naming the dependency that failed", errors=(503,))}

    def __init__(self, checks: Sequence[ReadinessCheck]):
        self.checks = list(checks)

    def on_get(self, req, resp):
        """Readiness: 503 naming the dependency that failed."""
        results: dict[str, str] = {}
        failed = []
        for name, check in self.checks:
            try:
                check()
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                log.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
                results[name] = "failed"
                failed.append(name)
            else:
                results[name] = "ok"
        if failed:
            raise ApiError(
                falcon.HTTP_503,
                "Not ready",
                f"Failing checks: {', '.join(failed)}.",
                checks=results,
            )
        resp.media = {"status": "ready", "checks": results}


def add_standard_routes(
    app: falcon.App,
    docs: ApiDocs,
    *,
    registry: CollectorRegistry,
    checks: Sequence[ReadinessCheck],
    metrics_public: bool = False,
) -> None:
    """/healthz, /readyz, /metrics (an operator's, unless ``metrics_public``) and
    /openapi.json."""
    docs.add_route(app, "/healthz", HealthResource())
    docs.add_route(app, "/readyz", ReadinessResource(checks))
    docs.add_route(app, "/metrics", MetricsResource(registry, public=metrics_public))
    docs.add_route(app, "/openapi.json", OpenAPIResource(docs))
