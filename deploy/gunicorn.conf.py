"""Gunicorn settings shared by both web services; every value can be overridden by env."""

import os

# One process per core, 16 threads each (bench/api_write.py, 32 connections on 2 cores,
# gthread: 1 x 16 per core against 2 x 8, the earlier setting, and 1 x 8). A process's
# threads share one interpreter lock, so fewer threads than this leave a core idle
# while they wait on the database or Redis. But every process has its own group commit
# and its own publisher, which batch what that process's threads write: fewer, busier
# processes make bigger batches, so each write pays for a smaller share of a commit
# and of a Redis round trip. 1 x 16 per core took 20-25 % less server CPU per policy
# write than 2 x 8, half the Redis round trips and commits, with the same or better
# throughput and p99, on SQLite and PostgreSQL alike; the echo app was unaffected.
workers = int(os.environ.get("WEB_WORKERS") or os.cpu_count() or 1)
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "16"))
keepalive = 5
timeout = 30
graceful_timeout = 20
accesslog = os.environ.get("WEB_ACCESS_LOG") or None
errorlog = "-"
# The apps answer an over-long URL with a JSON 414 (shared.http.MAX_URL_CHARS); gunicorn's
# own limit (4094) would answer first, with an HTML page. 0 lifts it to gunicorn's
# hard cap of 1 MiB per request line.
limit_request_line = 0
# Gunicorn's control socket (for `gunicornc`) defaults to one path per user: both web
# services, and every replica on a host, would fight over it. Nothing here uses it.
control_socket_disable = True
