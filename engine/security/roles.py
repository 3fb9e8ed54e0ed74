"""The compiled, immutable ``roles`` definition: what each role may do, which records it sees
and which fields it reads, sees masked or writes.

Where field permissions live: in the roles definition, per role and form, not in the form.
A form says what the data is (and is versioned with the records written under it); who may see
it is an organisation's policy that changes on its own timetable (a new role, a reorganised branch) and is
owned by other people (security, not the analysts who model forms). Keeping every grant of a
role in one document lets a reviewer read what a role can do in one place, lets the policy
change without a new form version, and lets uploading it need its own grant. Permissions name
a form by key and apply to every version of it. Whether a field is *sensitive*
(encrypted at rest) is a property of the data and is marked in the form's schema
(``"sensitive": true``, engine.security.crypto), not here: a role only decides who sees it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

from engine.errors import Issue

ALL = "*"
CREATED_BY = "_created_by"
"""A scope field naming the record's submitter (a column of the record, not of its data)."""
FUNCTIONS = ("definitions.upload", "roles.manage", "audit.read", "tokens.manage", "outbox.manage", "events.read")


@dataclass(frozen=True)
class Mask:
    """Four asterisks, then ``show_first`` characters and ``show_last`` characters in clear;
    the length of the value is never shown."""

    show_first: int = 0
    show_last: int = 0

    def apply(self, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            return "****"
        shown = self.show_first + self.show_last
        if shown == 0 or len(value) <= shown * 2:
            # too short to show parts of it without showing most of it
            return "****"
        head = value[: self.show_first]
        tail = value[len(value) - self.show_last:] if self.show_last else ""
        return f"{head}****{tail}"


@dataclass(frozen=True)
class ScopeCondition:
    """A record is in scope when ``field`` (of the record, or of the record reached through
    the reference fields ``via``) equals the principal's id or one of its attributes."""

    field: str
    equals: str
    """``id`` or ``attributes.NAME``."""
    via: tuple[tuple[str, str], ...] = ()
    """``(reference field, form it refers to)`` pairs, followed in order."""
    form: str = ""
    """The form whose record ``field`` belongs to (the last ``via`` target, or the scoped form)."""

    def wanted(self, principal: Any) -> str | None:
        """The value ``field`` must hold for ``principal``; None: nothing matches."""
        if self.equals == "id":
            return str(principal.id)
        value = (principal.attributes or {}).get(self.equals.removeprefix("attributes."))
        return None if value is None or value == "" else str(value)


@dataclass(frozen=True)
class FormGrant:
    form: str
    scope: tuple[ScopeCondition, ...] | None
    """None: every record of the form."""
    read: frozenset[str] | Literal["*"]
    write: frozenset[str] | Literal["*"]
    mask: Mapping[str, Mask]


@dataclass(frozen=True)
class RoleSpec:
    name: str
    title: Any
    functions: frozenset[str]
    submit: frozenset[str]
    """Form keys, or ``{"*"}``."""
    act: Mapping[str, frozenset[str]]
    """Process key (or ``*``) -> state names (or ``{"*"}``)."""
    reports: frozenset[str]
    forms: Mapping[str, FormGrant]


@dataclass(frozen=True, eq=False)
class RolesSpec:
    key: str
    version: int
    title: Any
    roles: Mapping[str, RoleSpec]


def compile_roles(document: Mapping[str, Any], version: int, form_for: Callable[[str], Any],
                  process_for: Callable[[str], Any]) -> tuple[RolesSpec | None, list[Issue]]:
    """Check a roles definition (already valid against its meta-schema) against the forms and
    processes it names, and build its spec. ``form_for``/``process_for`` return a compiled
    spec or None."""
    issues: list[Issue] = []

    def form_fields(form_key: str, path: str) -> set[str] | None:
        spec = form_for(form_key)
        if spec is None:
            issues.append(Issue(path, "definition.unknown_form", {"form": form_key}))
            return None
        return {column.name for column in spec.columns}

    def check_fields(names: Any, known: set[str], path: str) -> frozenset[str] | Literal["*"]:
        if names is None:
            return frozenset()
        if ALL in names:
            return ALL
        for index, name in enumerate(names):
            if name not in known:
                issues.append(Issue(f"{path}/{index}", "definition.unknown_field", {"field": name}))
        return frozenset(names)

    roles: dict[str, RoleSpec] = {}
    for name, role in document["roles"].items():
        base = f"/roles/{name}"
        forms: dict[str, FormGrant] = {}
        for form_key, grant in (role.get("forms") or {}).items():
            path = f"{base}/forms/{form_key}"
            known = form_fields(form_key, path)
            if known is None:
                continue
            scope = None
            if grant.get("scope") is not None:
                scope = tuple(c for index, item in enumerate(grant["scope"])
                              if (c := _condition(item, form_key, form_for, f"{path}/scope/{index}", issues)) is not None)
            read = check_fields(grant.get("read", [ALL]), known, f"{path}/read")
            write = check_fields(grant.get("write"), known, f"{path}/write")
            masks = {}
            for field_name, mask in (grant.get("mask") or {}).items():
                if field_name not in known:
                    issues.append(Issue(f"{path}/mask/{field_name}", "definition.unknown_field", {"field": field_name}))
                masks[field_name] = Mask(mask.get("show_first", 0), mask.get("show_last", 0))
            forms[form_key] = FormGrant(form_key, scope, read, write, masks)
        submit = frozenset(role.get("submit") or ())
        for index, form_key in enumerate(role.get("submit") or ()):
            if form_key != ALL and form_for(form_key) is None:
                issues.append(Issue(f"{base}/submit/{index}", "definition.unknown_form", {"form": form_key}))
        act: dict[str, frozenset[str]] = {}
        for process_key, states in (role.get("act") or {}).items():
            act[process_key] = frozenset(states)
            if process_key == ALL:
                continue
            process = process_for(process_key)
            if process is None:
                issues.append(Issue(f"{base}/act/{process_key}", "definition.unknown_process", {"process": process_key}))
                continue
            known_states = set(_state_names(process))
            for index, state in enumerate(states):
                if state != ALL and state not in known_states:
                    issues.append(Issue(f"{base}/act/{process_key}/{index}", "definition.unknown_state", {"state": state}))
        reports = frozenset(role.get("reports") or ())
        roles[name] = RoleSpec(name, role.get("title"), frozenset(role.get("may") or ()), submit, act, reports, forms)
    if issues:
        return None, issues
    return RolesSpec(document["key"], version, document.get("title"), roles), []


def _condition(item: Mapping[str, Any], form_key: str, form_for: Callable[[str], Any], path: str,
               issues: list[Issue]) -> ScopeCondition | None:
    via: list[tuple[str, str]] = []
    current = form_key
    for index, ref in enumerate(item.get("via") or ()):
        spec = form_for(current)
        target = spec.refs.get(ref) if spec is not None else None
        if target is None:
            issues.append(Issue(f"{path}/via/{index}", "definition.unknown_field", {"field": ref}))
            return None
        via.append((ref, target))
        current = target
    name = item["field"]
    if name != CREATED_BY:
        spec = form_for(current)
        if spec is None or spec.column(name) is None:
            issues.append(Issue(f"{path}/field", "definition.unknown_field", {"field": name}))
            return None
    return ScopeCondition(name, item["equals"].removeprefix("principal."), tuple(via), current)


def _state_names(process: Any) -> list[str]:
    states = getattr(process, "states", None)
    if isinstance(states, Mapping):
        return list(states)
    return [getattr(state, "name", str(state)) for state in states or ()]


__all__ = ["ALL", "CREATED_BY", "FUNCTIONS", "FormGrant", "Mask", "RoleSpec", "RolesSpec", "ScopeCondition",
           "compile_roles"]
