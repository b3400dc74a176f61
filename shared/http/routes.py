"""Declared routes: a responder says once who may call it, what it reads and what it
answers, and the toolkit acts on that declaration.

A resource's ``docs`` maps methods to :class:`~shared.http.openapi.Operation`; one made
by :func:`route` is *declared*, and :meth:`ApiDocs.add_route` wraps its responder so
that, in this order, before the responder runs:

1. a caller without one of ``roles`` gets the 401/403 of :func:`shared.auth.require_role`
   (the principal is then on ``req.context.principal``);
2. path parameters declared as UUIDs are checked (400 naming the parameter);
3. the JSON body is read (the resource's ``max_body_bytes``) and validated into
   ``request`` (the 400/413/415/422 of :func:`read_json` and :func:`parse_body`), and
   put on ``req.context.body``;
4. ``resp.status`` starts as the declared ``status``;

and after it, what the responder returns (a dict or a model; None leaves ``resp`` as
the responder set it) is serialised through ``response``. The OpenAPI operation is
written from the same declaration, so the document, the checks and the answers cannot
drift apart.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import falcon
from pydantic import BaseModel, ValidationError

from shared.auth import require_role
from shared.http.input import DEFAULT_MAX_BODY_BYTES, parse_body, parse_uuid, read_json
from shared.http.openapi import Operation, Param

log = logging.getLogger(__name__)


def route(
    summary: str,
    *,
    roles: tuple[str, ...],
    request: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    params: tuple[Param, ...] = (),
    errors: tuple[int, ...] = (),
    parses_body: bool = True,
    authorize: Callable[[Any], Any] | None = None,
) -> Operation:
    """A declared operation: the toolkit enforces ``roles``, parses ``request`` and
    serialises through ``response`` (see the module docstring).

    ``parses_body=False`` leaves reading the body to a responder whose validation
    answers differ from :func:`parse_body`'s; ``request`` then only documents it.
    ``authorize(req)`` replaces :func:`require_role` where a route's refusal says more
    than its roles (it raises the 401/403 and answers the principal)."""
    if not roles:
        raise ValueError(f"a declared route names the roles that may call it: {summary!r}")
    return Operation(
        summary,
        request=request,
        response=response,
        status=status,
        params=params,
        errors=errors,
        roles=roles,
        declared=True,
        parses_body=parses_body,
        authorize=authorize,
    )


def serialize(model: type[BaseModel], result: Any) -> Any:
    """``result`` as JSON-ready data of ``model``; a result the model does not describe
    is a bug of the server (500, logged), never the caller's 422."""
    try:
        return model.model_validate(result).model_dump(mode="json", exclude_unset=True)
    except ValidationError:
        log.exception("answer does not match its response model %s", model.__name__)
        raise falcon.HTTPInternalServerError(
            title="Internal server error",
            description="The server failed to handle this request; it has been logged.",
        ) from None


def declared_responder(
    op: Operation, responder: Callable[..., Any], max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> Callable[..., None]:
    """``responder`` wrapped to act on ``op`` (see the module docstring)."""
    status = falcon.code_to_http_status(op.status)
    # Path ids are checked before the body, so a bad id is its 400 whatever is sent.
    uuid_params = [
        p.name for p in op.params if p.location == "path" and p.schema.get("format") == "uuid"
    ]

    @functools.wraps(responder)
    def respond(req, resp, **params: Any) -> None:
        if op.authorize is not None:
            req.context.principal = op.authorize(req)
        else:
            req.context.principal = require_role(req, *op.roles)
        for name in uuid_params:
            parse_uuid(params[name], name)
        if op.request is not None and op.parses_body:
            req.context.body = parse_body(op.request, read_json(req, max_body_bytes))
        resp.status = status
        result = responder(req, resp, **params)
        if result is None:
            return
        if op.response is None:
            raise TypeError(f"{responder.__qualname__} returned a body but declares no response")
        resp.media = serialize(op.response, result)

    respond.operation = op  # type: ignore[attr-defined]  # read by the route checks
    return respond
