"""``python -m workflow_service migrate [--wait S] | scheduler | health | users``.

Further commands register in :data:`COMMANDS` (name -> (help, function(argv) -> int)).
An entry point: it may import features (the ``users`` command is the user directory's),
and installs them (:func:`workflow_service.features.install`) before a command that
changes data, so the features' hooks (the audit trail) hear of it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

import peewee
import redis

from shared.db import migrate, wait_for_database
from shared.settings import ConfigError
from workflow_service.db import init_database
from workflow_service.migrations import all_migrations
from workflow_service.settings import WorkflowSettings


def cmd_migrate(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflow_service migrate")
    parser.add_argument(
        "--wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="retry connecting for up to SECONDS while the database is not answering",
    )
    args = parser.parse_args(argv)
    settings = WorkflowSettings.from_env()
    db = init_database(settings.database_url)
    try:
        wait_for_database(db, args.wait)
    except (peewee.OperationalError, peewee.InterfaceError) as exc:
        print(f"workflow_service migrate: database not answering: {exc}", file=sys.stderr)
        return 1
    applied = migrate(db, all_migrations(settings.plugins))
    names = ", ".join(f"{m.version} {m.name}" for m in applied) or "nothing to apply"
    print(f"workflow_service database migrated: {names}")
    db.close()
    return 0


def cmd_scheduler(argv: list[str]) -> int:
    argparse.ArgumentParser(prog="python -m workflow_service scheduler").parse_args(argv)
    from shared.health import Heartbeat
    from workflow_service.scheduler import main

    settings = WorkflowSettings.from_env()
    client = redis.Redis.from_url(settings.redis_url)
    Heartbeat(client, settings.namespace, "scheduler").start()
    return main()


def cmd_health(argv: list[str]) -> int:
    from shared import health

    settings = WorkflowSettings.from_env()
    return health.main(
        "python -m workflow_service health", settings.redis_url, settings.namespace, argv, "worker"
    )


def cmd_users(argv: list[str]) -> int:
    from workflow_service.features import install
    from workflow_service.users.importing import main

    settings = WorkflowSettings.from_env()
    install(settings.plugins)
    db = init_database(settings.database_url)
    try:
        return main(argv)
    finally:
        db.close()


COMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "migrate": ("apply pending database migrations", cmd_migrate),
    "scheduler": ("run the scheduler (one leader at a time)", cmd_scheduler),
    "users": ("import users: users import FILE [--tenant T]", cmd_users),
    "health": ("exit 0 while this host's worker (or --role scheduler) beats", cmd_health),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # APScheduler logs every run of every job at INFO; its warnings are what matter.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    if not argv or argv[0] not in COMMANDS:
        print("usage: python -m workflow_service <command> [args]\n\ncommands:")
        for name, (help_text, _) in COMMANDS.items():
            print(f"  {name:12} {help_text}")
        return 2
    try:
        return COMMANDS[argv[0]][1](argv[1:])
    except ConfigError as exc:
        print(f"workflow_service {argv[0]}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
