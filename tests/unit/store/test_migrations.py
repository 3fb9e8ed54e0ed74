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
