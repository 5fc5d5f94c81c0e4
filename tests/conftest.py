"""Fixtures shared across test packages: a real PostgreSQL database for the tests that need one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url


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
