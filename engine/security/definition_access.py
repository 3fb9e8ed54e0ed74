"""Who may upload which definition, and what an uploaded definition may refer to.

Uploading is a function grant (``definitions.upload``). Two kinds carry more power than a
form or a report and need a stronger grant, ``roles.manage``, on top of it:

- ``roles``: the policy itself; with upload alone a principal could grant itself anything;
- ``trigger``: its update writes fields of referenced records *as the system* (no field write
  grant, no scope, no process) and its start opens cases.

And a definition that reads data on the system's behalf may refer only to forms and fields its
uploader may read in full, so that it cannot be a way round a field permission: a profile's
aggregates (their form, reference, field, condition and date field), a tag's rule (the
profile's form's fields and the aggregates it reads), a trigger's condition and reference;
a trigger's update may set only fields the uploader may write; a form's reference fills (the
fields they copy), a process's rules (transitions, branches, assignee rules) and notifications
(recipient field, template placeholders). A form version that drops or narrows a
``"sensitive": true`` of the latest one needs ``roles.manage`` (:func:`check_unsealing`). Each other place is refused
422 ``field.not_readable`` (``field.write_denied`` for an update), as a report's fields are
(engine.security.report_access). The same reads decide which tags a reader sees
(:func:`tag_reads`: engine.insight.visibility).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from engine.errors import Issue, ValidationFailed
from engine.jsonpointer import escape
from engine.security.access import Access

STRONG_KINDS = {"roles": "roles.manage", "trigger": "roles.manage"}
"""Definition kinds whose upload needs a function grant beyond ``definitions.upload``."""

PROCESS_VAR = "_process"
AGG_VAR = "agg"

Place = tuple[str, str, str]
"""(JSON pointer in the definition, form key, field name)."""


def required_function(document: Any) -> str | None:
    """The extra function ``document``'s kind needs to be uploaded; None: upload alone."""
    if isinstance(document, dict) and isinstance(document.get("kind"), str):
        return STRONG_KINDS.get(document["kind"])
    return None


def _rule_fields(rule: Any, form: str, pointer: str) -> list[Place]:
    if rule is None:
        return []
    places = []
    for use in rule.variables:
        if not use.name:
            continue
        head = use.name.split(".", 1)[0]
        if head in (PROCESS_VAR, AGG_VAR):
            continue
        places.append((use.pointer or pointer, form, head))
    return places


def aggregate_reads(aggregate: Any, pointer: str = "") -> list[Place]:
    """What one profile aggregate reads of its related form."""
    places: list[Place] = [(f"{pointer}/via", aggregate.form, aggregate.via)]
    if aggregate.field is not None:
        places.append((f"{pointer}/field", aggregate.form, aggregate.field))
    places += _rule_fields(aggregate.where, aggregate.form, f"{pointer}/where")
    if aggregate.within_field is not None:
        places.append((f"{pointer}/within_days/field", aggregate.form, aggregate.within_field))
    return places


def profile_reads(profile: Any) -> list[Place]:
    places: list[Place] = []
    if profile.children is not None:
        places.append(("/children", profile.form, profile.children))
    for aggregate in profile.aggregates:
        places += aggregate_reads(aggregate, f"/aggregates/{escape(aggregate.name)}")
    return places


def tag_reads(tag: Any, profile: Any | None) -> list[Place]:
    """What a tag's rule reads: fields of its profile's form and every aggregate it names."""
    places = _rule_fields(tag.rule, tag.form, "/rule")
    named = {use.name.split(".", 2)[1] for use in tag.rule.variables
             if use.name and use.name.startswith(f"{AGG_VAR}.") and use.name.count(".") >= 1}
    for aggregate in (profile.aggregates if profile is not None else ()):
        if aggregate.name in named:
            places += [("/rule", form, field) for _pointer, form, field in aggregate_reads(aggregate)]
    return places


def trigger_reads(trigger: Any) -> list[Place]:
    places = _rule_fields(trigger.when, trigger.form, "/when")
    if trigger.update_ref is not None:
        places.append(("/update/ref", trigger.form, trigger.update_ref))
    return places


def form_reads(form: Any) -> list[Place]:
    """What a form's reference fills copy: each source field of the referenced form."""
    return [(f"/refs/{escape(ref)}/fill/{escape(target)}", form.refs[ref], source)
            for ref, fields in form.ref_fills.items() for target, source in fields.items()]


def unsealed(form: Any, previous: Any | None) -> list[tuple[str, ...]]:
    """The sensitive paths of ``previous`` (the form's latest stored version) that ``form``
    no longer seals, itself or by a sensitive object around it."""
    if previous is None:
        return []
    return [path for path in previous.sensitive if not any(path[:len(kept)] == kept for kept in form.sensitive)]


def check_unsealing(form: Any, previous: Any | None, access: Access) -> None:
    """403 ``access.denied`` (``roles.manage``): a restricted uploader without ``roles.manage``
    may not upload a form version that drops or narrows ``"sensitive": true`` of the latest
    version (a field's new values would be stored in plaintext), removing the field included."""
    from engine.errors import Forbidden

    if access.restricted and not access.may("roles.manage") and unsealed(form, previous):
        raise Forbidden("access.denied", params={"function": "roles.manage"})


def process_reads(process: Any) -> list[Place]:
    """What a process reads of its form on the system's behalf: every rule (transitions, branch
    conditions, assignee rules), a notification's recipient field and template placeholders."""
    import string

    from engine.workflow.compiler import RESERVED_ROOTS, TEMPLATE_NAMES

    form = process.form
    rules: list[Any] = []
    groups: list[tuple[str, Any]] = [("/notify", process.notify)]
    for name, state in process.states.items():
        rules += [transition.when for transition in state.transitions]
        for action in (state.actions or {}).values():
            rules += [transition.when for transition in action.transitions]
        rules += [assignee.rule for assignee in state.assignees]
        rules += [branch.when for branch in state.branches]
        groups.append((f"/states/{escape(name)}/notify", state.notify))
    places: list[Place] = []
    for rule in rules:
        for use in (rule.variables if rule is not None else ()):
            head = use.name.split(".", 1)[0] if use.name else ""
            if head and head not in RESERVED_ROOTS:
                places.append((use.pointer or "", form, head))
    for base, notifications in groups:
        for index, notification in enumerate(notifications):
            if notification.to.kind == "field" and notification.to.value:
                places.append((f"{base}/{index}/to/field", form, notification.to.value.split(".", 1)[0]))
            for language, text in notification.template.items():
                for _, name, _, _ in string.Formatter().parse(text):
                    if name and name not in TEMPLATE_NAMES:
                        places.append((f"{base}/{index}/template/{escape(language)}", form, name.split(".", 1)[0]))
    return places


def reads_all(access: Access, places: Iterable[Place]) -> bool:
    """Whether ``access`` reads every field of ``places`` in full."""
    if not access.restricted:
        return True
    for _pointer, form, name in places:
        view = access.form(form)
        if view is None or not view.reads(name):
            return False
    return True


def check_definition(kind: str, spec: Any, access: Access, profile_for: Callable[[str], Any]) -> None:
    """422 at each place of an uploaded profile, tag, trigger, form (its fills) or process (its
    rules and notifications) that ``access`` may not read (or, for a trigger's update, write)."""
    if not access.restricted or kind not in ("profile", "tag", "trigger", "form", "process"):
        return
    if kind == "form":
        reads = form_reads(spec)
    elif kind == "process":
        reads = process_reads(spec)
    elif kind == "profile":
        reads = profile_reads(spec)
    elif kind == "tag":
        reads = tag_reads(spec, profile_for(spec.profile))
    else:
        reads = trigger_reads(spec)
    issues = [Issue(pointer, "field.not_readable", {"field": name}) for pointer, form, name in _unique(reads)
              if not reads_all(access, [(pointer, form, name)])]
    if kind == "trigger" and spec.update_form is not None:
        view = access.form(spec.update_form)
        issues += [Issue(f"/update/set/{escape(name)}", "field.write_denied", {"field": name})
                   for name in spec.update_set if view is None or not view.writes(name)]
    if issues:
        raise ValidationFailed(issues)


def unreadable_as_such(document: Any, issues: list[Issue], access: Access, form_for: Callable[[str], Any],
                       process_for: Callable[[str], Any]) -> list[Issue]:
    """A report's issues as a restricted uploader is answered: ``definition.sensitive_field``
    on a field the uploader may not read in full becomes ``field.not_readable``, the answer
    for every other unreadable field (engine.security.report_access), so that which fields
    are sealed is not told to a caller who may not read them."""
    if not access.restricted or not isinstance(document, dict) or document.get("kind") != "report":
        return issues
    source = document.get("source") if isinstance(document.get("source"), dict) else {}
    form_key = source.get("form")
    if form_key is None and isinstance(source.get("process"), str):
        process = process_for(source["process"])
        form_key = getattr(process, "form", None)
    out = []
    for issue in issues:
        name = issue.params.get("field") if issue.params else None
        if issue.code == "definition.sensitive_field" and isinstance(name, str) and isinstance(form_key, str):
            owner, field = form_key, name
            if "." in name:
                via, _, field = name.partition(".")
                spec = form_for(form_key)
                owner = spec.refs.get(via) if spec is not None else None
            view = access.form(owner) if owner else None
            if view is None or not view.reads(field):
                issue = Issue(issue.path, "field.not_readable", {"field": name})
        out.append(issue)
    return out


def _unique(places: list[Place]) -> list[Place]:
    seen: set[tuple[str, str]] = set()
    out = []
    for place in places:
        if (place[1], place[2]) not in seen:
            seen.add((place[1], place[2]))
            out.append(place)
    return out


__all__ = ["STRONG_KINDS", "aggregate_reads", "check_definition", "check_unsealing", "form_reads", "process_reads",
           "profile_reads", "reads_all", "required_function", "tag_reads", "trigger_reads", "unreadable_as_such",
           "unsealed"]
