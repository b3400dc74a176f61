"""The OpenAPI 3.1 document, built from the routes a service registers and the
pydantic models their declarations name, so it cannot drift from the code."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import falcon
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from shared.http.input import DEFAULT_MAX_BODY_BYTES


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
    #: Made by :func:`shared.http.routes.route`: the toolkit enforces the roles, parses
    #: the request and serialises the response (otherwise the responder does, and this
    #: only describes it).
    declared: bool = False
    #: False: a declared responder reads its body itself (its own validation answers);
    #: ``request`` then only documents the body.
    parses_body: bool = True
    #: Checks the caller instead of ``require_role(req, *roles)`` and answers the
    #: principal; for routes whose refusal says more than the roles (``roles`` still
    #: documents who may call them).
    authorize: Callable[[Any], Any] | None = None


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
        """Route ``template`` to ``resource``; its declared responders are wrapped to act
        on their declaration (:mod:`shared.http.routes`)."""
        from shared.http.routes import declared_responder

        max_body_bytes = getattr(resource, "max_body_bytes", DEFAULT_MAX_BODY_BYTES)
        for method, op in self._operations(resource, suffix):
            name = _responder_name(method, suffix)
            responder = getattr(resource, name)
            if op.declared and getattr(responder, "operation", None) is not op:
                setattr(resource, name, declared_responder(op, responder, max_body_bytes))
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
            responder = getattr(resource, _responder_name(method, suffix), None)
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
        if op.roles:
            # Machine-readable; for a declared route, the roles the server enforces.
            out["x-roles"] = list(op.roles)
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


def _responder_name(method: str, suffix: str) -> str:
    return f"on_{method.lower()}" + (f"_{suffix}" if suffix else "")


class OpenAPIResource:
    auth_public = True

    def __init__(self, api_docs: ApiDocs):
        self.api_docs = api_docs

    def on_get(self, req, resp):
        """This API's OpenAPI 3.1 document."""
        resp.media = self.api_docs.document()
