"""`ResourceRepository` on SQLite and PostgreSQL: apply semantics, status, deletion, events, concurrency."""

from __future__ import annotations

import threading

import pytest

from flowdeck.store import Store
from flowdeck.store.resources import Desired, ResourceConflict, ResourceRepository


def desired(name: str = "w1", namespace: str = "", **changes: object) -> Desired:
    values: dict = {"api_version": "test.flowdeck.dev/v1", "kind": "Widget", "namespace": namespace, "name": name,
                    "spec": {"size": 1}}
    values.update(changes)
    return Desired(**values)


@pytest.fixture
def repo(store: Store) -> ResourceRepository:
    return ResourceRepository(store.engine)


def test_apply_creates_then_bumps_generation_only_when_the_spec_changes(repo: ResourceRepository) -> None:
    [(created, result)] = repo.apply([desired()])
    assert result == "created"
    assert (created.generation, created.resource_version, created.status) == (1, 1, {})

    [(same, result)] = repo.apply([desired()])
    assert result == "unchanged"
    assert (same.uid, same.generation, same.resource_version) == (created.uid, 1, 1)

    [(labelled, result)] = repo.apply([desired(labels={"tier": "gold"})])
    assert result == "configured"
    assert (labelled.generation, labelled.resource_version, labelled.labels) == (1, 2, {"tier": "gold"})

    [(changed, result)] = repo.apply([desired(spec={"size": 2}, labels={"tier": "gold"})])
    assert result == "configured"
    assert (changed.generation, changed.resource_version, changed.spec) == (2, 3, {"size": 2})
    assert changed.created_at == created.created_at


def test_status_is_the_controllers_and_survives_a_spec_change(repo: ResourceRepository) -> None:
    [(row, _)] = repo.apply([desired()])
    assert repo.set_status(row.uid, {"conditions": [], "step": 3})
    [(changed, _)] = repo.apply([desired(spec={"size": 5})])
    assert changed.status == {"conditions": [], "step": 3}
    assert changed.resource_version == 3  # the status write counted as a change too
    assert not repo.set_status("no-such-uid", {})


def test_a_multi_resource_apply_is_all_or_none(repo: ResourceRepository) -> None:
    [(row, _)] = repo.apply([desired("w1")])
    with pytest.raises(ResourceConflict, match=r"widget/w1 has changed since resourceVersion 9 \(it is now at 1\)"):
        repo.apply([desired("w0"), desired("w1", spec={"size": 3}, resource_version=9), desired("w2")])
    assert [r.name for r in repo.list("Widget")] == ["w1"]
    assert repo.get_uid(row.uid).spec == {"size": 1}
    # naming the current version is how a careful client updates
    [(_, result)] = repo.apply([desired("w1", spec={"size": 3}, resource_version=1)])
    assert result == "configured"


def test_names_are_per_kind_and_namespace(repo: ResourceRepository) -> None:
    repo.apply([desired("same", ""), desired("same", "team-a"), desired("same", "", kind="Gadget")])
    assert [(r.kind, r.namespace) for r in repo.list()] == [("Gadget", ""), ("Widget", ""), ("Widget", "team-a")]
    assert [r.namespace for r in repo.list("Widget", "team-a")] == ["team-a"]
    assert repo.get("Widget", "team-a", "same").namespace == "team-a"
    assert repo.get("Widget", "team-b", "same") is None


def test_deletion_is_requested_once_then_the_row_and_its_events_go(repo: ResourceRepository) -> None:
    [(row, _)] = repo.apply([desired()])
    repo.add_event(row.uid, "Normal", "Started", "building")
    assert repo.request_deletion(row.uid)
    assert not repo.request_deletion(row.uid)
    assert repo.get_uid(row.uid).deletion_requested_at is not None
    with pytest.raises(ResourceConflict, match="widget/w1 is being deleted"):
        repo.apply([desired(spec={"size": 2})])
    assert repo.delete(row.uid)
    assert repo.get_uid(row.uid) is None and repo.events(row.uid) == []
    assert not repo.delete(row.uid)
    repo.add_event(row.uid, "Normal", "Late", "an event for a deleted resource is dropped")
    assert repo.events(row.uid) == []


def test_events_keep_their_order_and_a_repeat_of_the_last_is_dropped(repo: ResourceRepository) -> None:
    [(row, _)] = repo.apply([desired()])
    for reason in ("Started", "Failing", "Failing", "Started", "Failing"):
        repo.add_event(row.uid, "Warning" if reason == "Failing" else "Normal", reason, reason.lower())
    assert [(e.type, e.reason) for e in repo.events(row.uid)] == [
        ("Normal", "Started"), ("Warning", "Failing"), ("Normal", "Started"), ("Warning", "Failing")]


def test_concurrent_applies_and_status_writes_lose_nothing(repo: ResourceRepository) -> None:
    """Writers racing on one resource: every apply lands once, each status write bumps the version."""
    [(row, _)] = repo.apply([desired()])
    errors: list[BaseException] = []

    def applier(number: int) -> None:
        try:
            for step in range(5):
                repo.apply([desired(labels={f"writer-{number}": str(step)}), desired(f"new-{number}-{step}")])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def status_writer() -> None:
        for step in range(10):
            repo.set_status(row.uid, {"step": step})

    threads = [threading.Thread(target=applier, args=(n,)) for n in range(3)] + [threading.Thread(target=status_writer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(repo.list("Widget")) == 1 + 3 * 5
    final = repo.get_uid(row.uid)
    assert final.status == {"step": 9}
    assert final.generation == 1  # only labels changed
    # 10 status writes, and one version per apply that changed the labels (each writer's last label wins)
    assert final.resource_version >= 1 + 10 + 5


def test_concurrent_creates_of_one_name_make_one_resource(repo: ResourceRepository) -> None:
    barrier = threading.Barrier(4)
    results: list[str] = []
    errors: list[BaseException] = []

    def create(number: int) -> None:
        barrier.wait()
        try:
            [(_, result)] = repo.apply([desired("contested", spec={"size": number})])
            results.append(result)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == ["configured", "configured", "configured", "created"]
    [row] = repo.list("Widget")
    assert row.generation == 4
