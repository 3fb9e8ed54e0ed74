"""Reference fills: fields of a new record copied from the record one of its references points
at (``refs.<field>.fill``), before the pipeline runs, so that rules, computed fields and the
process see them and the record keeps what they were when it was created."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import Issue
from engine.forms.spec import FormSpec

Lookup = Callable[[str, str], "Mapping[str, Any] | None"]
"""``(form key, record id) -> the referenced record's data`` (None: no such record)."""


def apply_fills(spec: FormSpec, data: Any, lookup: Lookup) -> Any:
    """``data`` with every fill of ``spec`` applied (anything that is not an object, or a form
    without fills, comes back as it is). A reference that names no record fills nothing: the
    reference check reports it."""
    if not spec.ref_fills or not isinstance(data, dict):
        return data
    filled = dict(data)
    for ref, fields in spec.ref_fills.items():
        target_id = data.get(ref)
        source = lookup(spec.refs[ref], target_id) if isinstance(target_id, str) else None
        for target, name in fields.items():
            filled.pop(target, None)
            if source is not None and source.get(name) is not None:
                filled[target] = source[name]
    return filled


def sensitive_fill_issues(spec: FormSpec, form_for: Callable[[str], FormSpec | None]) -> list[Issue]:
    """``definition.sensitive_fill`` at every fill that would copy a sensitive field of the
    referenced form into a field of ``spec`` that is not sensitive (it would be stored in
    plaintext). A sensitive target is sealed again when the record is stored."""
    issues = []
    for ref, fields in spec.ref_fills.items():
        source = spec if spec.refs[ref] == spec.key else form_for(spec.refs[ref])
        if source is None:
            continue
        for target, name in fields.items():
            if (name,) in source.sensitive and (target,) not in spec.sensitive:
                issues.append(Issue(f"/refs/{ref}/fill/{target}", "definition.sensitive_fill",
                                    {"field": target, "source": f"{source.key}.{name}"}))
    return issues


__all__ = ["Lookup", "apply_fills", "sensitive_fill_issues"]
