"""`make run`: the whole system on one machine, supervised, stopped with Ctrl-C.

Migrates both databases, loads the demo users of tenant ``acme``
(``deploy/local/demo-users.yaml``), then starts every process of the deployment: the api web
(gunicorn), the outbox relay, the workflow admin web (gunicorn), the workflow workers
(one group per queue, or one group for all queues with ``WORKER_GROUPS=all``) and the
workflow scheduler; without ``SMTP_HOST``, also a local mail sink that prints every
e-mail to this console. ``REDIS_URL`` is set by the Makefile (a bundled Redis if none runs).
If any process exits, everything is stopped so a broken start is never half-running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
API_PORT = os.environ.get("API_PORT", "8000")
WORKFLOW_PORT = os.environ.get("WORKFLOW_PORT", "8001")
SMTP_PORT = os.environ.get("MAIL_SINK_PORT", "8025")
QUEUES = [
    "governance.policy",
    "governance.assessment",
    "governance.evidence",
    "governance.notification",
    "governance.reporting",
    "governance.export",
    "governance.audit",
    "governance.import",
]


def processes(mail_sink: bool) -> dict[str, list[str]]:
    gunicorn = [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py"]
    procs = {
        "api-web": [*gunicorn, "-b", f"127.0.0.1:{API_PORT}", "api_service.wsgi:app"],
        "api-relay": [sys.executable, "-m", "api_service", "relay"],
        "workflow-web": [
            *gunicorn,
            "-b",
            f"127.0.0.1:{WORKFLOW_PORT}",
            "workflow_service.wsgi:app",
        ],
        "workflow-scheduler": [sys.executable, "-m", "workflow_service", "scheduler"],
    }
    if mail_sink:
        # No SMTP server configured: catch e-mail locally and print it to this console.
        procs["mail-sink"] = [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"127.0.0.1:{SMTP_PORT}",
        ]
    worker = [
        str(BIN / "dramatiq"),
        "workflow_service.worker",
        "--processes",
        "1",
        "--threads",
        os.environ.get("WORKER_THREADS", "8"),
    ]
    if os.environ.get("WORKER_GROUPS", "per-queue") == "all":
        procs["workers-all"] = [*worker, "--queues", *QUEUES]
    else:
        for queue in QUEUES:
            procs[f"worker-{queue.split('.')[-1]}"] = [*worker, "--queues", queue]
    return procs


def environment() -> dict[str, str]:
    """The environment of every process: this one's, in development mode."""
    return {
        # Two web processes per service are plenty on one machine (the default is two
        # per core, for a server).
        "WEB_WORKERS": "2",
        **os.environ,
        "API_URL": os.environ.get("API_URL", f"http://127.0.0.1:{API_PORT}"),
        # Development mode: the published development secrets are accepted. Everything
        # else is production, which refuses to start without real secrets.
        "APP_ENV": "development",
    }


def main() -> int:
    os.chdir(ROOT)
    env = environment()
    print(
        "[run] DEVELOPMENT MODE (APP_ENV=development): tokens and webhooks are signed "
        "with published development secrets unless JWT_SECRET, SERVICE_TOKEN_SECRET and "
        "WEBHOOK_SECRET are set. Never expose this to a network.",
        flush=True,
    )
    mail_sink = not os.environ.get("SMTP_HOST")
    if mail_sink:
        env.update(SMTP_HOST="127.0.0.1", SMTP_PORT=SMTP_PORT)
    for service in ("api_service", "workflow_service"):
        subprocess.run([sys.executable, "-m", service, "migrate"], check=True, env=env)
    demo_users = ["users", "import", "deploy/local/demo-users.yaml", "--tenant", "acme"]
    subprocess.run([sys.executable, "-m", "workflow_service", *demo_users], check=True, env=env)
    running: dict[str, subprocess.Popen] = {}
    for name, argv in processes(mail_sink).items():
        running[name] = subprocess.Popen(argv, env=env)
        print(f"[run] started {name} (pid {running[name].pid})", flush=True)
    print(
        f"[run] api on http://127.0.0.1:{API_PORT}  workflow admin and console on "
        f"http://127.0.0.1:{WORKFLOW_PORT}/console  (Ctrl-C stops everything)",
        flush=True,
    )

    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            for name, proc in running.items():
                if proc.poll() is not None:
                    print(f"[run] {name} exited with {proc.returncode}; stopping", flush=True)
                    stopping = True
                    break
            time.sleep(0.5)
    finally:
        for proc in running.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in running.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
