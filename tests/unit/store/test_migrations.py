"""The migrations create exactly the tables the models describe, on SQLite and PostgreSQL: a
model change without its migration (or the reverse) fails here rather than in production."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from engine import Engine
from engine.store.models import Base


def test_a_migrated_database_matches_the_models(engine: Engine) -> None:
    with engine.db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)

    assert differences == []


def test_migrating_twice_changes_nothing(engine: Engine) -> None:
    engine.migrate()

    with engine.db.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() is not None
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_columns_the_bulk_import_leaves_out_have_server_defaults(engine: Engine) -> None:
    # The importer writes these tables with plain INSERTs that name only the columns it fills.
    from sqlalchemy import inspect

    with engine.db.engine.connect() as connection:
        inspector = inspect(connection)
        defaults = {(table, column["name"]): column.get("default")
                    for table in ("outbox", "process_instances", "instance_events")
                    for column in inspector.get_columns(table)}
    for key in [("outbox", "channel"), ("process_instances", "tokens"), ("process_instances", "variables"),
                ("instance_events", "internal")]:
        assert defaults[key] is not None, key
