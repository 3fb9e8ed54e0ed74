"""Reference fills: fields of a new record copied from the record one of its references points
at (``refs.<field>.fill``), before the pipeline runs, so that rules, computed fields and the
process see them and the record keeps what they were when it was created."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

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


__all__ = ["Lookup", "apply_fills"]
