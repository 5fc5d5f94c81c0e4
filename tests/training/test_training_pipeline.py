"""A pipeline launches a training job from a component and waits for it (`flowdeck.training.pipeline`).

The run's task finds its control plane and profile in its environment; the job it applies is an
ordinary resource afterwards (`flowdeck get/logs` show it). A job that fails fails the task, naming why.
"""

from pathlib import Path

import kfp
from jobs_api import Jobs
from kfp import dsl


@dsl.component
def launch(name: str, script: str, exit_code: int) -> str:
    from flowdeck.training.pipeline import launch_training_job

    container = {"name": "pytorch", "command": ["python", script, str(exit_code)]}
    job = launch_training_job({
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": name},
        "spec": {"pytorchReplicaSpecs": {
            "Master": {"replicas": 1, "restartPolicy": "Never", "template": {"spec": {"containers": [container]}}},
            "Worker": {"replicas": 1, "restartPolicy": "Never", "template": {"spec": {"containers": [container]}}}}}},
        timeout=120)
    return job["status"]["state"]


@dsl.pipeline
def train_in_a_job(name: str, script: str, exit_code: int) -> str:
    return launch(name=name, script=script, exit_code=exit_code).output


SCRIPT = """
import os, sys
print("rank", os.environ["RANK"], "of", os.environ["WORLD_SIZE"])
sys.exit(int(sys.argv[1]))
"""


def test_a_component_launches_a_training_job_and_waits_for_it(jobs: Jobs, tmp_path: Path) -> None:
    script = tmp_path / "rank.py"
    script.write_text(SCRIPT)
    client = kfp.Client(host=jobs.server.url)
    run = client.create_run_from_pipeline_func(train_in_a_job, arguments={
        "name": "from-pipeline", "script": str(script), "exit_code": 0}, experiment_name="training")
    finished = client.wait_for_run_completion(run.run_id, timeout=180)
    assert finished.state == "SUCCEEDED", finished.error
    job = jobs.get("PyTorchJob", "from-pipeline")
    assert job["status"]["state"] == "Succeeded"
    logs = jobs.cli("logs", "pytorchjob", "from-pipeline")
    assert "rank 0 of 2" in logs.stdout and "rank 1 of 2" in logs.stdout

    failing = client.create_run_from_pipeline_func(train_in_a_job, arguments={
        "name": "failing", "script": str(script), "exit_code": 3}, experiment_name="training")
    failed = client.wait_for_run_completion(failing.run_id, timeout=180)
    assert failed.state == "FAILED"
    task_logs = jobs.cli("logs", failing.run_id)
    assert "exited with code 3" in task_logs.stdout + task_logs.stderr, task_logs
