"""The real api in the test's process, for tests of workflow-service features that read
or write it (reports, exports, imports): ``api_app`` on a migrated database of its own,
and ``api``, the workflow service's client of it with service tokens, as workers use.
Import both fixtures into a conftest to use them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from shared.db import migrate, open_database
from tests.conftest import JWT_SECRET, SERVICE_TOKEN_SECRET
from workflow_service.apiclient import ApiClient


@pytest.fixture
def api_app(make_database_url, redis_url, namespace):
    """The real api, in this process, on a database of its own."""
    from api_service.app import build_deps
    from api_service.app import create_app as create_api_app
    from api_service.migrations import MIGRATIONS
    from api_service.settings import ApiSettings

    url = make_database_url("api")
    db = open_database(url)
    with db.connection_context():
        migrate(db, MIGRATIONS)
    db.close()
    settings = ApiSettings(
        redis_url=redis_url,
        namespace=namespace,
        jwt_secret=JWT_SECRET,
        service_token_secret=SERVICE_TOKEN_SECRET,
        database_url=url,
    )
    deps = build_deps(settings)
    yield create_api_app(settings, deps)
    if deps.outbox is not None:
        deps.outbox.close()
    deps.broker.close()
    if hasattr(deps.db, "close_all"):
        deps.db.close_all()


@pytest.fixture
def api(api_app) -> Iterator[ApiClient]:
    """The workflow service's client of that api (service tokens)."""
    client = ApiClient(
        "http://api", SERVICE_TOKEN_SECRET, transport=httpx.WSGITransport(app=api_app)
    )
    yield client
    client.close()
