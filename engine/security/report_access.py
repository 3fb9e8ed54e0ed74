"""Field permissions on report results: a dimension or measure computed from a field the caller
may not read in full is left out of the result (and so of every export and chart), and a
query-time parameter or drill on such a field is refused (422 ``field.not_readable``), as a
filter on a record list is. Reading a report at all is a function grant (``reports``).

Report rows are aggregates over every record of the source, not over the caller's object
scope: grant a report only to roles that may see figures about all records.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from engine.errors import Issue, ValidationFailed
from engine.security.access import Access


def _readable(spec: Any, ref: Any, access: Access) -> bool:
    if ref is None:
        return True
    if getattr(ref, "target", None) is not None:
        form = ref.target
    elif spec.source_kind == "form":
        if str(ref.name).startswith("_"):
            return True  # a record metadata column (when it was created, ...)
        form = spec.source_form
    else:
        return True  # a column of the instance or task itself
    view = access.form(form)
    return view is not None and view.reads(ref.name)


def hidden_members(spec: Any, access: Access) -> set[str]:
    """Names of the report's dimensions and measures ``access`` may not see."""
    if not access.restricted:
        return set()
    hidden = {dimension.name for dimension in spec.dimensions if not _readable(spec, dimension.field, access)}
    for measure in spec.measures:
        refs = [measure.field]
        if measure.duration is not None:
            refs += [measure.duration.start, measure.duration.end]
        if measure.where is not None:
            refs.append(measure.where.field)
        if not all(_readable(spec, ref, access) for ref in refs):
            hidden.add(measure.name)
    for measure in spec.measures:  # ratios of hidden measures, in definition order
        if measure.numerator in hidden or measure.denominator in hidden:
            hidden.add(measure.name)
    return hidden


def check_parameters(spec: Any, params: Mapping[str, Any] | None, access: Access) -> None:
    """422 ``field.not_readable`` at each given parameter that filters on a field ``access``
    may not read in full, and at ``drill`` into a dimension it may not see."""
    if not access.restricted or not params:
        return
    issues = []
    conditions = [*spec.filters, *(measure.where for measure in spec.measures if measure.where is not None)]
    for name in params:
        if name == "drill":
            hidden = hidden_members(spec, access)
            raw = params[name]
            for value in raw if isinstance(raw, (list, tuple)) else [raw]:
                if str(value).split(":", 1)[0] in hidden:
                    issues.append(Issue("drill", "field.not_readable", {"field": str(value).split(":", 1)[0]}))
            continue
        if any(condition.param == name and not _readable(spec, condition.field, access) for condition in conditions):
            issues.append(Issue(name, "field.not_readable", {"field": name}))
    if issues:
        raise ValidationFailed(issues)


def check_definition(spec: Any, access: Access) -> None:
    """A report uploaded by ``access``'s principal may use only fields it may read in full (in
    dimensions, measures, their conditions and the filters): 422 ``field.not_readable`` at each
    other one, so that a report cannot be a way round a field permission."""
    if not access.restricted:
        return
    places: list[tuple[str, Any]] = [(f"/dimensions/{i}/field", d.field) for i, d in enumerate(spec.dimensions)]
    for index, measure in enumerate(spec.measures):
        places.append((f"/measures/{index}/field", measure.field))
        if measure.duration is not None:
            places += [(f"/measures/{index}/duration", measure.duration.start),
                       (f"/measures/{index}/duration", measure.duration.end)]
        if measure.where is not None:
            places.append((f"/measures/{index}/where", measure.where.field))
    places += [(f"/filters/{index}/field", condition.field) for index, condition in enumerate(spec.filters)]
    issues = [Issue(path, "field.not_readable", {"field": ref.name}) for path, ref in places
              if ref is not None and not _readable(spec, ref, access)]
    if issues:
        raise ValidationFailed(issues)


def without_dimensions(spec: Any, hidden: set[str]) -> Any:
    """``spec`` grouped without the ``hidden`` dimensions (and not sorted, drilled or compared
    by them): dropping their columns from the result alone would leave the rows split, and
    ordered, by values the caller may not see."""
    if not hidden or not (any(dimension.name in hidden for dimension in spec.dimensions)
                          or any(key.by in hidden for key in spec.sort)):
        return spec  # (a sort by a hidden measure would rank the rows by it)
    compare = spec.compare if spec.compare is None or spec.compare.dimension not in hidden else None
    return replace(spec, dimensions=tuple(dimension for dimension in spec.dimensions if dimension.name not in hidden),
                   sort=tuple(key for key in spec.sort if key.by not in hidden),
                   drill=tuple(name for name in spec.drill if name not in hidden), compare=compare)


def without_members(result: dict[str, Any], hidden: set[str]) -> dict[str, Any]:
    """``result`` without the columns of ``hidden`` members (and their period-over-period
    ``_previous``/``_change`` columns); ``meta.hidden`` names what was left out."""
    if not hidden:
        return result
    gone = hidden | {f"{name}{suffix}" for name in hidden for suffix in ("_previous", "_change")}
    keep = [index for index, column in enumerate(result["columns"]) if column["name"] not in gone]
    shown = {**result, "columns": [result["columns"][index] for index in keep],
             "rows": [[row[index] for index in keep] for row in result["rows"]]}
    shown["meta"] = {**result.get("meta", {}), "hidden": sorted(hidden)}
    return shown


__all__ = ["check_definition", "check_parameters", "hidden_members", "without_dimensions", "without_members"]
