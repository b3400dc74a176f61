"""Gunicorn settings shared by both web services; every value can be overridden by env."""

import os

# Two processes per core: a process's threads share one interpreter lock, so threads
# alone leave cores idle while they queue for it (measured on the policy write path).
workers = int(os.environ.get("WEB_WORKERS") or 2 * (os.cpu_count() or 1))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "8"))
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
