"""`Store`: the small repository over the metadata tables, and `Batch` for grouped writes.

The pipeline engine writes many small rows (a task, an attempt, a few artifacts and events per task).
It gathers them in a `Batch` and commits one transaction per scheduling step with Core statements,
which keeps per-task store cost well under a millisecond on SQLite.

`open_store` owns the schema: it applies the Alembic migrations shipped in `migrations/`, and skips
Alembic entirely when the database is already current, because every CLI command opens the store.
"""

from __future__ import annotations

import os
import socket
import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    Update,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from flowdeck.store.models import (
    ArtifactRow,
    AttemptRow,
    CacheEntryRow,
    EventRow,
    RunRow,
    TaskRow,
    as_utc,
    utcnow,
)
from flowdeck.store.ownership import instance_alive, this_instance

__all__ = ["Batch", "RunNotFound", "Store", "as_utc", "open_store"]

TERMINAL_RUN_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELED"})

# The newest revision in migrations/versions. A database already at it is opened without importing
# alembic (~150 ms, paid by every CLI command otherwise); bump it with every new migration.
SCHEMA_REVISION = "0003"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Key of the PostgreSQL advisory lock that serialises concurrent migrations of one database.
_MIGRATION_LOCK_KEY = zlib.crc32(b"flowdeck.store.migrations")


class RunNotFound(LookupError):
    """No run has the given id (or unique id prefix)."""


@dataclass
class Batch:
    """Rows to write together. Values are plain dicts of column name to value."""

    new_tasks: list[dict[str, Any]] = field(default_factory=list)
    task_updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    new_attempts: list[dict[str, Any]] = field(default_factory=list)
    attempt_updates: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    new_artifacts: list[dict[str, Any]] = field(default_factory=list)
    new_events: list[dict[str, Any]] = field(default_factory=list)
    cache_entries: list[dict[str, Any]] = field(default_factory=list)
    run_update: dict[str, Any] = field(default_factory=dict)

    def update_task(self, task_id: str, **values: Any) -> None:
        self.task_updates.setdefault(task_id, {}).update(values)

    def __bool__(self) -> bool:
        return bool(
            self.new_tasks or self.task_updates or self.new_attempts or self.attempt_updates
            or self.new_artifacts or self.new_events or self.cache_entries or self.run_update
        )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # busy_timeout first: switching a fresh file to WAL needs a lock another process may hold.
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Store:
    """Repository over the metadata DB. Create it with `open_store(url)`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- runs --------------------------------------------------------------------------------
    def create_run(self, **values: Any) -> str:
        values.setdefault("engine_host", socket.gethostname())
        values.setdefault("engine_pid", os.getpid())
        values.setdefault("engine_instance", this_instance())
        with self.engine.begin() as conn:
            conn.execute(insert(RunRow), [values])
        return values["id"]

    def update_run(self, run_id: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(RunRow).where(RunRow.id == run_id).values(**values))

    def get_run(self, run_id: str, *, namespaces: Collection[str] | None = None) -> RunRow:
        """The run with this id, or the only run whose id starts with it (case-sensitive).

        `namespaces`: only runs in these namespaces count (a caller's readable ones), so that neither a
        match nor "several runs match" can reveal a run elsewhere.
        """
        if not run_id:
            raise RunNotFound("no run id given")
        within = RunRow.namespace.in_(list(namespaces)) if namespaces is not None else None
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(RunRow, run_id)
            if row is not None and namespaces is not None and row.namespace not in namespaces:
                row = None
            if row is None:
                # Not LIKE: SQLite's LIKE ignores case, PostgreSQL's does not.
                query = select(RunRow).where(func.substr(RunRow.id, 1, len(run_id)) == run_id).limit(2)
                if within is not None:
                    query = query.where(within)
                matches = session.scalars(query).all()
                if not matches:
                    raise RunNotFound(f"no run matches {run_id!r}")
                if len(matches) > 1:
                    raise RunNotFound(f"several runs match {run_id!r}; give more of the id")
                row = matches[0]
            return row

    def list_runs(self, *, limit: int = 50, state: str | None = None) -> Sequence[RunRow]:
        query = select(RunRow).order_by(RunRow.created_at.desc(), RunRow.id.desc()).limit(limit)
        if state:
            query = query.where(RunRow.state == state)
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalars(query).all()

    def fail_orphaned_runs(self) -> list[str]:
        """Mark FAILED the active embedded runs on this host whose engine process is gone.

        Runs of the control plane (origin "server") are left alone: it resumes them when it starts.
        """
        query = select(RunRow.id, RunRow.engine_instance).where(
            RunRow.state.not_in(TERMINAL_RUN_STATES), RunRow.engine_host == socket.gethostname(),
            RunRow.origin == "embedded",
        )
        with self.engine.connect() as conn:
            orphaned = [run_id for run_id, instance in conn.execute(query) if not instance_alive(instance)]
        message = "the engine running this run exited unexpectedly"
        for run_id in orphaned:
            self.end_run(run_id, "FAILED", message)
        return orphaned

    def claim_orphaned_runs(self) -> list[str]:
        """Take over the control plane's unfinished runs that no running control plane executes.

        Call it holding the store's control-plane lock (ownership.control_plane_lock): then every
        unfinished server run that another instance recorded is orphaned, whatever host or pid it
        names. Each is claimed with a conditional update. Returns the claimed ids, oldest first.
        """
        me = this_instance()
        query = (
            select(RunRow.id, RunRow.engine_instance)
            .where(RunRow.state.not_in(TERMINAL_RUN_STATES), RunRow.origin == "server")
            .order_by(RunRow.created_at)
        )
        claimed = []
        with self.engine.begin() as conn:
            for run_id, instance in conn.execute(query).all():
                if instance == me:
                    continue
                owner = RunRow.engine_instance.is_(None) if instance is None else RunRow.engine_instance == instance
                result = conn.execute(update(RunRow).where(RunRow.id == run_id, owner).values(
                    engine_instance=me, engine_host=socket.gethostname(), engine_pid=os.getpid()))
                if result.rowcount:
                    claimed.append(run_id)
        return claimed

    def release_runs(self) -> None:
        """Let go of this process's unfinished control-plane runs (it is stopping)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(RunRow)
                .where(RunRow.state.not_in(TERMINAL_RUN_STATES), RunRow.engine_instance == this_instance())
                .values(engine_instance=None)
            )

    def end_run(self, run_id: str, state: str, error: str | None, *, only_from: Sequence[str] | None = None,
                **values: Any) -> bool:
        """Give the run its final `state` and end its unfinished tasks, in one transaction.

        `only_from`: do it only while the run is in one of these states (default: any unfinished
        state), so a run that ended meanwhile keeps its real ending. Returns whether it was ended.
        """
        now = utcnow()
        allowed = RunRow.state.in_(only_from) if only_from else RunRow.state.not_in(TERMINAL_RUN_STATES)
        with self.engine.begin() as conn:
            result = conn.execute(update(RunRow).where(RunRow.id == run_id, allowed).values(
                state=state, error=error, finished_at=now, **values))
            if not result.rowcount:
                return False
            conn.execute(
                update(TaskRow)
                .where(TaskRow.run_id == run_id, TaskRow.state.in_(("PENDING", "RUNNING")))
                .values(state="FAILED" if state == "FAILED" else "CANCELED", error=error, finished_at=now)
            )
        return True

    def restart_run(self, run_id: str, *, from_states: Sequence[str]) -> bool:
        """Make a run PENDING again for this process to execute, only while in `from_states`."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(RunRow).where(RunRow.id == run_id, RunRow.state.in_(from_states))
                .values(state="PENDING", error=None, finished_at=None, origin="server",
                        engine_host=socket.gethostname(), engine_pid=os.getpid(), engine_instance=this_instance())
            )
        return bool(result.rowcount)

    def delete_run(self, run_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(RunRow).where(RunRow.id == run_id))

    # -- tasks and attempts --------------------------------------------------------------------
    def list_tasks(self, run_id: str) -> Sequence[TaskRow]:
        query = select(TaskRow).where(TaskRow.run_id == run_id).order_by(TaskRow.created_at, TaskRow.path)
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalars(query).all()

    def list_attempts(self, task_ids: Sequence[str]) -> Sequence[AttemptRow]:
        query = (
            select(AttemptRow).where(AttemptRow.task_id.in_(task_ids))
            .order_by(AttemptRow.task_id, AttemptRow.number)
        )
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalars(query).all()

    def output_artifact_ids(self, task_ids: Sequence[str]) -> dict[tuple[str, str, int], str]:
        """{(task id, output key, position): artifact id} for what these tasks wrote (or reused)."""
        query = select(EventRow.task_id, EventRow.key, EventRow.position, EventRow.artifact_id).where(
            EventRow.task_id.in_(task_ids), EventRow.type == "OUTPUT")
        with self.engine.connect() as conn:
            return {(t, k, p): a for t, k, p, a in conn.execute(query)}

    # -- artifacts and lineage -----------------------------------------------------------------
    def lineage(self, task_id: str) -> list[tuple[str, str, ArtifactRow]]:
        """(event type, key, artifact) for every artifact the task read or wrote."""
        query = (
            select(EventRow.type, EventRow.key, ArtifactRow)
            .join(ArtifactRow, ArtifactRow.id == EventRow.artifact_id)
            .where(EventRow.task_id == task_id)
            .order_by(EventRow.type, EventRow.key, EventRow.position)
        )
        with Session(self.engine, expire_on_commit=False) as session:
            return [(t, k, a) for t, k, a in session.execute(query)]

    # -- cache -----------------------------------------------------------------------------------
    def cache_lookup(self, fingerprint: str, pipeline_name: str) -> dict[str, Any] | None:
        query = select(CacheEntryRow.outputs).where(
            CacheEntryRow.fingerprint == fingerprint, CacheEntryRow.pipeline_name == pipeline_name
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one_or_none()

    # -- batched writes --------------------------------------------------------------------------
    def commit(self, run_id: str, batch: Batch) -> None:
        """Write everything in `batch` in one transaction."""
        if not batch:
            return
        with self.engine.begin() as conn:
            if batch.new_tasks:
                conn.execute(insert(TaskRow), batch.new_tasks)
            _update_many(conn, TaskRow.__table__, {"id": "_task_id"},
                         [{"_task_id": task_id, **values} for task_id, values in batch.task_updates.items()])
            if batch.new_attempts:
                conn.execute(insert(AttemptRow), batch.new_attempts)
            _update_many(conn, AttemptRow.__table__, {"task_id": "_task_id", "number": "_number"},
                         [{"_task_id": task_id, "_number": number, **values}
                          for task_id, number, values in batch.attempt_updates])
            if batch.new_artifacts:
                conn.execute(insert(ArtifactRow), batch.new_artifacts)
            if batch.new_events:
                conn.execute(insert(EventRow), batch.new_events)
            if batch.cache_entries:
                _upsert_cache_entries(conn, batch.cache_entries)
            if batch.run_update:
                conn.execute(update(RunRow).where(RunRow.id == run_id).values(**batch.run_update))

    def close(self) -> None:
        self.engine.dispose()


def _update_many(conn: Connection, table: Table, keys: dict[str, str], rows: list[dict[str, Any]]) -> None:
    """UPDATE many rows with one executemany per distinct set of columns.

    `keys` maps the key columns to the parameter names that carry their values in each row dict;
    the other entries of a row are the new column values.
    """
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        columns = tuple(sorted(k for k in row if k not in keys.values()))
        groups.setdefault(columns, []).append(row)
    for columns, group in groups.items():
        if columns:
            conn.execute(_keyed_update(table, tuple(keys.items())), group)  # SET: the row keys that name columns


@lru_cache(maxsize=64)
def _keyed_update(table: Table, keys: tuple[tuple[str, str], ...]) -> Update:
    """UPDATE table WHERE each key column equals its bound parameter (built once per table and key)."""
    return update(table).where(and_(*(table.c[column] == bindparam(param) for column, param in keys)))


def _upsert_cache_entries(conn: Connection, entries: list[dict[str, Any]]) -> None:
    """Insert or replace cache entries; for a repeated (fingerprint, pipeline) the last one wins.

    A single INSERT ... ON CONFLICT, not delete-then-insert, so that two engines caching the same
    execution at once cannot fail each other's batch with a duplicate key.
    """
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    # ON CONFLICT may not touch one row twice in a statement: keep the last entry per key.
    newest = {(entry["fingerprint"], entry["pipeline_name"]): entry for entry in entries}
    stmt = dialect_insert(CacheEntryRow)
    replaced = ("task_id", "outputs", "created_at")
    stmt = stmt.on_conflict_do_update(
        index_elements=["fingerprint", "pipeline_name"],
        set_={name: stmt.excluded[name] for name in replaced},
    )
    conn.execute(stmt, list(newest.values()))


def open_store(url: str) -> Store:
    """Connect to the DB at `url` (SQLite or PostgreSQL), creating or upgrading its schema as needed."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        os.makedirs(os.path.dirname(os.path.abspath(parsed.database)), exist_ok=True)
    engine = create_engine(parsed)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        _migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine)


def _migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision: a quick check, or `alembic upgrade head` under a lock."""
    with engine.connect() as conn:
        if _schema_revision(conn) == SCHEMA_REVISION:
            return
        conn.rollback()
        # Hold a database-wide lock for the whole upgrade, so that a second process opening the
        # same new database waits for the first and then finds it current instead of racing it.
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        from alembic import command
        from alembic.config import Config

        config = Config()  # no alembic.ini: the migrations ship inside the package
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = conn  # env.py migrates on this connection, in this transaction
        command.upgrade(config, "head")
        conn.commit()


def _schema_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

