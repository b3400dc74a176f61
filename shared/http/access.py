"""Who may call a route: the role checks a responder (or its declaration) applies."""

from __future__ import annotations

import falcon

from shared.auth import principal_of


def require_operator(req, why: str):
    """The caller if it holds ``operator`` (platform staff); 403 otherwise. A tenant's
    ``admin`` does not pass: what this guards spans tenants."""
    principal = principal_of(req)
    if "operator" not in principal.roles:
        raise falcon.HTTPForbidden(
            title="Forbidden", description=f"{why}: this needs the role operator."
        )
    return principal
