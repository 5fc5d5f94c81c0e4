"""`ResourceController`: the control plane's one controller for every kind.

It keeps a work queue of resource uids. A resource is queued when it is applied, changed or deleted,
when its kind's `reconcile` asks to be called again after a while, after a failure (with backoff),
and, for every stored resource, when the controller starts — which is what makes it resumable: all
the state lives in the store, so after a crash or a restart each resource is simply reconciled
again, and kinds' reconcilers are written to be idempotent.

A few worker threads take uids off the queue; one uid is never reconciled by two workers at once (a
change that arrives meanwhile queues it again). For each uid the worker reads the resource, calls
the kind's `reconcile` (or, when a delete was requested, `finalize` and then removes the row), and
stores the status the hook left, with `observedGeneration` set to the generation it acted on.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from flowdeck.resources.kinds import KindContext
from flowdeck.resources.model import Resource
from flowdeck.resources.registry import Registry, registry
from flowdeck.resources.service import ResourceService, to_resource
from flowdeck.store.resources import ResourceRepository

if TYPE_CHECKING:
    from flowdeck.config import Settings
    from flowdeck.store import Store

logger = logging.getLogger("flowdeck.resources")

#: Retry delays after a failing reconcile: doubling from the first, up to the last.
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 60.0


def create_controller(store: Store, settings: Settings, runs: Any, kinds: Registry | None = None,
                      workers: int = 4) -> ResourceController:
    """The controller for a store, with the kinds of `kinds` (default: the installed ones)."""
    repository = ResourceRepository(store.engine)
    context = KindContext(store, settings, runs, repository.add_event)
    return ResourceController(ResourceService(repository, kinds or registry(), context), workers=workers)


class ResourceController:
    """Reconciles resources of every registered kind on a few worker threads."""

    def __init__(self, service: ResourceService, workers: int = 4) -> None:
        self.service = service
        self.repository = service.repository
        self.workers = workers
        self._lock = threading.Condition()
        self._due: list[tuple[float, int, str]] = []  # heap of (when, sequence, uid)
        self._when: dict[str, float] = {}  # uid -> when it is due (its live heap entry)
        self._busy: set[str] = set()
        self._again: set[str] = set()  # queued while busy: run again as soon as the worker is done
        self._failures: dict[str, int] = {}
        self._sequence = 0
        self._stopping = False
        self._threads: list[threading.Thread] = []
        service.on_change = self.enqueue
        service.context.requeue = self.enqueue
        service.context.delete = self._delete
        service.context.resources = service

    def _delete(self, uid: str) -> None:
        if self.repository.request_deletion(uid):
            self.enqueue(uid)

    def start(self) -> None:
        """Start the workers and queue every stored resource (resuming whatever was in progress)."""
        self._stopping = False
        for row in self.repository.list():
            self.enqueue(row.uid)
        for number in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"flowdeck-resources-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking work and wait for the reconciles in progress to end."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    def enqueue(self, uid: str, delay: float = 0.0) -> None:
        """Reconcile `uid` after `delay` seconds (sooner if it is already due sooner)."""
        with self._lock:
            if uid in self._busy and delay == 0:
                self._again.add(uid)
                return
            when = time.monotonic() + delay
            if uid in self._when and self._when[uid] <= when:
                return
            self._when[uid] = when
            self._sequence += 1
            heapq.heappush(self._due, (when, self._sequence, uid))
            self._lock.notify()

    def idle(self) -> bool:
        """Whether nothing is being reconciled and nothing is due now (for tests and shutdown)."""
        with self._lock:
            now = time.monotonic()
            return not self._busy and not self._again and all(when > now for when in self._when.values())

    # -- workers ---------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            uid = self._take()
            if uid is None:
                return
            delay: float | None = None
            try:
                delay = self._reconcile(uid)
            except Exception as exc:  # noqa: BLE001 - a kind's bug must not stop the controller
                logger.exception("reconciling resource %s failed", uid)
                delay = self._failed(uid, "ReconcileFailed", exc)
            finally:
                with self._lock:
                    self._busy.discard(uid)
                    again = uid in self._again
                    self._again.discard(uid)
            if again:
                self.enqueue(uid)
            elif delay is not None:
                self.enqueue(uid, delay)

    def _take(self) -> str | None:
        """The next due uid that no other worker holds; None when stopping."""
        with self._lock:
            while not self._stopping:
                now = time.monotonic()
                while self._due and (self._when.get(self._due[0][2]) != self._due[0][0]):
                    heapq.heappop(self._due)  # superseded by a sooner entry, or already taken
                if self._due and self._due[0][0] <= now:
                    _, _, uid = heapq.heappop(self._due)
                    del self._when[uid]
                    if uid in self._busy:
                        self._again.add(uid)
                        continue
                    self._busy.add(uid)
                    return uid
                self._lock.wait(self._due[0][0] - now if self._due else None)
            return None

    def _reconcile(self, uid: str) -> float | None:
        row = self.repository.get_uid(uid)
        if row is None:
            self._failures.pop(uid, None)
            return None
        kind = self.service.registry.find(row.kind)
        if kind is None:
            logger.warning("resource %s/%s has kind %s, which is not installed; leaving it alone",
                           row.namespace or "default", row.name, row.kind)
            return None
        resource = to_resource(row, kind.cluster_scoped)
        context = self.service.context
        if row.deletion_requested_at is not None:
            if kind.finalize is not None:
                try:
                    kind.finalize(context, resource)
                except Exception as exc:  # noqa: BLE001 - reported as an event, retried with backoff
                    return self._failed(uid, "FinalizeFailed", exc, resource)
            self.repository.delete(uid)
            self._failures.pop(uid, None)
            return None
        before = resource.status.model_dump(mode="json", exclude_none=True)
        try:
            delay = kind.reconcile(context, resource)
        except Exception as exc:  # noqa: BLE001 - reported as an event, retried with backoff
            return self._failed(uid, "ReconcileFailed", exc, resource)
        self._failures.pop(uid, None)
        resource.status.observedGeneration = row.generation
        after = resource.status.model_dump(mode="json", exclude_none=True)
        if after != before:
            self.repository.set_status(uid, after)
        return delay

    def _failed(self, uid: str, reason: str, exc: Exception, resource: Resource | None = None) -> float:
        """Record a Warning event and return the backoff before the next try."""
        failures = self._failures.get(uid, 0)
        self._failures[uid] = failures + 1
        if resource is not None:
            self.service.context.event(resource, reason, f"{type(exc).__name__}: {exc}", warning=True)
        return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** failures)
