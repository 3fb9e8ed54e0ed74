"""The DuckDB mirror's lock-down and its query limits.

:func:`duckdb_config` is everything set when the connection opens; the mirror then pins the
session time zone and sets ``lock_configuration`` so no statement can change any of it again
(``SET``, ``RESET``, ``PRAGMA`` on a setting all fail). What it shuts:

- ``enable_external_access=false``: no file or network access at all: ``read_csv``,
  ``read_text``, ``COPY``, ``ATTACH``, ``EXPORT DATABASE``, ``INSTALL``;
- ``autoinstall_known_extensions`` / ``autoload_known_extensions`` off, community and unsigned
  extensions off, extension repositories ``forbidden``: ``LOAD`` fails;
- ``python_enable_replacements=false``: a query cannot read a Python variable of its caller
  (a DuckDB relation, a data frame) by naming it as a table;
- ``memory_limit`` and ``threads`` from :class:`ReportSettings`, and no temp directory, so
  nothing is ever written to disk.

DuckDB has no statement timeout: :func:`guarded` starts a timer thread that calls
``connection.interrupt()`` when a query runs too long, and turns the interruption into
:class:`ReportTimeout`.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import duckdb

from engine.errors import EngineError
from engine.reports.settings import ReportSettings

T = TypeVar("T")


class ReportTimeout(EngineError):
    """A report query ran longer than ``LOWCODE_REPORT_TIMEOUT_SECONDS`` and was stopped."""

    status = 503

    def __init__(self, seconds: float) -> None:
        super().__init__("report.timeout", params={"seconds": f"{seconds:g}"})


class ReportOutOfMemory(EngineError):
    """A report query needed more than ``LOWCODE_REPORT_MEMORY_LIMIT``."""

    status = 503

    def __init__(self, limit: str) -> None:
        super().__init__("report.out_of_memory", params={"limit": limit})


class ReportOverflow(EngineError):
    """A total (sum, avg) of the report does not fit the 38 digits of an exact decimal (DuckDB
    ``OutOfRangeException``): 422, the data and the report are fine, this total cannot be held."""

    status = 422

    def __init__(self, report: str = "") -> None:
        super().__init__("report.overflow", params={"report": report, "digits": 38})


def duckdb_config(settings: ReportSettings) -> dict[str, Any]:
    """The ``duckdb.connect`` configuration of the mirror (before ``lock_configuration``)."""
    return {
        "enable_external_access": False,
        "autoload_known_extensions": False,
        "autoinstall_known_extensions": False,
        "allow_community_extensions": False,
        "allow_unsigned_extensions": False,
        "allow_extension_repositories": "forbidden",
        "python_enable_replacements": False,
        "memory_limit": settings.memory_limit,
        "threads": settings.threads,
        "temp_directory": "",
    }


def guarded(connection: duckdb.DuckDBPyConnection, settings: ReportSettings, work: Callable[[], T]) -> T:
    """Run ``work`` (statements on ``connection``), interrupting it after
    ``settings.timeout_seconds``.

    The timer only interrupts while ``work`` runs (a small lock orders the two), so a late timer
    cannot stop the next statement. Raises :class:`ReportTimeout` when the timer stopped the
    work, :class:`ReportOutOfMemory` when DuckDB ran out of its memory limit and
    :class:`ReportOverflow` when a value went out of range (a sum over 38 digits).
    """
    state = {"running": True, "fired": False}
    guard = threading.Lock()

    def stop() -> None:
        with guard:
            if state["running"]:
                state["fired"] = True
                connection.interrupt()

    timer = threading.Timer(settings.timeout_seconds, stop)
    timer.daemon = True
    timer.start()
    try:
        return work()
    except duckdb.InterruptException:
        if state["fired"]:
            raise ReportTimeout(settings.timeout_seconds) from None
        raise
    except duckdb.OutOfMemoryException:
        raise ReportOutOfMemory(settings.memory_limit) from None
    except duckdb.OutOfRangeException:
        raise ReportOverflow() from None
    finally:
        with guard:
            state["running"] = False
        timer.cancel()


__all__ = ["ReportOutOfMemory", "ReportOverflow", "ReportTimeout", "duckdb_config", "guarded"]
