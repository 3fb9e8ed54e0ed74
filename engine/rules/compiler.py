"""Compile a JSONLogic rule once (after checking its size and the names it reads) and evaluate
it many times, failing closed: any error of the native evaluator becomes :class:`RuleError`."""
from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import datalogic_py

from engine.errors import Issue
from engine.jsoncodec import to_plain
from engine.jsonpointer import escape
from engine.rules.exact import ExactError, NotExact, evaluate_exact, uses_only_exact_operators
from engine.rules.limits import MAX_RULE_DEPTH, MAX_RULE_NODES, OPS_BUDGET

# A division by zero fails (the core's default answers a float one with the largest double).
_ENGINE = datalogic_py.Engine(config={"ops_budget": OPS_BUDGET, "division_by_zero": "throw_error"})

# Operators whose second argument runs with the current array item as data: `var` inside it
# names a property of the item, not a field of the record.
_SCOPED_OPERATORS = {"map", "filter", "reduce", "all", "some", "none"}

# The operators an analyst may use: classic JSONLogic plus a few string and date helpers. The
# native core has more (tensor builders, `now`, `throw`); those can allocate without bound, are
# not deterministic, or read data in ways the static variable check cannot follow. `val` and
# `exists` (the newer path accessors) are allowed with literal paths only, and without scope jumps
# (see `_walk`); `throw`/`try` stay out: a rule either holds, or fails closed as RuleError.
ALLOWED_OPERATORS = frozenset(
    {
        "var", "val", "exists", "missing", "missing_some", "if", "?:", "??", "==", "===", "!=",
        "!==", "!", "!!",
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
            result = self._compiled.evaluate(_native_json(data))
        except BaseException as exc:  # noqa: BLE001 - the native core may raise anything; fail closed
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise RuleError(str(exc)) from None
        return _from_native(result)

    def holds(self, data: dict[str, Any]) -> bool:
        """Whether the rule is truthy for ``data`` (JSONLogic truthiness)."""
        return is_truthy(self.evaluate(data))


def is_truthy(value: Any) -> bool:
    """JSONLogic truthiness: 0, "", [], {}, null and false are false; "0" is true.

    The empty object is falsy as in the native evaluator (and json-logic-engine); classic
    json-logic-js calls every object truthy. One rule must not mean two things depending on
    which evaluator runs it, so this, the decimal evaluator and the native one agree."""
    if value is None or value is False:
        return False
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return value != 0
    if isinstance(value, (str, list, dict)):
        return len(value) > 0
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
        compiled = _ENGINE.compile(_native_json(_normalise(rule)))
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
    if operator in ("missing", "missing_some"):
        yield from _walk_missing(operator, args, op_pointer, scoped)
        return
    if operator in ("val", "exists"):
        yield from _walk_path(operator, args, op_pointer, scoped)
        return
    if operator == "var":
        # {"var": []} and {"var": ""} (and null) read the whole data: the record, or the item
        # inside map/filter/...; that names no field.
        name = (args[0] if args else "") if isinstance(args, list) else args
        name_pointer = f"{op_pointer}/0" if isinstance(args, list) else op_pointer
        if isinstance(args, list) and len(args) > 1:
            yield from _walk(args[1], f"{op_pointer}/1", scoped)
        if isinstance(name, (dict, list)):
            # A computed name is allowed only when every name it can yield is a literal in the
            # rule ({"var": {"if": [cond, "a.b", "a.c"]}}): each of them is checked like a
            # literal name. Anything else (cat, arithmetic, ...) could read any field.
            choices = _name_choices(name)
            if choices is None:
                yield "error", "a var name must be a literal string, or an if/?: choosing between literal strings", op_pointer
                return
            yield from _walk_conditions(name, name_pointer, scoped)
            names = choices
        else:
            names = [name]
        if scoped:
            return
        for each in names:
            if isinstance(each, str) and each != "":
                yield "var", each, op_pointer
            elif isinstance(each, (int, Decimal)) and not isinstance(each, bool):
                yield "var", str(each), op_pointer
        return
    arguments = args if isinstance(args, list) else [args]
    for index, item in enumerate(arguments):
        # Only the second argument runs per item; reduce's initial value (the third) reads the
        # record like the array expression (the first) does.
        inner_scoped = scoped or (operator in _SCOPED_OPERATORS and index == 1)
        child_pointer = f"{op_pointer}/{index}" if isinstance(args, list) else op_pointer
        yield from _walk(item, child_pointer, inner_scoped)


def _branches(args: list[Any]) -> tuple[list[int], list[int]]:
    """Indices of the conditions and of the results of an if/?: argument list."""
    conditions = list(range(0, len(args) - 1, 2))
    results = list(range(1, len(args), 2)) + ([len(args) - 1] if len(args) % 2 == 1 else [])
    return conditions, results


def _name_choices(node: Any) -> list[Any] | None:
    """The literal names an if/?: over literal names can yield, or None."""
    if isinstance(node, str) or (isinstance(node, (int, Decimal)) and not isinstance(node, bool)):
        return [node]
    if not isinstance(node, dict) or len(node) != 1:
        return None
    ((operator, args),) = node.items()
    if operator not in ("if", "?:") or not isinstance(args, list) or len(args) % 2 == 0:
        return None  # without an else branch the name could be null: the whole data
    names: list[Any] = []
    for index in _branches(args)[1]:
        choices = _name_choices(args[index])
        if choices is None:
            return None
        names += choices
    return names


def _walk_conditions(node: Any, pointer: str, scoped: bool) -> Iterator[tuple[str, str, str]]:
    """The conditions of a computed var name (see :func:`_name_choices`) read data too."""
    if not isinstance(node, dict):
        return
    ((operator, args),) = node.items()
    conditions, results = _branches(args)
    for index in conditions:
        yield from _walk(args[index], f"{pointer}/{escape(operator)}/{index}", scoped)
    for index in results:
        yield from _walk_conditions(args[index], f"{pointer}/{escape(operator)}/{index}", scoped)


def _walk_missing(operator: str, args: Any, op_pointer: str, scoped: bool) -> Iterator[tuple[str, str, str]]:
    """`missing` / `missing_some` only test whether names are present. Literal names are
    listed like `var`s; a computed list of names (`{"missing": {"merge": [...]}}`, classic
    JSONLogic) is allowed, and the `var`s it reads are walked, but its names are not checked."""
    names: Any = args
    names_pointer = op_pointer
    if operator == "missing_some" and isinstance(args, list):
        if args:
            yield from _walk(args[0], f"{op_pointer}/0", scoped)
        names = args[1] if len(args) > 1 else []
        names_pointer = f"{op_pointer}/1"
    if isinstance(names, dict):
        yield from _walk(names, names_pointer, scoped)
        return
    listed = isinstance(names, list)
    for index, name in enumerate(names if listed else [names]):
        where = f"{names_pointer}/{index}" if listed else names_pointer
        if isinstance(name, (dict, list)):
            yield from _walk(name, where, scoped)
        elif isinstance(name, str) and name != "" and not scoped:
            yield "var", name, where


def _walk_path(operator: str, args: Any, op_pointer: str, scoped: bool) -> Iterator[tuple[str, str, str]]:
    """`val` / `exists` take a path as a list of keys (`{"val": ["owner", "name"]}`), where a
    key is taken literally (`"a.b"` is one key, unlike in `var`). Allowed with literal keys
    only; keys holding a dot and scope jumps (`{"val": [[2], "x"]}`, which would let a rule
    inside `map` read record fields the static check cannot see) are refused."""
    keys = args if isinstance(args, list) else [args]
    if keys == [""] or keys == [None]:
        keys = []
    for key in keys:
        if isinstance(key, list):
            yield "error", f"{operator}: scope jumps ([n]) are not supported", op_pointer
            return
        if isinstance(key, bool) or not isinstance(key, (str, int, Decimal)):
            yield "error", f"{operator}: a path must be a list of literal keys", op_pointer
            return
        if isinstance(key, Decimal) and key != key.to_integral_value():
            yield "error", f"{operator}: an array index must be an integer", op_pointer
            return
        if isinstance(key, str) and ("." in key or key == ""):
            yield "error", f"{operator}: a key may not be empty or contain '.' (use var for dotted paths)", op_pointer
            return
    if keys and not scoped:
        yield "var", ".".join(str(key) for key in keys), op_pointer


def _normalise(rule: Any) -> Any:
    """`{"and": []}` and `{"or": []}` are `false` (the core answers null; both are falsy, but a
    computed field must not turn into "absent")."""
    if isinstance(rule, list):
        return [_normalise(item) for item in rule]
    if isinstance(rule, dict) and len(rule) == 1:
        ((operator, args),) = rule.items()
        if operator in ("and", "or") and args == []:
            return False
        return {operator: _normalise(args)}
    return rule


def _native_json(value: Any) -> Any:
    """The value as the native evaluator takes it. It reads a top-level ``str`` as JSON *text*,
    so a string literal (a rule ``"apple"``, or data ``"apple"``) is handed over encoded: a rule
    that is the string ``'{"now": []}'`` must stay a string, not become an operator that no
    static check has seen."""
    plain = _plain(value)
    return json.dumps(plain) if isinstance(plain, str) else plain


def _plain(value: Any) -> Any:
    # Like engine.jsoncodec.to_plain, and integers past 64 bits become floats (as in
    # JavaScript): the native core refuses them, and one such field anywhere in a record would
    # make every rule over that record fail.
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, Decimal) or (isinstance(value, int) and not isinstance(value, bool)):
        if isinstance(value, int) and -_I64 <= value < _I64:
            return value
        return to_plain(value) if isinstance(value, Decimal) else float(value)
    return value


_I64 = 2**63


def _short(text: str) -> str:
    return text if len(text) <= 200 else text[:197] + "..."


def _from_native(value: Any) -> Any:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RuleError("arithmetic overflow")
        return Decimal(repr(value))
    if isinstance(value, list):
        return [_from_native(item) for item in value]
    if isinstance(value, dict):
        return {key: _from_native(item) for key, item in value.items()}
    return value
