"""The workflow service's settings, read once from the environment.

One object for the whole service (:class:`WorkflowSettings`), passed down; the sections
some features read (:class:`NotificationSettings` for e-mail and webhook deliveries,
:class:`BatchSettings` for imports) are defined here too, so the kernel that reads the
environment imports no feature. A feature's ``FEATURE.settings`` names the sections it
reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shared.db import pooled_url
from shared.settings import CommonSettings, ConfigError, Env, check_production, sqlite_default

# ------------------------------------------------ deliveries (the notifications feature)

DEV_WEBHOOK_SECRET = "dev-only-webhook-secret-change-me"
#: After a delivery's message runs out of attempts: 1 min, 10 min, 1 h, 6 h.
DEFAULT_RESEND_SCHEDULE_S: tuple[float, ...] = (60.0, 600.0, 3600.0, 21600.0)
MAX_RESEND_PAUSE_S = 365 * 86_400.0


@dataclass(frozen=True)
class NotificationSettings:
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_starttls: bool = False
    #: CA certificates (PEM) to trust for the server's TLS certificate besides the
    #: system's, e.g. a company relay's own CA.
    smtp_ca_file: str | None = None
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "governance@localhost"
    smtp_timeout_s: float = 10.0
    #: The server's master key of webhook signing (``WEBHOOK_SECRET``): each tenant's
    #: signing secret is derived from it (see ``notifications.secrets``); it signs
    #: nothing itself.
    webhook_secret: str = DEV_WEBHOOK_SECRET
    #: After a tenant rotates its signing secret, the previous one still signs (a second
    #: signature) this long, so its receivers can switch without losing deliveries.
    webhook_secret_grace_s: float = 86_400.0
    webhook_timeout_s: float = 10.0
    #: Webhooks to loopback, private, link-local (cloud metadata) or reserved addresses
    #: are refused unless this is set: a workflow author must not reach inside the network.
    webhook_allow_private: bool = False
    #: A claimed delivery whose sender vanished may be claimed again after this long.
    #: Longer than any send can take (socket timeouts above), so two live senders
    #: never hold the same delivery.
    claim_lease_s: float = 60.0
    #: A delivery whose message used all the catalog's attempts on transient failures
    #: (a receiver down, a mail server refusing for now) is parked and sent again after
    #: each of these pauses in turn, then given up (``DELIVERY_RESEND_SCHEDULE``).
    resend_schedule_s: tuple[float, ...] = DEFAULT_RESEND_SCHEDULE_S

    def __repr__(self) -> str:  # never print credentials or secrets
        return (
            f"NotificationSettings(smtp={self.smtp_host}:{self.smtp_port}, "
            f"starttls={self.smtp_starttls}, from={self.smtp_from!r})"
        )

    @classmethod
    def from_env(cls, env: Env) -> NotificationSettings:
        return cls(
            smtp_host=env.str("SMTP_HOST", cls.smtp_host),
            smtp_port=env.int("SMTP_PORT", cls.smtp_port),
            smtp_starttls=env.bool("SMTP_STARTTLS", False),
            smtp_ca_file=env.str("SMTP_CA_FILE") or None,
            smtp_username=env.str("SMTP_USERNAME") or None,
            smtp_password=env.str("SMTP_PASSWORD") or None,
            smtp_from=env.str("SMTP_FROM", cls.smtp_from),
            smtp_timeout_s=env.float("SMTP_TIMEOUT_SECONDS", cls.smtp_timeout_s),
            webhook_secret=env.str("WEBHOOK_SECRET", DEV_WEBHOOK_SECRET),
            webhook_secret_grace_s=env.float(
                "WEBHOOK_SECRET_GRACE_SECONDS", cls.webhook_secret_grace_s
            ),
            webhook_timeout_s=env.float("WEBHOOK_TIMEOUT_SECONDS", cls.webhook_timeout_s),
            webhook_allow_private=env.bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", False),
            claim_lease_s=env.float("DELIVERY_CLAIM_LEASE_SECONDS", cls.claim_lease_s),
            resend_schedule_s=parse_schedule(env.environ.get("DELIVERY_RESEND_SCHEDULE")),
        )


def parse_schedule(raw: str | None) -> tuple[float, ...]:
    """``DELIVERY_RESEND_SCHEDULE``: seconds, comma-separated (``60,600,3600,21600``);
    unset means the default, ``none`` (or ``0``) means no re-sends."""
    if raw is None or not raw.strip():
        return DEFAULT_RESEND_SCHEDULE_S
    if raw.strip().lower() in {"none", "0"}:
        return ()
    try:
        pauses = tuple(float(part) for part in raw.split(","))
    except ValueError:
        pauses = ()
    if not pauses or not all(0 < p <= MAX_RESEND_PAUSE_S for p in pauses):
        raise ConfigError(
            f"DELIVERY_RESEND_SCHEDULE must be seconds (above 0, at most a year), comma-separated "
            f"(e.g. 60,600,3600,21600), or none; got {raw!r}"
        )
    return pauses


# ------------------------------------------------------------ imports (the imports feature)

DEFAULT_IMPORT_MAX_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class BatchSettings:
    #: The largest import file accepted (``IMPORT_MAX_BYTES``); larger ones are a 413.
    import_max_bytes: int = DEFAULT_IMPORT_MAX_BYTES
    #: The most data rows an import file may hold (``IMPORT_MAX_ROWS``).
    import_max_rows: int = 10_000
    #: How long one import message works before it hands the rest to a continuation
    #: message (``IMPORT_CHUNK_SECONDS``); well under governance.import's 2-minute limit.
    import_chunk_s: float = 60.0

    @classmethod
    def from_env(cls, env: Env) -> BatchSettings:
        settings = cls(
            import_max_bytes=env.int("IMPORT_MAX_BYTES", DEFAULT_IMPORT_MAX_BYTES),
            import_max_rows=env.int("IMPORT_MAX_ROWS", 10_000),
            import_chunk_s=env.float("IMPORT_CHUNK_SECONDS", 60.0),
        )
        if settings.import_max_bytes < 1 or settings.import_max_rows < 1:
            raise ConfigError("IMPORT_MAX_BYTES and IMPORT_MAX_ROWS must be at least 1")
        if not 1 <= settings.import_chunk_s <= 100:
            raise ConfigError("IMPORT_CHUNK_SECONDS must be between 1 and 100")
        return settings


# ---------------------------------------------------------------------------- the service

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
