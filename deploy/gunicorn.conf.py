"""Gunicorn settings shared by both web services; every value can be overridden by env."""

import os

workers = int(os.environ.get("WEB_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "8"))
keepalive = 5
timeout = 30
graceful_timeout = 20
accesslog = os.environ.get("WEB_ACCESS_LOG") or None
errorlog = "-"
