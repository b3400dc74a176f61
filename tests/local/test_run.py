"""`make run`'s runner (deploy/local/run.py): the real script, its real processes.

It starts the bundled Redis on the port ``REDIS_URL`` names when nothing answers there,
prints "ready" once both services answer ``/readyz``, restarts a process that died while
the others keep serving, and stops everything (that Redis included) on Ctrl-C.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys

import httpx
import pytest
import redis

from tests.support import ROOT, free_port, poll

pytestmark = pytest.mark.e2e


def load_services():
    spec = importlib.util.spec_from_file_location("services", ROOT / "deploy/local/services.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


@pytest.fixture
def runner(tmp_path, make_database_url):
    ports = {name: free_port() for name in ("api", "workflow", "mail", "redis")}
    env = {
        **os.environ,
        "REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",  # nothing answers there
        "API_PORT": str(ports["api"]),
        "WORKFLOW_PORT": str(ports["workflow"]),
        "MAIL_SINK_PORT": str(ports["mail"]),
        "API_DATABASE_URL": make_database_url("api"),
        "WORKFLOW_DATABASE_URL": make_database_url("workflow"),
        "VAR_DIR": str(tmp_path / "var"),
        "WORKER_GROUPS": "all",
        "WORKER_THREADS": "2",
        "WEB_WORKERS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("SMTP_HOST", "API_URL", "REDIS_NAMESPACE"):
        env.pop(name, None)
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "deploy/local/run.py"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    output = lambda: log_path.read_text(errors="replace")  # noqa: E731
    try:
        yield proc, ports, env, output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        load_services_env = {**os.environ, "VAR_DIR": env["VAR_DIR"]}
        subprocess.run(
            [sys.executable, "deploy/local/services.py", "stop-redis"],
            cwd=ROOT,
            env=load_services_env,
            check=False,
        )


def test_the_runner_restarts_a_killed_worker_and_stops_everything_on_ctrl_c(runner):
    proc, ports, env, output = runner
    api = f"http://127.0.0.1:{ports['api']}"
    workflow = f"http://127.0.0.1:{ports['workflow']}"

    # Given: the runner says it is ready; both services answer /readyz by then
    poll(lambda: "[run] ready" in output(), timeout=120, interval=0.1, message="ready")
    assert status(f"{api}/readyz") == 200
    assert status(f"{workflow}/readyz") == 200
    assert answers(env["REDIS_URL"])  # the bundled Redis, on the port REDIS_URL names
    started = re.compile(r"\[run\] started workers-all \(pid (\d+)\)")
    [worker_pid] = started.findall(output())
    poll(lambda: "is ready for action" in output(), timeout=60, message="the worker ready")

    # When: the worker is killed
    os.kill(int(worker_pid), signal.SIGKILL)

    # Then: it is started again while the api keeps answering
    def restarted():
        assert status(f"{api}/readyz") == 200, "the api stopped answering"
        return len(started.findall(output())) == 2

    poll(restarted, timeout=30, interval=0.1, message="the worker restarted")
    assert "workers-all exited with -9; restarting in 1s" in output()
    poll(
        lambda: output().count("is ready for action") >= 2,
        timeout=60,
        message="the restarted worker ready",
    )
    assert proc.poll() is None

    # When: Ctrl-C
    os.kill(proc.pid, signal.SIGINT)

    # Then: everything stops, the Redis it started included
    assert proc.wait(60) == 0
    assert status(f"{api}/healthz") == 0
    assert status(f"{workflow}/healthz") == 0
    assert not answers(env["REDIS_URL"])


def test_a_redis_that_answers_is_used_and_left_alone(redis_url, tmp_path):
    services = load_services()
    assert services.bundled_redis(redis_url) is None  # so the runner does not stop it
    assert answers(redis_url)


def test_redis_url_starts_the_bundled_redis_on_the_port_it_names(tmp_path):
    # `make test` asks with REDIS_URL too: the bundled Redis comes up where it points.
    url = f"redis://127.0.0.1:{free_port()}/0"
    env = {**os.environ, "REDIS_URL": url, "VAR_DIR": str(tmp_path)}
    command = [sys.executable, "deploy/local/services.py"]
    try:
        printed = subprocess.run(
            [*command, "redis-url"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
        )
        assert printed.stdout.strip() == url
        assert answers(url)
    finally:
        subprocess.run([*command, "stop-redis"], cwd=ROOT, env=env, check=False, timeout=30)
    poll(lambda: not answers(url), timeout=10, message="the bundled Redis stopped")
