"""Fixtures of the security tests (defined in :mod:`tests.security.secure_apps`)."""

from tests.security.secure_apps import (  # noqa: F401 - fixtures
    api_app,
    security_api_database,
    security_workflow_database,
    workflow_app,
)
