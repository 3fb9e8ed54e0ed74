"""A worker round that meets a SQLite database locked by another writer (an import while the
server runs) says so in one line, without a traceback, and the next round goes on."""
from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy.exc import OperationalError

from engine.worker import Worker


def _locked_error(tmp_path: Path) -> OperationalError:
    """The error SQLAlchemy raises when SQLite stays locked past the busy timeout (here 0 s)."""
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    other = sqlalchemy.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    try:
        with other.begin() as connection:
            connection.exec_driver_sql("INSERT INTO t VALUES (2)")
    except OperationalError as exc:
        return exc
    finally:
        other.dispose()
        holder.close()
    raise AssertionError("the database was not locked")


class _Engine:
    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.rounds = 0
        self.worker: Worker | None = None

    def run_timers(self, limit: int) -> dict[str, Any]:
        return {}

    def deliver_outbox(self, limit: int) -> dict[str, Any]:
        self.rounds += 1
        if self.rounds == 1:
            raise self.error
        assert self.worker is not None
        self.worker.stop()
        return {"claimed": 0}


@pytest.mark.parametrize("locked", [True, False])
def test_a_locked_database_is_one_quiet_line_and_the_next_round_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, locked: bool) -> None:
    error = _locked_error(tmp_path) if locked else RuntimeError("a bug")
    engine = _Engine(error)
    worker = engine.worker = Worker(engine, interval=0)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="lowcode.worker"):
        worker.run_forever()
    assert engine.rounds == 2
    (record,) = caplog.records
    if locked:
        assert record.levelno == logging.WARNING and record.exc_info is None
        assert "database busy" in record.getMessage()
    else:  # anything else is still a failure with its traceback
        assert record.levelno == logging.ERROR and record.exc_info is not None
