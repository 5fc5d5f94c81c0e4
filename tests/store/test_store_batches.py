"""Batched writes: one transaction per scheduling step, lineage, attempts and the execution cache."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from flowdeck.store import ArtifactRow, Batch, Store


def task(task_id: str, state: str = "PENDING") -> dict:
    return {
        "id": task_id,
        "run_id": "r1",
        "name": task_id,
        "display_name": task_id,
        "path": f"root/{task_id}",
        "kind": "container",
        "state": state,
    }


def artifact(artifact_id: str) -> dict:
    return {
        "id": artifact_id,
        "run_id": "r1",
        "name": artifact_id,
        "uri": f"file:///artifacts/{artifact_id}",
        "schema_title": "system.Dataset",
        "metadata": {"rows": 10},  # Batch dicts use column names
    }


def event(task_id: str, artifact_id: str, type_: str, key: str, position: int = 0) -> dict:
    return {"task_id": task_id, "artifact_id": artifact_id, "type": type_, "key": key, "position": position}


def cache_entry(fingerprint: str, outputs: dict, pipeline_name: str = "pipe") -> dict:
    return {"fingerprint": fingerprint, "pipeline_name": pipeline_name, "task_id": "t1", "outputs": outputs}


def artifact_ids(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return sorted(conn.execute(select(ArtifactRow.id)).scalars())


@pytest.fixture
def run(make_run: Callable[..., str]) -> str:
    return make_run("r1")


def test_commit_writes_tasks_attempts_artifacts_events_and_run(store: Store, run: str) -> None:
    store.commit(
        run,
        Batch(
            new_tasks=[task("t1"), task("t2")],
            new_attempts=[{"task_id": "t1", "number": 1, "state": "RUNNING"}],
            new_artifacts=[artifact("a1")],
            new_events=[event("t1", "a1", "OUTPUT", "data")],
            run_update={"state": "RUNNING"},
        ),
    )
    step = Batch(
        new_attempts=[{"task_id": "t1", "number": 2, "state": "RUNNING"}],
        attempt_updates=[("t1", 1, {"state": "FAILED", "exit_code": 1})],
        run_update={"state": "SUCCEEDED", "outputs": {"n": 1}},
    )
    step.update_task("t1", state="SUCCEEDED", attempts=2)
    step.update_task("t1", outputs={"n": 1})
    store.commit(run, step)

    tasks = {t.id: t for t in store.list_tasks(run)}
    assert (tasks["t1"].state, tasks["t1"].attempts, tasks["t1"].outputs) == ("SUCCEEDED", 2, {"n": 1})
    assert tasks["t2"].state == "PENDING"
    attempts = [(a.task_id, a.number, a.state, a.exit_code) for a in store.list_attempts(["t1", "t2"])]
    assert attempts == [("t1", 1, "FAILED", 1), ("t1", 2, "RUNNING", None)]
    assert [(t, k, a.uri, a.artifact_metadata) for t, k, a in store.lineage("t1")] == [
        ("OUTPUT", "data", "file:///artifacts/a1", {"rows": 10})
    ]
    assert (store.get_run(run).state, store.get_run(run).outputs) == ("SUCCEEDED", {"n": 1})


def test_failing_batch_writes_nothing(store: Store, run: str) -> None:
    store.commit(run, Batch(new_tasks=[task("t1")]))
    bad = Batch(
        new_tasks=[task("t2")],
        new_attempts=[{"task_id": "t1", "number": 1, "state": "RUNNING"}],
        new_artifacts=[artifact("a1")],
        new_events=[event("t1", "a1", "OUTPUT", "data"), event("t1", "no-such-artifact", "INPUT", "x")],
        cache_entries=[cache_entry("fp", {"n": 1})],
        run_update={"state": "FAILED"},
    )
    bad.update_task("t1", state="RUNNING")

    with pytest.raises(IntegrityError):
        store.commit(run, bad)

    assert [(t.id, t.state) for t in store.list_tasks(run)] == [("t1", "PENDING")]
    assert store.list_attempts(["t1", "t2"]) == []
    assert artifact_ids(store) == []
    assert store.lineage("t1") == []
    assert store.cache_lookup("fp", "pipe") is None
    assert store.get_run(run).state == "RUNNING"


def test_lineage_lists_reads_then_writes_in_key_and_position_order(store: Store, run: str) -> None:
    store.commit(
        run,
        Batch(
            new_tasks=[task("producer"), task("consumer")],
            new_artifacts=[artifact("a1"), artifact("a2"), artifact("a3")],
            new_events=[
                event("producer", "a1", "OUTPUT", "out"),
                event("consumer", "a3", "OUTPUT", "model"),
                event("consumer", "a2", "INPUT", "shards", 1),
                event("consumer", "a1", "INPUT", "shards", 0),
            ],
        ),
    )

    lineage = [(t, k, a.id) for t, k, a in store.lineage("consumer")]

    assert lineage == [("INPUT", "shards", "a1"), ("INPUT", "shards", "a2"), ("OUTPUT", "model", "a3")]
    assert [(t, k, a.id) for t, k, a in store.lineage("producer")] == [("OUTPUT", "out", "a1")]


def test_cache_keeps_newest_entry_per_fingerprint_and_pipeline(store: Store, run: str) -> None:
    assert store.cache_lookup("fp", "pipe") is None

    store.commit(run, Batch(cache_entries=[cache_entry("fp", {"n": 1})]))
    assert store.cache_lookup("fp", "pipe") == {"n": 1}

    store.commit(run, Batch(cache_entries=[cache_entry("fp", {"n": 2})]))
    assert store.cache_lookup("fp", "pipe") == {"n": 2}

    store.commit(run, Batch(cache_entries=[cache_entry("fp", {"n": 3}), cache_entry("fp", {"n": 4})]))
    assert store.cache_lookup("fp", "pipe") == {"n": 4}

    store.commit(run, Batch(cache_entries=[cache_entry("fp", {"n": 5}, pipeline_name="other")]))
    assert store.cache_lookup("fp", "pipe") == {"n": 4}
    assert store.cache_lookup("fp", "other") == {"n": 5}
    assert store.cache_lookup("other-fp", "pipe") is None


def test_json_values_round_trip_through_tasks_and_cache(store: Store, run: str) -> None:
    value = {"count": 3, "big": 2**53 + 1, "ratio": 0.25, "whole_float": 2.0, "items": [1, [2, {"k": 3}]]}
    record = task("t1")
    record.update(inputs={"parameters": value}, outputs=value)
    store.commit(run, Batch(new_tasks=[record], cache_entries=[cache_entry("fp", value)]))

    (stored,) = store.list_tasks(run)
    cached = store.cache_lookup("fp", "pipe")

    for got in (stored.inputs["parameters"], stored.outputs, cached):
        assert got == value
        assert [type(got[k]) for k in ("count", "big", "ratio", "whole_float")] == [int, int, float, float]
        assert type(got["items"][1][1]["k"]) is int

