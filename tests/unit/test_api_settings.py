"""ApiSettings: environment precedence and the derived connection URLs."""

from __future__ import annotations

import pytest

from api_service.settings import ApiSettings
from shared.settings import ConfigError

#: Settings read from explicit environments run in development unless a test says not.
DEV = {"APP_ENV": "development"}


def test_database_url_precedence():
    assert ApiSettings.from_env(DEV).database_url == "sqlite:///var/api.db"
    assert (
        ApiSettings.from_env({**DEV, "VAR_DIR": "/data"}).database_url == "sqlite:////data/api.db"
    )
    both = {"DATABASE_URL": "postgresql://db/shared", "API_DATABASE_URL": "postgresql://db/api"}
    assert ApiSettings.from_env({**DEV, **both}).database_url == "postgresql://db/api"
    assert (
        ApiSettings.from_env({**DEV, "DATABASE_URL": "sqlite:///x.db"}).database_url
        == "sqlite:///x.db"
    )


def test_tuning_values_come_from_the_environment():
    settings = ApiSettings.from_env(
        {
            **DEV,
            "API_MAX_BODY_BYTES": "1024",
            "OUTBOX_RETENTION_SECONDS": "60",
            "RELAY_INTERVAL_SECONDS": "0.25",
            "RELAY_BATCH_SIZE": "7",
            "PUBLISH_TIMEOUT_SECONDS": "0.1",
        }
    )
    assert settings.max_body_bytes == 1024
    assert settings.outbox_retention_seconds == 60
    assert settings.relay_interval_seconds == 0.25
    assert settings.relay_batch_size == 7
    assert "socket_timeout=0.1" in settings.publish_redis_url
    with pytest.raises(ConfigError, match="RELAY_BATCH_SIZE"):
        ApiSettings.from_env({**DEV, "RELAY_BATCH_SIZE": "many"})


def test_publishing_url_keeps_timeouts_the_url_sets():
    settings = ApiSettings(redis_url="redis://h:1/2?socket_timeout=3")
    assert settings.publish_redis_url.startswith("redis://h:1/2?")
    assert "socket_timeout=3" in settings.publish_redis_url
    assert "socket_connect_timeout=0.5" in settings.publish_redis_url


def test_databases_are_pooled():
    pg = ApiSettings(database_url="postgresql://u@h:5432/api", db_pool_size=8)
    assert pg.pooled_database_url.startswith("postgresql+pool://u@h:5432/api?max_connections=8")
    lite = ApiSettings(database_url="sqlite:///var/api.db")
    assert lite.pooled_database_url.startswith("sqlite+pool:///var/api.db?")
