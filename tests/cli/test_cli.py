"""The `flowdeck` command line, driven as a user drives it: a real subprocess on a temporary FLOWDECK_HOME.

Runs are real (kfp-compiled pipelines executed by the engine), so the tests share a few of them per
module: each `flowdeck run` costs a second or two. Error cases check the whole contract: exit status,
one `flowdeck: error:` line on stderr, no traceback, and no run recorded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flowdeck
from flowdeck.store import open_store

REPO = Path(__file__).resolve().parents[2]

TYPED = '''
from kfp import dsl

@dsl.component(base_image="python:3.11")
def describe(n: int, s: str, t: str, items: list) -> str:
    text = f"{n!r}|{s!r}|{t!r}|{items!r}"
    print("describing:", text)
    return text

@dsl.pipeline(name="typed")
def typed(n: int, s: str, t: str = "x", items: list = []) -> str:
    return describe(n=n, s=s, t=t, items=items).output
'''

FAILING = '''
from kfp import dsl

@dsl.component(base_image="python:3.11")
def produce() -> int:
    return 41

@dsl.component(base_image="python:3.11")
def explode(x: int) -> int:
    print("about to explode")
    raise ValueError(f"kaboom {x + 1}")

@dsl.pipeline(name="failing")
def failing():
    explode(x=produce().output)
'''

SLEEPY = '''
from kfp import dsl

@dsl.component(base_image="python:3.11")
def nap(pidfile: str) -> str:
    import os, time
    with open(pidfile + ".tmp", "w") as handle:
        handle.write(str(os.getpid()))
    os.replace(pidfile + ".tmp", pidfile)
    time.sleep(600)
    return "rested"

@dsl.pipeline(name="sleepy")
def sleepy(pidfile: str) -> str:
    return nap(pidfile=pidfile).output
'''


# ------------------------------------------------------------------------------------------- helpers
def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_")}
    env["FLOWDECK_HOME"] = str(home)
    return env


def flowdeck_cli(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowdeck.cli.main", *args], env=cli_env(home), cwd=home.parent,
        capture_output=True, text=True, timeout=timeout,
    )


def run_json(home: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    result = flowdeck_cli(home, "run", *args, "--json")
    assert "Traceback" not in result.stderr, result.stderr
    return result, json.loads(result.stdout)  # exactly one JSON document, or this fails


def stored_runs(home: Path) -> list[Any]:
    if not (home / "flowdeck.db").exists():
        return []
    store = open_store(f"sqlite:///{home / 'flowdeck.db'}")
    try:
        return list(store.list_runs(limit=1000))
    finally:
        store.close()


def assert_usage_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit 2, nothing on stdout, exactly one `flowdeck: error:` line naming the problem."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("flowdeck: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    (root / "typed.py").write_text(textwrap.dedent(TYPED))
    (root / "failing.py").write_text(textwrap.dedent(FAILING))
    (root / "sleepy.py").write_text(textwrap.dedent(SLEEPY))
    (root / "not_a_pipeline.yaml").write_text("name: hello\nsteps: [a, b]\n")
    return root / "home"


@pytest.fixture(scope="module")
def typed_run(home: Path) -> dict[str, Any]:
    """One successful run of the typed pipeline, with JSON ints, JSON lists and plain strings."""
    result, document = run_json(home, str(home.parent / "typed.py"),
                                "-p", "n=3", "-p", "s=hello world", "-p", "t=42", "-p", "items=[1, 2]")
    assert result.returncode == 0, result.stderr
    return document


@pytest.fixture(scope="module")
def failed_run(home: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    result = flowdeck_cli(home, "run", str(home.parent / "failing.py"))
    assert "Traceback" not in result.stderr, result.stderr
    runs = [r for r in stored_runs(home) if r.pipeline_name == "failing"]
    assert len(runs) == 1
    return result, {"run_id": runs[0].id}


# ---------------------------------------------------------------------------------------------- run
def test_run_prints_one_json_document(typed_run: dict[str, Any]) -> None:
    assert typed_run["state"] == "SUCCEEDED"
    assert len(typed_run["run_id"]) == 32
    # -p values: JSON when they parse (3 -> int, [1, 2] -> list), strings otherwise; a JSON number
    # given to a `str` parameter arrives as the string the user typed.
    assert typed_run["outputs"] == {"Output": "3|'hello world'|'42'|[1, 2]"}
    [task] = typed_run["tasks"]
    assert {"name", "path", "state", "cached", "attempts"} <= set(task)
    assert (task["name"], task["path"], task["state"], task["cached"], task["attempts"]) == (
        "describe", "describe", "SUCCEEDED", False, 1)


def test_second_run_is_a_cache_hit_and_no_cache_runs_again(home: Path, typed_run: dict[str, Any]) -> None:
    args = [str(home.parent / "typed.py"), "-p", "n=3", "-p", "s=hello world", "-p", "t=42", "-p", "items=[1, 2]"]
    result, cached = run_json(home, *args)
    assert result.returncode == 0
    assert cached["run_id"] != typed_run["run_id"]
    assert cached["outputs"] == typed_run["outputs"]
    assert [(t["cached"], t["attempts"]) for t in cached["tasks"]] == [(True, 0)]

    result, fresh = run_json(home, *args, "--no-cache")
    assert result.returncode == 0
    assert fresh["outputs"] == typed_run["outputs"]
    assert [(t["cached"], t["attempts"]) for t in fresh["tasks"]] == [(False, 1)]


def test_failed_run_exits_1_and_points_at_the_logs(home: Path, failed_run: Any) -> None:
    result, run = failed_run
    assert result.returncode == 1
    assert "FAILED" in result.stdout
    assert run["run_id"] in result.stdout
    assert "explode: exited with code 1" in result.stdout
    assert f"flowdeck logs {run['run_id'][:8]} explode" in result.stdout

    shown = flowdeck_cli(home, "runs", "get", run["run_id"][:8], "--json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["state"] == "FAILED"
    states = {t["name"]: (t["state"], t["error"]) for t in document["tasks"]}
    # the error ends with the exception the component raised, so the summary explains the failure
    assert states == {"produce": ("SUCCEEDED", None),
                      "explode": ("FAILED", "exited with code 1: ValueError: kaboom 42")}

    logs = flowdeck_cli(home, "logs", run["run_id"][:10], "explode")
    assert logs.returncode == 0, logs.stderr
    assert "about to explode" in logs.stdout
    assert "Traceback (most recent call last)" in logs.stdout
    assert "ValueError: kaboom 42" in logs.stdout
    assert "==>" not in logs.stdout  # one log: no header


def test_progress_is_shown_on_a_terminal(home: Path, typed_run: dict[str, Any]) -> None:
    """With stdout on a terminal, a live progress line precedes the summary (here: a cache hit)."""
    leader, follower = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "flowdeck.cli.main", "run", str(home.parent / "typed.py"), "-p", "n=3",
         "-p", "s=hello world", "-p", "t=42", "-p", "items=[1, 2]"],
        env={**cli_env(home), "TERM": "xterm", "COLUMNS": "120"}, cwd=home.parent, stdout=follower,
        stderr=subprocess.PIPE, text=True,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    _, stderr = process.communicate(timeout=60)
    screen = b"".join(chunks).decode(errors="replace")
    assert process.returncode == 0, screen + stderr
    assert "Traceback" not in stderr
    assert "running " in screen and "done 1 (1 cached)" in screen
    assert "SUCCEEDED" in screen and "1 succeeded (1 cached)" in screen


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["missing.yaml"], ["missing.yaml: no such file"]),
        (["not_a_pipeline.yaml"], ["not_a_pipeline.yaml", "not a KFP pipeline spec"]),
        (["typed.py", "-p", "n=abc", "-p", "s=x"], ["'n'", "int", "abc"]),
        (["typed.py", "-p", "n=1", "-p", "s=x", "-p", "bogus=1"], ["unknown parameter 'bogus'"]),
        (["typed.py", "-p", "n=1"], ["missing value for parameter 's'"]),
        (["typed.py", "-p", "n"], ["'n' is not NAME=VALUE"]),
        (["typed.py", "-p", "n=1", "-p", "n=2"], ["'n' is given twice"]),
        (["typed.py:nothing_here"], ["no function named 'nothing_here'"]),
        ([], ["Missing argument 'PIPELINE'"]),
    ],
    ids=["missing-file", "not-a-pipeline", "bad-int", "unknown-parameter", "missing-parameter",
         "no-equals", "twice", "no-such-function", "no-pipeline"],
)
def test_invalid_input_is_one_line_exit_2_and_no_run(home: Path, typed_run: dict[str, Any], args: list[str],
                                                    fragments: list[str]) -> None:
    before = len(stored_runs(home))
    result = flowdeck_cli(home, "run", *args, "--json")
    assert_usage_error(result, *fragments)
    assert len(stored_runs(home)) == before


# ------------------------------------------------------------------------------------- runs, logs
def test_runs_list(home: Path, typed_run: dict[str, Any], failed_run: Any) -> None:
    listed = flowdeck_cli(home, "runs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    by_id = {r["run_id"]: r for r in runs}
    assert by_id[typed_run["run_id"]]["state"] == "SUCCEEDED"
    assert by_id[failed_run[1]["run_id"]]["state"] == "FAILED"
    assert {"run_id", "pipeline", "state", "created_at", "duration_seconds"} <= set(runs[0])
    created = [r["created_at"] for r in runs]
    assert created == sorted(created, reverse=True)

    table = flowdeck_cli(home, "runs", "list")
    assert table.returncode == 0
    header, *rows = table.stdout.strip().splitlines()
    assert header.split() == ["RUN", "PIPELINE", "STATE", "CREATED", "DURATION"]
    assert any(row.split()[:3] == [typed_run["run_id"][:8], "typed", "SUCCEEDED"] for row in rows)
    assert len(rows) == len(runs)

    failed = json.loads(flowdeck_cli(home, "runs", "list", "--state", "failed", "--json").stdout)
    assert [r["run_id"] for r in failed] == [failed_run[1]["run_id"]]
    assert len(json.loads(flowdeck_cli(home, "runs", "list", "-n", "1", "--json").stdout)) == 1


def test_runs_get_by_prefix(home: Path, typed_run: dict[str, Any]) -> None:
    run_id = typed_run["run_id"]
    shown = flowdeck_cli(home, "runs", "get", run_id[:7])
    assert shown.returncode == 0, shown.stderr
    assert run_id in shown.stdout
    assert "SUCCEEDED" in shown.stdout
    assert any(line.split()[:2] == ["describe", "SUCCEEDED"] for line in shown.stdout.splitlines())

    document = json.loads(flowdeck_cli(home, "runs", "get", run_id[:7], "--json").stdout)
    assert {k: document[k] for k in ("run_id", "state", "outputs", "tasks")} == {
        k: typed_run[k] for k in ("run_id", "state", "outputs", "tasks")}
    assert document["arguments"] == {"n": 3, "s": "hello world", "t": "42", "items": [1, 2]}


def test_unknown_run_is_one_line(home: Path, typed_run: dict[str, Any]) -> None:
    assert_usage_error(flowdeck_cli(home, "runs", "get", "xyz"), "no run matches 'xyz'")
    assert_usage_error(flowdeck_cli(home, "logs", "xyz"), "no run matches 'xyz'")


def test_logs_of_a_task_and_of_a_whole_run(home: Path, typed_run: dict[str, Any]) -> None:
    run_id = typed_run["run_id"]
    one = flowdeck_cli(home, "logs", run_id[:8], "describe")
    assert one.returncode == 0, one.stderr
    assert "describing: 3|'hello world'|'42'|[1, 2]" in one.stdout

    every = flowdeck_cli(home, "logs", run_id[:8])
    assert every.returncode == 0
    assert every.stdout == one.stdout  # a single task: the same log, no header

    assert_usage_error(flowdeck_cli(home, "logs", run_id[:8], "nosuchtask"), "no task 'nosuchtask'", "describe")


def test_hello_example_from_the_readme(home: Path) -> None:
    """The README's first command: the shipped example runs, takes the big branch and loops 4 times."""
    result = flowdeck_cli(home, "run", str(REPO / "examples" / "hello_pipeline.py"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.startswith("SUCCEEDED  hello-pipeline")
    assert "The squares add up to 30, a big number." in result.stdout

    [run] = [r for r in stored_runs(home) if r.pipeline_name == "hello-pipeline"]
    logs = flowdeck_cli(home, "logs", run.id, "square")
    assert logs.returncode == 0, logs.stderr
    headers = [line for line in logs.stdout.splitlines() if line.startswith("==> ")]
    assert len(headers) == 4, logs.stdout
    assert all("/square (attempt 1, SUCCEEDED) <==" in h for h in headers)
    for n in (1, 2, 3, 4):
        assert f"{n} squared is {n * n}" in logs.stdout


# ------------------------------------------------------------------------------------------ Ctrl-C
def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def sleeper(home: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    pidfile = home.parent / f"nap-{time.monotonic_ns()}.pid"
    process = subprocess.Popen(
        [sys.executable, "-m", "flowdeck.cli.main", "run", str(home.parent / "sleepy.py"),
         "-p", f"pidfile={pidfile}", "--json"],
        env=cli_env(home), cwd=home.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        yield process, pidfile
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        if pidfile.exists() and _alive(int(pidfile.read_text())):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_ctrl_c_cancels_the_run_and_stops_its_processes(home: Path, sleeper: Any) -> None:
    process, pidfile = sleeper
    deadline = time.monotonic() + 60
    while not pidfile.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the sleeping task did not start in 60 s"
        time.sleep(0.05)
    child = int(pidfile.read_text())
    while not (running := [r for r in stored_runs(home) if r.pipeline_name == "sleepy" and r.state == "RUNNING"]):
        assert time.monotonic() < deadline, "the run is not RUNNING in the store"
        time.sleep(0.05)
    [run] = running

    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == 1
    assert "Traceback" not in stderr
    assert f"run {run.id} canceled" in stderr
    document = json.loads(stdout)
    assert (document["run_id"], document["state"]) == (run.id, "CANCELED")
    [stored] = [r for r in stored_runs(home) if r.id == run.id]
    assert stored.state == "CANCELED"
    assert [t["state"] for t in document["tasks"]] == ["CANCELED"]
    deadline = time.monotonic() + 10
    while _alive(child):
        assert time.monotonic() < deadline, f"task process {child} still runs after the run was canceled"
        time.sleep(0.05)


# -------------------------------------------------------------------------------------------- help
def test_version() -> None:
    result = subprocess.run([sys.executable, "-m", "flowdeck.cli.main", "--version"], capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == f"flowdeck {flowdeck.__version__}"


@pytest.mark.parametrize("command", [[], ["run"], ["runs"], ["runs", "list"], ["runs", "get"], ["logs"]])
def test_every_command_has_help_and_help_is_light(command: list[str]) -> None:
    """`--help` documents the command and imports neither kfp, SQLAlchemy nor the engine."""
    probe = textwrap.dedent(f"""
        import sys
        from flowdeck.cli.main import main
        try:
            main({[*command, "--help"]!r})
        except SystemExit as exc:
            code = exc.code
        heavy = [m for m in ("kfp", "sqlalchemy", "flowdeck.pipelines.engine", "flowdeck.store") if m in sys.modules]
        print("EXIT", code, "HEAVY", heavy)
    """)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "EXIT 0 HEAVY []"
    assert result.stdout.startswith(f"Usage: flowdeck {' '.join(command)}".rstrip())
    assert "Examples:" in result.stdout or command in (["runs", "list"], ["runs", "get"])


def test_logs_of_a_cached_task_are_those_of_the_execution_it_reused(home: Path, tmp_path: Path) -> None:
    pipeline = tmp_path / "chatty.py"
    pipeline.write_text(
        "from kfp import dsl\n"
        "@dsl.component(base_image='python:3.11')\n"
        "def chatty() -> str:\n"
        "    print('chatty says hello')\n"
        "    return 'x'\n"
        "@dsl.pipeline\n"
        "def p() -> str:\n"
        "    return chatty().output\n"
    )
    first = json.loads(flowdeck_cli(home, "run", str(pipeline), "--json").stdout)
    second = json.loads(flowdeck_cli(home, "run", str(pipeline), "--json").stdout)
    (task,) = second["tasks"]
    assert task["cached"] and task["cached_from"]["run_id"] == first["run_id"]

    logs = flowdeck_cli(home, "logs", second["run_id"][:8], "chatty")

    assert logs.returncode == 0, logs.stderr
    assert "chatty says hello" in logs.stdout
    assert f"run {first['run_id'][:8]}" in logs.stderr
