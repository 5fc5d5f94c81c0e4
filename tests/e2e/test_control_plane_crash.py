"""Killing `flowdeck up` with SIGKILL in the middle of a run loses nothing and repeats nothing.

The restarted control plane resumes the run: the task that had succeeded is not run again (its
side effect happened once), the gated one runs anew, and the store is intact.
"""

import signal
import sqlite3
from pathlib import Path

import kfp
import pytest

from helpers import start_control_plane, wait_for
from sample_pipelines import gated


def task_states(client: kfp.Client, run_id: str) -> dict[str, str]:
    details = client.get_run(run_id).run_details
    return {t.display_name: t.state for t in (details.task_details or [])} if details else {}


def interrupt_a_gated_run(home: Path, markers: Path, signum: int) -> str:
    """Start `flowdeck up`, submit `gated`, and stop the server with `signum` while its gate task runs."""
    server = start_control_plane(home)
    try:
        client = kfp.Client(host=server.url)
        run_id = client.create_run_from_pipeline_func(
            gated, arguments={"marker_dir": str(markers)}, enable_caching=False).run_id
        assert wait_for(lambda: task_states(client, run_id).get("wait-for-go") == "RUNNING", timeout=60)
        assert task_states(client, run_id)["count"] == "SUCCEEDED"
    finally:
        status = server.stop(signum)
    assert status == (-signal.SIGKILL if signum == signal.SIGKILL else 0)  # SIGTERM: a clean stop
    return run_id


def finish_after_restart(home: Path, markers: Path, run_id: str) -> None:
    """Open the gate, start `flowdeck up` again, and see the run end SUCCEEDED with every task."""
    (markers / "go").touch()
    server = start_control_plane(home)
    try:
        client = kfp.Client(host=server.url)
        assert wait_for(lambda: client.get_run(run_id).state in ("SUCCEEDED", "FAILED"), timeout=60)
        run = client.get_run(run_id)
        assert run.state == "SUCCEEDED", run.error
        assert set(task_states(client, run_id).values()) == {"SUCCEEDED"}
    finally:
        assert server.stop() == 0
    assert (markers / "first.count").read_text() == "x"  # succeeded before the stop: not run again
    assert (markers / "last.count").read_text() == "x"


@pytest.mark.timeout(180)
def test_sigkill_during_a_run_then_restart_finishes_it_without_repeating_tasks(tmp_path: Path) -> None:
    home, markers = tmp_path / "home", tmp_path / "markers"
    markers.mkdir()
    run_id = interrupt_a_gated_run(home, markers, signal.SIGKILL)
    finish_after_restart(home, markers, run_id)
    with sqlite3.connect(home / "flowdeck.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        attempts = dict(db.execute("SELECT name, attempts FROM tasks WHERE run_id = ?", (run_id,)).fetchall())
    assert attempts == {"count": 1, "wait-for-go": 2, "count-2": 1}


@pytest.mark.timeout(180)
def test_sigterm_suspends_runs_and_the_next_start_resumes_them(tmp_path: Path) -> None:
    home, markers = tmp_path / "home", tmp_path / "markers"
    markers.mkdir()
    run_id = interrupt_a_gated_run(home, markers, signal.SIGTERM)
    finish_after_restart(home, markers, run_id)
