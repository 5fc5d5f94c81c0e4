"""Issue 3, acceptance 5: `flowdeck apply|get|describe|delete|logs` against a real `flowdeck up`.

The control plane and every CLI command are real subprocesses. Besides PipelineRun (the pipelines
package's kind), they find the test-only `Widget` kind through a real `flowdeck.kinds` entry point
(a plugin directory on PYTHONPATH), exactly as a capability package's kind is found.
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kfp import compiler, dsl
from sqlalchemy import insert

from flowdeck.store import RunRow, open_store
from helpers import ControlPlane, start_control_plane, wait_for

WIDGETS = "test.flowdeck.dev/v1"
PIPELINES = "pipelines.flowdeck.dev/v1alpha1"


@dsl.component(base_image="python:3.11")
def add(a: int, b: int) -> int:
    print("adding", a, "and", b)
    return a + b


@dsl.component(base_image="python:3.11")
def nap(seconds: float):
    import time

    time.sleep(seconds)


@dsl.pipeline(name="adder")
def adder(a: int = 1, b: int = 2) -> int:
    return add(a=add(a=a, b=b).output, b=10).output


@dsl.pipeline(name="sleeper")
def sleeper(seconds: float = 300.0):
    nap(seconds=seconds)


def _install_widget_plugin(directory: Path) -> Path:
    source = Path(__file__).parents[1] / "resources" / "widget_kind.py"
    spec = importlib.util.spec_from_file_location("_widget_kind_for_cli_tests", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.install_plugin(directory)


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _install_widget_plugin(tmp_path_factory.mktemp("plugin"))


@pytest.fixture(scope="module")
def server_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("verbs") / "home"


@pytest.fixture(scope="module")
def server(server_home: Path, plugin: Path) -> Iterator[ControlPlane]:
    started = start_control_plane(server_home, env={"PYTHONPATH": str(plugin)})
    yield started
    assert started.stop() == 0, "\n".join(started.output)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("files")


def flowdeck(plugin: Path, url: str | None, *args: str, stdin: str | None = None, token: str | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_")}
    env.update(PYTHONPATH=str(plugin), FLOWDECK_HOME=str(plugin / "cli-home"))
    if url:
        env["FLOWDECK_URL"] = url
    if token:
        env["FLOWDECK_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "flowdeck.cli.main", *args], input=stdin, env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def cli(plugin: Path, server: ControlPlane):
    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return flowdeck(plugin, server.url, *args, stdin=stdin)
    return run


def one_error_line(result: subprocess.CompletedProcess[str], exit_code: int) -> str:
    """The command failed with `exit_code` and said why in exactly one line, with no traceback."""
    assert result.returncode == exit_code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("flowdeck: error: "), lines[0]
    return lines[0].removeprefix("flowdeck: error: ")


def write(directory: Path, name: str, *documents: dict[str, Any]) -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


def widget(name: str, namespace: str | None = None, **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": WIDGETS, "kind": "Widget", "metadata": metadata, "spec": {"size": 1, **spec}}


def stored(cli: Any, kind: str, namespace: str) -> list[str]:
    result = cli("get", kind, "-n", namespace, "-o", "json")
    assert result.returncode == 0, result.stderr
    return [item["metadata"]["name"] for item in json.loads(result.stdout)["items"]]


# ------------------------------------------------------------------------------------------- round trip
def test_apply_get_describe_delete_round_trip(cli: Any, workdir: Path) -> None:
    path = write(workdir, "widgets.yaml", {**widget("w1", size=3, steps=3), "metadata": {
        "name": "w1", "labels": {"tier": "gold"}}}, widget("w2", outcome="Ready"))
    applied = cli("apply", "-f", str(path), "--wait")
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines()[:2] == ["widget/w1 created", "widget/w2 created"]
    assert sorted(applied.stdout.splitlines()[2:]) == ["widget/w1 Succeeded: succeeded after 3 steps",
                                                       "widget/w2 Ready: ready after 1 steps"]

    as_json = cli("get", "widget", "w1", "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    resource = json.loads(as_json.stdout)
    assert (resource["apiVersion"], resource["kind"]) == (WIDGETS, "Widget")
    meta = resource["metadata"]
    assert (meta["name"], meta["namespace"], meta["labels"], meta["generation"]) == \
        ("w1", "default", {"tier": "gold"}, 1)
    assert meta["uid"] and meta["creationTimestamp"] and meta["resourceVersion"]
    assert resource["spec"] == {"size": 3, "color": "red", "outcome": "Succeeded", "steps": 3, "parts": {}}
    conditions = {c["type"]: c for c in resource["status"]["conditions"]}
    assert conditions["Succeeded"]["status"] == "True" and conditions["Running"]["status"] == "False"
    assert set(conditions["Succeeded"]) == {"type", "status", "reason", "message", "lastTransitionTime"}
    assert (resource["status"]["observedGeneration"], resource["status"]["step"]) == (1, 3)

    as_yaml = cli("get", "wd", "w1", "-o", "yaml")
    assert as_yaml.returncode == 0, as_yaml.stderr
    assert yaml.safe_load(as_yaml.stdout) == resource

    # what `get -o yaml` printed applies again as it is, and changes nothing
    (workdir / "w1.yaml").write_text(as_yaml.stdout)
    again = cli("apply", "-f", str(workdir / "w1.yaml"))
    assert (again.returncode, again.stdout) == (0, "widget/w1 unchanged\n"), again.stderr

    table = cli("get", "widgets")
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()]
    assert rows[0] == ["NAME", "STATUS", "SIZE", "STEP", "AGE"]
    assert [row[:4] for row in rows[1:]] == [["w1", "Succeeded", "3", "3"], ["w2", "Ready", "1", "1"]]

    described = cli("describe", "Widget", "w1")
    assert described.returncode == 0, described.stderr
    text = described.stdout
    for expected in ("Name:", "w1", "Kind:", f"Widget ({WIDGETS})", "Labels:", "tier=gold", "Summary:", "size:",
                     "Conditions:", "Events:", "WidgetSucceeded", "building a red widget of size 3"):
        assert expected in text, (expected, text)
    assert any(line.split()[:3] == ["Succeeded", "True", "WidgetSucceeded"] for line in text.splitlines())

    logs = cli("logs", "widgets", "w1")
    assert (logs.returncode, logs.stdout) == (0, "widget w1: size 3\nsteps taken: 3\n"), logs.stderr

    deleted = cli("delete", "widget", "w1")
    assert (deleted.returncode, deleted.stdout) == (0, "widget/w1 deleted\n"), deleted.stderr
    assert one_error_line(cli("get", "widget", "w1"), 2) == "widget/w1 not found in namespace default"
    assert stored(cli, "widgets", "default") == ["w2"]
    assert cli("delete", "widget", "w2").returncode == 0


def test_a_changed_spec_is_configured_with_a_new_generation(cli: Any, workdir: Path) -> None:
    first = write(workdir, "gen.yaml", widget("gen", "gens", size=1))
    assert cli("apply", "-f", str(first), "--wait").returncode == 0
    changed = write(workdir, "gen.yaml", widget("gen", "gens", size=2))
    result = cli("apply", "-f", str(changed), "--wait")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "widget/gen configured"
    resource = json.loads(cli("get", "wd", "gen", "-n", "gens", "-o", "json").stdout)
    assert (resource["metadata"]["generation"], resource["status"]["observedGeneration"]) == (2, 2)


def test_apply_reads_standard_input_and_namespaces_keep_resources_apart(cli: Any) -> None:
    text = yaml.safe_dump(widget("same", size=5))
    assert cli("apply", "-f", "-", "-n", "team-a", stdin=text).stdout == "widget/same created\n"
    assert cli("apply", "-f", "-", "-n", "team-b", stdin=text).stdout == "widget/same created\n"
    everywhere = cli("get", "widgets", "-A")
    assert everywhere.returncode == 0, everywhere.stderr
    rows = [line.split()[:2] for line in everywhere.stdout.splitlines()[1:]]
    assert ["team-a", "same"] in rows and ["team-b", "same"] in rows


# ---------------------------------------------------------------------------------------------- --wait
def test_wait_exits_1_on_failure_and_on_timeout(cli: Any, workdir: Path) -> None:
    failing = cli("apply", "-f", str(write(workdir, "fails.yaml", widget("breaks", "waits", outcome="Failed"))),
                  "--wait")
    assert failing.returncode == 1, failing.stderr
    assert failing.stdout.splitlines() == ["widget/breaks created", "widget/breaks Failed: the widget broke"]

    never = cli("apply", "-f", str(write(workdir, "never.yaml", widget("never", "waits", outcome="Never"))),
                "--wait", "--timeout", "1")
    assert never.returncode == 1
    assert never.stdout == "widget/never created\n"
    assert "widget/never timed out after 1s: still Running" in never.stderr
    assert "widget/never: Running" in never.stderr  # progress while waiting


# ------------------------------------------------------------------------------------------ bad input
def test_an_invalid_field_is_one_line_naming_it_and_nothing_is_stored(cli: Any, workdir: Path) -> None:
    bad = write(workdir, "bad.yaml", widget("fine", "invalid"),
                widget("wrong", "invalid", parts={"Master": {"replicas": 2}}))
    message = one_error_line(cli("apply", "-f", str(bad)), 2)
    assert message == f"{bad}: document 2: spec.parts.Master.replicas: must be 1"
    assert stored(cli, "widgets", "invalid") == []  # all or none: the valid first document was not stored either

    typo = write(workdir, "typo.yaml", widget("typo", "invalid", colour="red"))
    assert one_error_line(cli("apply", "-f", str(typo)), 2) == \
        f"{typo}: spec.colour: unknown field (did you mean 'color'?)"


#: The kinds the CLI knows in these tests: every installed capability's, and the test plugin's Widget.
KNOWN_KINDS = ("Experiment, InferenceService, JAXJob, PaddleJob, PipelineRun, Profile, PyTorchJob, TFJob, TrainJob, "
               "Widget, XGBoostJob")


def test_an_unknown_kind_or_api_version_is_one_line_naming_it(cli: Any, workdir: Path) -> None:
    job = write(workdir, "job.yaml", {"apiVersion": "kubeflow.org/v1", "kind": "MPIJob",
                                      "metadata": {"name": "train", "namespace": "invalid"}, "spec": {}})
    assert one_error_line(cli("apply", "-f", str(job)), 2) == \
        f"{job}: unknown kind 'MPIJob' (apiVersion kubeflow.org/v1); known kinds: " + KNOWN_KINDS
    version = write(workdir, "version.yaml", {**widget("v", "invalid"), "apiVersion": "test.flowdeck.dev/v9"})
    assert one_error_line(cli("apply", "-f", str(version)), 2) == (
        f"{version}: kind Widget has no apiVersion 'test.flowdeck.dev/v9' "
        "(expected test.flowdeck.dev/v1 or test.flowdeck.dev/v1beta1)")
    assert stored(cli, "widgets", "invalid") == []
    assert one_error_line(cli("get", "mpijobs"), 2) == "unknown kind 'mpijobs'; known kinds: " + KNOWN_KINDS


def test_a_yaml_syntax_error_names_the_line_and_a_missing_file_is_named(cli: Any, workdir: Path) -> None:
    broken = workdir / "broken.yaml"
    broken.write_text("apiVersion: test.flowdeck.dev/v1\nkind: Widget\nmetadata: {name: [x\nspec: {}\n")
    assert one_error_line(cli("apply", "-f", str(broken)), 2).startswith(f"{broken}: line 4, column ")
    assert one_error_line(cli("apply", "-f", str(workdir / "missing.yaml")), 2) == \
        f"{workdir / 'missing.yaml'}: no such file"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("args", [("apply", "-f", "-"), ("get", "widgets"), ("describe", "widget", "w1"),
                                  ("delete", "widget", "w1"), ("logs", "widget", "w1"), ("runs", "list")])
def test_without_a_control_plane_each_verb_says_to_run_flowdeck_up(plugin: Path, args: tuple[str, ...]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = flowdeck(plugin, url, *args, stdin=yaml.safe_dump(widget("w1")))
    assert one_error_line(result, 1) == \
        f"no flowdeck control plane answers at {url}; start one with `flowdeck up` (or set FLOWDECK_URL)"


def test_a_control_plane_with_a_token_needs_it_from_the_cli(plugin: Path, tmp_path: Path) -> None:
    guarded = start_control_plane(tmp_path / "home", env={"PYTHONPATH": str(plugin)}, args=("--token", "s3cret"))
    try:
        assert one_error_line(flowdeck(plugin, guarded.url, "get", "widgets"), 1) == \
            "this control plane requires credentials (a bearer token or a login)"
        assert one_error_line(flowdeck(plugin, guarded.url, "get", "widgets", token="wrong"), 1) == \
            "invalid bearer token"
        allowed = flowdeck(plugin, guarded.url, "get", "widgets", token="s3cret")
        assert allowed.returncode == 0, allowed.stderr
    finally:
        assert guarded.stop() == 0


# ---------------------------------------------------------------------------------------- PipelineRun
@pytest.fixture(scope="module")
def adder_spec(workdir: Path) -> dict[str, Any]:
    compiler.Compiler().compile(adder, str(workdir / "adder.yaml"))
    return yaml.safe_load((workdir / "adder.yaml").read_text())


def pipeline_run(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": PIPELINES, "kind": "PipelineRun", "metadata": {"name": name}, "spec": spec}


def test_a_pipeline_run_runs_its_pipeline_and_shows_in_runs(cli: Any, workdir: Path,
                                                            adder_spec: dict[str, Any]) -> None:
    path = write(workdir, "run.yaml", pipeline_run("add-five", pipelineSpec=adder_spec, parameters={"a": 5}))
    applied = cli("apply", "-f", str(path), "--wait", "--timeout", "120")
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines()[0] == "pipelinerun/add-five created"
    assert applied.stdout.splitlines()[1].startswith("pipelinerun/add-five Succeeded: run ")

    resource = json.loads(cli("get", "pr", "add-five", "-o", "json").stdout)
    run_id = resource["status"]["runId"]
    assert resource["status"]["state"] == "SUCCEEDED"
    assert [c["type"] for c in resource["status"]["conditions"] if c["status"] == "True"] == ["Created", "Succeeded"]

    logs = cli("logs", "pipelinerun", "add-five")
    assert logs.returncode == 0, logs.stderr
    assert "==> add (attempt 1, SUCCEEDED) <==" in logs.stdout and "adding 5 and 2" in logs.stdout
    assert "adding 7 and 10" in logs.stdout
    # FLOWDECK_URL is set: a run's logs come from the control plane (the CLI's own store has no runs)
    assert cli("logs", run_id[:8]).stdout == logs.stdout
    one_task = cli("logs", run_id[:8], "add-2")
    assert one_task.returncode == 0, one_task.stderr
    assert "adding 7 and 10" in one_task.stdout and "adding 5 and 2" not in one_task.stdout
    assert "==>" not in one_task.stdout
    assert one_error_line(cli("logs", run_id[:8], "train"), 2) == \
        f"no task 'train' in run {run_id[:8]} (tasks: add, add-2)"

    described = cli("describe", "pipelineruns", "add-five").stdout
    assert "adder (inline pipelineSpec)" in described and f"{run_id} (SUCCEEDED)" in described
    assert "2 succeeded" in described

    listed = cli("runs", "list", "--json")  # FLOWDECK_URL is set: the runs come from the control plane
    assert listed.returncode == 0, listed.stderr
    assert {"run_id": run_id, "display_name": "add-five", "state": "SUCCEEDED"}.items() <= \
        next(r for r in json.loads(listed.stdout) if r["run_id"] == run_id).items()
    shown = cli("runs", "get", run_id[:8], "--json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert (document["run_id"], document["state"], document["arguments"]) == (run_id, "SUCCEEDED", {"a": 5})
    assert sorted(t["path"] for t in document["tasks"]) == ["add", "add-2"]
    table = cli("runs", "get", run_id[:8])
    assert table.returncode == 0 and "add-five" in table.stdout and "SUCCEEDED" in table.stdout


def test_a_pipeline_run_with_bad_parameters_is_refused_naming_them(cli: Any, workdir: Path,
                                                                    adder_spec: dict[str, Any]) -> None:
    path = write(workdir, "bad-run.yaml", pipeline_run("bad-args", pipelineSpec=adder_spec, parameters={"c": 1}))
    assert one_error_line(cli("apply", "-f", str(path)), 2) == \
        f"{path}: spec.parameters: unknown parameter 'c' (the pipeline takes: a, b)"
    both = write(workdir, "both.yaml", pipeline_run("both", pipelineSpec=adder_spec, pipelineRef={"name": "adder"}))
    assert one_error_line(cli("apply", "-f", str(both)), 2) == (
        f"{both}: spec: give exactly one of pipelineSpec (a compiled pipeline) and pipelineRef (an uploaded pipeline)")


def test_a_pipeline_run_of_an_uploaded_pipeline(cli: Any, server: ControlPlane, workdir: Path) -> None:
    missing = write(workdir, "missing-ref.yaml", pipeline_run("no-such", pipelineRef={"name": "uploaded-adder"}))
    failed = cli("apply", "-f", str(missing), "--wait", "--timeout", "30")
    assert failed.returncode == 1
    assert failed.stdout.splitlines()[1] == (
        "pipelinerun/no-such Failed: no pipeline named 'uploaded-adder' in namespace default (upload it with "
        "kfp.Client().upload_pipeline, or give spec.pipelineSpec)")

    with open(workdir / "adder.yaml", "rb") as package:
        uploaded = httpx.post(f"{server.url}/apis/v2beta1/pipelines/upload", params={"name": "uploaded-adder"},
                              files={"uploadfile": ("adder.yaml", package, "application/x-yaml")})
    assert uploaded.status_code == 200, uploaded.text
    path = write(workdir, "ref.yaml", pipeline_run("by-ref", pipelineRef={"name": "uploaded-adder"},
                                                   parameters={"a": 1, "b": 1}, experiment="nightly"))
    applied = cli("apply", "-f", str(path), "--wait", "--timeout", "120")
    assert applied.returncode == 0, applied.stderr
    run_id = json.loads(cli("get", "pr", "by-ref", "-o", "json").stdout)["status"]["runId"]
    run = httpx.get(f"{server.url}/apis/v2beta1/runs/{run_id}").json()
    assert run["state"] == "SUCCEEDED"
    shown = cli("runs", "get", run_id, "--json")  # the run names no spec, only the uploaded pipeline
    assert (shown.returncode, json.loads(shown.stdout)["pipeline"]) == (0, "uploaded-adder"), shown.stderr
    assert run["pipeline_version_reference"]["pipeline_id"] == uploaded.json()["pipeline_id"]
    experiments = httpx.get(f"{server.url}/apis/v2beta1/experiments").json()["experiments"]
    assert run["experiment_id"] == next(e["experiment_id"] for e in experiments if e["display_name"] == "nightly")


def test_deleting_a_running_pipeline_run_terminates_its_run(cli: Any, server: ControlPlane, workdir: Path) -> None:
    compiler.Compiler().compile(sleeper, str(workdir / "sleeper.yaml"))
    spec = yaml.safe_load((workdir / "sleeper.yaml").read_text())
    assert cli("apply", "-f", "-", stdin=yaml.safe_dump(pipeline_run("long-nap", pipelineSpec=spec))).returncode == 0

    def running() -> bool:
        resource = json.loads(cli("get", "pr", "long-nap", "-o", "json").stdout)
        return any(c["type"] == "Running" and c["status"] == "True" for c in resource["status"].get("conditions", []))

    assert wait_for(running, timeout=60, interval=0.2)
    run_id = json.loads(cli("get", "pr", "long-nap", "-o", "json").stdout)["status"]["runId"]
    deleted = cli("delete", "pipelinerun", "long-nap")
    assert (deleted.returncode, deleted.stdout) == (0, "pipelinerun/long-nap deleted\n"), deleted.stderr
    assert wait_for(lambda: httpx.get(f"{server.url}/apis/v2beta1/runs/{run_id}").json()["state"] == "CANCELED",
                    timeout=30, interval=0.2)


# ------------------------------------------------------------------------------------- runs and logs
def test_runs_list_follows_pages_past_the_largest_the_api_serves(cli: Any, server_home: Path) -> None:
    """The KFP API serves at most 200 runs a page; `runs list --limit` is the user's limit all the same."""
    store = open_store(f"sqlite:///{server_home / 'flowdeck.db'}")
    start = datetime(2001, 1, 1, tzinfo=timezone.utc)  # older than every other run of this module
    try:
        with store.engine.begin() as conn:
            conn.execute(insert(RunRow), [
                {"id": f"0ld{n:05d}", "pipeline_name": "old", "display_name": f"old run {n}", "state": "CANCELED",
                 "pipeline_spec": {}, "created_at": start + timedelta(minutes=n)} for n in range(230)])
    finally:
        store.close()

    every = cli("runs", "list", "--state", "CANCELED", "--limit", "500", "--json")
    assert every.returncode == 0, every.stderr
    old = [run["display_name"] for run in json.loads(every.stdout) if run["display_name"].startswith("old run ")]
    assert old == [f"old run {n}" for n in reversed(range(230))]
    limited = cli("runs", "list", "--state", "CANCELED", "--limit", "215", "--json")
    assert len(json.loads(limited.stdout)) == 215
    assert json.loads(limited.stdout)[0]["pipeline"] is None  # KFP lists name no pipeline: none is made up

    table = cli("runs", "list", "--state", "CANCELED", "--limit", "3")
    assert table.stdout.splitlines()[0].split() == ["RUN", "NAME", "STATE", "CREATED", "DURATION"]


def test_logs_of_a_run_id_load_no_resource_kinds(tmp_path: Path) -> None:
    """A broken kind plugin shows that `flowdeck logs RUN` never loads the kinds, and `logs KIND` does."""
    info = tmp_path / "flowdeck_broken-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: flowdeck-broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[flowdeck.kinds]\nBroken = no_such_module:KIND\n")
    assert one_error_line(flowdeck(tmp_path, None, "logs", "dead-beef"), 2) == "no run matches 'dead-beef'"
    named = flowdeck(tmp_path, None, "logs", "nightly")
    assert "kind Broken (no_such_module:KIND) is left out" in named.stderr
    assert "no run matches 'nightly'" in named.stderr


def test_help_says_where_runs_come_from_and_what_namespace_means(plugin: Path) -> None:
    def help_text(*command: str) -> str:
        return " ".join(flowdeck(plugin, None, *command, "--help").stdout.split())

    assert "With FLOWDECK_URL set, the runs come from that control plane" in help_text("runs", "list")
    assert "With FLOWDECK_URL set, RUN's logs come from that control plane" in help_text("logs")
    for verb in ("get", "describe", "delete"):
        assert "document" not in help_text(verb), verb
    assert "a document naming another namespace is refused" in help_text("apply")
