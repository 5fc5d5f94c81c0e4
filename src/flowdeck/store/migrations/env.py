"""Alembic environment for the metadata store, driven in-process by `open_store`.

There is no alembic.ini: `open_store` builds the config itself and hands over a connection that is
already inside the transaction holding the migration lock (`config.attributes["connection"]`), so
the migration runs on that same connection — which also makes it work for in-memory SQLite engines —
and `open_store` commits it.
"""

from alembic import context

from flowdeck.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("flowdeck's migrations run through flowdeck.store.open_store(url)")

context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
