"""Runs as users see them: create, look up by id or prefix, list, update, delete, fail orphans."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from flowdeck.store import Batch, RunNotFound, Store, open_store
from flowdeck.store.ownership import this_instance

UTC = timezone.utc


def task(task_id: str, run_id: str, state: str) -> dict:
    return {
        "id": task_id,
        "run_id": run_id,
        "name": task_id,
        "display_name": task_id,
        "path": task_id,
        "kind": "container",
        "state": state,
    }


def test_created_run_reads_back(store: Store, make_run: Callable[..., str]) -> None:
    make_run("r1", arguments={"n": 3}, enable_caching=False)

    run = store.get_run("r1")

    assert (run.id, run.pipeline_name, run.state) == ("r1", "pipe", "RUNNING")
    assert run.arguments == {"n": 3}
    assert run.enable_caching is False
    assert run.outputs == {}
    assert run.platform_spec is None
    assert run.engine_host == socket.gethostname()


def test_get_run_by_unique_prefix(store: Store, make_run: Callable[..., str]) -> None:
    for run_id in ("abc123", "abc456", "abd789", "ABC999", "run1", "run12"):
        make_run(run_id)

    assert store.get_run("abd").id == "abd789"
    assert store.get_run("abc1").id == "abc123"
    assert store.get_run("ABC").id == "ABC999"  # prefixes are case-sensitive on every backend
    assert store.get_run("run1").id == "run1"  # an exact id wins over the longer ids it prefixes


@pytest.mark.parametrize("run_id", ["abc", "zzz", "", "a%", "ab_"])
def test_get_run_raises_for_unknown_or_ambiguous_ids(
    store: Store, make_run: Callable[..., str], run_id: str
) -> None:
    make_run("abc123")
    make_run("abc456")

    with pytest.raises(RunNotFound):
        store.get_run(run_id)


def test_list_runs_newest_first_with_limit_and_state(store: Store, make_run: Callable[..., str]) -> None:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    for i, state in enumerate(["SUCCEEDED", "FAILED", "SUCCEEDED", "RUNNING"]):
        make_run(f"r{i}", state=state, created_at=start + timedelta(minutes=i))

    assert [r.id for r in store.list_runs()] == ["r3", "r2", "r1", "r0"]
    assert [r.id for r in store.list_runs(limit=2)] == ["r3", "r2"]
    assert [r.id for r in store.list_runs(state="SUCCEEDED")] == ["r2", "r0"]
    assert store.list_runs(state="CANCELED") == []


def test_timestamps_read_back_as_utc_in_true_order(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGTZ", "Asia/Kolkata")  # PostgreSQL answers in the session's time zone
    store = open_store(store_url)
    spec = {"pipeline_spec": {}, "pipeline_name": "p", "display_name": "d", "state": "RUNNING"}
    store.create_run(id="noon-utc", created_at=datetime(2024, 1, 1, 12, 0, tzinfo=UTC), **spec)
    # Later wall-clock time, but 11:00 UTC: it must sort before noon UTC.
    tokyo = timezone(timedelta(hours=9))
    store.create_run(id="tokyo", created_at=datetime(2024, 1, 1, 20, 0, tzinfo=tokyo), **spec)
    store.create_run(id="naive", created_at=datetime(2024, 1, 1, 13, 0), **spec)  # naive means UTC

    runs = store.list_runs()
    store.close()

    assert [r.id for r in runs] == ["naive", "noon-utc", "tokyo"]
    assert [r.created_at for r in runs] == [
        datetime(2024, 1, 1, 13, 0, tzinfo=UTC),
        datetime(2024, 1, 1, 12, 0, tzinfo=UTC),
        datetime(2024, 1, 1, 11, 0, tzinfo=UTC),
    ]
    assert all(r.created_at.utcoffset() == timedelta(0) for r in runs)


def test_update_run(store: Store, make_run: Callable[..., str]) -> None:
    make_run("r1")
    finished = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

    store.update_run("r1", state="SUCCEEDED", outputs={"accuracy": 0.5}, finished_at=finished)

    run = store.get_run("r1")
    assert (run.state, run.outputs, run.finished_at) == ("SUCCEEDED", {"accuracy": 0.5}, finished)


def test_delete_run_removes_its_tasks_and_attempts(store: Store, make_run: Callable[..., str]) -> None:
    make_run("r1")
    make_run("r2")
    store.commit(
        "r1",
        Batch(
            new_tasks=[task("t1", "r1", "SUCCEEDED")],
            new_attempts=[{"task_id": "t1", "number": 1, "state": "SUCCEEDED"}],
        ),
    )
    store.commit("r2", Batch(new_tasks=[task("t2", "r2", "SUCCEEDED")]))

    store.delete_run("r1")

    with pytest.raises(RunNotFound):
        store.get_run("r1")
    assert store.list_tasks("r1") == []
    assert store.list_attempts(["t1"]) == []
    assert [t.id for t in store.list_tasks("r2")] == ["t2"]


def test_json_keeps_ints_ints(store: Store, make_run: Callable[..., str]) -> None:
    value = {"n": 1, "big": 2**53 + 1, "neg": -7, "f": 1.0, "flag": True, "none": None,
             "nested": {"list": [1, 2.5, "3"]}, "text": "ünïcode"}
    make_run("r1", pipeline_spec=value, arguments=value)

    run = store.get_run("r1")

    for stored in (run.pipeline_spec, run.arguments):
        assert stored == value
        assert type(stored["n"]) is int and type(stored["big"]) is int and type(stored["neg"]) is int
        assert type(stored["f"]) is float
        assert stored["flag"] is True
        assert type(stored["nested"]["list"][0]) is int


def test_fail_orphaned_runs_fails_only_runs_of_dead_engines(
    store: Store, make_run: Callable[..., str]
) -> None:
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    host, boot, pid, started = this_instance().rsplit("/", 3)
    dead = f"{host}/{boot}/{exited.pid}/{started}"
    recycled = f"{host}/{boot}/{pid}/{int(started) - 1}"  # this pid, but an earlier process that had it
    make_run("orphan", engine_instance=dead)
    make_run("recycled", engine_instance=recycled)
    make_run("live")  # this process is its engine
    make_run("elsewhere", engine_instance=f"another-host/{boot}/{exited.pid}/{started}", engine_host="another-host")
    make_run("done", engine_instance=dead, state="SUCCEEDED")
    store.commit(
        "orphan",
        Batch(new_tasks=[task("o-pending", "orphan", "PENDING"), task("o-running", "orphan", "RUNNING"),
                         task("o-done", "orphan", "SUCCEEDED")]),
    )
    store.commit("live", Batch(new_tasks=[task("l-running", "live", "RUNNING")]))

    assert sorted(store.fail_orphaned_runs()) == ["orphan", "recycled"]

    orphan = store.get_run("orphan")
    assert orphan.state == "FAILED"
    assert orphan.error and orphan.finished_at is not None
    states = {t.id: (t.state, t.finished_at is not None) for t in store.list_tasks("orphan")}
    assert states == {"o-pending": ("FAILED", True), "o-running": ("FAILED", True),
                      "o-done": ("SUCCEEDED", False)}
    assert {r.id: r.state for r in store.list_runs()} == {
        "orphan": "FAILED", "recycled": "FAILED", "live": "RUNNING", "elsewhere": "RUNNING", "done": "SUCCEEDED"
    }
    assert [t.state for t in store.list_tasks("live")] == ["RUNNING"]
    assert store.fail_orphaned_runs() == []


def test_end_run_never_overwrites_an_ending_and_ends_tasks_with_the_run(
    store: Store, make_run: Callable[..., str]
) -> None:
    make_run("done", state="SUCCEEDED")
    assert store.end_run("done", "CANCELED", "terminated") is False  # it ended first: keeps SUCCEEDED
    assert store.get_run("done").state == "SUCCEEDED"
    make_run("busy")
    store.commit("busy", Batch(new_tasks=[task("b-running", "busy", "RUNNING"), task("b-ok", "busy", "SUCCEEDED")]))
    assert store.end_run("busy", "CANCELED", "terminated") is True
    assert store.get_run("busy").state == "CANCELED" and store.get_run("busy").error == "terminated"
    assert {t.id: t.state for t in store.list_tasks("busy")} == {"b-running": "CANCELED", "b-ok": "SUCCEEDED"}


def test_restart_and_claim_hand_runs_to_this_process_only_from_the_right_states(
    store: Store, make_run: Callable[..., str]
) -> None:
    make_run("failed", state="FAILED", origin="server")
    make_run("running", origin="server", engine_instance="gone-host/boot/1/1")
    assert store.restart_run("failed", from_states=("FAILED", "CANCELED")) is True
    assert store.restart_run("running", from_states=("FAILED", "CANCELED")) is False
    restarted = store.get_run("failed")
    assert (restarted.state, restarted.engine_instance) == ("PENDING", this_instance())
    assert store.claim_orphaned_runs() == ["running"]  # "failed" already belongs to this process
    assert store.get_run("running").engine_instance == this_instance()
    store.release_runs()
    assert {store.get_run(r).engine_instance for r in ("failed", "running")} == {None}


def test_get_run_within_namespaces_sees_only_their_runs(store: Store, make_run: Callable[..., str]) -> None:
    make_run("abc111", namespace="team-a")
    make_run("abc222", namespace="team-b")
    assert store.get_run("abc", namespaces=["team-a"]).id == "abc111"  # the other match is not there
    with pytest.raises(RunNotFound, match="several runs match"):
        store.get_run("abc")
    with pytest.raises(RunNotFound, match="no run matches 'abc222'"):
        store.get_run("abc222", namespaces=["team-a"])
