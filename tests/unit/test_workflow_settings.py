"""Workflow settings from the environment."""

from __future__ import annotations

import pytest

from shared.settings import ConfigError
from workflow_service.settings import WorkflowSettings

#: Settings read from explicit environments run in development unless a test says not.
DEV = {"APP_ENV": "development"}


def test_defaults_work_locally():
    settings = WorkflowSettings.from_env(DEV)
    assert settings.database_url == "sqlite:///var/workflow.db"
    assert settings.api_url == "http://127.0.0.1:8000"
    assert settings.max_causation_depth == 5
    assert settings.claim_timeout_s == 58  # 2 s below the heartbeat timeout (60 s)
    assert settings.pooled_database_url.startswith("sqlite+pool:///var/workflow.db?")


def test_workflow_database_url_wins_over_database_url():
    env = {"DATABASE_URL": "postgresql://x/a", "WORKFLOW_DATABASE_URL": "postgresql://x/wf"}
    assert WorkflowSettings.from_env({**DEV, **env}).database_url == "postgresql://x/wf"
    assert WorkflowSettings.from_env({**DEV, "DATABASE_URL": "postgresql://x/a"}).database_url == (
        "postgresql://x/a"
    )


def test_claim_timeout_stays_below_the_heartbeat_timeout_unless_set():
    env = {"WORKER_HEARTBEAT_TIMEOUT_MS": "3000", "WORKFLOW_PLUGINS": "a.b, c"}
    settings = WorkflowSettings.from_env({**DEV, **env})
    assert settings.worker_heartbeat_timeout_ms == 3000
    assert settings.claim_timeout_s == 1.5  # below it, by 2 s or to half of it
    assert WorkflowSettings.from_env(DEV).claim_timeout_s == 58
    assert settings.plugins == ("a.b", "c")
    assert (
        WorkflowSettings.from_env(
            {**DEV, **env, "EXECUTION_CLAIM_TIMEOUT_SECONDS": "2"}
        ).claim_timeout_s
        == 2
    )


def test_bad_numbers_are_named():
    with pytest.raises(ConfigError, match="WORKER_HEARTBEAT_TIMEOUT_MS"):
        WorkflowSettings.from_env({**DEV, "WORKER_HEARTBEAT_TIMEOUT_MS": "soon"})
