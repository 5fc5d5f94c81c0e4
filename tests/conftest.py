"""Fixtures shared across test packages: a real PostgreSQL database, and an empty store on each backend."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from flowdeck.store import Store, open_store


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL database created for this test session and dropped after it.

    The server is the one named by FLOWDECK_TEST_POSTGRES_URL (`eval "$(.ci/start-postgres)"` sets
    it); its role needs CREATEDB. Without it the tests that need PostgreSQL are skipped locally, but
    fail in CI (CI=true), so CI cannot silently stop testing the production backend.
    """
    server_url = os.environ.get("FLOWDECK_TEST_POSTGRES_URL")
    if not server_url:
        reason = 'FLOWDECK_TEST_POSTGRES_URL is not set (eval "$(.ci/start-postgres)" sets it)'
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{reason}; CI must run the PostgreSQL tests", pytrace=False)
        pytest.skip(reason)
    name = f"flowdeck_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> str:
    """URL of a new, empty schema in the session's PostgreSQL database (set as its search_path)."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine.dispose()
    url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty database of one backend: a new SQLite file, or a new PostgreSQL schema.

    A test that takes it (or `store`) runs once per backend, as `test[sqlite]` and `test[postgresql]`.
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flowdeck.db'}"
    return request.getfixturevalue("postgres_schema_url")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An empty store on each backend (see `store_url`)."""
    opened = open_store(store_url)
    yield opened
    opened.close()
