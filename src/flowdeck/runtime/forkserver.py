"""A warm, single-threaded process that forks one child per workload.

Starting a Python interpreter and importing kfp's executor costs ~0.3 s; forking a process that has
already imported it costs a few milliseconds. The fork server imports the modules it is told to
preload, then waits for spawn requests on a pipe. Each child gets its own session (process group),
its stdout/stderr redirected to the workload's log file, and then either runs a preloaded module as
`python -m MODULE ARGS` would, or `exec`s the command. Exits are reported back on the pipe.

Protocol: newline-delimited JSON. Requests on stdin:
  {"op": "spawn", "id", "argv", "env", "cwd", "log", "module"}   (module: run argv as `-m module`;
  env: variables added to the server's own environment)
Replies on the original stdout (moved to a private fd at start):
  {"op": "ready"} once the preloaded modules are imported, then
  {"op": "started", "id", "pid"} | {"op": "exited", "id", "code"} | {"op": "error", "id", "message"}
A module child writes its own "exited" just before it exits, so the same id may be reported twice:
the first report counts.
When stdin closes (the engine went away) every child's process group is killed and the server exits.
"""

from __future__ import annotations

import atexit
import ctypes
import gc
import importlib
import io
import json
import os
import runpy
import selectors
import signal
import sys
import threading
import traceback
from typing import Any


class ForkServer:
    def __init__(self, reply_fd: int) -> None:
        self.reply_fd = reply_fd
        self.children: dict[int, str] = {}
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)

    def reply(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        while data:
            written = os.write(self.reply_fd, data)
            data = data[written:]

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        selector = selectors.DefaultSelector()
        stdin = sys.stdin.buffer
        os.set_blocking(stdin.fileno(), False)
        selector.register(stdin.fileno(), selectors.EVENT_READ, "request")
        selector.register(self.wake_r, selectors.EVENT_READ, "signal")
        pending = b""
        while True:
            for key, _ in selector.select():
                if key.data == "signal":
                    try:
                        os.read(self.wake_r, 4096)
                    except BlockingIOError:
                        pass
                    continue
                try:
                    chunk = os.read(stdin.fileno(), 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    self.shutdown()
                    return
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        self.handle(json.loads(line))
            self.reap()

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            request_id = self.children.pop(pid, None)
            if request_id is not None:
                # Like a container, a workload ends with its main process: whatever it left running in its
                # process group (a background `cmd &`, an orphaned subprocess) is stopped too.
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
                self.reply({"op": "exited", "id": request_id, "code": os.waitstatus_to_exitcode(status)})

    def handle(self, request: dict[str, Any]) -> None:
        if request.get("op") != "spawn":
            self.reply({"op": "error", "id": request.get("id"), "message": f"unknown op {request.get('op')}"})
            return
        try:
            log_fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            self.reply({"op": "error", "id": request["id"], "message": f"cannot open log: {exc}"})
            return
        pid = os.fork()
        if pid == 0:  # child: never returns
            self.run_child(request, log_fd)
        os.close(log_fd)
        self.children[pid] = request["id"]
        self.reply({"op": "started", "id": request["id"], "pid": pid})

    def run_child(self, request: dict[str, Any], log_fd: int) -> None:
        code = 1
        try:
            os.setsid()
            _die_with_parent()
            for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            signal.set_wakeup_fd(-1)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            for fd in (devnull, log_fd, self.wake_r, self.wake_w):
                os.close(fd)  # reply_fd stays for a module child's own exit report; exec closes it (CLOEXEC)
            if request.get("cwd"):
                os.chdir(request["cwd"])
            os.environ.update(request["env"])
            argv = request["argv"]
            if not request.get("module"):
                try:
                    os.execvpe(argv[0], argv, os.environ)
                except OSError as exc:
                    os.write(2, f"cannot run {argv[0]!r}: {exc.strerror}\n".encode())
                    os._exit(127)
            sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
            sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
            sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
            sys.modules.pop(request["module"], None)
            code = run_module(request["module"], argv)
        except BaseException:  # noqa: BLE001 - the child must report and exit, whatever happened
            traceback.print_exc()
            code = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
                # Report the exit now rather than after teardown, SIGCHLD and reaping: a few ms per task.
                # The server's own report follows when it reaps the child, and is ignored as a duplicate.
                report = {"op": "exited", "id": request["id"], "code": code}
                os.write(self.reply_fd, (json.dumps(report) + "\n").encode())
            finally:
                os._exit(code)

    def shutdown(self) -> None:
        for pid in list(self.children):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass


def _die_with_parent() -> None:
    """On Linux, have the kernel kill this child if the fork server dies, whatever killed it."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def run_module(module: str, argv: list[str]) -> int:
    """Run `module` as `python -m module argv[3:]` would, returning its exit code.

    Like an interpreter that reaches its end, it then waits for non-daemon threads and runs atexit
    handlers, so work a component leaves to those still happens before the task counts as done.
    """
    sys.argv = [module, *argv[3:]]
    sys.path[0:0] = [os.getcwd()]
    code = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        if isinstance(exit_.code, int):
            code = exit_.code
        elif exit_.code is not None:
            print(exit_.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - report like the interpreter would
        traceback.print_exc()
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]  # joins non-daemon threads, as Py_Finalize does
    atexit._run_exitfuncs()
    return code


def main() -> None:
    reply_fd = os.dup(1)
    os.dup2(2, 1)  # anything printed by mistake must not corrupt the protocol
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for module in sys.argv[1:]:
        importlib.import_module(module)
    gc.collect()
    gc.freeze()  # preloaded objects move to a permanent generation: children's GC never touches (copies) them
    server = ForkServer(reply_fd)
    server.reply({"op": "ready", "pid": os.getpid()})
    server.serve()


if __name__ == "__main__":
    main()
