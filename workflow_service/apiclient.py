"""The workflow service's HTTP client for the api, with a short-lived service token.

Steps call the api only through this: it signs a service token (``SERVICE_TOKEN_SECRET``,
the service audience, roles ``["service"]``) for the execution's tenant, cached until
shortly before it expires, and keeps one pooled connection set per process. A user
token can never carry the ``service`` role, so only this client acts as the service.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from shared.auth import issue_service_token
from shared.lifecycles import lifecycle_of

SERVICE_SUBJECT = "workflow-service"
TOKEN_TTL_S = 300
#: Items per page when reading a whole collection (the api's largest page).
PAGE_SIZE = 200
#: Fields of an entity the api answers with that a run's entity data leaves out, as
#: trigger events do (``content`` can be large; ``id`` and ``type`` are set apart).
NOT_IN_SNAPSHOT = frozenset({"id", "tenant", "content", "jobs"})


class ApiUnavailable(Exception):
    """The api could not be asked, or answered with an error that is not about the
    entity (a retry may succeed)."""


class ApiRefused(ValueError):
    """The api refused a request as invalid (400/422): asking again will not help."""


class ApiClient:
    def __init__(
        self,
        base_url: str,
        service_secret: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport)
        self.service_secret = service_secret
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def service_token(self, tenant_id: str) -> str:
        now = time.time()
        with self._lock:
            cached = self._tokens.get(tenant_id)
            if cached and cached[1] - now > 60:
                return cached[0]
            token = issue_service_token(
                self.service_secret, tenant_id, SERVICE_SUBJECT, ttl=TOKEN_TTL_S
            )
            self._tokens[tenant_id] = (token, now + TOKEN_TTL_S)
            return token

    def request(
        self,
        method: str,
        path: str,
        tenant_id: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        all_headers = {"Authorization": f"Bearer {self.service_token(tenant_id)}"}
        all_headers.update(headers or {})
        return self.http.request(method, path, json=json, headers=all_headers)

    def iter_entities(
        self, tenant_id: str, collection: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """See :func:`iter_entities`."""
        return iter_entities(self, tenant_id, collection, params)

    def close(self) -> None:
        self.http.close()


def iter_entities(
    api: Any,
    tenant_id: str,
    collection: str,
    params: Mapping[str, Any] | None = None,
    *,
    page_size: int = PAGE_SIZE,
) -> Iterator[dict[str, Any]]:
    """Every item of an api collection (``policies``, later ``assessments``,
    ``evidence``) that ``params`` (the collection's list filters) select, as the api
    lists them, through ``api`` (an :class:`ApiClient`) with the tenant's service token.

    Reads one page at a time, following ``next_cursor``, and keeps only that page: a
    report or export of a large tenant holds at most ``page_size`` items at once.
    Raises :class:`ApiRefused` when the api refuses the filters (400/422) and
    :class:`ApiUnavailable` when it cannot be asked or fails (a retry may succeed).
    """
    query = {k: v for k, v in (params or {}).items() if v is not None and k != "cursor"}
    query["limit"] = page_size
    base = "/" + quote(collection.strip("/"), safe="")
    cursor = None
    while True:
        if cursor:
            query["cursor"] = cursor
        path = f"{base}?{urlencode(query, doseq=True)}"
        try:
            response = api.request("GET", path, tenant_id)
        except httpx.HTTPError as exc:
            raise ApiUnavailable(f"GET {base}: {type(exc).__name__}") from None
        if response.status_code in (400, 422):
            raise ApiRefused(f"GET {base}: {_error_text(response)}")
        if response.status_code != 200:
            raise ApiUnavailable(f"GET {base}: the api answered {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise ApiUnavailable(f"GET {base}: the api answered no page of items")
        yield from body["items"]
        cursor = body.get("next_cursor")
        if not cursor:
            return


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"the api answered {response.status_code}"
    if isinstance(body, dict) and body.get("description"):
        return str(body["description"])
    return f"the api answered {response.status_code}"


def load_entity(
    api: Any, entity_type: str, entity_id: str, tenant_id: str
) -> dict[str, Any] | None:
    """The entity as the api shows it now (``GET /policies/{id}`` through ``api``, an
    :class:`ApiClient`, with the tenant's service token), without the fields events
    leave out; None when the api has no such entity (or no entities of that type).
    Raises :class:`ApiUnavailable`."""
    lifecycle = lifecycle_of(entity_type)
    if lifecycle is None:
        return None
    path = f"/{lifecycle.collection}/{quote(entity_id, safe='')}"
    try:
        response = api.request("GET", path, tenant_id)
    except httpx.HTTPError as exc:
        raise ApiUnavailable(f"GET {path}: {type(exc).__name__}") from None
    if response.status_code in (400, 404):
        return None  # not an id of this tenant's (or any) entity
    if response.status_code != 200:
        raise ApiUnavailable(f"GET {path}: the api answered {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ApiUnavailable(f"GET {path}: the api answered no JSON object")
    return {k: v for k, v in body.items() if k not in NOT_IN_SNAPSHOT}
