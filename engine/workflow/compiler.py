"""Check a process definition against its form and build the :class:`ProcessSpec`."""
from __future__ import annotations

from typing import Any, Callable, Mapping

from engine.errors import Issue
from engine.forms.compiler import field_exists
from engine.forms.spec import FormSpec
from engine.rules import compile_rule
from engine.workflow.spec import ActionSpec, Assignee, ProcessSpec, StateSpec, StateType, Transition


def compile_process(
    document: Mapping[str, Any], version: int, form_for: Callable[[str], FormSpec | None]
) -> tuple[ProcessSpec | None, list[Issue]]:
    form = form_for(document["form"])
    if form is None:
        return None, [Issue("/form", "definition.unknown_form", {"form": document["form"]})]
    states_doc: Mapping[str, Any] = document["states"]
    issues: list[Issue] = []
    if document["start"] not in states_doc:
        issues.append(Issue("/start", "definition.unknown_state", {"state": document["start"]}))

    def transitions(items: list[Any], pointer: str) -> tuple[Transition, ...]:
        built: list[Transition] = []
        for index, item in enumerate(items):
            item_pointer = f"{pointer}/{index}"
            if item["to"] not in states_doc:
                issues.append(Issue(f"{item_pointer}/to", "definition.unknown_state", {"state": item["to"]}))
            when = None
            if "when" in item:
                when, rule_issues = compile_rule(item["when"], f"{item_pointer}/when")
                issues.extend(rule_issues)
                if when is not None:
                    issues.extend(
                        Issue(use.pointer, "definition.unknown_field", {"field": use.name})
                        for use in when.variables
                        if not field_exists(form.schema, use.name)
                    )
            built.append(Transition(item["to"], when))
        if items and "when" in items[-1]:
            issues.append(Issue(f"{pointer}/{len(items) - 1}", "definition.missing_default"))
        return tuple(built)

    states: dict[str, StateSpec] = {}
    for name, body in states_doc.items():
        pointer = f"/states/{name}"
        state_type = StateType(body["type"])
        title = body.get("title", name)
        if state_type is StateType.END:
            states[name] = StateSpec(name, state_type, title, outcome=body["outcome"])
        elif state_type is StateType.AUTO:
            states[name] = StateSpec(name, state_type, title, transitions=transitions(body["transitions"], f"{pointer}/transitions"))
        else:
            raw_assignees = [body["assignee"]] if state_type is StateType.TASK else body["assignees"]
            assignees = []
            for index, raw in enumerate(raw_assignees):
                if "field" in raw and not field_exists(form.schema, raw["field"]):
                    where = f"{pointer}/assignee/field" if state_type is StateType.TASK else f"{pointer}/assignees/{index}/field"
                    issues.append(Issue(where, "definition.unknown_field", {"field": raw["field"]}))
                assignees.append(Assignee(role=raw.get("role"), field=raw.get("field")))
            actions = {
                action: ActionSpec(action, spec.get("title", action),
                                   transitions(spec["transitions"], f"{pointer}/actions/{action}/transitions"),
                                   spec.get("quorum", "one"))
                for action, spec in body["actions"].items()
            }
            states[name] = StateSpec(name, state_type, title, assignees=tuple(assignees), actions=actions)
    issues.extend(_unreachable(document["start"], states))
    if issues:
        return None, issues
    return ProcessSpec(document["key"], version, document["title"], document["form"], document["start"], states), []


def _unreachable(start: str, states: Mapping[str, StateSpec]) -> list[Issue]:
    if start not in states:
        return []
    seen = {start}
    frontier = [start]
    while frontier:
        state = states[frontier.pop()]
        targets = [t.to for t in state.transitions]
        for action in (state.actions or {}).values():
            targets += [t.to for t in action.transitions]
        for target in targets:
            if target in states and target not in seen:
                seen.add(target)
                frontier.append(target)
    return [Issue(f"/states/{name}", "definition.unreachable_state", {"state": name}) for name in states if name not in seen]
