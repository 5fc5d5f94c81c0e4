"""LocalRuntime: workloads as local process groups, started by a warm fork server."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowdeck.runtime import LocalRuntime, Workload, WorkloadHandle
from helpers import process_gone, wait_for

PROBE_MODULE = '''
import os
import sys

if __name__ == "__main__":
    if sys.argv[1:2] == ["cwd"]:
        import local_helper  # found like `python -m` would: the working dir is on sys.path

        print("helper:", local_helper.VALUE)
        sys.exit(0)
    with open(f"/proc/{os.getpid()}/cmdline", "rb") as handle:
        cmdline = handle.read().replace(b"\\0", b" ").decode()
    print("argv:", " ".join(sys.argv[1:]))
    print("cmdline:", cmdline)
    print("probe-env:", os.environ.get("PROBE", ""))
    sys.exit(int(sys.argv[1]))
'''


class Exits:
    """Collects on_exit callbacks; wait() blocks until a given handle has exited."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.condition = threading.Condition()

    def __call__(self, handle: WorkloadHandle, code: int) -> None:
        with self.condition:
            self.codes[handle.id] = code
            self.condition.notify_all()

    def wait(self, handle: WorkloadHandle, timeout: float = 20.0) -> int:
        with self.condition:
            assert self.condition.wait_for(lambda: handle.id in self.codes, timeout=timeout), \
                f"{handle.id} did not exit within {timeout}s"
            return self.codes[handle.id]




@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[LocalRuntime]:
    rt = LocalRuntime(log_dir=str(tmp_path / "logs"))
    try:
        yield rt
    finally:
        rt.close()


def _workload(tmp_path: Path, name: str, command: list[str], **kwargs) -> Workload:
    kwargs.setdefault("log_path", str(tmp_path / f"{name}.log"))
    return Workload(name=name, command=command, **kwargs)


# --------------------------------------------------------------------------------- plain commands


def test_command_runs_with_its_env_and_working_dir(runtime: LocalRuntime, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    exits = Exits()

    handle = runtime.start(_workload(tmp_path, "env", ["sh", "-c", 'echo "value=$MY_VAR"; pwd'],
                                     env={"MY_VAR": "hello there"}, working_dir=str(workdir)), exits)

    assert exits.wait(handle) == 0
    lines = runtime.logs(handle).splitlines()
    assert lines[0] == "value=hello there"
    assert os.path.realpath(lines[1]) == os.path.realpath(workdir)


def test_workload_env_overrides_the_base_env_and_nothing_else_leaks(tmp_path: Path) -> None:
    base = {"PATH": os.environ["PATH"], "SHARED": "base", "OVERRIDDEN": "base"}
    rt = LocalRuntime(base_env=base)
    exits = Exits()
    try:
        handle = rt.start(_workload(tmp_path, "env", ["sh", "-c", 'echo "$SHARED $OVERRIDDEN [${LEAK-unset}]"'],
                                    env={"OVERRIDDEN": "mine"}), exits)
        assert exits.wait(handle) == 0
        assert rt.logs(handle).strip() == "base mine [unset]"
    finally:
        rt.close()


def test_zero_exit_code_means_succeeded(runtime: LocalRuntime, tmp_path: Path) -> None:
    exits = Exits()

    handle = runtime.start(_workload(tmp_path, "ok", ["true"]), exits)

    assert exits.wait(handle) == 0
    assert handle.exit_code == 0
    assert runtime.status(handle) == "succeeded"


def test_non_zero_exit_code_is_reported(runtime: LocalRuntime, tmp_path: Path) -> None:
    exits = Exits()

    handle = runtime.start(_workload(tmp_path, "bad", ["sh", "-c", "exit 7"]), exits)

    assert exits.wait(handle) == 7
    assert runtime.status(handle) == "failed"


def test_death_by_signal_is_a_negative_exit_code(runtime: LocalRuntime, tmp_path: Path) -> None:
    exits = Exits()

    handle = runtime.start(_workload(tmp_path, "killed", ["sh", "-c", "kill -9 $$"]), exits)

    assert exits.wait(handle) == -signal.SIGKILL


def test_concurrent_workloads_each_get_their_own_exit_code(runtime: LocalRuntime, tmp_path: Path) -> None:
    exits = Exits()

    handles = [runtime.start(_workload(tmp_path, f"w{i}", ["sh", "-c", f"sleep 0.{i}; exit {i}"]), exits)
               for i in range(8)]

    assert [exits.wait(h) for h in handles] == list(range(8))


def test_missing_executable_exits_127_with_a_message_in_the_log(runtime: LocalRuntime, tmp_path: Path) -> None:
    exits = Exits()

    handle = runtime.start(_workload(tmp_path, "missing", ["no-such-program-flowdeck", "--flag"]), exits)

    assert exits.wait(handle) == 127
    assert "no-such-program-flowdeck" in runtime.logs(handle)


def test_default_log_file_goes_to_the_log_dir(runtime: LocalRuntime, tmp_path: Path) -> None:
    exits = Exits()

    handle = runtime.start(Workload(name="nolog", command=["echo", "in the default log"]), exits)

    assert exits.wait(handle) == 0
    assert Path(handle.workload.log_path).parent == tmp_path / "logs"
    assert runtime.logs(handle) == "in the default log\n"


# ------------------------------------------------------------------------------------------- logs


def test_logs_show_output_while_the_workload_runs(runtime: LocalRuntime, tmp_path: Path) -> None:
    exits = Exits()
    handle = runtime.start(_workload(tmp_path, "live", ["sh", "-c", "echo first line; exec sleep 30"]), exits)
    try:
        assert wait_for(lambda: "first line" in runtime.logs(handle))
        assert runtime.status(handle) == "running"
        assert handle.pid is not None
    finally:
        runtime.stop(handle, grace_seconds=1)
    assert exits.wait(handle) < 0


def test_stdout_and_stderr_go_to_the_same_log(runtime: LocalRuntime, tmp_path: Path) -> None:
    exits = Exits()

    handle = runtime.start(_workload(tmp_path, "both", ["sh", "-c", "echo out; echo err >&2"]), exits)

    assert exits.wait(handle) == 0
    assert runtime.logs(handle).splitlines() == ["out", "err"]


# ------------------------------------------------------------------------------- preloaded modules


@pytest.fixture
def probe_runtime(tmp_path: Path) -> Iterator[LocalRuntime]:
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "flowdeck_probe.py").write_text(PROBE_MODULE)
    env = {**os.environ, "PYTHONPATH": str(modules)}
    rt = LocalRuntime(preload=("flowdeck_probe",), base_env=env)
    try:
        yield rt
    finally:
        rt.close()


def test_preloaded_module_runs_in_a_fork_of_the_server(probe_runtime: LocalRuntime, tmp_path: Path) -> None:
    exits = Exits()

    handle = probe_runtime.start(_workload(tmp_path, "probe", [sys.executable, "-m", "flowdeck_probe", "0", "x y"],
                                           env={"PROBE": "set"}), exits)

    assert exits.wait(handle) == 0
    log = probe_runtime.logs(handle)
    assert "argv: 0 x y" in log
    assert "probe-env: set" in log
    # no exec happened: the process is still the fork server's interpreter
    assert "flowdeck.runtime.forkserver" in log


def test_preloaded_module_exit_code_is_reported(probe_runtime: LocalRuntime, tmp_path: Path) -> None:
    exits = Exits()

    handle = probe_runtime.start(_workload(tmp_path, "probe", [sys.executable, "-m", "flowdeck_probe", "5"]), exits)

    assert exits.wait(handle) == 5


def test_module_that_is_not_preloaded_is_executed(probe_runtime: LocalRuntime, tmp_path: Path) -> None:
    exits = Exits()

    handle = probe_runtime.start(_workload(tmp_path, "json", [sys.executable, "-m", "json.tool", "--help"]), exits)

    assert exits.wait(handle) == 0
    assert "usage" in probe_runtime.logs(handle).lower()


def test_preloaded_module_runs_in_the_working_dir(probe_runtime: LocalRuntime, tmp_path: Path) -> None:
    exits = Exits()
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    (workdir / "local_helper.py").write_text("VALUE = 'from the working dir'\n")

    handle = probe_runtime.start(_workload(tmp_path, "cwd", [sys.executable, "-m", "flowdeck_probe", "cwd"],
                                           working_dir=str(workdir)), exits)

    assert exits.wait(handle) == 0, probe_runtime.logs(handle)
    assert "helper: from the working dir" in probe_runtime.logs(handle)


# ------------------------------------------------------------------------------------ stop, close


def test_stop_kills_the_whole_process_group(runtime: LocalRuntime, tmp_path: Path) -> None:
    exits = Exits()
    pid_file = tmp_path / "grandchild.pid"
    script = f'sleep 30 & echo $! > {pid_file}; wait'
    handle = runtime.start(_workload(tmp_path, "tree", ["sh", "-c", script]), exits)
    assert wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
    grandchild = int(pid_file.read_text())
    assert not process_gone(grandchild)

    runtime.stop(handle, grace_seconds=2)

    assert exits.wait(handle) == -signal.SIGTERM
    assert wait_for(lambda: process_gone(grandchild), timeout=5), "the grandchild survived stop()"
    assert runtime.status(handle) == "failed"


def test_stop_escalates_to_sigkill_after_the_grace_period(runtime: LocalRuntime, tmp_path: Path) -> None:
    exits = Exits()
    ready = tmp_path / "ready"
    handle = runtime.start(_workload(tmp_path, "stubborn", ["sh", "-c", f'trap "" TERM; touch {ready}; sleep 30']),
                           exits)
    assert wait_for(ready.exists)

    started = time.monotonic()
    runtime.stop(handle, grace_seconds=0.5)

    assert exits.wait(handle) == -signal.SIGKILL
    assert time.monotonic() - started < 5


def test_stop_of_a_finished_workload_is_harmless(runtime: LocalRuntime, tmp_path: Path) -> None:
    exits = Exits()
    handle = runtime.start(_workload(tmp_path, "done", ["true"]), exits)
    assert exits.wait(handle) == 0

    runtime.stop(handle, grace_seconds=0.1)

    assert handle.exit_code == 0


def test_close_kills_running_workloads(tmp_path: Path) -> None:
    rt = LocalRuntime()
    exits = Exits()
    pid_file = tmp_path / "sleeper.pid"
    handle = rt.start(_workload(tmp_path, "sleeper", ["sh", "-c", f"echo $$ > {pid_file}; exec sleep 30"]), exits)
    assert wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
    pid = int(pid_file.read_text())

    rt.close()

    assert wait_for(lambda: process_gone(pid), timeout=5), "the workload survived close()"
    assert exits.wait(handle, timeout=5) < 0


def _parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def test_workloads_of_a_dead_fork_server_are_reported_lost(runtime: LocalRuntime, tmp_path: Path) -> None:
    exits = Exits()
    handle = runtime.start(_workload(tmp_path, "orphan", ["sleep", "30"]), exits)
    assert wait_for(lambda: handle.pid is not None)
    server_pid = _parent_pid(handle.pid)

    os.kill(server_pid, signal.SIGKILL)

    assert exits.wait(handle) < 0
    assert "fork server" in runtime.logs(handle)
    os.killpg(handle.pid, signal.SIGKILL)  # the server could not clean up after itself


def test_a_new_fork_server_starts_after_the_old_one_died(runtime: LocalRuntime, tmp_path: Path) -> None:
    exits = Exits()
    first = runtime.start(_workload(tmp_path, "first", ["sleep", "30"]), exits)
    assert wait_for(lambda: first.pid is not None)
    os.kill(_parent_pid(first.pid), signal.SIGKILL)
    assert exits.wait(first) < 0
    os.killpg(first.pid, signal.SIGKILL)

    second = runtime.start(_workload(tmp_path, "second", ["sh", "-c", "exit 4"]), exits)

    assert exits.wait(second) == 4


def test_runtime_can_start_again_after_close(tmp_path: Path) -> None:
    rt = LocalRuntime()
    exits = Exits()
    try:
        first = rt.start(_workload(tmp_path, "a", ["true"]), exits)
        assert exits.wait(first) == 0
        rt.close()

        second = rt.start(_workload(tmp_path, "b", ["sh", "-c", "exit 4"]), exits)
        assert exits.wait(second) == 4
    finally:
        rt.close()


def test_preloaded_module_ends_like_an_interpreter_threads_and_atexit(tmp_path: Path) -> None:
    module_dir = tmp_path / "mods"
    module_dir.mkdir()
    (module_dir / "lingering.py").write_text(
        "import atexit, sys, threading, time\n"
        "def late(out):\n"
        "    time.sleep(0.3)\n"
        "    open(out + '.thread', 'w').write('done')\n"
        "if __name__ == '__main__':\n"
        "    threading.Thread(target=late, args=(sys.argv[1],)).start()\n"
        "    atexit.register(lambda: open(sys.argv[1] + '.atexit', 'w').write('done'))\n"
    )
    runtime = LocalRuntime(preload=("lingering",), log_dir=str(tmp_path / "logs"),
                           base_env={**os.environ, "PYTHONPATH": str(module_dir)})
    try:
        exits = Exits()
        marker = tmp_path / "marker"
        handle = runtime.start(
            Workload(name="m", command=[sys.executable, "-m", "lingering", str(marker)], working_dir=str(tmp_path)),
            exits,
        )
        assert exits.wait(handle) == 0, runtime.logs(handle)
        # the task counts as done only after its thread finished and its atexit handler ran
        assert (tmp_path / "marker.thread").read_text() == "done"
        assert (tmp_path / "marker.atexit").read_text() == "done"
    finally:
        runtime.close()
