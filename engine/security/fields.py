"""Field-level permissions applied to data going out and changes coming in.

Every function takes the caller's :class:`~engine.security.access.Access` (``Engine.access(principal)``;
:data:`~engine.security.access.UNRESTRICTED` for the engine itself or when no roles definition is
loaded, which lets everything through unchanged) and a form (its key, or its compiled spec).

- :func:`readable_view` -- a record's data as the caller may see it: unreadable fields dropped,
  masked ones masked (their mask is declared per role: ``****`` and the last N characters).
- :func:`readable_fields` -- the top-level fields shown in full / masked.
- :func:`check_writable` -- refuse a submission or patch that sets a field the caller may not
  write (403 ``field.write_denied``, one issue per field, at its pointer).
- :func:`check_filterable` -- refuse filtering, sorting or grouping on a field the caller may
  not read in full (422 ``field.not_readable``). A masked field cannot be filtered either (that
  would be an oracle for its value). For a restricted caller an unknown field is answered the
  same way, so that the answer does not tell which fields exist.
- :func:`event_view` -- an event or webhook payload as a recipient may see it.
- :func:`redact_issues` -- validation issues that do not echo values the caller may not read.
- :func:`decision_view` -- the field values a process routing decision read, in an event's detail.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from engine.errors import Forbidden, Issue, ValidationFailed
from engine.jsonpointer import pointer
from engine.security.access import Access, FormAccess


class FieldWriteDenied(Forbidden):
    """403 with one ``field.write_denied`` issue per field the caller may not write."""

    def __init__(self, paths: list[str]) -> None:
        self._paths = paths
        super().__init__("field.write_denied", path=paths[0], params={"field": paths[0].lstrip("/")})

    @property
    def issues(self) -> list[Issue]:
        return [Issue(path, "field.write_denied", {"field": path.lstrip("/")}) for path in self._paths]


def _key(form: Any) -> str:
    return form if isinstance(form, str) else str(form.key)


def _view(form: Any, access: Access) -> FormAccess | None:
    return access.form(_key(form))


def readable_view(form: Any, data: Mapping[str, Any], access: Access) -> dict[str, Any]:
    """``data`` (a record's top-level fields) as ``access`` may see it. A caller without any
    grant on the form sees nothing (an empty object)."""
    view = _view(form, access)
    if view is None:
        return {}
    if view.open:
        return dict(data)
    shown: dict[str, Any] = {}
    for name, value in data.items():
        if view.reads(name):
            shown[name] = value
        else:
            mask = view.mask_of(name)
            if mask is not None:
                shown[name] = mask.apply(value)
    return shown


def readable_fields(form: Any, access: Access) -> dict[str, str]:
    """Every top-level field of ``form`` (a compiled spec) the caller sees: name -> ``"full"``
    or ``"masked"``, in the form's order."""
    view = _view(form, access)
    if view is None:
        return {}
    result: dict[str, str] = {}
    for column in form.columns:
        if view.reads(column.name):
            result[column.name] = "full"
        elif view.mask_of(column.name) is not None:
            result[column.name] = "masked"
    return result


def check_writable(form: Any, changes: Mapping[str, Any], access: Access) -> None:
    """Raise :class:`FieldWriteDenied` (403) naming every top-level member of ``changes`` the
    caller may not write. A field the caller cannot see is refused the same way as one it
    can see but not write (the answer names only what the caller sent). A member the form's
    schema does not allow at all (public to every submitter) is left to validation, so that it
    is answered 422 ``record.additional_properties`` for every caller, as for one who may write."""
    changes = {name: value for name, value in changes.items() if not _rejected_by_schema(form, name)}
    view = _view(form, access)
    if view is None:
        if changes:
            raise FieldWriteDenied(sorted(pointer([name]) for name in changes))
        return
    if view.open:
        return
    denied = sorted(pointer([name]) for name in changes if not view.writes(name))
    if denied:
        raise FieldWriteDenied(denied)


def _rejected_by_schema(form: Any, name: str) -> bool:
    """Whether the form's schema refuses a top-level member ``name`` as an additional property."""
    schema = getattr(form, "schema", None)
    if not isinstance(schema, Mapping) or schema.get("additionalProperties") is not False or schema.get("patternProperties"):
        return False
    parts: list[Any] = [schema, schema.get("then"), schema.get("else")]
    for keyword in ("allOf", "anyOf", "oneOf"):
        parts += schema.get(keyword) or []
    return not any(isinstance(part, Mapping) and isinstance(part.get("properties"), Mapping) and name in part["properties"]
                   for part in parts)


def check_filterable(form: Any, names: Iterable[str], access: Access, *, known: Iterable[str] = ()) -> None:
    """Raise :class:`ValidationFailed` (422 ``field.not_readable`` at ``/name``) for every name
    the caller may not read in full. ``known`` are the names that exist: for an unrestricted
    caller an unknown one is left to the caller's own check (``definition.unknown_field``); for
    a restricted caller it gets the same answer as an unreadable one."""
    view = _view(form, access)
    if view is not None and view.open:
        return
    existing = set(known)
    issues = [Issue(pointer([name]), "field.not_readable", {"field": name})
              for name in names if view is None or not view.reads(name) or (existing and name not in existing)]
    if issues:
        raise ValidationFailed(issues)


def event_view(form: Any, payload: Mapping[str, Any], access: Access) -> dict[str, Any]:
    """An event or webhook payload as a recipient with ``access`` may see it: a ``data`` member
    (record fields) passes through :func:`readable_view`, a ``fields`` member (names of changed
    fields) keeps only the names the recipient sees."""
    result = dict(payload)
    view = _view(form, access)
    if isinstance(result.get("data"), Mapping):
        result["data"] = readable_view(form, result["data"], access)
    if isinstance(result.get("fields"), list):
        result["fields"] = [name for name in result["fields"] if view is not None and view.sees(str(name))]
    return result


def decision_view(form: Any, detail: Any, access: Access) -> Any:
    """An instance event's ``detail`` as ``access`` may see it: the ``inputs`` a routing
    decision read (record field values, by name) pass through :func:`readable_view`; anything
    else is left as it is."""
    if not isinstance(detail, Mapping) or not isinstance(detail.get("inputs"), Mapping):
        return detail
    view = _view(form, access)
    if view is not None and view.open:
        return detail
    return {**detail, "inputs": readable_view(form, detail["inputs"], access)}


_STRUCTURAL = frozenset({"field", "form", "limit", "scale", "digits", "keyword", "format", "expected", "allowed",
                         "process", "minimum", "maximum", "min", "max"})
"""Issue params that describe the rule broken, not the value; the others (``detail``,
``reason``, ...) may quote the value and are dropped for a field the caller may not read."""


def redact_issues(form: Any, issues: Iterable[Issue], access: Access) -> list[Issue]:
    """``issues`` without the params that may quote values on every issue about a field the
    caller may not read in full; the code, the path and the rule's own message stay."""
    view = _view(form, access)
    if view is not None and view.open:
        return list(issues)
    result = []
    for issue in issues:
        top = issue.path.lstrip("/").split("/", 1)[0].replace("~1", "/").replace("~0", "~")
        if top and (view is None or not view.reads(top)):
            result.append(Issue(issue.path, issue.code, {k: v for k, v in issue.params.items() if k in _STRUCTURAL},
                                issue.messages))
        else:
            result.append(issue)
    return result


__all__ = ["FieldWriteDenied", "check_filterable", "check_writable", "decision_view", "event_view", "readable_fields",
           "readable_view", "redact_issues"]
