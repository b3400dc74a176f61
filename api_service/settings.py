"""The api service's settings, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from shared.db import pooled_url
from shared.http import DEFAULT_MAX_BODY_BYTES
from shared.settings import CommonSettings, ConfigError, Env, check_production, sqlite_default

DEFAULT_DATABASE_FILE = "api.db"


@dataclass(frozen=True, repr=False)
class ApiSettings(CommonSettings):
    database_url: str = sqlite_default(CommonSettings.var_dir, DEFAULT_DATABASE_FILE)
    #: Largest request body accepted, in bytes (larger bodies get a 413).
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: Sent outbox rows are deleted after this many seconds.
    outbox_retention_seconds: int = 7 * 24 * 3600
    #: Idempotency records (replayed transition answers) are kept this long.
    idempotency_retention_seconds: int = 24 * 3600
    #: How long the relay sleeps when it found nothing to publish.
    relay_interval_seconds: float = 1.0
    #: Rows the relay claims at a time.
    relay_batch_size: int = 100
    #: How long a claim on an outbox row lasts: the request that wrote a row owns it for
    #: this long (the relay leaves it alone), and so does a relay that claimed it.
    outbox_claim_seconds: float = 30.0
    #: Socket timeouts of the publishing Redis client, so a dead Redis cannot hold a
    #: request for long; the relay delivers what the request could not.
    publish_timeout_seconds: float = 0.5
    #: After a failed publish, requests skip publishing for this long (the relay takes
    #: over) instead of each paying for the failure.
    publish_pause_seconds: float = 2.0
    #: Pooled database connections per process (keep it >= gunicorn's threads).
    db_pool_size: int = 32
    #: A review date this many days away (or less) is "approaching" (a deadline event).
    deadline_approaching_days: int = 14
    #: How often the relay looks for review dates coming up or passed.
    deadline_scan_interval_seconds: float = 60.0
    #: Days before an accepted evidence's valid_until at which evidence.expiring is sent
    #: (one event per threshold and date; ``EVIDENCE_EXPIRING_DAYS``, comma-separated).
    evidence_expiring_days: tuple[int, ...] = (30, 7)
    #: Where evidence files are stored (by tenant and evidence id); created at start.
    evidence_dir: Path = CommonSettings.var_dir / "evidence"
    #: Largest evidence file accepted, in bytes (larger uploads get a 413).
    evidence_max_bytes: int = 20 * 1024 * 1024
    #: Where gunicorn workers share request metrics (prometheus-client's multiprocess
    #: mode); unset, each worker's /metrics shows only its own requests.
    prometheus_multiproc_dir: str | None = None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, check: bool = True
    ) -> ApiSettings:
        """Settings from ``environ`` (default: the process environment).

        Raises ConfigError in production on a missing or development secret
        (:func:`shared.settings.check_production`); only the development ``token``
        command passes ``check=False``.
        """
        env = Env(environ)
        common = cls.common_from_env(env)
        default_db = sqlite_default(common["var_dir"], DEFAULT_DATABASE_FILE)
        settings = cls(
            **common,
            database_url=env.first(["API_DATABASE_URL", "DATABASE_URL"], default_db),
            max_body_bytes=env.int("API_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            outbox_retention_seconds=env.int("OUTBOX_RETENTION_SECONDS", 7 * 24 * 3600),
            idempotency_retention_seconds=env.int("IDEMPOTENCY_RETENTION_SECONDS", 24 * 3600),
            relay_interval_seconds=env.float("RELAY_INTERVAL_SECONDS", 1.0),
            relay_batch_size=env.int("RELAY_BATCH_SIZE", 100),
            outbox_claim_seconds=env.float("OUTBOX_CLAIM_SECONDS", 30.0),
            publish_timeout_seconds=env.float("PUBLISH_TIMEOUT_SECONDS", 0.5),
            publish_pause_seconds=env.float("PUBLISH_PAUSE_SECONDS", 2.0),
            db_pool_size=env.int("API_DB_POOL_SIZE", 32),
            prometheus_multiproc_dir=env.str("PROMETHEUS_MULTIPROC_DIR") or None,
            evidence_dir=Path(env.str("EVIDENCE_DIR") or common["var_dir"] / "evidence"),
            evidence_max_bytes=env.int("EVIDENCE_MAX_BYTES", 20 * 1024 * 1024),
            deadline_approaching_days=env.int("DEADLINE_APPROACHING_DAYS", 14),
            deadline_scan_interval_seconds=env.float("DEADLINE_SCAN_INTERVAL_SECONDS", 60.0),
            evidence_expiring_days=expiring_days(env.str("EVIDENCE_EXPIRING_DAYS", "30,7")),
        )
        if check:
            check_production(settings)
        return settings

    @property
    def publish_redis_url(self) -> str:
        """``redis_url`` with short socket timeouts unless the URL sets its own."""
        parts = urlsplit(self.redis_url)
        query = dict(parse_qsl(parts.query))
        timeout = str(self.publish_timeout_seconds)
        query.setdefault("socket_timeout", timeout)
        query.setdefault("socket_connect_timeout", timeout)
        return urlunsplit(parts._replace(query=urlencode(query)))

    @property
    def pooled_database_url(self) -> str:
        return pooled_url(self.database_url, self.db_pool_size)


def expiring_days(raw: str) -> tuple[int, ...]:
    """``EVIDENCE_EXPIRING_DAYS``: distinct whole days ahead, largest first ("30,7")."""
    try:
        days = {int(part) for part in raw.split(",") if part.strip()}
    except ValueError:
        days = set()
    if not days or min(days) < 0 or max(days) > 3650:
        raise ConfigError(
            "EVIDENCE_EXPIRING_DAYS must be comma-separated whole days between 0 and 3650 "
            f"(such as '30,7'), got {raw!r}"
        )
    return tuple(sorted(days, reverse=True))
