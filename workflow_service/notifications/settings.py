"""Delivery settings (SMTP, webhooks), read from the environment by the service settings."""

from __future__ import annotations

from dataclasses import dataclass

from shared.settings import ConfigError, Env

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
    #: signing secret is derived from it (see :mod:`.secrets`); it signs nothing itself.
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
