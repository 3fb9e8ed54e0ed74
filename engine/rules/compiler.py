"""Compile a JSONLogic rule once (after checking its size and the names it reads) and evaluate
it many times, failing closed: any error of the native evaluator becomes :class:`RuleError`."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterator

import datalogic_py

from engine.errors import Issue
from engine.jsoncodec import to_plain
from engine.jsonpointer import escape
from engine.rules.exact import ExactError, NotExact, evaluate_exact, uses_only_exact_operators
from engine.rules.limits import MAX_RULE_DEPTH, MAX_RULE_NODES, OPS_BUDGET

_ENGINE = datalogic_py.Engine(config={"ops_budget": OPS_BUDGET})

# Operators whose later arguments run with the current array item as data: `var` inside them
# names a property of the item, not a field of the record.
_SCOPED_OPERATORS = {"map", "filter", "reduce", "all", "some", "none"}

# The operators an analyst may use: classic JSONLogic plus a few string and date helpers. The
# native core has more (tensor builders, `now`, `throw`); those can allocate without bound, are
# not deterministic, or read data in ways the static variable check cannot follow.
ALLOWED_OPERATORS = frozenset(
    {
        "var", "missing", "missing_some", "if", "?:", "??", "==", "===", "!=", "!==", "!", "!!",
        "or", "and", ">", ">=", "<", "<=", "max", "min", "+", "-", "*", "/", "%", "abs", "ceil",
        "floor", "map", "filter", "reduce", "all", "none", "some", "merge", "in", "cat", "substr",
        "length", "lower", "upper", "trim", "starts_with", "ends_with", "date_diff", "datetime",
        "timestamp",
    }
)


class RuleError(Exception):
    """A rule could not be evaluated (bad data, budget exceeded, evaluator failure)."""


@dataclass(frozen=True)
class VariableUse:
    """A `var` found in a rule: the name it reads and where it stands."""

    name: str
    pointer: str


@dataclass(frozen=True, eq=False)
class CompiledRule:
    """A checked, compiled rule. Thread-safe; share freely."""

    source: Any
    variables: tuple[VariableUse, ...]
    _compiled: Any
    exact: bool = False
    """Built only from operators the decimal evaluator decides (see :mod:`engine.rules.exact`)."""

    def evaluate(self, data: dict[str, Any]) -> Any:
        """Evaluate against ``data``; numbers in the result come back as ``Decimal``/``int``.
        Arithmetic is exact (decimal) where the rule allows it; see :mod:`engine.rules.exact`."""
        if self.exact:
            try:
                return evaluate_exact(self.source, data)
            except NotExact:
                pass
            except ExactError as exc:
                raise RuleError(str(exc)) from None
        try:
            result = self._compiled.evaluate(to_plain(data))
        except BaseException as exc:  # noqa: BLE001 - the native core may raise anything; fail closed
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise RuleError(str(exc)) from None
        return _from_native(result)

    def holds(self, data: dict[str, Any]) -> bool:
        """Whether the rule is truthy for ``data`` (JSONLogic truthiness)."""
        return is_truthy(self.evaluate(data))


def is_truthy(value: Any) -> bool:
    """JSONLogic truthiness: 0, "", [], null and false are false; "0" is true."""
    if value is None or value is False:
        return False
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return value != 0
    if isinstance(value, (str, list, dict)):
        return len(value) > 0 if not isinstance(value, dict) else True
    return bool(value)


def compile_rule(rule: Any, pointer: str) -> tuple[CompiledRule | None, list[Issue]]:
    """Check and compile ``rule`` found at ``pointer`` in an uploaded document.

    Returns the compiled rule, or ``None`` and the issues (size limits, non-literal variable
    names, unknown operators). Variable names are *not* checked here: the caller knows which
    fields exist (see :func:`rule_variables`).
    """
    issues = _check_shape(rule, pointer)
    if issues:
        return None, issues
    variables, var_issues = _collect_variables(rule, pointer)
    if var_issues:
        return None, var_issues
    try:
        compiled = _ENGINE.compile(to_plain(rule))
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return None, [Issue(pointer, "definition.bad_rule", {"detail": _short(str(exc))})]
    return CompiledRule(rule, tuple(variables), compiled, uses_only_exact_operators(rule)), []


def rule_variables(rule: CompiledRule) -> tuple[VariableUse, ...]:
    return rule.variables


def _check_shape(rule: Any, pointer: str) -> list[Issue]:
    nodes = 0
    stack: list[tuple[Any, int]] = [(rule, 1)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > MAX_RULE_DEPTH or nodes > MAX_RULE_NODES:
            limit = MAX_RULE_DEPTH if depth > MAX_RULE_DEPTH else MAX_RULE_NODES
            return [Issue(pointer, "definition.rule_too_complex", {"limit": limit})]
        if isinstance(node, dict):
            if len(node) != 1 and depth > 0:
                if len(node) == 0:
                    continue
                return [Issue(pointer, "definition.bad_rule", {"detail": "an operation object must have exactly one key"})]
            stack.extend((value, depth + 1) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)
    return []


def _collect_variables(rule: Any, pointer: str) -> tuple[list[VariableUse], list[Issue]]:
    found: list[VariableUse] = []
    issues: list[Issue] = []
    for kind, name, where in _walk(rule, pointer, scoped=False):
        if kind == "var":
            found.append(VariableUse(name, where))
        else:
            issues.append(Issue(where, "definition.bad_rule", {"detail": name}))
    return found, issues


def _walk(node: Any, pointer: str, scoped: bool) -> Iterator[tuple[str, str, str]]:
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk(item, f"{pointer}/{index}", scoped)
        return
    if not isinstance(node, dict) or len(node) != 1:
        return
    ((operator, args),) = node.items()
    op_pointer = f"{pointer}/{escape(operator)}"
    if operator not in ALLOWED_OPERATORS:
        yield "error", f"unknown or disallowed operator {operator!r}", op_pointer
        return
    if operator in ("var", "missing", "missing_some"):
        if operator != "var":
            names = args[1] if operator == "missing_some" and isinstance(args, list) and len(args) == 2 else args
            for index, name in enumerate(names if isinstance(names, list) else [names]):
                if isinstance(name, str) and not scoped:
                    yield "var", name, f"{op_pointer}/{index}"
            return
        name = args[0] if isinstance(args, list) and args else args
        if isinstance(args, list) and len(args) > 1:
            yield from _walk(args[1], f"{op_pointer}/1", scoped)
        if isinstance(name, (dict, list)):
            yield "error", "a var name must be a literal string", op_pointer
        elif scoped:
            return
        elif isinstance(name, str) and name != "":
            yield "var", name, op_pointer
        elif isinstance(name, int) and not isinstance(name, bool):
            yield "var", str(name), op_pointer
        return
    arguments = args if isinstance(args, list) else [args]
    for index, item in enumerate(arguments):
        inner_scoped = scoped or (operator in _SCOPED_OPERATORS and index > 0)
        child_pointer = f"{op_pointer}/{index}" if isinstance(args, list) else op_pointer
        yield from _walk(item, child_pointer, inner_scoped)



def _short(text: str) -> str:
    return text if len(text) <= 200 else text[:197] + "..."


def _from_native(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, list):
        return [_from_native(item) for item in value]
    if isinstance(value, dict):
        return {key: _from_native(item) for key, item in value.items()}
    return value
