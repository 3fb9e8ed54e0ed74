"""Semantic checks and compilation of profiles, tags and triggers (the meta-schema has passed).

Every issue is collected with a pointer into the definition and raised once by the registry.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from engine.errors import Issue
from engine.forms.spec import FormSpec
from engine.insight.spec import AggregateSpec, ProfileSpec, TagSpec, TriggerSpec
from engine.jsonpointer import escape
from engine.rules import CompiledRule, compile_rule

FormFor = Callable[[str], FormSpec | None]
_NUMERIC = ("integer", "decimal", "number")
_ORDERED = (*_NUMERIC, "date", "datetime", "string")
PROCESS_VAR = "_process"
AGG_VAR = "agg"


def _check_vars(rule: CompiledRule, known: Callable[[str], bool]) -> list[Issue]:
    return [Issue(use.pointer, "definition.unknown_field", {"field": use.name})
            for use in rule.variables if use.name and not known(use.name)]


def _field_of(form: FormSpec) -> Callable[[str], bool]:
    return lambda name: form.column(name.split(".", 1)[0]) is not None


def compile_profile(document: Mapping[str, Any], version: int, form_for: FormFor) -> tuple[ProfileSpec | None, list[Issue]]:
    issues: list[Issue] = []
    form = form_for(document["form"])
    if form is None:
        return None, [Issue("/form", "definition.unknown_form", {"form": document["form"]})]
    children = document.get("children")
    if children is not None and form.refs.get(children) != form.key:
        issues.append(Issue("/children", "definition.unknown_ref", {"field": children}))
    aggregates: list[AggregateSpec] = []
    for name, entry in (document.get("aggregates") or {}).items():
        pointer = f"/aggregates/{escape(name)}"
        related = form_for(entry["form"])
        if related is None:
            issues.append(Issue(f"{pointer}/form", "definition.unknown_form", {"form": entry["form"]}))
            continue
        if related.refs.get(entry["via"]) != form.key:
            issues.append(Issue(f"{pointer}/via", "definition.unknown_ref", {"field": entry["via"]}))
        agg, field = entry["agg"], entry.get("field")
        if agg != "count":
            column = related.column(field) if field else None
            if column is None:
                issues.append(Issue(f"{pointer}/field", "definition.unknown_field", {"field": field}))
            elif column.type not in (_NUMERIC if agg in ("sum", "avg") else _ORDERED):
                issues.append(Issue(f"{pointer}/field", "definition.bad_field_type",
                                    {"field": field, "actual": column.type, "expected": "a number" if agg in ("sum", "avg") else "an ordered type"}))
        where = None
        if "where" in entry:
            where, rule_issues = compile_rule(entry["where"], f"{pointer}/where")
            issues += rule_issues
            if where is not None:
                known = _field_of(related)
                issues += _check_vars(where, lambda name: known(name) or name.split(".")[0] == PROCESS_VAR)
        within = entry.get("within_days")
        if within is not None:
            column = related.column(within["field"])
            if column is None or column.type not in ("date", "datetime"):
                issues.append(Issue(f"{pointer}/within_days/field", "definition.bad_field_type",
                                    {"field": within["field"], "actual": column.type if column else None, "expected": "date or datetime"}))
        aggregates.append(AggregateSpec(
            name=name, form=entry["form"], via=entry["via"], agg=agg, field=field if agg != "count" else None,
            where=where, within_field=within["field"] if within else None, within_days=within["days"] if within else None,
            include_children=bool(entry.get("include_children", True)), title=entry.get("title")))
    if issues:
        return None, issues
    return ProfileSpec(key=document["key"], version=version, title=document["title"], form=form.key,
                       children=children, aggregates=tuple(aggregates)), []


def compile_tag(document: Mapping[str, Any], version: int, form_for: FormFor,
                profile_for: Callable[[str], ProfileSpec | None]) -> tuple[TagSpec | None, list[Issue]]:
    profile = profile_for(document["profile"])
    if profile is None:
        return None, [Issue("/profile", "definition.unknown_profile", {"profile": document["profile"]})]
    form = form_for(profile.form)
    if form is None:
        return None, [Issue("/profile", "definition.unknown_form", {"form": profile.form})]
    rule, issues = compile_rule(document["rule"], "/rule")
    if rule is None:
        return None, issues
    names = {aggregate.name for aggregate in profile.aggregates}
    known = _field_of(form)

    def readable(name: str) -> bool:
        head, _, rest = name.partition(".")
        return (head == AGG_VAR and rest in names) or known(name)

    issues = _check_vars(rule, readable)
    if issues:
        return None, issues
    reads = any(use.name.split(".")[0] == AGG_VAR for use in rule.variables)
    return TagSpec(key=document["key"], version=version, title=document["title"], profile=profile.key,
                   form=profile.form, rule=rule, reads_aggregates=reads), []


def compile_trigger(document: Mapping[str, Any], version: int, form_for: FormFor,
                    process_for: Callable[[str], Any]) -> tuple[TriggerSpec | None, list[Issue]]:
    issues: list[Issue] = []
    on = document["on"]
    process_key = document.get("process")
    if on == "instance.completed":
        process = process_for(process_key)
        if process is None:
            return None, [Issue("/process", "definition.unknown_process", {"process": process_key})]
        form_key = process.form
    else:
        form_key = document["form"]
    form = form_for(form_key)
    if form is None:
        return None, [Issue("/form", "definition.unknown_form", {"form": form_key})]
    when = None
    if "when" in document:
        when, rule_issues = compile_rule(document["when"], "/when")
        issues += rule_issues
        if when is not None:
            known = _field_of(form)
            issues += _check_vars(when, lambda name: known(name) or (on == "instance.completed" and name.split(".")[0] == PROCESS_VAR))
    start = document.get("start")
    if start is not None:
        target = process_for(start)
        if target is None:
            issues.append(Issue("/start", "definition.unknown_process", {"process": start}))
        elif target.form != form_key:
            issues.append(Issue("/start", "definition.process_of_other_form", {"process": start}))
    update = document.get("update")
    update_form = None
    if update is not None:
        update_form = form.refs.get(update["ref"])
        target_form = form_for(update_form) if update_form else None
        if target_form is None:
            issues.append(Issue("/update/ref", "definition.unknown_ref", {"field": update["ref"]}))
        else:
            for name in update["set"]:
                if target_form.column(name) is None:
                    issues.append(Issue(f"/update/set/{escape(name)}", "definition.unknown_field", {"field": name}))
    if issues:
        return None, issues
    return TriggerSpec(key=document["key"], version=version, title=document["title"], on=on, form=form_key,
                       process=process_key, when=when, start=start,
                       update_ref=update["ref"] if update else None, update_form=update_form,
                       update_set=dict(update["set"]) if update else {}), []


__all__ = ["AGG_VAR", "PROCESS_VAR", "compile_profile", "compile_tag", "compile_trigger"]
