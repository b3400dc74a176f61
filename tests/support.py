"""Helpers for tests that talk to real Redis, real databases and real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
SIGTERM, SIGKILL = signal.SIGTERM, signal.SIGKILL


def poll(
    check: Callable[[], T],
    *,
    timeout: float = 15.0,
    interval: float = 0.02,
    message: str = "condition",
) -> T:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {last!r})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceProcess:
    """A real process of the system (gunicorn, a dramatiq worker, the relay...).

    Output goes to a log file under the test's tmp dir, which is printed when a test
    fails to start it, so a broken process explains itself.
    """

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path):
        self.name = name
        self.argv = list(argv)
        self.env = {**os.environ, **env}
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> ServiceProcess:
        self.log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=ROOT,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_http(self, url: str, timeout: float = 30.0) -> None:
        def ready():
            if not self.alive():
                raise AssertionError(f"{self.name} exited early:\n{self.log()[-4000:]}")
            try:
                return httpx.get(url, timeout=1.0).status_code < 500
            except httpx.HTTPError:
                return False

        poll(ready, timeout=timeout, interval=0.1, message=f"{self.name} at {url}")

    def wait_log(self, text: str, timeout: float = 30.0) -> None:
        poll(
            lambda: text in self.log(),
            timeout=timeout,
            interval=0.1,
            message=f"{text!r} in {self.name}'s log",
        )

    def signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.pid, sig)

    def stop(self, sig: int = SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.alive():
            self.signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(SIGKILL)
                self.proc.wait(5)
        self.log_file.close()
        return self.proc.returncode


def python_module(module: str, *args: str) -> list[str]:
    """argv that runs ``python -m module args`` with this interpreter (the tox env's)."""
    return [sys.executable, "-m", module, *args]
