"""`ResourceRepository`: the `resources` and `resource_events` tables, for the resource API and controllers.

`apply` reads the stored rows and writes the new ones in one transaction that first takes the lock
writers need (SQLite: the database's write lock, `BEGIN IMMEDIATE`; PostgreSQL: the rows, `FOR
UPDATE`), so a multi-document apply is atomic and concurrent applies and status writes wait for one
another instead of losing updates (or, on SQLite, failing as "database is locked" when a read
transaction tries to become a write one). Two applies creating the same name at once on PostgreSQL
collide on the unique key; the loser retries and finds the row.

The spec belongs to users (apply), the status to the kind's controller (`set_status`); both bump
`resource_version`, only a changed spec bumps `generation`. Namespaces are the store's ("" is the
single-user namespace).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from flowdeck.store.models import ResourceEventRow, ResourceRow, utcnow

ApplyResult = Literal["created", "configured", "unchanged"]

#: How often an apply is retried when a concurrent apply created one of its resources meanwhile.
_ATTEMPTS = 3


class ResourceConflict(Exception):
    """The write contradicts the stored resource: it changed since the given version, or is being deleted."""


@dataclass
class Desired:
    """A resource as a user applies it: identity, labels, annotations and the validated spec."""

    api_version: str
    kind: str
    namespace: str
    name: str
    spec: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    #: The resource version the user last saw; the apply is refused if the stored one differs.
    resource_version: int | None = None


class ResourceRepository:
    """Create, update, read and delete resources, and record their events."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- reads ---------------------------------------------------------------------------------
    def get(self, kind: str, namespace: str, name: str) -> ResourceRow | None:
        query = select(ResourceRow).where(ResourceRow.kind == kind, ResourceRow.namespace == namespace,
                                          ResourceRow.name == name)
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalars(query).one_or_none()

    def get_uid(self, uid: str) -> ResourceRow | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(ResourceRow, uid)

    def list(self, kind: str | None = None, namespace: str | None = None) -> Sequence[ResourceRow]:
        """Resources of one kind (or all), in one namespace (or all), by namespace and name."""
        query = select(ResourceRow).order_by(ResourceRow.kind, ResourceRow.namespace, ResourceRow.name)
        if kind is not None:
            query = query.where(ResourceRow.kind == kind)
        if namespace is not None:
            query = query.where(ResourceRow.namespace == namespace)
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalars(query).all()

    # -- writes --------------------------------------------------------------------------------
    def apply(self, items: Sequence[Desired]) -> list[tuple[ResourceRow, ApplyResult]]:
        """Create or update every item in one transaction; all of them or none.

        Raises `ResourceConflict` for an item whose `resource_version` is stale or that is being deleted.
        """
        attempts = 1
        while True:
            try:
                return self._apply_once(items)
            except IntegrityError:  # PostgreSQL: another apply created one of these names meanwhile
                if attempts == _ATTEMPTS:
                    raise
                attempts += 1

    def _apply_once(self, items: Sequence[Desired]) -> list[tuple[ResourceRow, ApplyResult]]:
        with self.engine.connect() as conn:
            _lock_for_writing(conn)
            table = ResourceRow.__table__
            keys = {(item.kind, item.namespace) for item in items}
            names = {item.name for item in items}
            current: dict[tuple[str, str, str], Any] = {}
            for kind, namespace in keys:
                query = select(table).where(table.c.kind == kind, table.c.namespace == namespace,
                                            table.c.name.in_(names))
                if conn.dialect.name == "postgresql":
                    query = query.with_for_update()
                current.update({(row.kind, row.namespace, row.name): row for row in conn.execute(query)})
            now = utcnow()
            written: list[tuple[str, ApplyResult]] = []
            for item in items:
                row = current.get((item.kind, item.namespace, item.name))
                values, result = _apply_values(item, row, now)
                if row is None:
                    conn.execute(insert(table).values(**values))
                elif result == "configured":
                    conn.execute(update(table).where(table.c.uid == row.uid).values(**values))
                written.append((values["uid"], result))
            conn.commit()
        with Session(self.engine, expire_on_commit=False) as session:
            by_uid = {row.uid: row for row in session.scalars(
                select(ResourceRow).where(ResourceRow.uid.in_([uid for uid, _ in written])))}
        return [(by_uid[uid], result) for uid, result in written]

    def set_status(self, uid: str, status: dict[str, Any]) -> bool:
        """Store the controller's view of a resource; False when it no longer exists."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(ResourceRow).where(ResourceRow.uid == uid)
                .values(status=status, resource_version=ResourceRow.resource_version + 1, updated_at=utcnow()))
        return bool(result.rowcount)

    def request_deletion(self, uid: str) -> bool:
        """Mark a resource for deletion (its controller finalizes and removes it); False if gone."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(ResourceRow).where(ResourceRow.uid == uid, ResourceRow.deletion_requested_at.is_(None))
                .values(deletion_requested_at=utcnow(), resource_version=ResourceRow.resource_version + 1))
        return bool(result.rowcount)

    def delete(self, uid: str) -> bool:
        """Remove a resource and its events; False if it was already gone."""
        with self.engine.begin() as conn:
            conn.execute(delete(ResourceEventRow).where(ResourceEventRow.resource_uid == uid))
            result = conn.execute(delete(ResourceRow).where(ResourceRow.uid == uid))
        return bool(result.rowcount)

    # -- events --------------------------------------------------------------------------------
    def add_event(self, uid: str, type_: str, reason: str, message: str) -> None:
        """Record an event, unless it repeats the resource's latest one (a controller retrying)."""
        last = (select(ResourceEventRow.type, ResourceEventRow.reason, ResourceEventRow.message)
                .where(ResourceEventRow.resource_uid == uid).order_by(ResourceEventRow.id.desc()).limit(1))
        with self.engine.connect() as conn:
            if conn.execute(last).first() == (type_, reason, message):
                return
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(ResourceEventRow).values(resource_uid=uid, type=type_, reason=reason,
                                                             message=message, created_at=utcnow()))
        except IntegrityError:
            pass  # the resource was deleted meanwhile: its events go with it

    def events(self, uid: str) -> Sequence[ResourceEventRow]:
        query = select(ResourceEventRow).where(ResourceEventRow.resource_uid == uid).order_by(ResourceEventRow.id)
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalars(query).all()



def _lock_for_writing(conn: Connection) -> None:
    """On SQLite, take the database's write lock first, so that what this transaction reads stays current
    until it commits (PostgreSQL locks the rows it reads instead: SELECT ... FOR UPDATE)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _apply_values(item: Desired, row: Any, now: Any) -> tuple[dict[str, Any], ApplyResult]:
    """The column values to write for one item, given its stored row (None: a new resource)."""
    if row is None:
        if item.resource_version is not None:
            raise ResourceConflict(f"{item.kind.lower()}/{item.name} does not exist, but metadata.resourceVersion "
                                   "names a version of it; drop resourceVersion to create it")
        return {
            "uid": str(uuid.uuid4()), "api_version": item.api_version, "kind": item.kind,
            "namespace": item.namespace, "name": item.name, "labels": item.labels,
            "annotations": item.annotations, "spec": item.spec, "status": {}, "generation": 1,
            "resource_version": 1, "created_at": now, "updated_at": now,
        }, "created"
    ref = f"{item.kind.lower()}/{item.name}"
    if row.deletion_requested_at is not None:
        raise ResourceConflict(f"{ref} is being deleted; apply it again once it is gone")
    if item.resource_version is not None and item.resource_version != row.resource_version:
        raise ResourceConflict(f"{ref} has changed since resourceVersion {item.resource_version} (it is now at "
                               f"{row.resource_version}); get it again, or drop metadata.resourceVersion")
    values: dict[str, Any] = {"uid": row.uid}
    if item.spec != row.spec:
        values.update(spec=item.spec, generation=row.generation + 1)
    for column in ("labels", "annotations", "api_version"):
        if getattr(item, column) != getattr(row, column):
            values[column] = getattr(item, column)
    if len(values) == 1:
        return values, "unchanged"
    values.update(resource_version=row.resource_version + 1, updated_at=now)
    return values, "configured"
