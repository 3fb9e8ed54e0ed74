"""Rule backtest: replay a candidate process definition's rule gates over historical records.

A candidate (a process definition, optionally with a candidate form) is checked and compiled
exactly as an upload would be, but nothing is stored. Every rule-guarded transition list of the
process is a *gate*: the transitions of an ``auto`` state, of each action of a human state, the
branch conditions of a ``parallel`` state. For each historical record (its data run through the
form's pipeline, so computed fields are there, plus ``process.*`` as a new instance sees it):

- the **route**: from the start state through ``auto`` states, first transition that holds, to
  the first state that waits for people (or ends): e.g. ``triage → approved`` (decided by rule)
  or ``triage → review``;
- every gate's choice, as if its action were taken (``review/approve`` → ``second_opinion`` or
  ``approved``); for a parallel state, how often each branch would start.

The rules run in DuckDB where they compile to SQL and row by row where they do not
(:mod:`engine.rules.batch`); both give what the running process would decide. When the history
says what happened (an outcome column, or the route an instance actually took), the result holds
an agreement matrix and the agreement rate.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from engine.definitions.metaschema import check_against_metaschema
from engine.errors import DefinitionInvalid, Issue
from engine.forms.compiler import compile_form
from engine.forms.spec import FormSpec
from engine.jsoncodec import check_document
from engine.reports.mirror import connect_duckdb
from engine.rules.batch import ERROR, RuleOutcome, evaluate_rules
from engine.rules.compiler import CompiledRule
from engine.workflow.compiler import compile_process
from engine.workflow.runtime import MAX_AUTOMATIC_STEPS
from engine.workflow.spec import ProcessSpec, StateType, Transition

MAX_ROWS = 500_000
"""Most historical rows one backtest replays."""
BRANCHES = "branches"
"""The ``action`` of a parallel state's gate: its branch conditions, each counted on its own."""


@dataclass(frozen=True)
class HistoryRow:
    """One historical record as the rules see it, and what actually happened to it."""

    data: Mapping[str, Any]
    """The record's data (computed fields included)."""
    actual: str | None = None
    """The actual outcome or route, in the labels the comparison uses; None when unknown."""
    started_by: str | None = None


@dataclass(frozen=True)
class Gate:
    pointer: str
    state: str
    action: str | None
    transitions: tuple[Transition, ...]


def compile_candidate(document: Any, form_document: Any | None,
                      form_for: Callable[[str], FormSpec | None]) -> tuple[ProcessSpec, FormSpec]:
    """Check and compile a candidate process (and form) as an upload would; raises
    :class:`DefinitionInvalid` with every issue. Paths of a candidate form's issues start with
    ``/form``."""
    candidate_form: FormSpec | None = None
    if form_document is not None:
        issues = _document_issues(form_document, "form")
        if not issues:
            candidate_form, issues = compile_form(form_document, 0, lambda key: form_for(key) is not None
                                                  or key == form_document.get("key"))
        if issues:
            raise DefinitionInvalid([Issue(f"/form{issue.path}", issue.code, issue.params, issue.messages)
                                     for issue in issues])
    issues = _document_issues(document, "process")
    if issues:
        raise DefinitionInvalid(issues)
    if candidate_form is not None and document["form"] != candidate_form.key:
        raise DefinitionInvalid([Issue("/form", "definition.unknown_form", {"form": document["form"]})])

    def forms(key: str) -> FormSpec | None:
        return candidate_form if candidate_form is not None and key == candidate_form.key else form_for(key)

    spec, issues = compile_process(document, 0, forms)
    if spec is None or issues:
        raise DefinitionInvalid(issues)
    form = forms(spec.form)
    assert form is not None
    return spec, form


def _document_issues(document: Any, kind: str) -> list[Issue]:
    if not isinstance(document, dict):
        return [Issue("", "request.not_object")]
    check_document(document)
    if document.get("kind") != kind:
        return [Issue("/kind", "backtest.wrong_kind", {"kind": document.get("kind"), "expected": kind})]
    return check_against_metaschema(kind, document)


def gates(spec: ProcessSpec) -> list[Gate]:
    """Every transition list of ``spec`` that holds a rule, in definition order."""
    found: list[Gate] = []
    for name, state in spec.states.items():
        if state.transitions and any(t.when is not None for t in state.transitions):
            found.append(Gate(f"/states/{name}/transitions", name, None, state.transitions))
        for action in (state.actions or {}).values():
            if any(t.when is not None for t in action.transitions):
                found.append(Gate(f"/states/{name}/actions/{action.name}/transitions", name, action.name,
                                  action.transitions))
        if any(branch.when is not None for branch in state.branches):
            transitions = tuple(Transition(branch.start, branch.when, index) for index, branch in enumerate(state.branches))
            found.append(Gate(f"/states/{name}/branches", name, BRANCHES, transitions))
    return found


def run_backtest(spec: ProcessSpec, rows: Sequence[HistoryRow], *, predicts: Mapping[str, str] | None = None,
                 actual_source: str | None = None, rows_with_issues: int = 0,
                 began: float | None = None) -> dict[str, Any]:
    """Replay ``spec``'s gates over ``rows``; see the module docstring for the result's parts.
    ``predicts`` maps a route (its last state) to the actual label it predicts; by default an
    end state predicts its outcome and any other state its own name. ``began`` is the
    ``time.perf_counter()`` at which reading the history began (for ``timing_ms.total``)."""
    started = time.perf_counter()
    began = started if began is None else began
    contexts = [{**row.data, "process": {"send_backs": 0, "started_by": row.started_by}} for row in rows]
    all_gates = gates(spec)
    rules: dict[str, CompiledRule] = {}
    for gate in all_gates:
        for transition in gate.transitions:
            if transition.when is not None:
                rules[f"{gate.pointer}/{transition.index}/when"] = transition.when
    connection = connect_duckdb()
    try:
        outcomes = evaluate_rules(rules, contexts, connection=connection)
    finally:
        connection.close()
    evaluated = time.perf_counter()

    def holds(gate: Gate, transition: Transition, index: int) -> Any:
        if transition.when is None:
            return True
        return outcomes[f"{gate.pointer}/{transition.index}/when"].results[index]

    auto = {gate.state: gate for gate in all_gates if gate.action is None}
    routes: Counter[tuple[str, ...]] = Counter()
    gate_counts = {gate.pointer: Counter[str]() for gate in all_gates}
    taken: list[tuple[str, ...]] = []
    for index in range(len(rows)):
        for gate in all_gates:
            if gate.action == BRANCHES:  # every branch whose condition holds starts
                for transition in gate.transitions:
                    answer = holds(gate, transition, index)
                    if answer is True or answer == ERROR:
                        gate_counts[gate.pointer][transition.to if answer is True else ERROR] += 1
            else:
                gate_counts[gate.pointer][_choose(gate, index, holds)] += 1
        path = _route(spec, index, auto, holds)
        routes[path] += 1
        taken.append(path)
    result: dict[str, Any] = {
        "process": spec.key,
        "form": spec.form,
        "rows": len(rows),
        "rows_with_issues": rows_with_issues,
        "routes": [_route_view(spec, path, count, predicts) for path, count in routes.most_common()],
        "gates": [{"gate": gate.pointer, "state": gate.state, "action": gate.action,
                   "targets": dict(gate_counts[gate.pointer].most_common())} for gate in all_gates],
        "rules": [_rule_view(name, outcome) for name, outcome in outcomes.items()],
        "evaluation": {
            "sql_rows": sum(outcome.sql_rows for outcome in outcomes.values()),
            "row_rows": sum(outcome.row_rows for outcome in outcomes.values()),
        },
    }
    if any(row.actual is not None for row in rows):
        result["comparison"] = _compare(spec, taken, [row.actual for row in rows], predicts, actual_source)
    finished = time.perf_counter()
    result["timing_ms"] = {"read": _ms(started - began), "rules": _ms(evaluated - started), "total": _ms(finished - began)}
    return result


def _ms(seconds: float) -> Decimal:
    """Milliseconds to one decimal place, as a ``Decimal`` (responses carry no floats)."""
    return Decimal(round(seconds * 1000, 1)).quantize(Decimal("0.1"), ROUND_HALF_UP)


def _choose(gate: Gate, index: int, holds: Callable[[Gate, Transition, int], Any]) -> str:
    for transition in gate.transitions:
        answer = holds(gate, transition, index)
        if answer == ERROR:
            return ERROR
        if answer is True:
            return transition.to
    return ERROR  # no default: the compiler requires one, so this is never reached


def _route(spec: ProcessSpec, index: int, auto: Mapping[str, Gate],
           holds: Callable[[Gate, Transition, int], Any]) -> tuple[str, ...]:
    path = [spec.start]
    for _ in range(MAX_AUTOMATIC_STEPS):
        state = spec.states[path[-1]]
        if state.type is not StateType.AUTO:
            return tuple(path)
        gate = auto.get(state.name)
        target = _choose(gate, index, holds) if gate is not None else state.transitions[0].to
        if target == ERROR:
            return (*path, ERROR)
        path.append(target)
    return (*path, ERROR)


def _label(spec: ProcessSpec, path: tuple[str, ...], predicts: Mapping[str, str] | None) -> str:
    last = path[-1]
    if predicts is not None and last in predicts:
        return predicts[last]
    state = spec.states.get(last)
    if predicts is None and state is not None and state.type is StateType.END and state.outcome:
        return state.outcome
    return last


def _route_view(spec: ProcessSpec, path: tuple[str, ...], count: int,
                predicts: Mapping[str, str] | None) -> dict[str, Any]:
    state = spec.states.get(path[-1])
    return {"route": path[-1], "path": list(path), "count": count,
            "type": state.type.value if state is not None else ERROR,
            "outcome": state.outcome if state is not None else None,
            "predicts": _label(spec, path, predicts)}


def _rule_view(name: str, outcome: RuleOutcome) -> dict[str, Any]:
    return {"rule": name, "mode": outcome.mode, "sql_rows": outcome.sql_rows, "row_rows": outcome.row_rows,
            "holds": sum(1 for result in outcome.results if result is True),
            "errors": sum(1 for result in outcome.results if result == ERROR), "reason": outcome.reason}


def _compare(spec: ProcessSpec, taken: Sequence[tuple[str, ...]], actual: Sequence[str | None],
             predicts: Mapping[str, str] | None, source: str | None) -> dict[str, Any]:
    """Agreement of each row's predicted label with its actual one, and the matrix of routes
    (rows) by actual labels (columns)."""
    matrix: dict[str, Counter[str]] = {}
    compared = agreed = 0
    for path, truth in zip(taken, actual, strict=True):
        if truth is None:
            continue
        compared += 1
        agreed += _label(spec, path, predicts) == truth
        matrix.setdefault(path[-1], Counter())[truth] += 1
    rate = (Decimal(agreed * 100) / Decimal(compared)).quantize(Decimal("0.01"), ROUND_HALF_UP) if compared else None
    return {"actual": source, "compared": compared, "agreed": agreed, "agreement_pct": rate,
            "unknown": len(actual) - compared,
            "matrix": {route: dict(sorted(counts.items())) for route, counts in sorted(matrix.items())}}
