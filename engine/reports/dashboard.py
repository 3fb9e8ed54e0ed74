"""Dashboards: an ordered list of reports that share query-time parameters.

A dashboard definition (``metadata/dashboard.schema.json``) names its shared ``parameters`` and
its ``reports`` in display order; each report gets the shared parameters it lists (all of them
by default). At upload every report must exist and declare every shared parameter it gets, with
the same type in every report. Running one runs each report with the parameters given, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import EngineError, Invalid, Issue, ValidationFailed
from engine.reports.spec import ReportSpec

RESERVED = frozenset({"lang", "language", "format"})


@dataclass(frozen=True, slots=True)
class DashboardItem:
    report: str
    title: Any = None
    """Shown instead of the report's own title when given."""
    parameters: tuple[str, ...] = ()
    """The shared parameters this report receives."""


@dataclass(frozen=True, slots=True)
class DashboardSpec:
    key: str
    version: int
    title: Any
    parameters: tuple[str, ...]
    items: tuple[DashboardItem, ...]
    description: Any = None


def compile_dashboard(
    document: Mapping[str, Any], version: int, report_for: Callable[[str], ReportSpec | None]
) -> tuple[DashboardSpec | None, list[Issue]]:
    """The frozen spec and every semantic issue (the meta-schema has already passed)."""
    issues: list[Issue] = []
    shared = [str(name) for name in document.get("parameters") or []]
    seen: set[str] = set()
    for index, name in enumerate(shared):
        if name in seen:
            issues.append(Issue(f"/parameters/{index}", "definition.duplicate_name", {"name": name}))
        seen.add(name)
    types: dict[str, tuple[str, str]] = {}
    """Parameter name -> (type, the first report that declares it)."""
    items: list[DashboardItem] = []
    for index, entry in enumerate(document.get("reports") or []):
        pointer = f"/reports/{index}"
        key = entry.get("report")
        spec = report_for(key) if isinstance(key, str) else None
        if spec is None:
            issues.append(Issue(f"{pointer}/report", "definition.unknown_report", {"report": key}))
            continue
        given = entry.get("parameters")
        names = [str(name) for name in given] if isinstance(given, list) else list(shared)
        for position, name in enumerate(names):
            where = f"{pointer}/parameters/{position}" if isinstance(given, list) else pointer
            if name not in seen:
                issues.append(Issue(where, "definition.unknown_parameter", {"name": name}))
                continue
            parameter = spec.parameter(name)
            if parameter is None:
                issues.append(
                    Issue(where, "definition.shared_parameter_missing", {"report": key, "name": name})
                )
                continue
            earlier = types.get(name)
            if earlier is None:
                types[name] = (parameter.type, key)
            elif earlier[0] != parameter.type:
                issues.append(
                    Issue(
                        where,
                        "definition.shared_parameter_mismatch",
                        {"name": name, "type": parameter.type, "report": key,
                         "expected": earlier[0]},
                    )
                )
        items.append(DashboardItem(key, entry.get("title"), tuple(names)))
    if issues:
        return None, issues
    return (
        DashboardSpec(
            key=document["key"],
            version=version,
            title=document.get("title"),
            parameters=tuple(shared),
            items=tuple(items),
            description=document.get("description"),
        ),
        [],
    )


def run_dashboard(
    spec: DashboardSpec,
    run: Callable[[str, Mapping[str, Any]], dict[str, Any]],
    params: Mapping[str, Any] | None = None,
    report_for: Callable[[str], ReportSpec | None] | None = None,
) -> dict[str, Any]:
    """``{"dashboard", "version", "title", "parameters", "reports": [{"report", "title",
    "result"}]}``: each report's result in order, run by ``run(report_key, params)``.

    A query name that is no shared parameter (``lang``/``language``/``format`` aside) raises
    :class:`ValidationFailed` (422, ``report.unknown_parameter``) before any report runs; a value
    that does not fit its type fails in the first report that reads it, with the same error as
    that report alone would give. A report that fails fails the whole dashboard with its error
    (its status and code); an error that is not about the request's values also names the
    report (``params.report``: ``report.overflow``, ``report.timeout``...)."""
    params = dict(params or {})
    unknown = [
        Issue(name, "report.unknown_parameter", {"report": spec.key, "name": name})
        for name in params
        if name not in RESERVED and name not in spec.parameters
    ]
    if unknown:
        raise ValidationFailed(unknown)
    reports = []
    for item in spec.items:
        given = {name: params[name] for name in item.parameters if name in params}
        report = report_for(item.report) if report_for is not None else None
        title = item.title if item.title is not None else (report.title if report else None)
        try:
            result = run(item.report, given)
        except EngineError as error:
            if not isinstance(error, Invalid) and not error.params.get("report"):
                error.params = {**error.params, "report": item.report}
            raise
        reports.append({"report": item.report, "title": title, "result": result})
    return {
        "dashboard": spec.key,
        "version": spec.version,
        "title": spec.title,
        "parameters": {name: params[name] for name in spec.parameters if name in params},
        "reports": reports,
    }


__all__ = ["DashboardItem", "DashboardSpec", "compile_dashboard", "run_dashboard"]
