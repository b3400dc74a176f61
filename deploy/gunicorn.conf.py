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
# Gunicorn's control socket (for `gunicornc`) defaults to one path per user: both web
# services, and every replica on a host, would fight over it. Nothing here uses it.
control_socket_disable = True
