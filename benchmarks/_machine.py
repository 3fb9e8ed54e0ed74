"""The machine a benchmark ran on, printed above its results (absolute figures depend on it;
the ratios in the tables are what compares across machines)."""
from __future__ import annotations

import os
import platform
import sqlite3
from datetime import UTC, datetime
from pathlib import Path


def _first(path: str, prefix: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def describe(**extra: str) -> dict[str, str]:
    """Cores, CPU model, memory, Python, SQLite, the load average now and the time, then
    ``extra`` (library versions, the store)."""
    memory = _first("/proc/meminfo", "MemTotal")
    return {
        "nproc": str(os.cpu_count()),
        "cpu": _first("/proc/cpuinfo", "model name") or "unknown",
        "memory": f"{int(memory.split()[0]) / 1024 / 1024:.1f} GiB" if memory else "?",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        **extra,
        "load average (1/5/15 min) at start": load_average(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
