"""Write throughput of the policy API against a bare Falcon JSON echo, same gunicorn.

    .venv/bin/python bench/api_write.py --database sqlite
    .venv/bin/python bench/api_write.py --database postgres

Starts gunicorn twice with deploy/gunicorn.conf.py (same workers and threads): once
with the real app (``api_service.wsgi:app``, a fresh migrated database, real Redis) and
once with the echo app defined below, then drives each with the same closed-loop load
(N keep-alive connections, each sending its next request when the last one answered)
and prints requests/s, p50 and p99 latency for both and the ratio, and the CPU time
per request while measuring: the whole machine's (load generator, Redis and the
database included) and the gunicorn processes' own.

Targets at 32 connections: ``POST /policies`` at >= 0.3 of the echo's requests/s, its
p99 within twice the echo's p99 in the same run, and at most 0.8 ms of server CPU per
write. Every POST is a full write: JWT check, validation, policy row, version snapshot
and outbox row in one transaction, the event and its job record published to Redis
after commit and the outbox row marked sent.

The servers count their SQL statements and Redis round trips (``bench/_counting``);
they are printed per request, over every request of the rounds (the echo's are zero).
``--by-thread`` splits the api's CPU by thread, ``--profile FILE`` samples its workers
with py-spy during one more round (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import falcon
from _counts import Counts, counting_env, read_counts
from _cpu import machine_busy_s, process_tree_cpu_s

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

TARGET_RATIO = 0.3
TARGET_P99_TIMES = 2.0
TARGET_CPU_MS = 0.8


class _Echo:
    def on_get(self, req, resp):
        resp.media = {"ok": True}

    def on_post(self, req, resp):
        resp.status = falcon.HTTP_201
        resp.media = req.get_media()


#: The bare baseline: Falcon parsing and returning JSON, nothing else.
echo_app = falcon.App()
echo_app.add_route("/echo", _Echo())


# ------------------------------------------------------------------------------ load


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    #: CPU seconds used while measuring: the whole machine's, and the server's own.
    machine_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    #: Every request answered in the round, warm-up included (what the counts cover).
    answered: int = 0
    #: SQL statements and Redis round trips of the server during the whole round.
    counts: Counts = field(default_factory=Counts)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def cpu_ms_per_request(self, seconds: float) -> float:
        return 1000 * seconds / max(self.requests, 1)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def _connection(host, port, request: bytes, state: dict, latencies, counts):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while not state["stop"]:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            status = int(head[9:12])
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            counts["answered"] += 1
            if state["measuring"]:
                latencies.append(time.perf_counter() - started)
                if status >= 400:
                    counts["errors"] += 1
                counts["done"] += 1
    finally:
        writer.close()


async def _drive(host, port, request: bytes, connections, warmup, duration, server_pid, per_thread):
    state = {"stop": False, "measuring": False}
    latencies: list[float] = []
    counts = {"done": 0, "errors": 0, "answered": 0}
    tasks = [
        asyncio.create_task(_connection(host, port, request, state, latencies, counts))
        for _ in range(connections)
    ]
    await asyncio.sleep(warmup)
    state["measuring"] = True
    cpu_before = machine_busy_s(), process_tree_cpu_s(server_pid)
    threads_before = thread_cpu_s(server_pid) if per_thread is not None else {}
    started = time.perf_counter()
    await asyncio.sleep(duration)
    state["measuring"] = False
    elapsed = time.perf_counter() - started
    cpu = machine_busy_s() - cpu_before[0], process_tree_cpu_s(server_pid) - cpu_before[1]
    if per_thread is not None:
        for key, seconds in thread_cpu_s(server_pid).items():
            per_thread[key] = per_thread.get(key, 0.0) + seconds - threads_before.get(key, 0.0)
    state["stop"] = True
    await asyncio.gather(*tasks, return_exceptions=True)
    return counts, latencies, elapsed, cpu


def drive(
    name, port, request: bytes, connections, warmup, duration, server_pid, per_thread=None
) -> Result:
    """Load the server; ``per_thread``: add each server thread's CPU seconds to it."""
    counts, latencies, elapsed, (machine, server) = asyncio.run(
        _drive("127.0.0.1", port, request, connections, warmup, duration, server_pid, per_thread)
    )
    return Result(
        name,
        counts["done"],
        counts["errors"],
        elapsed,
        latencies,
        machine,
        server,
        answered=counts["answered"],
    )


def http_request(method: str, path: str, body: dict, headers: dict[str, str]) -> bytes:
    payload = json.dumps(body).encode()
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


# ------------------------------------------------------------------------- processes


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(c) for c in children.read().split()]
    except OSError:
        return []


def thread_cpu_s(pid: int) -> dict[tuple[int, int], float]:
    """CPU seconds of every thread of ``pid``'s children (gunicorn's workers), by
    (process, thread) id (Linux ``/proc``)."""
    tick = os.sysconf("SC_CLK_TCK")
    times = {}
    for child in _children(pid):
        try:
            tids = os.listdir(f"/proc/{child}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{child}/task/{tid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            times[child, int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return times


#: What each of a gunicorn worker's threads does, by its Python name.
THREAD_ROLES = (
    ("ThreadPoolExecutor", "request threads"),
    ("outbox-publisher", "outbox publisher"),
    ("group-commit", "group commit"),
    ("MainThread", "gunicorn main loop"),
)


def name_threads(pid: int) -> dict[tuple[int, int], str]:
    """The role of each thread of ``pid``'s workers, from their Python names (py-spy)."""
    spy = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--by-thread needs py-spy: .venv/bin/pip install py-spy")
    roles = {}
    for child in _children(pid):
        out = subprocess.run(
            [spy, "dump", "--json", "-p", str(child)], capture_output=True, check=True
        ).stdout
        for thread in json.loads(out):
            name = thread.get("thread_name") or ""
            role = next((r for prefix, r in THREAD_ROLES if name.startswith(prefix)), "other")
            roles[child, thread["os_thread_id"]] = role
    return roles


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _workers_booted(log: Path, workers: int) -> bool:
    return log.read_text(errors="replace").count("Booting worker") >= workers


def gunicorn_setting(name: str, env: dict) -> object:
    """A value of deploy/gunicorn.conf.py as gunicorn reads it with ``env``."""
    saved = os.environ.copy()
    try:
        os.environ.update(env)
        return runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))[name]
    finally:
        os.environ.clear()
        os.environ.update(saved)


def start_gunicorn(target: str, port: int, env: dict, log: Path) -> subprocess.Popen:
    workers = int(gunicorn_setting("workers", env))  # type: ignore[call-overload]
    argv = [
        str(BIN / "gunicorn"),
        "-c",
        str(ROOT / "deploy" / "gunicorn.conf.py"),
        "-b",
        f"127.0.0.1:{port}",
        "--pythonpath",
        str(ROOT / "bench"),
        target,
    ]
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    import http.client

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn {target} exited:\n{log.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz" if "api_service" in target else "/echo")
            if conn.getresponse().status == 200 and _workers_booted(log, workers):
                # The app loads after a worker logs its boot; give the last one time
                # to load it, or it gets none of the (keep-alive) connections.
                time.sleep(3)
                return proc
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"gunicorn {target} did not answer:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


@contextlib.contextmanager
def profiling(pid: int, out: Path, seconds: float, *, gil: bool = False) -> Iterator[None]:
    """Sample ``pid`` and its children (gunicorn's workers) with py-spy meanwhile.

    py-spy is a bench tool, not a dependency: ``.venv/bin/pip install py-spy``. It
    samples the threads that are running Python code (not those waiting), so the
    profile shows where the workers' CPU goes.
    """
    spy = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    fmt = "flamegraph" if out.suffix == ".svg" else "raw"
    argv = [spy, "record", "-p", str(pid), "--subprocesses", "--rate", "250"]
    argv += ["--duration", str(int(seconds)), "--format", fmt, "-o", str(out)]
    if gil:
        argv.append("--gil")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        _, err = proc.communicate(timeout=seconds + 30)
        if proc.returncode:
            print(f"py-spy failed: {err.decode(errors='replace')[-2000:]}", file=sys.stderr)
        else:
            print(f"profile of the api's workers written to {out}")


def make_database(kind: str, workdir: Path) -> tuple[str, callable]:
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'bench_api.db'}", lambda: None
    import psycopg2

    admin = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    name = f"bench_api_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{name}"')
    conn.close()

    def drop():
        c = psycopg2.connect(admin)
        c.autocommit = True
        c.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.close()

    return f"{admin.rsplit('/', 1)[0]}/{name}", drop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per round")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2, help="load each server this often")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="also sample the api's gunicorn processes with py-spy during one more round "
        "and write the profile to FILE (.svg: flame graph; .txt: collapsed stacks)",
    )
    parser.add_argument(
        "--by-thread",
        action="store_true",
        help="also print the api's CPU per write by thread (request threads, outbox "
        "publisher, group commit, gunicorn's main loop); names the threads with py-spy",
    )
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="sample only the thread holding the interpreter lock (where Python CPU goes)",
    )
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from api_service.migrations import MIGRATIONS
    from shared.auth import issue_token
    from shared.db import migrate, open_database

    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    database_url, drop_database = make_database(args.database, workdir)
    db = open_database(database_url)
    with db.connection_context():
        migrate(db, MIGRATIONS)
    db.close()
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    secret = "bench-secret-0123456789abcdef0123456789"
    counts_dir = workdir / "counts"
    env = {
        **os.environ,
        **counting_env(counts_dir, str(ROOT)),
        "APP_ENV": "development",
        "API_DATABASE_URL": database_url,
        "REDIS_NAMESPACE": namespace,
        "JWT_SECRET": secret,
    }
    body = {
        "title": "Benchmark policy",
        "policy_type": "security",
        "content": "Keep secrets out of logs. " * 20,
        "tags": ["bench", "write"],
    }
    token = issue_token(secret, "bench", ["editor"], "bench-tenant", 3600)
    targets = {
        "echo POST /echo": ("api_write:echo_app", http_request("POST", "/echo", body, {})),
        "api POST /policies": (
            "api_service.wsgi:app",
            http_request("POST", "/policies", body, {"Authorization": f"Bearer {token}"}),
        ),
    }
    runs: dict[str, list[Result]] = {name: [] for name in targets}
    servers: dict[str, tuple[subprocess.Popen, int]] = {}
    try:
        # Both servers run for the whole benchmark and are loaded in turn, round after
        # round, so a burst of load from elsewhere on the machine hits both alike.
        for name, (target, _) in targets.items():
            port = free_port()
            log = workdir / f"{target.split(':')[0]}.log"
            servers[name] = (start_gunicorn(target, port, env, log), port)
        by_thread: dict[tuple[int, int], float] = {}
        for _ in range(args.rounds):
            for name, (_, request) in targets.items():
                proc, port = servers[name]
                # Counted over the whole round, warm-up included, from an idle server to
                # an idle server (the publisher marks rows sent within 50 ms of the end).
                before = read_counts(counts_dir, tree=proc.pid, fresh_after=time.time())
                result = drive(
                    name,
                    port,
                    request,
                    args.connections,
                    args.warmup,
                    args.duration,
                    proc.pid,
                    per_thread=by_thread if args.by_thread and name.startswith("api") else None,
                )
                time.sleep(0.2)
                after = read_counts(counts_dir, tree=proc.pid, fresh_after=time.time())
                result.counts = after - before
                runs[name].append(result)
        thread_names = name_threads(servers["api POST /policies"][0].pid) if args.by_thread else {}
        if args.profile:
            proc, port = servers["api POST /policies"]
            with profiling(proc.pid, Path(args.profile), args.duration, gil=args.profile_gil):
                drive(
                    "profile",
                    port,
                    targets["api POST /policies"][1],
                    args.connections,
                    0.5,
                    args.duration + 1,
                    proc.pid,
                )
    finally:
        for proc, _ in servers.values():
            stop(proc)
        import redis

        client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
        published = client.llen(f"{namespace}:governance.policy")
        keys = list(client.scan_iter(match=f"{namespace}*", count=1000))
        if keys:
            client.delete(*keys)
        drop_database()

    results = [
        Result(
            name,
            sum(r.requests for r in rs),
            sum(r.errors for r in rs),
            sum(r.seconds for r in rs),
            [x for r in rs for x in r.latencies],
            sum(r.machine_cpu_s for r in rs),
            sum(r.server_cpu_s for r in rs),
            sum(r.answered for r in rs),
            sum((r.counts for r in rs), Counts()),
        )
        for name, rs in runs.items()
    ]
    workers = gunicorn_setting("workers", env)
    threads = gunicorn_setting("threads", env)
    print(
        f"database={args.database} connections={args.connections} "
        f"gunicorn workers={workers} threads={threads} "
        f"{args.rounds} rounds x {args.duration}s per server"
    )
    print(
        f"{'':22}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'CPU ms/req: machine':>21}{'server':>8}"
    )
    for r in results:
        print(
            f"{r.name:22}{r.rps:9.0f}{r.percentile(50):9.2f}{r.percentile(99):9.2f}{r.errors:8d}"
            f"{r.cpu_ms_per_request(r.machine_cpu_s):21.2f}"
            f"{r.cpu_ms_per_request(r.server_cpu_s):8.2f}"
        )
    echo, api = results
    ratio = api.rps / echo.rps
    p99, echo_p99 = api.percentile(99), echo.percentile(99)
    cpu = api.cpu_ms_per_request(api.server_cpu_s)
    print(
        f"ratio api/echo = {ratio:.3f} (target >= {TARGET_RATIO}: {_met(ratio >= TARGET_RATIO)})"
        f"; api p99 = {p99:.1f} ms = {p99 / echo_p99:.2f} x the echo's "
        f"(target <= {TARGET_P99_TIMES}: {_met(p99 <= TARGET_P99_TIMES * echo_p99)})"
        f"; api server CPU {cpu:.2f} ms/write (target <= {TARGET_CPU_MS}: "
        f"{_met(cpu <= TARGET_CPU_MS)})"
    )
    print(f"events published to Redis during the run: {published}")
    for r in results:
        per = r.counts.per(max(r.answered, 1))
        print(f"{r.name} per request ({r.answered} counted): {per.sql_line()}")
        print(f"{' ' * len(r.name)} per request: {per.redis_line()}")
    if args.by_thread:
        spent: dict[str, float] = {}
        for key, seconds in by_thread.items():
            role = thread_names.get(key, "other (gone)")
            spent[role] = spent.get(role, 0.0) + seconds
        total = sum(spent.values())
        print("api CPU ms per write by thread:")
        for role, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
            print(
                f"  {role:22}{api.cpu_ms_per_request(seconds):7.3f}"
                f"{100 * seconds / max(total, 1e-9):6.0f} %"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
