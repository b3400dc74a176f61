"""The HTTP toolkit both Falcon apps use, one module per concern.

- :mod:`~shared.http.errors`: the one error class (:class:`ApiError`), the JSON error
  serializer and the handlers that map validation, database and Redis failures.
- :mod:`~shared.http.input`: the JSON body (size, depth, NUL checks), request models
  that refuse unknown fields, and path and query parameters; :class:`QueryGuard`.
- :mod:`~shared.http.paging`: ``limit`` and the keyset cursor (:class:`Keyset`) lists use.
- :mod:`~shared.http.access`: role checks.
- :mod:`~shared.http.metrics`: request metrics and /metrics.
- :mod:`~shared.http.headers`: headers every answer carries.
- :mod:`~shared.http.openapi`: route descriptions (:class:`Operation`) and the OpenAPI
  document built from them.
- :mod:`~shared.http.routes`: declared routes (:func:`route`): roles, request and
  response model said once, enforced, parsed and serialised by the toolkit.
- :mod:`~shared.http.probes`: /healthz, /readyz and the routes every service serves.
- :mod:`~shared.http.app`: :func:`build_app`, the wiring both services' apps share.

The package imports only ``shared`` (and libraries), never a service. The names below
are re-exported so ``from shared.http import ...`` keeps working.
"""

from shared.http.access import require_operator
from shared.http.errors import ApiError, error_body, install_error_handling, validation_errors
from shared.http.headers import SecurityHeaders
from shared.http.input import (
    DEFAULT_MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    MAX_URL_CHARS,
    BodyTooDeep,
    NotJsonNumber,
    QueryGuard,
    StrictModel,
    bad_parameter,
    parse_body,
    parse_choice,
    parse_uuid,
    read_json,
)
from shared.http.metrics import MetricsResource, RequestMetrics
from shared.http.openapi import ApiDocs, OpenAPIResource, Operation, Param
from shared.http.paging import Keyset, decode_cursor, encode_cursor, parse_limit
from shared.http.probes import (
    HealthResource,
    ReadinessCheck,
    ReadinessResource,
    add_standard_routes,
)
from shared.http.routes import route

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_URL_CHARS",
    "ApiDocs",
    "ApiError",
    "BodyTooDeep",
    "HealthResource",
    "Keyset",
    "MetricsResource",
    "NotJsonNumber",
    "OpenAPIResource",
    "Operation",
    "Param",
    "QueryGuard",
    "ReadinessCheck",
    "ReadinessResource",
    "RequestMetrics",
    "SecurityHeaders",
    "StrictModel",
    "add_standard_routes",
    "bad_parameter",
    "decode_cursor",
    "encode_cursor",
    "error_body",
    "install_error_handling",
    "parse_body",
    "parse_choice",
    "parse_limit",
    "parse_uuid",
    "read_json",
    "require_operator",
    "route",
    "validation_errors",
]
