"""The workflow service's settings, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shared.db import pooled_url
from shared.settings import CommonSettings, ConfigError, Env, check_production, sqlite_default
from workflow_service.imports.settings import BatchSettings
from workflow_service.notifications.settings import DEV_WEBHOOK_SECRET, NotificationSettings

DEFAULT_API_URL = "http://127.0.0.1:8000"
#: Dramatiq's RedisBroker default: a worker silent this long is presumed dead.
DRAMATIQ_HEARTBEAT_TIMEOUT_MS = 60_000
#: How much shorter than the heartbeat timeout the default claim timeout is.
CLAIM_MARGIN_S = 2.0


def default_claim_timeout_s(heartbeat_timeout_ms: int) -> float:
    """A little under the heartbeat timeout: a dead worker's last claim renewal may come
    up to a second after its last heartbeat, and its redelivered message must find the
    claim stale (a fresh one is skipped, leaving the execution to the slow sweep)."""
    timeout_s = heartbeat_timeout_ms / 1000
    return max(timeout_s / 2, timeout_s - CLAIM_MARGIN_S)


@dataclass(frozen=True, repr=False)
class WorkflowSettings(CommonSettings):
    database_url: str = "sqlite:///var/workflow.db"
    #: Where ``change_status`` and other HTTP steps reach the api.
    api_url: str = DEFAULT_API_URL
    api_timeout_s: float = 10.0
    #: Dramatiq's heartbeat timeout: a dead worker's messages are requeued after it.
    worker_heartbeat_timeout_ms: int | None = None
    #: How many Redis commands per million also run the broker's maintenance (requeue of
    #: dead workers' messages). None keeps Dramatiq's default (1000).
    broker_maintenance_chance: int | None = None
    #: A running execution whose claim is older than this may be claimed again (its
    #: worker died). Dramatiq redelivers a dead worker's message only after the
    #: heartbeat timeout, so this must stay below it (it defaults to 2 s less), or the
    #: redelivered message could find the claim still fresh.
    claim_timeout_s: float = 58.0
    #: The scheduler re-sends run messages of executions pending or running longer.
    sweep_after_s: float = 300.0
    sweep_interval_s: float = 60.0
    #: Upper bound on how long a worker trusts its cache of active workflows.
    workflow_cache_ttl_s: float = 30.0
    #: Leader lock of the scheduler; another scheduler takes over after it expires.
    scheduler_lock_ttl_s: float = 30.0
    #: Extra modules that register step kinds (imported by web, workers and scheduler).
    plugins: tuple[str, ...] = ()
    max_body_bytes: int = 256 * 1024
    db_pool_size: int = 16
    #: SMTP and webhook delivery (SMTP_*, WEBHOOK_*).
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    #: Where stored files (reports, exports, audit packages) live; created on use.
    files_dir: Path = Path("var/files")
    #: Days a stored file is kept before the retention job deletes it.
    file_retention_days: int = 30
    #: Imports: IMPORT_MAX_BYTES, IMPORT_MAX_ROWS, IMPORT_CHUNK_SECONDS.
    batch: BatchSettings = field(default_factory=BatchSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkflowSettings:
        """Settings from ``environ`` (default: the process environment).

        Raises ConfigError in production on a missing or development secret, the
        webhook signing secret included (:func:`shared.settings.check_production`).
        """
        env = Env(environ)
        common = cls.common_from_env(env)
        heartbeat = env.int("WORKER_HEARTBEAT_TIMEOUT_MS", 0)
        maintenance = env.int("BROKER_MAINTENANCE_CHANCE", 0)
        settings = cls(
            **common,
            database_url=env.first(
                ["WORKFLOW_DATABASE_URL", "DATABASE_URL"],
                sqlite_default(common["var_dir"], "workflow.db"),
            ),
            api_url=env.str("API_URL", DEFAULT_API_URL).rstrip("/"),
            api_timeout_s=env.float("API_TIMEOUT_SECONDS", 10.0),
            worker_heartbeat_timeout_ms=heartbeat or None,
            broker_maintenance_chance=maintenance or None,
            claim_timeout_s=env.float(
                "EXECUTION_CLAIM_TIMEOUT_SECONDS",
                default_claim_timeout_s(heartbeat or DRAMATIQ_HEARTBEAT_TIMEOUT_MS),
            ),
            sweep_after_s=env.float("EXECUTION_SWEEP_AFTER_SECONDS", 300.0),
            sweep_interval_s=env.float("EXECUTION_SWEEP_INTERVAL_SECONDS", 60.0),
            workflow_cache_ttl_s=env.float("WORKFLOW_CACHE_TTL_SECONDS", 30.0),
            scheduler_lock_ttl_s=env.float("SCHEDULER_LOCK_TTL_SECONDS", 30.0),
            plugins=tuple(p.strip() for p in env.str("WORKFLOW_PLUGINS").split(",") if p.strip()),
            max_body_bytes=env.int("WORKFLOW_MAX_BODY_BYTES", 256 * 1024),
            db_pool_size=env.int("WORKFLOW_DB_POOL_SIZE", 16),
            notifications=NotificationSettings.from_env(env),
            files_dir=Path(env.str("FILES_DIR", str(common["var_dir"] / "files"))),
            file_retention_days=env.int("FILE_RETENTION_DAYS", 30),
            batch=BatchSettings.from_env(env),
        )
        if settings.file_retention_days < 1:
            raise ConfigError("FILE_RETENTION_DAYS must be at least 1")
        check_production(
            settings,
            {"WEBHOOK_SECRET": settings.notifications.webhook_secret},
            published=[DEV_WEBHOOK_SECRET],
        )
        return settings

    @property
    def pooled_database_url(self) -> str:
        return pooled_url(self.database_url, self.db_pool_size)
