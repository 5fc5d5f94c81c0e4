"""Repositories over the KFP catalogue: experiments, pipelines and versions, recurring runs, and runs as listed.

The control plane's KFP API is a thin edge over these classes. They speak columns and rows, not
KFP's wire format: a list request arrives as a `ListQuery` (predicates on column names, a sort
column, a page size and a keyset cursor) and leaves as a `Page`. Lists never read the large JSON
columns (pipeline specs) and answer with two statements, the page and its total count, so a list of
runs costs the same with ten rows or a hundred thousand.

Keyset pagination (`after`: the sort value and id of the previous page's last row) keeps pages
stable while new rows arrive, which an offset would not. Values in predicates and cursors may come
in as JSON (strings, numbers); they are converted to the column's type here, and a value that does
not fit is an `InvalidQuery`.

Text written to a row must fit its column and hold no NUL byte (`InvalidValue` otherwise):
PostgreSQL refuses both while SQLite stores them, and the two backends must behave alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    Select,
    Table,
    and_,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeDecorator

from flowdeck.store.models import (
    EventRow,
    ExperimentRow,
    PipelineRow,
    PipelineVersionRow,
    RecurringRunRow,
    RunRow,
    TaskRow,
    utcnow,
)
from flowdeck.store.store import Store

__all__ = [
    "AlreadyExists",
    "Experiments",
    "InvalidQuery",
    "InvalidValue",
    "ListQuery",
    "NotFound",
    "Page",
    "PipelineVersions",
    "Pipelines",
    "Predicate",
    "RecurringRuns",
    "RunCatalog",
    "StateConflict",
]

DEFAULT_EXPERIMENT = "Default"
ARCHIVED = "ARCHIVED"
AVAILABLE = "AVAILABLE"
#: Run states after which nothing changes any more.
FINISHED_RUN_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"})


class NotFound(LookupError):
    """No row has the given id (or name)."""


class AlreadyExists(ValueError):
    """A row with the same unique name exists."""


class StateConflict(ValueError):
    """The row is in a state that does not allow the change (e.g. deleting a pipeline that has versions)."""


class InvalidQuery(ValueError):
    """A list query names an unknown column or a value that does not fit the column."""


class InvalidValue(ValueError):
    """A value to write does not fit its column (too long, or a NUL byte in text)."""


OPERATIONS = ("EQUALS", "NOT_EQUALS", "GREATER_THAN", "GREATER_THAN_EQUALS", "LESS_THAN", "LESS_THAN_EQUALS",
              "IN", "IS_SUBSTRING")


@dataclass(frozen=True)
class Predicate:
    """`column <operation> value`; `value` is a list for IN."""

    column: str
    operation: str
    value: Any


@dataclass(frozen=True)
class ListQuery:
    predicates: tuple[Predicate, ...] = ()
    sort: str = "created_at"
    desc: bool = False
    page_size: int = 20
    #: (sort value, id) of the last row of the previous page; None for the first page.
    after: tuple[Any, str] | None = None
    #: Only rows in these namespaces (None: every namespace).
    namespaces: Collection[str] | None = None


@dataclass(frozen=True)
class Page:
    rows: Sequence[Row[Any]]
    total_size: int
    #: The cursor of the next page, or None when this page is the last.
    after: tuple[Any, str] | None


def new_id() -> str:
    return str(uuid.uuid4())


def _engine(store: Store | Engine) -> Engine:
    return store.engine if isinstance(store, Store) else store


# -- generic listing ---------------------------------------------------------------------------------

def _python_type(column: Column[Any]) -> type | None:
    column_type = column.type.impl if isinstance(column.type, TypeDecorator) else column.type
    try:
        return column_type.python_type
    except NotImplementedError:
        return None


def _coerce(column: Column[Any], value: Any) -> Any:
    """`value` (as JSON gives it) converted to the Python type of `column`."""
    if value is None:
        return None
    python_type = _python_type(column)
    if python_type is datetime:
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        if isinstance(value, bool):
            raise InvalidQuery(f"{column.name}: expected a timestamp, got {value!r}")
        if isinstance(value, (int, float)) or (isinstance(value, str) and value.lstrip("-").isdigit()):
            try:
                return datetime.fromtimestamp(int(value), tz=timezone.utc)  # seconds since the epoch
            except (OverflowError, OSError, ValueError):
                raise InvalidQuery(f"{column.name}: {value!r} is out of range for a timestamp") from None
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise InvalidQuery(f"{column.name}: {value!r} is not an RFC 3339 timestamp") from None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
        raise InvalidQuery(f"{column.name}: expected a timestamp, got {value!r}")
    if python_type is str:
        if isinstance(value, (dict, list)):
            raise InvalidQuery(f"{column.name}: expected a string, got {value!r}")
        return str(value)
    if python_type is int:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise InvalidQuery(f"{column.name}: expected an integer, got {value!r}") from None
    if python_type is bool:
        if isinstance(value, str):
            return value.lower() in ("true", "1")
        return bool(value)
    return value


def _column(table: Table, name: str, allowed: Collection[str]) -> Column[Any]:
    if name not in allowed or name not in table.c:
        raise InvalidQuery(f"cannot filter or sort on {name!r}")
    return table.c[name]


def _condition(column: Column[Any], predicate: Predicate) -> ColumnElement[bool]:
    op = predicate.operation
    if op == "IN":
        values = predicate.value if isinstance(predicate.value, (list, tuple)) else [predicate.value]
        return column.in_([_coerce(column, v) for v in values])
    if isinstance(predicate.value, (list, tuple)):
        raise InvalidQuery(f"{predicate.column}: {op} takes one value, not a list")
    value = _coerce(column, predicate.value)
    if op == "EQUALS":
        return column.is_(None) if value is None else column == value
    if op == "NOT_EQUALS":
        return column.is_not(None) if value is None else or_(column != value, column.is_(None))
    if op == "IS_SUBSTRING":
        if not isinstance(value, str) or _python_type(column) is not str:
            raise InvalidQuery(f"{predicate.column}: IS_SUBSTRING applies to text fields only")
        return column.icontains(value, autoescape=True)
    comparisons = {"GREATER_THAN": column > value, "GREATER_THAN_EQUALS": column >= value,
                   "LESS_THAN": column < value, "LESS_THAN_EQUALS": column <= value}
    if op not in comparisons:
        raise InvalidQuery(f"unknown filter operation {op!r}")
    return comparisons[op]


def _after(column: Column[Any], key: Column[Any], desc: bool, after: tuple[Any, str]) -> ColumnElement[bool]:
    """Rows that come after the cursor in the page order (NULLs sort first ascending, last descending)."""
    value, last_id = _coerce(column, after[0]), str(after[1])
    if not column.nullable:
        return tuple_(column, key) < tuple_(value, last_id) if desc else tuple_(column, key) > tuple_(value, last_id)
    if desc:
        if value is None:
            return and_(column.is_(None), key < last_id)
        return or_(column.is_(None), column < value, and_(column == value, key < last_id))
    if value is None:
        return or_(column.is_not(None), and_(column.is_(None), key > last_id))
    return and_(column.is_not(None), or_(column > value, and_(column == value, key > last_id)))


def _order(column: Column[Any], key: Column[Any], desc: bool) -> list[Any]:
    if not column.nullable:
        return [column.desc(), key.desc()] if desc else [column.asc(), key.asc()]
    nulls = column.is_(None)
    return [nulls.asc(), column.desc(), key.desc()] if desc else [nulls.desc(), column.asc(), key.asc()]


def _list_page(conn: Connection, table: Table, columns: Sequence[Any], query: ListQuery, *,
               allowed: Collection[str], where: Sequence[ColumnElement[bool]] = ()) -> Page:
    """One page of `table` (only `columns` are read) and the number of rows matching the query."""
    if query.page_size < 1:
        raise InvalidQuery(f"page size must be at least 1, got {query.page_size}")
    key = table.c["id"]
    sort = _column(table, query.sort, allowed)
    conditions = list(where)
    for predicate in query.predicates:
        conditions.append(_condition(_column(table, predicate.column, allowed), predicate))
    if query.namespaces is not None:
        conditions.append(table.c["namespace"].in_(list(query.namespaces)) if query.namespaces else false())
    condition = and_(true(), *conditions)
    total = conn.execute(select(func.count()).select_from(table).where(condition)).scalar_one()
    page_condition = condition if query.after is None else and_(condition, _after(sort, key, query.desc, query.after))
    stmt: Select[Any] = (
        select(*columns).where(page_condition).order_by(*_order(sort, key, query.desc)).limit(query.page_size + 1)
    )
    rows = conn.execute(stmt).all()
    following = None
    if len(rows) > query.page_size:
        rows = rows[: query.page_size]
        last = rows[-1]
        following = (getattr(last, sort.name), last.id)
    return Page(rows=rows, total_size=total, after=following)


def _get(conn: Connection, table: Table, row_id: str, what: str, columns: Sequence[Any] | None = None) -> Row[Any]:
    row = conn.execute(select(*(columns or table.c)).where(table.c["id"] == row_id)).first()
    if row is None:
        raise NotFound(f"{what} {row_id!r} not found")
    return row


def _checked(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """`values` for a row of `table`, after checking that each string fits its column and holds no NUL byte."""
    for name, value in values.items():
        if not isinstance(value, str):
            continue
        if "\x00" in value:
            raise InvalidValue(f"{name} must not contain a NUL byte")
        length = getattr(table.c[name].type, "length", None)
        if length is not None and len(value) > length:
            raise InvalidValue(f"{name} is too long: {len(value)} characters, at most {length}")
    return values


def _in(namespace: str) -> str:
    """" in namespace 'x'" for messages; nothing for the single-user namespace."""
    return f" in namespace {namespace!r}" if namespace else ""


@contextmanager
def _unique(message: str) -> Iterator[None]:
    """Turn a unique-constraint violation in the block into `AlreadyExists(message)`."""
    try:
        yield
    except IntegrityError as exc:
        text = str(exc.orig).lower()
        if "unique" in text or "duplicate" in text:
            raise AlreadyExists(message) from None
        raise


# -- experiments -------------------------------------------------------------------------------------

class Experiments:
    """Experiments group runs; archiving one archives its runs and stops its schedules, as in KFP."""

    table: Table = ExperimentRow.__table__
    FIELDS = ("id", "display_name", "description", "created_at", "last_run_created_at", "namespace", "storage_state")

    def __init__(self, store: Store | Engine) -> None:
        self.engine = _engine(store)

    def create(self, *, display_name: str, namespace: str = "", description: str | None = None) -> Row[Any]:
        values = _checked(self.table, {"id": new_id(), "namespace": namespace, "display_name": display_name,
                                       "description": description, "storage_state": AVAILABLE, "created_at": utcnow()})
        exists = f"an experiment named {display_name!r} already exists{_in(namespace)}"
        with _unique(exists), self.engine.begin() as conn:
            conn.execute(insert(self.table), [values])
            return _get(conn, self.table, values["id"], "experiment")

    def get(self, experiment_id: str) -> Row[Any]:
        with self.engine.connect() as conn:
            return _get(conn, self.table, experiment_id, "experiment")

    def default(self, *, namespace: str = "") -> Row[Any]:
        """The namespace's "Default" experiment, created on first use (as KFP creates it)."""
        c = self.table.c
        query = select(self.table).where(c.namespace == namespace, c.display_name == DEFAULT_EXPERIMENT)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is not None:
            return row
        try:
            return self.create(display_name=DEFAULT_EXPERIMENT, namespace=namespace,
                               description="All runs created without specifying an experiment are grouped here.")
        except AlreadyExists:  # created by a concurrent request
            with self.engine.connect() as conn:
                return conn.execute(query).one()

    def list(self, query: ListQuery) -> Page:
        with self.engine.connect() as conn:
            return _list_page(conn, self.table, list(self.table.c), query, allowed=self.FIELDS)

    def delete(self, experiment_id: str) -> None:
        """Delete the experiment; its runs and recurring runs stay (KFP keeps them too)."""
        with self.engine.begin() as conn:
            _get(conn, self.table, experiment_id, "experiment", [self.table.c.id])
            conn.execute(delete(self.table).where(self.table.c.id == experiment_id))

    def archive(self, experiment_id: str) -> None:
        """Archive the experiment and all its runs, and disable its recurring runs, in one transaction."""
        now = utcnow()
        with self.engine.begin() as conn:
            _get(conn, self.table, experiment_id, "experiment", [self.table.c.id])
            conn.execute(update(self.table).where(self.table.c.id == experiment_id).values(storage_state=ARCHIVED))
            conn.execute(update(RunRow).where(RunRow.experiment_id == experiment_id).values(storage_state=ARCHIVED))
            conn.execute(update(RecurringRunRow).where(RecurringRunRow.experiment_id == experiment_id,
                                                       RecurringRunRow.enabled.is_(True))
                         .values(enabled=False, updated_at=now))

    def unarchive(self, experiment_id: str) -> None:
        """Make the experiment available again; its runs stay archived until unarchived one by one (as KFP)."""
        with self.engine.begin() as conn:
            _get(conn, self.table, experiment_id, "experiment", [self.table.c.id])
            conn.execute(update(self.table).where(self.table.c.id == experiment_id).values(storage_state=AVAILABLE))

    def run_created(self, experiment_id: str, at: datetime) -> None:
        """Record that a run was created in the experiment at `at` (its `last_run_created_at`)."""
        with self.engine.begin() as conn:
            conn.execute(update(self.table).where(self.table.c.id == experiment_id).values(last_run_created_at=at))


# -- pipelines and versions --------------------------------------------------------------------------

class Pipelines:
    """Pipelines: named containers of versions, unique by (namespace, name)."""

    table: Table = PipelineRow.__table__
    FIELDS = ("id", "name", "display_name", "description", "created_at", "namespace")

    def __init__(self, store: Store | Engine) -> None:
        self.engine = _engine(store)

    def create(self, *, name: str, display_name: str | None = None, namespace: str = "",
               description: str | None = None, tags: dict[str, str] | None = None,
               version: dict[str, Any] | None = None) -> tuple[Row[Any], Row[Any] | None]:
        """Create a pipeline and, when `version` (PipelineVersions.create's keywords) is given, its first version.

        Both rows are written in one transaction: a rejected version leaves no empty pipeline behind.
        """
        values = _checked(self.table, {"id": new_id(), "namespace": namespace, "name": name,
                                       "display_name": display_name or name, "description": description,
                                       "tags": tags or {}, "created_at": utcnow()})
        with _unique(f"a pipeline named {name!r} already exists{_in(namespace)}"), self.engine.begin() as conn:
            conn.execute(insert(self.table), [values])
            pipeline = _get(conn, self.table, values["id"], "pipeline")
            created = None
            if version is not None:
                created = PipelineVersions.insert(conn, pipeline_id=values["id"], **version)
            return pipeline, created

    def get(self, pipeline_id: str) -> Row[Any]:
        with self.engine.connect() as conn:
            return _get(conn, self.table, pipeline_id, "pipeline")

    def get_by_name(self, name: str, *, namespace: str = "") -> Row[Any]:
        c = self.table.c
        with self.engine.connect() as conn:
            row = conn.execute(select(self.table).where(c.namespace == namespace, c.name == name)).first()
        if row is None:
            raise NotFound(f"pipeline named {name!r} not found{_in(namespace)}")
        return row

    def list(self, query: ListQuery) -> Page:
        with self.engine.connect() as conn:
            return _list_page(conn, self.table, list(self.table.c), query, allowed=self.FIELDS)

    def delete(self, pipeline_id: str, *, cascade: bool = False) -> None:
        """Delete the pipeline; one that still has versions needs `cascade` (which deletes them too), as in KFP."""
        versions = PipelineVersionRow.__table__
        with self.engine.begin() as conn:
            _get(conn, self.table, pipeline_id, "pipeline", [self.table.c.id])
            if not cascade:
                latest = conn.execute(
                    select(versions.c.id).where(versions.c.pipeline_id == pipeline_id)
                    .order_by(versions.c.created_at.desc()).limit(1)
                ).scalar()
                if latest is not None:
                    raise StateConflict(f"pipeline {pipeline_id!r} still has versions (e.g. {latest!r}); delete them "
                                        "first or pass cascade=true to delete the pipeline with all its versions")
            conn.execute(delete(versions).where(versions.c.pipeline_id == pipeline_id))
            conn.execute(delete(self.table).where(self.table.c.id == pipeline_id))


class PipelineVersions:
    """Versions of a pipeline, each holding a pipeline spec; unique by name within their pipeline."""

    table: Table = PipelineVersionRow.__table__
    FIELDS = ("id", "name", "display_name", "description", "created_at", "pipeline_id")
    #: Everything but the specs: what lists read.
    SUMMARY = tuple(c for c in PipelineVersionRow.__table__.c if c.name not in ("pipeline_spec", "platform_spec"))

    def __init__(self, store: Store | Engine) -> None:
        self.engine = _engine(store)

    @classmethod
    def insert(cls, conn: Connection, *, pipeline_id: str, name: str, pipeline_spec: dict[str, Any],
               display_name: str | None = None, description: str | None = None,
               platform_spec: dict[str, Any] | None = None, code_source_url: str | None = None,
               tags: dict[str, str] | None = None) -> Row[Any]:
        values = _checked(cls.table, {
            "id": new_id(), "pipeline_id": pipeline_id, "name": name, "display_name": display_name or name,
            "description": description, "pipeline_spec": pipeline_spec, "platform_spec": platform_spec or None,
            "code_source_url": code_source_url, "tags": tags or {}, "created_at": utcnow()})
        conn.execute(insert(cls.table), [values])
        return _get(conn, cls.table, values["id"], "pipeline version")

    def create(self, *, pipeline_id: str, name: str, pipeline_spec: dict[str, Any], **values: Any) -> Row[Any]:
        with _unique(f"pipeline {pipeline_id!r} already has a version named {name!r}"), self.engine.begin() as conn:
            _get(conn, Pipelines.table, pipeline_id, "pipeline", [Pipelines.table.c.id])
            return self.insert(conn, pipeline_id=pipeline_id, name=name, pipeline_spec=pipeline_spec, **values)

    def get(self, version_id: str, *, pipeline_id: str | None = None) -> Row[Any]:
        """The version with its spec; with `pipeline_id`, it must belong to that pipeline."""
        with self.engine.connect() as conn:
            row = _get(conn, self.table, version_id, "pipeline version")
        if pipeline_id is not None and row.pipeline_id != pipeline_id:
            raise NotFound(f"pipeline version {version_id!r} not found in pipeline {pipeline_id!r}")
        return row

    def latest(self, pipeline_id: str) -> Row[Any]:
        """The pipeline's newest version, with its spec."""
        c = self.table.c
        with self.engine.connect() as conn:
            _get(conn, Pipelines.table, pipeline_id, "pipeline", [Pipelines.table.c.id])
            row = conn.execute(
                select(self.table).where(c.pipeline_id == pipeline_id).order_by(c.created_at.desc(), c.id.desc())
                .limit(1)
            ).first()
        if row is None:
            raise NotFound(f"pipeline {pipeline_id!r} has no versions")
        return row

    def list(self, pipeline_id: str, query: ListQuery) -> Page:
        with self.engine.connect() as conn:
            _get(conn, Pipelines.table, pipeline_id, "pipeline", [Pipelines.table.c.id])
            return _list_page(conn, self.table, self.SUMMARY, query, allowed=self.FIELDS,
                              where=[self.table.c.pipeline_id == pipeline_id])

    def delete(self, version_id: str, *, pipeline_id: str) -> None:
        with self.engine.begin() as conn:
            row = _get(conn, self.table, version_id, "pipeline version", [self.table.c.pipeline_id])
            if row.pipeline_id != pipeline_id:
                raise NotFound(f"pipeline version {version_id!r} not found in pipeline {pipeline_id!r}")
            conn.execute(delete(self.table).where(self.table.c.id == version_id))


# -- recurring runs ----------------------------------------------------------------------------------

class RecurringRuns:
    """Schedules that start runs; the schedule runner reads these rows (see `RecurringRunRow`)."""

    table: Table = RecurringRunRow.__table__
    FIELDS = ("id", "display_name", "description", "created_at", "updated_at", "namespace", "experiment_id",
              "pipeline_id", "pipeline_version_id", "enabled")
    SUMMARY = tuple(c for c in RecurringRunRow.__table__.c if c.name not in ("pipeline_spec", "platform_spec"))

    def __init__(self, store: Store | Engine) -> None:
        self.engine = _engine(store)

    def create(self, **values: Any) -> Row[Any]:
        """Insert a recurring run; `values` are its columns (id and timestamps are filled in)."""
        now = utcnow()
        values = _checked(self.table, {"id": new_id(), "created_at": now, "updated_at": now, **values})
        with self.engine.begin() as conn:
            conn.execute(insert(self.table), [values])
            return _get(conn, self.table, values["id"], "recurring run")

    def get(self, recurring_run_id: str) -> Row[Any]:
        with self.engine.connect() as conn:
            return _get(conn, self.table, recurring_run_id, "recurring run")

    def list(self, query: ListQuery) -> Page:
        with self.engine.connect() as conn:
            return _list_page(conn, self.table, self.SUMMARY, query, allowed=self.FIELDS)

    def set_enabled(self, recurring_run_id: str, enabled: bool) -> None:
        with self.engine.begin() as conn:
            _get(conn, self.table, recurring_run_id, "recurring run", [self.table.c.id])
            conn.execute(update(self.table).where(self.table.c.id == recurring_run_id)
                         .values(enabled=enabled, updated_at=utcnow()))

    def delete(self, recurring_run_id: str) -> None:
        """Delete the schedule; the runs it started stay."""
        with self.engine.begin() as conn:
            _get(conn, self.table, recurring_run_id, "recurring run", [self.table.c.id])
            conn.execute(delete(self.table).where(self.table.c.id == recurring_run_id))


# -- runs as the API lists them ----------------------------------------------------------------------

class RunCatalog:
    """Runs as the KFP API sees them: listing, details with tasks, archiving and deletion.

    Runs are created and driven by the run controller (and `flowdeck run`); this class only reads
    them and changes what the API owns (storage state, deletion of finished runs).
    """

    table: Table = RunRow.__table__
    FIELDS = ("id", "display_name", "created_at", "finished_at", "description", "scheduled_at", "storage_state",
              "namespace", "experiment_id", "state", "recurring_run_id", "pipeline_id", "pipeline_version_id",
              "pipeline_name")
    #: What a list reads: no pipeline spec, no outputs.
    SUMMARY = tuple(c for c in RunRow.__table__.c if c.name not in ("pipeline_spec", "platform_spec", "outputs"))

    def __init__(self, store: Store | Engine) -> None:
        self.engine = _engine(store)

    def list(self, query: ListQuery) -> Page:
        with self.engine.connect() as conn:
            return _list_page(conn, self.table, self.SUMMARY, query, allowed=self.FIELDS)

    def get(self, run_id: str) -> Row[Any]:
        """The run with every column (exact id: the API does not match prefixes)."""
        with self.engine.connect() as conn:
            return _get(conn, self.table, run_id, "run")

    def tasks(self, run_id: str) -> tuple[Sequence[Row[Any]], Sequence[Row[Any]]]:
        """The run's task rows and their lineage events (task_id, artifact_id, type, key), in two statements."""
        tasks = TaskRow.__table__
        events = EventRow.__table__
        task_columns = [c for c in tasks.c if c.name not in ("inputs", "outputs", "fingerprint")]
        with self.engine.connect() as conn:
            task_rows = conn.execute(
                select(*task_columns).where(tasks.c.run_id == run_id).order_by(tasks.c.created_at, tasks.c.path)
            ).all()
            event_rows = conn.execute(
                select(events.c.task_id, events.c.artifact_id, events.c.type, events.c.key)
                .join(tasks, tasks.c.id == events.c.task_id)
                .where(tasks.c.run_id == run_id)
                .order_by(events.c.task_id, events.c.type, events.c.key, events.c.position)
            ).all()
        return task_rows, event_rows

    def set_storage_state(self, run_id: str, storage_state: str) -> None:
        """Archive or unarchive a run; a run of an archived experiment cannot be unarchived alone (as KFP)."""
        with self.engine.begin() as conn:
            row = _get(conn, self.table, run_id, "run", [self.table.c.experiment_id])
            if storage_state == AVAILABLE and row.experiment_id:
                experiment = conn.execute(
                    select(ExperimentRow.storage_state).where(ExperimentRow.id == row.experiment_id)
                ).scalar()
                if experiment == ARCHIVED:
                    raise StateConflict(f"run {run_id!r} belongs to archived experiment {row.experiment_id!r}; "
                                        "unarchive the experiment first")
            conn.execute(update(self.table).where(self.table.c.id == run_id).values(storage_state=storage_state))

    def delete(self, run_id: str) -> None:
        """Delete a finished run with its tasks, attempts and lineage events (artifacts stay)."""
        with self.engine.begin() as conn:
            row = _get(conn, self.table, run_id, "run", [self.table.c.state])
            if row.state not in FINISHED_RUN_STATES:
                raise StateConflict(f"run {run_id!r} is {row.state}; terminate it before deleting it")
            conn.execute(delete(self.table).where(self.table.c.id == run_id))
