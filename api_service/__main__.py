"""``python -m api_service migrate [--wait S] | relay | health | token``."""

from __future__ import annotations

import argparse
import logging
import sys

import peewee
import redis

from shared.auth import ROLES, issue_token
from shared.db import SchemaNotCurrent, migrate, open_database, wait_for_database
from shared.settings import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m api_service")
    commands = parser.add_subparsers(dest="command", required=True)
    migrate_cmd = commands.add_parser("migrate", help="apply pending database migrations")
    migrate_cmd.add_argument(
        "--wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="retry connecting for up to SECONDS while the database is not answering",
    )
    commands.add_parser("relay", help="publish unsent outbox events until stopped")
    health = commands.add_parser("health", help="exit 0 while this host's relay beats in Redis")
    health.add_argument("--role", default="relay", choices=["relay"])
    token = commands.add_parser("token", help="print a development token")
    token.add_argument("--sub", required=True, help="the user id")
    token.add_argument(
        "--roles", required=True, help=f"comma-separated roles from: {', '.join(ROLES)}"
    )
    token.add_argument("--tenant", required=True)
    token.add_argument("--ttl", type=int, default=12 * 3600, help="lifetime in seconds")
    return parser


def main(argv: list[str] | None = None) -> int:
    from api_service.settings import ApiSettings

    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        # The token command only signs: it runs without the production check, so the
        # README's walk works from any shell (a token signed with the development
        # secret is refused by every process that runs in production).
        settings = ApiSettings.from_env(check=args.command != "token")
    except ConfigError as exc:
        print(f"api_service {args.command}: {exc}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        from api_service.migrations import MIGRATIONS

        db = open_database(settings.database_url)
        try:
            wait_for_database(db, args.wait)
        except (peewee.OperationalError, peewee.InterfaceError) as exc:
            print(f"api_service migrate: database not answering: {exc}", file=sys.stderr)
            return 1
        with db.connection_context():
            applied = migrate(db, MIGRATIONS)
        print(f"api_service: applied {len(applied)} migration(s); schema is current")
        return 0
    if args.command == "health":
        from shared import health

        return health.main(
            "api_service health",
            settings.redis_url,
            settings.namespace,
            ["--role", args.role],
            "relay",
        )
    if args.command == "relay":
        from api_service import relay
        from shared.health import Heartbeat

        Heartbeat(redis.Redis.from_url(settings.redis_url), settings.namespace, "relay").start()
        try:
            return relay.main(settings)
        except SchemaNotCurrent as exc:
            print(f"api_service relay: {exc}", file=sys.stderr)
            return 2
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    if settings.jwt_public_key:
        print(
            "api_service token: JWT_PUBLIC_KEY is set, so user tokens must be RS256 ones "
            "from your identity provider; this command signs HS256 with JWT_SECRET.",
            file=sys.stderr,
        )
        return 2
    try:
        if args.ttl > settings.jwt_max_lifetime_s:
            raise ValueError(
                f"--ttl {args.ttl} exceeds JWT_MAX_LIFETIME_SECONDS ({settings.jwt_max_lifetime_s})"
            )
        token = issue_token(
            settings.jwt_secret, args.sub, roles, args.tenant, args.ttl, issuer=settings.jwt_issuer
        )
        print(token)
    except ValueError as exc:
        print(f"api_service token: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
