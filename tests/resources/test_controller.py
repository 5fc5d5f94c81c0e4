"""The generic controller: reconciles on apply and on start, records events, finalizes deletes, backs off."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from widget_kind import API_VERSION, WIDGET

from flowdeck.config import Settings
from flowdeck.resources import Registry, Resource
from flowdeck.resources.controller import ResourceController, create_controller
from flowdeck.store import Store
from helpers import wait_for


def widget(name: str = "w1", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "Widget", "metadata": {"name": name}, "spec": {"size": 1, **spec}}


def current(controller: ResourceController, name: str = "w1") -> Resource:
    return controller.service.get("widget", "default", name)


def condition(resource: Resource, type_: str) -> str | None:
    found = resource.status.condition(type_)
    return found.status if found else None


def test_an_applied_resource_is_reconciled_to_its_outcome(controller: ResourceController) -> None:
    [(result, applied)] = controller.service.apply([widget(steps=3)])
    assert result == "created"
    assert wait_for(lambda: condition(current(controller), "Succeeded") == "True", timeout=10)
    done = current(controller)
    assert done.status.step == 3
    assert done.status.observedGeneration == 1
    assert condition(done, "Running") == "False"
    events = controller.service.describe("wd", "default", "w1")["events"]
    assert [(e["type"], e["reason"]) for e in events] == [("Normal", "Started"), ("Normal", "WidgetSucceeded")]


def test_a_spec_change_is_reconciled_again_and_observed(controller: ResourceController) -> None:
    controller.service.apply([widget(outcome="Ready")])
    assert wait_for(lambda: condition(current(controller), "Ready") == "True")
    [(result, changed)] = controller.service.apply([widget(outcome="Failed", size=2)])
    assert (result, changed.metadata.generation) == ("configured", 2)
    assert wait_for(lambda: condition(current(controller), "Failed") == "True")
    assert current(controller).status.observedGeneration == 2
    warnings = [e for e in controller.service.describe("wd", "default", "w1")["events"] if e["type"] == "Warning"]
    assert [e["message"] for e in warnings] == ["the widget broke"]


def test_an_unchanged_apply_does_not_reconcile_again(controller: ResourceController) -> None:
    controller.service.apply([widget()])
    assert wait_for(lambda: condition(current(controller), "Succeeded") == "True")
    assert wait_for(controller.idle)
    version = current(controller).metadata.resourceVersion
    [(result, _)] = controller.service.apply([widget()])
    assert result == "unchanged"
    assert wait_for(controller.idle)
    assert current(controller).metadata.resourceVersion == version
    assert current(controller).status.step == 1


def test_a_restarted_controller_resumes_what_was_in_progress(sqlite_store: Store, kinds: Registry,
                                                             tmp_path: Path) -> None:
    """All state is in the store: a new controller (after a crash or a stop) carries on from it."""
    first = create_controller(sqlite_store, Settings(home=tmp_path), None, kinds=kinds)
    first.start()
    first.service.apply([widget(steps=10_000)])
    assert wait_for(lambda: getattr(current(first).status, "step", 0) >= 3)
    first.stop()
    stopped_at = current(first).status.step

    slower = Registry([replace(WIDGET, reconcile=_finish_now)])
    second = create_controller(sqlite_store, Settings(home=tmp_path), None, kinds=slower)
    second.start()
    try:
        assert wait_for(lambda: condition(current(second), "Succeeded") == "True")
        assert current(second).status.step == stopped_at + 1  # continued from the stored status
    finally:
        second.stop()


def _finish_now(ctx: Any, resource: Resource) -> None:
    resource.status.step = resource.status.step + 1
    resource.status.set_condition("Succeeded", True, "Resumed", "finished by the second controller")


def test_a_delete_runs_the_finalizer_and_retries_it_with_backoff_until_it_succeeds(
        controller: ResourceController, tmp_path: Path) -> None:
    released = tmp_path / "released"
    controller.service.apply([widget(holdDeletionUntil=str(released))])
    assert wait_for(lambda: condition(current(controller), "Succeeded") == "True")
    marked = controller.service.delete("widget", "default", "w1")
    assert marked.metadata.deletionTimestamp is not None

    def failures() -> list[str]:
        return [e["message"] for e in controller.service.describe("wd", "default", "w1")["events"]
                if e["reason"] == "FinalizeFailed"]

    assert wait_for(lambda: failures() == [f"RuntimeError: the widget is held until {released} exists"])
    assert current(controller).metadata.deletionTimestamp is not None  # still there, still being deleted
    released.touch()
    assert wait_for(lambda: controller.repository.get("Widget", "", "w1") is None, timeout=10)


def test_a_failing_reconcile_is_reported_once_and_retried(sqlite_store: Store, tmp_path: Path) -> None:
    calls: list[int] = []

    def flaky(ctx: Any, resource: Resource) -> None:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("the backend is not up yet")
        resource.status.set_condition("Ready", True, "Up", "up at last")

    controller = create_controller(sqlite_store, Settings(home=tmp_path), None,
                                   kinds=Registry([replace(WIDGET, reconcile=flaky)]))
    controller.start()
    try:
        controller.service.apply([widget()])
        assert wait_for(lambda: condition(current(controller), "Ready") == "True", timeout=10)
        events = controller.service.describe("wd", "default", "w1")["events"]
        assert [(e["type"], e["reason"], e["message"]) for e in events] == [
            ("Warning", "ReconcileFailed", "ConnectionError: the backend is not up yet")]  # the repeat is dropped
        assert len(calls) == 3
    finally:
        controller.stop()


def test_a_resource_of_a_kind_no_longer_installed_is_left_alone(sqlite_store: Store, kinds: Registry,
                                                                tmp_path: Path) -> None:
    first = create_controller(sqlite_store, Settings(home=tmp_path), None, kinds=kinds)
    first.service.apply([widget()])  # stored, never reconciled (not started)
    without = create_controller(sqlite_store, Settings(home=tmp_path), None, kinds=Registry())
    without.start()
    try:
        assert wait_for(without.idle)
        [row] = without.repository.list()
        assert row.status == {}
    finally:
        without.stop()
