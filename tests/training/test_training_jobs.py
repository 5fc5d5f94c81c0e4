"""The local training operator's semantics, with plain Python scripts as replicas (no torch needed).

Each script records every start (`runs-<RANK>.txt`: one pid per line), so a test can tell attempts
apart, see that a gang restart started every replica again, and check that stopped ranks are gone.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from jobs_api import Jobs, pytorch_job

from helpers import process_gone, start_control_plane, wait_for

#: A replica that records its start, then behaves as BEHAVIOUR[attempt][RANK] says: an exit code,
#: "block" (sleep as a rank stuck in rendezvous would), "late-N" (exit N once every rank runs), "slow"
#: (1.5 s) or "gate" (until a file `open` exists).
SCRIPT = """
import json, os, sys, time
out = os.path.dirname(os.path.abspath(__file__))
rank = os.environ.get("RANK", "0")
with open(os.path.join(out, f"runs-{rank}.txt"), "a") as runs:
    runs.write(f"{os.getpid()}\\n")
attempt = len(open(os.path.join(out, f"runs-{rank}.txt")).read().split()) - 1
plan = json.load(open(os.path.join(out, "behaviour.json")))
step = plan[min(attempt, len(plan) - 1)].get(rank, 0)
if step == "block":
    time.sleep(120)
elif step == "slow":
    time.sleep(1.5)
elif str(step).startswith("late-"):  # exit with that code once every rank of this attempt has started
    while sum(len(open(os.path.join(out, name)).read().split()) > attempt
              for name in os.listdir(out) if name.startswith("runs-")) < int(os.environ["WORLD_SIZE"]):
        time.sleep(0.05)
    sys.exit(int(step[5:]))
elif step == "gate":  # wait until the test opens the gate
    while not os.path.exists(os.path.join(out, "open")):
        time.sleep(0.05)
else:
    sys.exit(step)
"""


def scripted(tmp_path: Path, behaviour: list[dict[str, Any]]) -> Path:
    (tmp_path / "behaviour.json").write_text(json.dumps(behaviour))
    script = tmp_path / "replica.py"
    script.write_text(SCRIPT)
    return script


def pids(tmp_path: Path, rank: int) -> list[int]:
    path = tmp_path / f"runs-{rank}.txt"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def condition(job: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in job["status"]["conditions"] if c["type"] == kind)


def test_exit_137_under_exit_code_restarts_the_whole_group_then_succeeds(jobs: Jobs, tmp_path: Path) -> None:
    # attempt 0: worker 1 dies with 137 while the master and worker 2 block; attempt 1: everyone succeeds
    script = scripted(tmp_path, [{"0": "block", "1": "late-137", "2": "block"}, {"0": "late-0"}])
    started = time.monotonic()
    assert jobs.apply(pytorch_job("retry", script, restart="ExitCode")).returncode == 0
    job = jobs.wait("PyTorchJob", "retry", "Succeeded", timeout=60)
    assert time.monotonic() - started < 40  # the blocked ranks were stopped, not waited for
    status = job["status"]
    assert status["restarts"] == 1 and status["attempt"] == 1
    assert [len(pids(tmp_path, rank)) for rank in range(3)] == [2, 2, 2]
    assert all(process_gone(pids(tmp_path, rank)[0]) for rank in range(3))
    assert status["replicaStatuses"]["Master"]["succeeded"] == 1
    assert status["replicaStatuses"]["Worker"]["succeeded"] == 2
    reasons = [e["reason"] for e in jobs.events("PyTorchJob", "retry")]
    assert "Restarting" in reasons and reasons[-1] == "Succeeded", reasons
    assert condition(job, "Running")["status"] == "False"
    assert "startTime" in status and "completionTime" in status
    assert job["status"]["state"] == "Succeeded"


def test_exit_1_under_exit_code_fails_at_once(jobs: Jobs, tmp_path: Path) -> None:
    script = scripted(tmp_path, [{"0": "block", "1": 0, "2": "late-1"}])
    assert jobs.apply(pytorch_job("permanent", script, restart="ExitCode")).returncode == 0
    job = jobs.wait("PyTorchJob", "permanent", "Failed", timeout=30)
    failed = condition(job, "Failed")
    assert failed["reason"] == "PyTorchJobFailed"
    assert "worker-1 exited with code 1" in failed["message"] and "non-retryable" in failed["message"]
    assert job["status"].get("restarts", 0) == 0 and len(pids(tmp_path, 0)) == 1
    assert wait_for(lambda: process_gone(pids(tmp_path, 0)[0]), timeout=10)  # the blocked master was stopped


def test_backoff_limit_exhausted_fails_with_a_reason(jobs: Jobs, tmp_path: Path) -> None:
    script = scripted(tmp_path, [{"0": 3}])
    document = pytorch_job("backoff", script, workers=0, restart="OnFailure", run_policy={"backoffLimit": 2})
    assert jobs.apply(document).returncode == 0
    job = jobs.wait("PyTorchJob", "backoff", "Failed", timeout=30)
    failed = condition(job, "Failed")
    assert failed["reason"] == "BackoffLimitExceeded" and "backoff limit (2)" in failed["message"], failed
    assert job["status"]["restarts"] == 2 and len(pids(tmp_path, 0)) == 3


def test_active_deadline_fails_the_job_and_stops_every_replica(jobs: Jobs, tmp_path: Path) -> None:
    script = scripted(tmp_path, [{"0": "block", "1": "block"}])
    document = pytorch_job("deadline", script, workers=1, run_policy={"activeDeadlineSeconds": 2})
    assert jobs.apply(document).returncode == 0
    job = jobs.wait("PyTorchJob", "deadline", "Failed", timeout=20)
    failed = condition(job, "Failed")
    assert failed["reason"] == "DeadlineExceeded" and "longer than specified deadline" in failed["message"]
    assert wait_for(lambda: all(process_gone(pids(tmp_path, rank)[0]) for rank in range(2)), timeout=10)


def test_a_crashed_rank_never_leaves_another_blocked(jobs: Jobs, tmp_path: Path) -> None:
    script = scripted(tmp_path, [{"0": "block", "1": "block", "2": "late-1"}])
    started = time.monotonic()
    assert jobs.apply(pytorch_job("crash", script, restart="Never")).returncode == 0
    jobs.wait("PyTorchJob", "crash", "Failed", timeout=30)
    assert wait_for(lambda: all(pids(tmp_path, r) and process_gone(pids(tmp_path, r)[0]) for r in range(3)),
                    timeout=10)
    assert time.monotonic() - started < 30


def test_suspend_stops_every_replica_and_resume_starts_them_again(jobs: Jobs, tmp_path: Path) -> None:
    script = scripted(tmp_path, [{"0": "block", "1": "block"}])
    document = pytorch_job("pause", script, workers=1)
    assert jobs.apply(document).returncode == 0
    assert wait_for(lambda: len(pids(tmp_path, 0)) == 1 and len(pids(tmp_path, 1)) == 1, timeout=20)
    first_start = jobs.get("PyTorchJob", "pause")["status"]["startTime"]

    document["spec"]["runPolicy"]["suspend"] = True
    assert jobs.apply(document).returncode == 0
    job = jobs.wait("PyTorchJob", "pause", "Suspended", timeout=20)
    assert condition(job, "Running")["status"] == "False"
    assert wait_for(lambda: all(process_gone(pids(tmp_path, r)[0]) for r in range(2)), timeout=10)

    time.sleep(1.1)  # startTime has second precision: a resumed start is visibly later
    document["spec"]["runPolicy"]["suspend"] = False
    assert jobs.apply(document).returncode == 0
    job = jobs.wait("PyTorchJob", "pause", "Running", timeout=20)
    assert condition(job, "Suspended")["status"] == "False" and condition(job, "Suspended")["reason"] == \
        "PyTorchJobResumed"
    assert wait_for(lambda: len(pids(tmp_path, 0)) == 2 and len(pids(tmp_path, 1)) == 2, timeout=20)
    assert jobs.get("PyTorchJob", "pause")["status"]["startTime"] > first_start
    jobs.delete("PyTorchJob", "pause")
    assert wait_for(lambda: all(process_gone(pids(tmp_path, r)[1]) for r in range(2)), timeout=15)


TF_SCRIPT = """
import json, os
config = json.loads(os.environ["TF_CONFIG"])
task = config["task"]
out = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(out, f"{task['type']}-{task['index']}.json"), "w") as file:
    json.dump(config, file)
"""


def test_tfjob_replicas_see_the_operators_tf_config(jobs: Jobs, tmp_path: Path) -> None:
    script = tmp_path / "tf.py"
    script.write_text(TF_SCRIPT)

    def replicas(count: int) -> dict[str, Any]:
        return {"replicas": count, "template": {"spec": {"containers": [
            {"name": "tensorflow", "image": "tensorflow/tensorflow:2.16.1", "command": ["python", str(script)]}]}}}

    document = {"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "metadata": {"name": "tf"},
                "spec": {"tfReplicaSpecs": {"Chief": replicas(1), "Worker": replicas(2)}}}
    assert jobs.apply(document).returncode == 0
    job = jobs.wait("TFJob", "tf", "Succeeded", timeout=30)
    seen = {path.stem: json.loads(path.read_text()) for path in tmp_path.glob("*-*.json")}
    assert set(seen) == {"chief-0", "worker-0", "worker-1"}
    clusters = [config["cluster"] for config in seen.values()]
    assert all(cluster == clusters[0] for cluster in clusters)
    assert set(clusters[0]) == {"chief", "worker"}
    assert len(clusters[0]["chief"]) == 1 and len(clusters[0]["worker"]) == 2
    addresses = clusters[0]["chief"] + clusters[0]["worker"]
    assert all(address.startswith("127.0.0.1:") for address in addresses) and len(set(addresses)) == 3
    for name, config in seen.items():
        kind, index = name.split("-")
        assert config["task"] == {"type": kind, "index": int(index)} and config["environment"] == "cloud"
    assert job["status"]["replicaStatuses"]["Chief"]["succeeded"] == 1


@pytest.mark.parametrize(("change", "words"), [
    (lambda spec: spec["pytorchReplicaSpecs"]["Master"].update(replicas=2), "Master.replicas"),
    (lambda spec: spec["pytorchReplicaSpecs"]["Worker"]["template"]["spec"].update(containers=[]),
     "Worker.template.spec.containers"),
    (lambda spec: spec["pytorchReplicaSpecs"].update(Chief=spec["pytorchReplicaSpecs"]["Worker"]), "Chief"),
    (lambda spec: spec["pytorchReplicaSpecs"]["Worker"].update(restartPolicy="Sometimes"),
     "Worker.restartPolicy"),
])
def test_invalid_specs_are_refused_naming_the_field_and_nothing_starts(jobs: Jobs, tmp_path: Path, change,
                                                                      words: str) -> None:
    script = scripted(tmp_path, [{}])
    document = pytorch_job("invalid", script)
    change(document["spec"])
    result = jobs.apply(document)
    assert result.returncode != 0
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line and words in line, line
    assert not jobs.exists("PyTorchJob", "invalid")
    assert pids(tmp_path, 0) == []


def test_two_one_cpu_jobs_in_a_one_cpu_profile_run_one_after_the_other(jobs: Jobs, tmp_path: Path) -> None:
    profile = {"apiVersion": "kubeflow.org/v1", "kind": "Profile", "metadata": {"name": "team-q"},
               "spec": {"owner": {"kind": "User", "name": "ada"}, "resourceQuotaSpec": {"hard": {"cpu": "1"}}}}
    assert jobs.apply(profile).returncode == 0
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    for directory in (first_dir, second_dir):
        directory.mkdir()
    first = pytorch_job("first", scripted(first_dir, [{"0": "slow"}]), workers=0, namespace="team-q", cpu="1")
    second = pytorch_job("second", scripted(second_dir, [{"0": "slow"}]), workers=0, namespace="team-q", cpu="1")
    assert jobs.apply(first).returncode == 0
    assert wait_for(lambda: pids(first_dir, 0), timeout=20)
    assert jobs.apply(second).returncode == 0
    assert wait_for(lambda: any("waiting for quota: profile team-q allows 1 CPU and 1 CPU are in use"
                                in e["message"] for e in jobs.events("PyTorchJob", "second", "team-q")), timeout=10)
    assert pids(second_dir, 0) == []
    jobs.wait("PyTorchJob", "first", "Succeeded", namespace="team-q")
    done = jobs.wait("PyTorchJob", "second", "Succeeded", namespace="team-q")
    first_end = jobs.get("PyTorchJob", "first", "team-q")["status"]["completionTime"]
    assert done["status"]["startTime"] >= first_end

    too_big = pytorch_job("too-big", scripted(tmp_path, [{}]), workers=0, namespace="team-q", cpu="2")
    assert jobs.apply(too_big).returncode == 0
    failed = condition(jobs.wait("PyTorchJob", "too-big", "Failed", namespace="team-q"), "Failed")
    assert "cannot run: it asks for 2 CPU and profile team-q allows 1 CPU in all" in failed["message"], failed


def test_jobs_beyond_the_machines_training_capacity_wait_and_start_in_order(jobs: Jobs, tmp_path: Path) -> None:
    names = ("cap-one", "cap-two", "cap-three")
    directories = [tmp_path / name for name in names]
    for name, directory in zip(names, directories, strict=True):
        directory.mkdir()
        assert jobs.apply(pytorch_job(name, scripted(directory, [{"0": "gate"}]), workers=0, cpu="1")).returncode == 0
    assert wait_for(lambda: pids(directories[0], 0) and pids(directories[1], 0), timeout=15)
    assert wait_for(lambda: any("waiting for capacity: this machine" in e["message"] and "allows 2 CPU and 2 CPU are "
                                "in use" in e["message"] for e in jobs.events("PyTorchJob", "cap-three")), timeout=15)
    assert pids(directories[2], 0) == []
    (directories[0] / "open").touch()
    first = jobs.wait("PyTorchJob", "cap-one", "Succeeded")["status"]
    assert wait_for(lambda: pids(directories[2], 0), timeout=15)
    assert jobs.get("PyTorchJob", "cap-three")["status"]["startTime"] >= first["completionTime"]
    for directory in directories[1:]:
        (directory / "open").touch()
    for name in names[1:]:
        jobs.wait("PyTorchJob", name, "Succeeded")


def test_a_finished_job_is_deleted_after_its_ttl(jobs: Jobs, tmp_path: Path) -> None:
    script = scripted(tmp_path, [{}])
    assert jobs.apply(pytorch_job("short-lived", script, workers=0,
                                  run_policy={"ttlSecondsAfterFinished": 1})).returncode == 0
    jobs.wait("PyTorchJob", "short-lived", "Succeeded")
    assert wait_for(lambda: not jobs.exists("PyTorchJob", "short-lived"), timeout=15)


ENV_SCRIPT = """
import json, os, sys
out = sys.argv[1]
keys = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "WORKER_ADDRS", "COORDINATOR_ADDRESS", "COORDINATOR_PORT",
        "NUM_PROCESSES", "PROCESS_ID", "PADDLE_MASTER", "PADDLE_NNODES", "PADDLE_JOB_ID", "CUSTOM")
name = os.environ.get("RANK", os.environ.get("PROCESS_ID", "x")) + "-" + str(os.getpid())
with open(os.path.join(out, name + ".json"), "w") as file:
    json.dump({key: os.environ[key] for key in keys if key in os.environ}, file)
"""


@pytest.mark.parametrize(("kind", "key", "container", "types", "expect"), [
    ("XGBoostJob", "xgbReplicaSpecs", "xgboost", ("Master", "Worker"), {"WORLD_SIZE": "3", "MASTER_ADDR": "127.0.0.1"}),
    ("JAXJob", "jaxReplicaSpecs", "jax", ("Worker",), {"NUM_PROCESSES": "3", "COORDINATOR_ADDRESS": "127.0.0.1"}),
    ("PaddleJob", "paddleReplicaSpecs", "paddle", ("Worker",),
     {"PADDLE_NNODES": "3", "PADDLE_JOB_ID": "env-paddlejob"}),
])
def test_other_frameworks_get_their_operators_environment(jobs: Jobs, tmp_path: Path, kind: str, key: str,
                                                          container: str, types: tuple[str, ...],
                                                          expect: dict[str, str]) -> None:
    script = tmp_path / "env.py"
    script.write_text(ENV_SCRIPT)
    counts = {"Master": 1, "Worker": 2 if "Master" in types else 3}
    specs = {rtype: {"replicas": counts[rtype], "template": {"spec": {"containers": [{
        "name": container, "command": ["python", str(script), str(tmp_path)],
        "env": [{"name": "CUSTOM", "value": "kept"}]}]}}} for rtype in types}
    name = f"env-{kind.lower()}"
    document = {"apiVersion": "kubeflow.org/v1", "kind": kind, "metadata": {"name": name}, "spec": {key: specs}}
    assert jobs.apply(document).returncode == 0, document
    jobs.wait(kind, name, "Succeeded")
    seen = [json.loads(path.read_text()) for path in tmp_path.glob("*.json")]
    assert len(seen) == 3
    for env in seen:
        assert env["CUSTOM"] == "kept" and all(env[k] == v for k, v in expect.items()), env


def test_a_running_job_is_started_again_after_the_control_plane_restarts(tmp_path: Path) -> None:
    script = scripted(tmp_path, [{"0": "block", "1": "block"}, {}])
    home = tmp_path / "home"
    server = start_control_plane(home)
    try:
        restarted = Jobs(server, tmp_path)
        assert restarted.apply(pytorch_job("survivor", script, workers=1)).returncode == 0
        assert wait_for(lambda: pids(tmp_path, 0) and pids(tmp_path, 1), timeout=20)
    finally:
        assert server.stop() == 0
    assert all(process_gone(pids(tmp_path, rank)[0]) for rank in range(2))  # they ended with the control plane
    server = start_control_plane(home)
    try:
        restarted = Jobs(server, tmp_path)
        job = restarted.wait("PyTorchJob", "survivor", "Succeeded", timeout=30)
        assert job["status"]["attempt"] == 1 and job["status"].get("restarts", 0) == 0
        assert any(e["reason"] == "Relaunched" for e in restarted.events("PyTorchJob", "survivor"))
    finally:
        server.stop()
