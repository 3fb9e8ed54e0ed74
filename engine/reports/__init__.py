"""Reports: check and compile report definitions, mirror records into DuckDB, run the queries."""

from __future__ import annotations

from engine.reports.compiler import check_report, compile_report
from engine.reports.mirror import ReportMirror
from engine.reports.query import run_report
from engine.reports.spec import ReportSpec

__all__ = ["ReportMirror", "ReportSpec", "check_report", "compile_report", "run_report"]
