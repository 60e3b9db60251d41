"""Alembic environment: runs on the connection cloud.store.db.create_schema hands over, or on the URL
given with `-x url=...` when run from the command line."""

from alembic import context
from sqlalchemy import create_engine

from cloud.store.db import metadata

# Any constant works: it only has to be the same for every cloud process sharing one database.
PG_MIGRATION_LOCK = 7_411_902_113


def _run(connection) -> None:
    if connection.dialect.name == "postgresql":
        # Two workers starting at once must not both create the tables.
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})")
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("give the database with: alembic -c cloud/store/alembic.ini -x url=<database url> upgrade head")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
