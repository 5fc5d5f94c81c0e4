"""`LocalRuntime`: workloads as local process groups, started by a warm fork server.

Commands of the form `<this interpreter> -m <preloaded module> ...` run in a forked child of the fork
server without starting a new interpreter; everything else is fork+exec'd by the same server. Either
way each workload is its own process group, so stopping it stops everything it started.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from flowdeck.runtime.base import ExitCallback, Runtime, Workload, WorkloadHandle


class RuntimeUnavailable(RuntimeError):
    """The fork server could not be started or went away."""


class LocalRuntime(Runtime):
    """Run workloads on this machine.

    `preload` names modules the fork server imports once, so that `python -m <module>` workloads
    start in milliseconds. `base_env` is merged under each workload's own env.
    """

    def __init__(self, preload: tuple[str, ...] = (), base_env: dict[str, str] | None = None,
                 log_dir: str | None = None) -> None:
        self.preload = tuple(preload)
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.log_dir = log_dir
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._handles: dict[str, WorkloadHandle] = {}
        self._callbacks: dict[str, ExitCallback | None] = {}
        self._stop_requested: set[str] = set()
        self._owners: dict[str, subprocess.Popen[bytes]] = {}  # handle id -> the fork server running it
        self._server: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()
        self._server_error: str | None = None

    # -- fork server lifecycle -------------------------------------------------------------------
    def warm_up(self) -> None:
        """Start the fork server in the background, so its imports overlap with the caller's own work."""
        if self._server is None or self._server.poll() is not None:
            self._spawn_server()

    def _spawn_server(self) -> None:
        env = dict(self.base_env)
        env["_KFP_RUNTIME"] = "true"
        self._ready.clear()
        self._server_error = None
        self._server = subprocess.Popen(
            [sys.executable, "-m", "flowdeck.runtime.forkserver", *self.preload],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read_replies, args=(self._server,), daemon=True,
                                        name="flowdeck-forkserver-reader")
        self._reader.start()

    def _ensure_server(self) -> subprocess.Popen[bytes]:
        self.warm_up()
        if not self._ready.wait(timeout=120) or self._server_error:
            raise RuntimeUnavailable(self._server_error or "the fork server did not start in 120 s")
        assert self._server is not None
        return self._server

    def _read_replies(self, server: subprocess.Popen[bytes]) -> None:
        assert server.stdout is not None
        for line in server.stdout:
            message = json.loads(line)
            op = message["op"]
            if op == "ready":
                self._ready.set()
            elif op == "started":
                self._on_started(message["id"], message["pid"])
            elif op == "exited":
                self._on_exited(message["id"], message["code"])
            elif op == "error":
                self._on_exited(message["id"], 127, message["message"])
        # EOF: the server died; every workload it was running is lost. A newer server may already have
        # replaced it: only this server's own state and workloads are touched.
        error = f"the fork server exited (code {server.wait()})"
        with self._lock:
            current = server is self._server
            lost = [h for h, owner in self._owners.items() if owner is server]
        if current:
            self._server_error = error
            self._ready.set()
        for handle_id in lost:
            self._on_exited(handle_id, -signal.SIGKILL, error)

    def _on_started(self, handle_id: str, pid: int) -> None:
        with self._lock:
            handle = self._handles.get(handle_id)
            if handle is None:
                return
            handle.pid = pid
            kill_now = handle_id in self._stop_requested
        if kill_now:
            _killpg(pid, signal.SIGKILL)

    def _on_exited(self, handle_id: str, code: int, message: str | None = None) -> None:
        with self._lock:
            handle = self._handles.pop(handle_id, None)
            callback = self._callbacks.pop(handle_id, None)
            self._owners.pop(handle_id, None)
            self._stop_requested.discard(handle_id)
        if handle is None:
            return
        if message and handle.workload.log_path:
            try:
                with open(handle.workload.log_path, "a") as log:
                    log.write(message + "\n")
            except OSError:
                pass
        handle.exit_code = code
        if callback is not None:
            callback(handle, code)

    # -- Runtime -----------------------------------------------------------------------------------
    def start(self, workload: Workload, on_exit: ExitCallback | None = None) -> WorkloadHandle:
        server = self._ensure_server()
        handle = WorkloadHandle(id=f"{workload.name}-{next(self._ids)}", workload=workload)
        if workload.log_path is None:
            directory = Path(self.log_dir or os.getcwd())
            directory.mkdir(parents=True, exist_ok=True)
            workload.log_path = str(directory / f"{handle.id}.log")
        command = workload.command
        module = None
        if len(command) >= 3 and command[0] == sys.executable and command[1] == "-m" \
                and command[2] in self.preload:
            module = command[2]
        # the server's own environment is base_env: send only what this workload adds
        request = {"op": "spawn", "id": handle.id, "argv": command, "env": workload.env,
                   "cwd": workload.working_dir, "log": workload.log_path, "module": module}
        with self._lock:
            self._handles[handle.id] = handle
            self._callbacks[handle.id] = on_exit
            self._owners[handle.id] = server
        assert server.stdin is not None
        try:
            server.stdin.write((json.dumps(request) + "\n").encode())
            server.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            self._on_exited(handle.id, 127, f"the fork server is gone: {exc}")
        return handle

    def status(self, handle: WorkloadHandle) -> str:
        if handle.exit_code is None:
            return "running" if handle.pid else "starting"
        return "succeeded" if handle.exit_code == 0 else "failed"

    def logs(self, handle: WorkloadHandle) -> str:
        if not handle.workload.log_path or not os.path.exists(handle.workload.log_path):
            return ""
        return Path(handle.workload.log_path).read_text(errors="replace")

    def stop(self, handle: WorkloadHandle, grace_seconds: float = 5.0) -> None:
        with self._lock:
            if handle.exit_code is not None:
                return
            self._stop_requested.add(handle.id)
            pid = handle.pid
        if pid is None:
            return  # killed as soon as the fork server reports it started
        _killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        while handle.exit_code is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if handle.exit_code is None:
            _killpg(pid, signal.SIGKILL)

    def endpoint(self, handle: WorkloadHandle, port: int) -> str:
        return f"http://127.0.0.1:{port}"

    def close(self) -> None:
        with self._lock:
            running = [h for h in self._handles.values() if h.exit_code is None]
        for handle in running:
            if handle.pid:
                _killpg(handle.pid, signal.SIGKILL)
        if self._server is not None:
            if self._server.stdin:
                try:
                    self._server.stdin.close()
                except OSError:
                    pass
            try:
                self._server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._server.kill()
            self._server = None


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
