"""Helpers shared by the test packages: reading run documents and the store, waiting on processes,
starting control planes and OIDC providers."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from flowdeck.config import Settings
from flowdeck.pipelines.spec import load_pipeline
from flowdeck.store import open_store


def tasks(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The tasks of a run document, by path."""
    return {task["path"]: task for task in result["tasks"]}


def task_rows(settings: Settings, run_id: str) -> dict[str, Any]:
    """The store's task rows of a run, by path."""
    store = open_store(settings.resolved_database_url)
    try:
        return {t.path: t for t in store.list_tasks(run_id)}
    finally:
        store.close()


def spec(pipeline: Any) -> dict[str, Any]:
    """The compiled spec of a pipeline function, as the KFP API receives it."""
    return load_pipeline(pipeline).spec


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs (a zombie nobody reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return True


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass; its last value decides."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


@dataclass
class ControlPlane:
    """A `flowdeck up` process started by a test; `output` collects what it printed."""

    process: subprocess.Popen[str]
    url: str = ""
    output: list[str] = field(default_factory=list)
    #: Its FLOWDECK_HOME (its SQLite database is `home / "flowdeck.db"` unless a URL was given).
    home: Path | None = None

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send `signum` and wait for the exit status (SIGKILL after `timeout`)."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


#: `start(env=None, args=(), home=None) -> ControlPlane`: the `control_plane` fixture's factory.
StartControlPlane = Callable[..., ControlPlane]

#: Settings a test's control plane must not inherit from the environment running the tests.
_INHERITED = ("FLOWDECK_URL", "FLOWDECK_TOKEN", "FLOWDECK_DATABASE_URL", "FLOWDECK_ARTIFACT_ROOT")


def start_control_plane(home: Path, env: dict[str, str] | None = None, args: Sequence[str] = (),
                        timeout: float = 30.0) -> ControlPlane:
    """Start `flowdeck up --port 0` with FLOWDECK_HOME=`home`; returns once it prints its URL."""
    environment = {k: v for k, v in os.environ.items() if k not in _INHERITED}
    environment.update({"FLOWDECK_HOME": str(home), "PYTHONUNBUFFERED": "1", **(env or {})})
    process = subprocess.Popen(
        [sys.executable, "-m", "flowdeck.cli.main", "up", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment,
    )
    server = ControlPlane(process, home=home)
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            server.output.append(line.rstrip("\n"))
            found = re.search(r"flowdeck is up at (http://\S+)", line)
            if found:
                server.url = found.group(1)
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout) or not server.url:
        server.stop(signal.SIGKILL)
        raise RuntimeError("flowdeck up did not start:\n" + "\n".join(server.output))
    return server


@contextmanager
def oidc_provider(claims: dict[str, Any], timeout: float = 20.0) -> Iterator[str]:
    """A real OIDC provider process (`oidc-provider-mock`) on a free port; yields its issuer URL.

    Every user it signs in gets `claims` (the `sub` is what its authorization form is given).
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = subprocess.Popen([sys.executable, "-m", "oidc_provider_mock", "-p", str(port),
                                 "--user-claims", json.dumps(claims)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://localhost:{port}"

    def up() -> bool:
        try:
            return httpx.get(url + "/.well-known/openid-configuration").status_code == 200
        except httpx.HTTPError:
            return False

    try:
        if not wait_for(up, timeout=timeout):
            raise RuntimeError(f"oidc-provider-mock did not answer on {url} within {timeout:.0f} s")
        yield url
    finally:
        provider.terminate()
        provider.wait(10)


class ServeProcess:
    """A `flowdeck serve ARGS --port 0` subprocess: `url` (and gRPC `address` with `grpc=True`) once announced."""

    def __init__(self, *args: str, grpc: bool = False) -> None:
        extra = ["--grpc-port", "0"] if grpc else []
        self.process = subprocess.Popen([sys.executable, "-m", "flowdeck.cli.main", "serve", *args, "--port", "0",
                                         *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(60)
        found = re.search(r" at (http://\S+) .*gRPC: ([^;]+);" if grpc else r" at (http://\S+)",
                          line[0]) if line else None
        if found is None:
            self.stop()
            raise AssertionError(f"server did not start: {line} {self.process.stderr.read()}")
        self.url = found.group(1)
        self.address = found.group(2) if grpc else self.url.removeprefix("http://")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
