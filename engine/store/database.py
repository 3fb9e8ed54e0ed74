"""The database handle: one SQLAlchemy engine and a session factory, same code on SQLite and
PostgreSQL."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

_WRITING: ContextVar[tuple[Any, Session] | None] = ContextVar("lowcode_writing", default=None)
"""The transaction this thread (or task) is inside, per :class:`Database`: its lookups reuse it."""


class Database:
    """Owns the connection pool; hands out sessions that commit or roll back as a whole."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        options: dict[str, Any] = {"future": True}
        if self.dialect == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            options["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            options["pool_pre_ping"] = True
        self.engine: SAEngine = create_engine(url, **options)
        self._read_engine = self.engine
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin_immediate)
            # Readers get their own pool with deferred transactions: under WAL they read a
            # consistent snapshot without queueing behind writers.
            self._read_engine = create_engine(url, **options)
            event.listen(self._read_engine, "connect", _sqlite_pragmas)
            event.listen(self._read_engine, "begin", _sqlite_begin_deferred)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self._read_engine, expire_on_commit=False)
        self._heads: set[str] | None = None

    @property
    def write_sessions(self) -> sessionmaker[Session]:
        """The factory behind :meth:`transaction` (for session event listeners, e.g. metrics)."""
        return self._sessions

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One business operation: everything in it commits together or not at all.

        While it runs, :meth:`read` in the same thread (or task) answers from this transaction's
        session instead of checking out a second pooled connection: a transaction that holds the
        audit chain's lock never waits for the pool, which the other writers, queued on that
        lock, may hold entirely (a deadlock under load)."""
        with self._sessions() as session:
            token = _WRITING.set((self, session))
            try:
                with session.begin():
                    yield session
            finally:
                _WRITING.reset(token)

    @property
    def writing(self) -> bool:
        """Whether :meth:`read` here answers from an open :meth:`transaction` (whose uncommitted
        rows it sees: nothing read that way may be cached beyond the transaction)."""
        writing = _WRITING.get()
        return writing is not None and writing[0] is self and writing[1].in_transaction()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session (a snapshot on SQLite; read committed on PostgreSQL); inside a
        :meth:`transaction` of this database, that transaction's session (without autoflush,
        so a lookup never flushes half-built rows)."""
        writing = _WRITING.get()
        if writing is not None and writing[0] is self and writing[1].in_transaction():
            with writing[1].no_autoflush:
                yield writing[1]
            return
        with self._read_sessions() as session:
            yield session

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` with Alembic."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def schema_revisions(self) -> tuple[set[str], set[str]]:
        """``(current, head)``: the Alembic revisions the database is at (empty when it was never
        migrated) and the heads of the migrations bundled with this engine. Raises when the
        database cannot be reached."""
        from alembic.script import ScriptDirectory

        if self._heads is None:
            self._heads = set(ScriptDirectory(str(MIGRATIONS)).get_heads())
        with self._read_engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return set(), set(self._heads)
            current = set(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
        return current, set(self._heads)

    def dispose(self) -> None:
        self.engine.dispose()
        if self._read_engine is not self.engine:
            self._read_engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level so that SQLAlchemy's "begin" event issues BEGIN IMMEDIATE:
    # writers queue on the database lock instead of failing on a lock upgrade mid-transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_begin_deferred(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")
