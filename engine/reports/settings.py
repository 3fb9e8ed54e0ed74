"""Report engine settings: how much memory, how many threads and how long one report query may
take on the DuckDB mirror.

Read from the environment mapping that :meth:`engine.config.Settings.from_env` passes in; the
engine never reads ``os.environ`` elsewhere.

    LOWCODE_REPORT_MEMORY_LIMIT      DuckDB size, e.g. 2GB, 512MiB   (default 2GB)
    LOWCODE_REPORT_THREADS           1..256                          (default 2)
    LOWCODE_REPORT_TIMEOUT_SECONDS   > 0, fractions allowed          (default 30)
    LOWCODE_REPORT_CHART_MAX_ROWS    1..1000000                      (default 1000)
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

_SIZE = re.compile(r"^\s*[0-9]+(\.[0-9]+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$", re.IGNORECASE)
MAX_THREADS = 256
MAX_TIMEOUT_SECONDS = 24 * 3600.0
MAX_CHART_ROWS = 1_000_000


@dataclass(frozen=True)
class ReportSettings:
    memory_limit: str = "2GB"
    """DuckDB ``memory_limit`` of the mirror (tables and query intermediates together: the mirror
    is in memory). Nothing spills to disk (no temp directory): a query over the limit fails with
    ``report.out_of_memory``."""
    threads: int = 2
    """DuckDB worker threads per process (each ``lowcode serve`` process has its own mirror)."""
    timeout_seconds: float = 30.0
    """A report query running longer is interrupted: ``report.timeout`` (503)."""
    chart_max_rows: int = 1000
    """The most rows a chart (``vega``, ``png``, ``svg``) is drawn from; a longer result is
    ``report.too_many_rows_for_chart`` (422). Rendering costs grow with the rows (500 rows as PNG
    take seconds, 60,000 as SVG minutes)."""

    def __post_init__(self) -> None:
        if not _SIZE.match(self.memory_limit):
            raise ValueError(f"LOWCODE_REPORT_MEMORY_LIMIT must be a size such as 2GB or 512MiB, not {self.memory_limit!r}")
        if not 1 <= self.threads <= MAX_THREADS:
            raise ValueError(f"LOWCODE_REPORT_THREADS must be 1 to {MAX_THREADS}, not {self.threads}")
        if not 0 < self.timeout_seconds <= MAX_TIMEOUT_SECONDS:
            raise ValueError(f"LOWCODE_REPORT_TIMEOUT_SECONDS must be above 0 and at most {MAX_TIMEOUT_SECONDS:g}, "
                             f"not {self.timeout_seconds}")
        if not 1 <= self.chart_max_rows <= MAX_CHART_ROWS:
            raise ValueError(f"LOWCODE_REPORT_CHART_MAX_ROWS must be 1 to {MAX_CHART_ROWS}, not {self.chart_max_rows}")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ReportSettings:
        """Raises ``ValueError`` naming the variable when a value cannot be used."""
        defaults = cls()
        threads_text = environ.get("LOWCODE_REPORT_THREADS", "").strip()
        timeout_text = environ.get("LOWCODE_REPORT_TIMEOUT_SECONDS", "").strip()
        try:
            threads = int(threads_text) if threads_text else defaults.threads
        except ValueError:
            raise ValueError(f"LOWCODE_REPORT_THREADS must be an integer, not {threads_text!r}") from None
        try:
            timeout = float(timeout_text) if timeout_text else defaults.timeout_seconds
        except ValueError:
            raise ValueError(f"LOWCODE_REPORT_TIMEOUT_SECONDS must be a number, not {timeout_text!r}") from None
        chart_text = environ.get("LOWCODE_REPORT_CHART_MAX_ROWS", "").strip()
        if chart_text and not re.fullmatch(r"[0-9]{1,9}", chart_text):
            raise ValueError(f"LOWCODE_REPORT_CHART_MAX_ROWS must be an integer, not {chart_text!r}")
        chart_max_rows = int(chart_text) if chart_text else defaults.chart_max_rows
        if timeout != timeout:  # NaN
            raise ValueError("LOWCODE_REPORT_TIMEOUT_SECONDS must be a number, not NaN")
        return cls(
            memory_limit=environ.get("LOWCODE_REPORT_MEMORY_LIMIT", "").strip() or defaults.memory_limit,
            threads=threads,
            timeout_seconds=timeout,
            chart_max_rows=chart_max_rows,
        )


__all__ = ["ReportSettings"]
