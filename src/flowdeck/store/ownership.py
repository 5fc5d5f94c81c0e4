"""Who executes a run, and the one control plane that may serve a store.

A run records the process that executes it as an *instance*: host, boot, pid and the process's
start time. Unlike a bare pid, an instance is never reused (a restarted container's PID 1 or a
recycled pid is a different instance), so deciding that a run's engine is gone is safe.

`control_plane_lock` makes the control plane exclusive per store: two `flowdeck up` on one database
would both resume the same runs and fire every schedule twice. SQLite stores are locked with a lock
file next to the database, PostgreSQL ones with a session advisory lock; both are released by the
operating system or the server when the process dies, however it dies.
"""

from __future__ import annotations

import fcntl
import os
import socket
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

#: Key of the PostgreSQL advisory lock held by the store's control plane.
_CONTROL_PLANE_LOCK_KEY = zlib.crc32(b"flowdeck.controlplane")


class StoreLocked(RuntimeError):
    """Another control plane already serves this store."""


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "-"


def _start_ticks(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot), or None when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None if not _exists(pid) else "-"  # no /proc (not Linux): fall back on the pid alone
    return stat.rsplit(")", 1)[1].split()[19]


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@cache
def _instance_of(pid: int) -> str:
    return f"{socket.gethostname()}/{_boot_id()}/{pid}/{_start_ticks(pid)}"


def this_instance() -> str:
    """The identity of this process, as recorded on the runs it executes."""
    return _instance_of(os.getpid())


def instance_alive(instance: str | None) -> bool:
    """Whether the process `instance` names still runs (a process on another host counts as alive)."""
    if not instance:
        return False
    try:
        host, boot, pid, started = instance.rsplit("/", 3)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True  # cannot tell from here
    if boot != _boot_id():
        return False
    return _start_ticks(int(pid)) == started


@dataclass
class ControlPlaneLock:
    """Held for as long as a control plane serves the store; `release` when it stops."""

    handle: Any

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def control_plane_lock(engine: Engine) -> ControlPlaneLock:
    """Take the store's exclusive control-plane lock, or raise StoreLocked naming the holder."""
    url = make_url(engine.url)
    if engine.dialect.name == "postgresql":
        connection = engine.connect()
        held = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": _CONTROL_PLANE_LOCK_KEY}).scalar()
        connection.commit()
        if not held:
            connection.close()
            raise StoreLocked(f"another flowdeck control plane serves the database {url.database} on {url.host}")
        return ControlPlaneLock(connection)
    if url.database in (None, "", ":memory:"):
        return ControlPlaneLock(None)  # a private in-memory database: nobody else can serve it
    path = Path(f"{os.path.abspath(url.database)}.lock")
    handle = open(path, "a+")  # noqa: SIM115 - held open as the lock itself
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise StoreLocked(f"another flowdeck control plane (pid {holder}) serves {url.database}") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return ControlPlaneLock(handle)
