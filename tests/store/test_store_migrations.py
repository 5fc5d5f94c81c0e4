"""The schema comes from the shipped Alembic migrations, applied by `open_store`.

Every CLI command opens the store, so opening a current database must stay cheap, and two processes
opening a new database at once must both succeed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from flowdeck.store import Store, open_store
from flowdeck.store.models import Base
from flowdeck.store.store import MIGRATIONS_DIR, SCHEMA_REVISION


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def test_database_is_at_the_newest_migration(store: Store) -> None:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()

    with store.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()

    assert current == head
    assert SCHEMA_REVISION == head, "bump store.SCHEMA_REVISION to the newest migration"


def test_migrations_create_exactly_the_models_tables(store: Store) -> None:
    with store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)

    assert differences == []


def test_opening_twice_keeps_schema_and_data(store_url: str) -> None:
    first = open_store(store_url)
    first.create_run(id="r1", pipeline_name="p", display_name="d", state="RUNNING", pipeline_spec={})
    first.close()

    second = open_store(store_url)
    try:
        assert second.get_run("r1").pipeline_name == "p"
    finally:
        second.close()


def test_current_database_opens_without_alembic(store: Store, store_url: str) -> None:
    code = (
        "import sys\n"
        "from flowdeck.store import open_store\n"
        "open_store(sys.argv[1]).close()\n"
        "print(sorted(m for m in sys.modules if m.partition('.')[0] == 'alembic'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, store_url], capture_output=True, text=True, timeout=60, check=True
    )

    assert result.stdout.strip() == "[]", "open_store imported alembic for a database already at head"


def test_processes_opening_a_new_database_at_once_all_succeed(store_url: str) -> None:
    code = (
        "import sys, time\n"
        "from flowdeck.store import open_store\n"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
        "open_store(sys.argv[1]).close()\n"
    )
    start = time.time() + 2.0  # by then every interpreter has imported flowdeck and waits to start
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, store_url, str(start)], stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    errors = [process.communicate(timeout=120)[1] for process in processes]

    assert [p.returncode for p in processes] == [0, 0, 0, 0], "\n".join(errors)
    store = open_store(store_url)
    try:
        assert store.list_runs() == []
    finally:
        store.close()


def test_downgrade_to_base_removes_the_tables_and_open_store_recreates_them(
    store: Store, store_url: str, make_run: Callable[..., str]
) -> None:
    make_run("r1")
    config = alembic_config()
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
        assert inspect(conn).get_table_names() == ["alembic_version"]

    reopened = open_store(store_url)
    try:
        assert reopened.list_runs() == []
        with reopened.engine.connect() as conn:
            tables = sorted(inspect(conn).get_table_names())
        assert tables == sorted([*Base.metadata.tables, "alembic_version"])
    finally:
        reopened.close()
