"""Listing runs at scale, on SQLite and PostgreSQL: two statements per page and no specs read, at 10,000 runs.

These drive the catalogue (`RunCatalog`) and the request parsing (`listing`) in-process, against real
databases. What a list costs in time is measured by benchmarks/control_plane_load.py, not here: a
timing threshold on a shared test machine measures its neighbours as much as the code.
"""

import json
import random
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, insert

from flowdeck.controlplane.auth import IMPLICIT_ADMIN, Access
from flowdeck.controlplane.kfp import listing
from flowdeck.controlplane.kfp.listing import ListParams
from flowdeck.controlplane.kfp.runs import FIELDS
from flowdeck.store import RunRow, Store
from flowdeck.store.catalog import ListQuery, Predicate, RunCatalog

SPEC = {"pipelineInfo": {"name": "big"}, "root": {"dag": {"tasks": {}}}, "padding": "x" * 4000}
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
ADMIN = Access(IMPLICIT_ADMIN, [])


def add_runs(store: Store, count: int, *, seed: int = 7) -> list[dict]:
    """`count` runs over 30 days in five experiments and two namespaces; some unfinished (finished_at NULL)."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        created = START + timedelta(seconds=rng.randrange(30 * 86400))
        state = rng.choice(["SUCCEEDED", "SUCCEEDED", "FAILED", "RUNNING", "CANCELED"])
        rows.append({
            "id": f"run-{i:05d}", "pipeline_name": "big", "display_name": f"run {i}", "state": state,
            "pipeline_spec": SPEC, "arguments": {"a": i}, "created_at": created,
            "finished_at": None if state == "RUNNING" else created + timedelta(seconds=rng.randrange(1, 600)),
            "namespace": rng.choice(["", "team"]), "experiment_id": f"exp-{i % 5}", "origin": "server",
        })
    with store.engine.begin() as conn:
        for start in range(0, count, 2000):
            conn.execute(insert(RunRow), rows[start:start + 2000])
    return rows


def walk(catalog: RunCatalog, query: ListQuery) -> list[str]:
    """Every run id the query lists, following the cursor page by page."""
    ids, after = [], None
    while True:
        page = catalog.list(ListQuery(predicates=query.predicates, sort=query.sort, desc=query.desc,
                                      page_size=query.page_size, after=after, namespaces=query.namespaces))
        ids += [row.id for row in page.rows]
        if page.after is None:
            return ids
        after = page.after


@pytest.mark.parametrize("sort", ["created_at", "finished_at", "display_name", "state"])
@pytest.mark.parametrize("desc", [False, True])
def test_pages_cover_every_run_once_in_order(store: Store, sort: str, desc: bool) -> None:
    rows = add_runs(store, 60)
    catalog = RunCatalog(store)
    ids = walk(catalog, ListQuery(sort=sort, desc=desc, page_size=7))
    assert sorted(ids) == sorted(row["id"] for row in rows)  # each exactly once

    def key(row: dict) -> tuple:  # NULLs first ascending, last descending; ties by id
        value = row[sort]
        return (value is not None, value or "", row["id"])

    assert ids == [row["id"] for row in sorted(rows, key=key, reverse=desc)]


def test_filters_combine_with_namespaces_and_cursors(store: Store) -> None:
    rows = add_runs(store, 2000)
    catalog = RunCatalog(store)
    query = listing.build_query(
        FIELDS, ListParams(sort_by="created_at desc", page_size=9, filter=json.dumps({"predicates": [
            {"operation": 8, "key": "state", "stringValues": {"values": ["FAILED", "CANCELED"]}},
            {"operation": "GREATER_THAN_EQUALS", "key": "created_at", "timestamp_value": "2026-01-10T00:00:00Z"},
        ]})), access=ADMIN, namespace="team", extra=(Predicate("experiment_id", "EQUALS", "exp-3"),))
    expected = sorted(
        (r for r in rows if r["namespace"] == "team" and r["state"] in ("FAILED", "CANCELED")
         and r["created_at"] >= datetime(2026, 1, 10, tzinfo=timezone.utc) and r["experiment_id"] == "exp-3"),
        key=lambda r: (r["created_at"], r["id"]), reverse=True)
    first = catalog.list(query)
    assert first.total_size == len(expected) > 9
    # the next request carries only the token (plus its own experiment_id), as kfp.Client does
    token = listing.next_token(FIELDS, query, first, query.predicates[-1:])
    following = listing.build_query(FIELDS, ListParams(page_token=token, page_size=100), access=ADMIN,
                                    namespace="team", extra=(Predicate("experiment_id", "EQUALS", "exp-3"),))
    second = catalog.list(following)
    assert [r.id for r in first.rows] + [r.id for r in second.rows] == [r["id"] for r in expected]


def test_listing_10000_runs_reads_no_specs_in_two_statements(store: Store) -> None:
    add_runs(store, 10_000)
    catalog = RunCatalog(store)
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001 - SQLAlchemy event signature
        statements.append(statement)

    newest_20 = ListParams(page_size=20, sort_by="created_at desc")
    queries = {
        "newest 10": listing.build_query(FIELDS, ListParams(page_size=10, sort_by="created_at desc"), access=ADMIN),
        "newest 100": listing.build_query(FIELDS, ListParams(page_size=100, sort_by="created_at desc"), access=ADMIN),
        "one experiment": listing.build_query(FIELDS, newest_20, access=ADMIN,
                                              extra=(Predicate("experiment_id", "EQUALS", "exp-2"),)),
        "one namespace": listing.build_query(FIELDS, newest_20, access=ADMIN, namespace="team"),
        "failed": listing.build_query(FIELDS, ListParams(page_size=20, sort_by="created_at desc",
                                                         filter='{"predicates": [{"operation": 1, "key": "state", '
                                                                '"stringValue": "FAILED"}]}'), access=ADMIN),
    }
    event.listen(store.engine, "before_cursor_execute", record)
    try:
        for name, query in queries.items():
            statements.clear()
            page = catalog.list(query)
            assert len(statements) == 2, name  # the page and its count: no query per row
            assert not any("pipeline_spec" in s or "outputs" in s for s in statements), name
            assert page.total_size > len(page.rows) and page.after is not None
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
