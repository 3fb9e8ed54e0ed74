"""What one principal may do and see, resolved once from the loaded roles definitions.

Without any roles definition, and for the engine itself (:data:`SYSTEM`), access is
:data:`UNRESTRICTED` (the behaviour before roles existed). Once one is loaded, a caller may do
only what one of its roles grants: no role of the policy, no access.

A principal holding several roles gets the union: a function any role grants, a record any
role's scope admits, a field in full if any role reads it in full, masked if none reads it in
full but one masks it. The field view is per form, not per record: a principal whose two
roles see different records with different fields gets the more generous view on every
record either admits, unless the caller narrows the view per record
(:func:`engine.security.scope.record_views`, which record reads use).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping

from engine.security.principal import SYSTEM, Principal
from engine.security.roles import ALL, FormGrant, Mask, RolesSpec, ScopeCondition


@dataclass(frozen=True)
class FormAccess:
    """A principal's view of one form: the union of its roles' grants on it."""

    form: str
    scope: tuple[ScopeCondition, ...] | None
    """None: every record; otherwise records matching any condition (empty: none)."""
    grants: tuple[FormGrant, ...]

    def reads(self, name: str) -> bool:
        """Whether ``name`` is shown in full."""
        return any((grant.read == ALL or name in grant.read) and name not in grant.mask for grant in self.grants)

    def mask_of(self, name: str) -> Mask | None:
        """How ``name`` is shown when it is shown only masked; None otherwise."""
        if self.reads(name):
            return None
        return next((grant.mask[name] for grant in self.grants if name in grant.mask), None)

    def sees(self, name: str) -> bool:
        """Whether ``name`` is shown at all (in full or masked)."""
        return self.reads(name) or self.mask_of(name) is not None

    def writes(self, name: str) -> bool:
        return any(grant.write == ALL or name in grant.write for grant in self.grants)

    @property
    def open(self) -> bool:
        """Every record, every field in full, every field writable."""
        return self.scope is None and any(
            grant.read == ALL and not grant.mask and grant.write == ALL for grant in self.grants)


OPEN_FORM = FormAccess("", None, (FormGrant("", None, ALL, ALL, {}),))


@dataclass(frozen=True)
class Access:
    """The resolved permissions of one principal (``restricted`` False: everything)."""

    principal: Principal
    restricted: bool
    functions: frozenset[str] = frozenset()
    submit: frozenset[str] = frozenset()
    act: Mapping[str, frozenset[str]] = field(default_factory=dict)
    reports: frozenset[str] = frozenset()
    forms: Mapping[str, FormAccess] = field(default_factory=dict)

    def may(self, function: str) -> bool:
        """A function outside forms: ``definitions.upload``, ``audit.read``, ``tokens.manage``,
        ``outbox.manage``."""
        return not self.restricted or function in self.functions

    def may_submit(self, form_key: str) -> bool:
        return not self.restricted or ALL in self.submit or form_key in self.submit

    def may_act(self, process_key: str, state: str) -> bool:
        if not self.restricted:
            return True
        for key in (process_key, ALL):
            states = self.act.get(key, frozenset())
            if ALL in states or state in states:
                return True
        return False

    def may_read_report(self, report_key: str) -> bool:
        return not self.restricted or ALL in self.reports or report_key in self.reports

    def form(self, form_key: str) -> FormAccess | None:
        """The principal's view of ``form_key``; None: no record of it is visible."""
        if not self.restricted:
            return OPEN_FORM
        return self.forms.get(form_key)

    def narrowed(self, form_key: str, grants: tuple[FormGrant, ...]) -> Access:
        """This access with only ``grants`` on ``form_key`` (those whose scope admits one
        record: see :func:`engine.security.scope.record_views`)."""
        view = self.forms.get(form_key)
        if not self.restricted or view is None:
            return self
        return replace(self, forms={**self.forms, form_key: FormAccess(form_key, view.scope, grants)})


def unrestricted(principal: Principal = SYSTEM) -> Access:
    return Access(principal, restricted=False)


UNRESTRICTED = unrestricted()


def resolve(policies: Iterable[RolesSpec], principal: Principal) -> Access:
    """``principal``'s access under ``policies`` (every loaded roles definition)."""
    policies = list(policies)
    if principal is SYSTEM or not policies:
        return Access(principal, restricted=False)
    roles = [policy.roles[name] for policy in policies for name in sorted(principal.roles) if name in policy.roles]
    functions: set[str] = set()
    submit: set[str] = set()
    act: dict[str, frozenset[str]] = {}
    reports: set[str] = set()
    grants: dict[str, list[FormGrant]] = {}
    for role in roles:
        functions |= role.functions
        submit |= role.submit
        reports |= role.reports
        for process_key, states in role.act.items():
            act[process_key] = act.get(process_key, frozenset()) | states
        for form_key, grant in role.forms.items():
            grants.setdefault(form_key, []).append(grant)
    forms = {form_key: _merge(form_key, items) for form_key, items in grants.items()}
    return Access(principal, True, frozenset(functions), frozenset(submit), act, frozenset(reports), forms)


def _merge(form_key: str, grants: list[FormGrant]) -> FormAccess:
    scope: tuple[ScopeCondition, ...] | None = ()
    for grant in grants:
        if grant.scope is None or scope is None:
            scope = None
        else:
            scope = (*scope, *grant.scope)
    return FormAccess(form_key, scope, tuple(grants))


__all__ = ["Access", "FormAccess", "OPEN_FORM", "UNRESTRICTED", "resolve", "unrestricted"]
