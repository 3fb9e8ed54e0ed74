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
from engine.rules.exact import (
    Evaluator,
    ExactError,
    NotExact,
    compile_exact,
    compile_iterating,
    uses_only_exact_operators,
)
from engine.rules.limits import MAX_RULE_DEPTH, MAX_RULE_NODES, OPS_BUDGET

# A division by zero fails (the core's default answers a float one with the largest double).
_ENGINE = datalogic_py.Engine(config={"ops_budget": OPS_BUDGET, "division_by_zero": "throw_error"})

# Operators whose second argument runs with the current array item as data: `var` inside it
# names a property of the item, not a field of the record.
_SCOPED_OPERATORS = {"map", "filter", "reduce", "all", "some", "none"}

# The operators an analyst may use: classic JSONLogic plus a few string and date helpers. The
# native core has more (tensor builders, `now`, `try`, `preserve`); those can allocate without
# bound, are not deterministic, catch errors, or read data in ways the static variable check
# cannot follow. `val` and `exists` (the newer path accessors) are allowed with literal paths,
# `val` with scope jumps that the check resolves (see `_walk_path`). `throw` (with a literal error
# type) only makes the evaluation fail closed, as RuleError; `try` stays out, so no rule can turn
# an error (a division by zero, a thrown error) into a value.
ALLOWED_OPERATORS = frozenset(
    {
        "var", "val", "exists", "missing", "missing_some", "if", "?:", "??", "==", "===", "!=",
        "!==", "!", "!!", "throw",
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
    """Built only from operators the decimal evaluator decides (see :mod:`engine.rules.exact`);
    the SQL compiler (:mod:`engine.rules.to_sql`) takes these as decimal rules."""
    _exact: Evaluator | None = None
    """The decimal evaluator's closures for ``source`` (when ``exact``)."""
    _reads: frozenset[str] | None = None
    """The top-level names the rule can read (see :func:`_top_level_reads`); None: it may read
    the whole data, which then goes to the native core as it is."""
    _native_errors: bool = False
    """An error of the decimal evaluator (a division by zero) hands the rule to the native core,
    which fails with its own error: rules that iterate (see
    :func:`engine.rules.exact.compile_exact_iterating`)."""

    @property
    def decimal(self) -> bool:
        """Evaluated with decimals: an :attr:`exact` rule, or one that iterates over arrays and
        is otherwise exact (:func:`engine.rules.exact.compile_exact_iterating`)."""
        return self._exact is not None

    def evaluate(self, data: dict[str, Any]) -> Any:
        """Evaluate against ``data``; numbers in the result come back as ``Decimal``/``int``.
        Arithmetic is exact (decimal) where the rule allows it; see :mod:`engine.rules.exact`."""
        if self._exact is not None:
            try:
                return self._exact(data)
            except NotExact:
                pass
            except ExactError as exc:
                if not self._native_errors:
                    raise RuleError(str(exc)) from None
        reads = self._reads
        if reads is not None and type(data) is dict:
            # Only what the rule reads is converted and handed over, not the whole record; a
            # text, a bool, null or a 64-bit integer is handed over as it is (as _plain does).
            native: Any = {}
            for name in reads:
                if name in data:
                    value = data[name]
                    kind = type(value)
                    if kind is str or kind is bool or value is None or (kind is int and -_I64 <= value < _I64):
                        native[name] = value
                    else:
                        native[name] = _plain(value)
        else:
            native = _native_json(data)
        try:
            result = self._compiled.evaluate(native)
        except BaseException as exc:  # noqa: BLE001 - the native core may raise anything; fail closed
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise RuleError(str(exc)) from None
        kind = type(result)
        if kind is bool or kind is str or kind is int or result is None:
            return result  # as _from_native, which only changes floats, lists and objects
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
    folded, fold_issues = _fold_constant_names(rule, pointer)
    if fold_issues:
        return None, fold_issues
    variables, var_issues = _collect_variables(folded, pointer)
    if var_issues:
        return None, var_issues
    try:
        compiled = _ENGINE.compile(_native_json(_normalise(folded)))
        unseen = _reads_not_listed(compiled, variables)
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return None, [Issue(pointer, "definition.bad_rule", {"detail": _short(str(exc))})]
    if unseen:
        detail = f"the rule reads {unseen[0]!r} in a way the field check cannot follow"
        return None, [Issue(pointer, "definition.bad_rule", {"detail": detail})]
    iterating = not uses_only_exact_operators(rule)
    evaluator = compile_iterating(rule) if iterating else compile_exact(rule)
    return CompiledRule(rule, tuple(variables), compiled, not iterating, evaluator,
                        _top_level_reads(compiled, variables), iterating), []


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
    for kind, name, where in _walk(rule, pointer, 0):
        if kind == "var":
            found.append(VariableUse(name, where))
        else:
            issues.append(Issue(where, "definition.bad_rule", {"detail": name}))
    return found, issues


def _walk(node: Any, pointer: str, scope: int) -> Iterator[tuple[str, str, str]]:
    """The record fields ``node`` reads, and what it may not do. ``scope`` counts the iterations
    (`map`, `filter`, ...) whose per-item argument holds ``node``: 0 is the record itself."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk(item, f"{pointer}/{index}", scope)
        return
    if not isinstance(node, dict) or len(node) != 1:
        return
    ((operator, args),) = node.items()
    op_pointer = f"{pointer}/{escape(operator)}"
    if operator not in ALLOWED_OPERATORS:
        yield "error", f"unknown or disallowed operator {operator!r}", op_pointer
        return
    if operator == "throw":
        # The error type only: a thrown value ends up in error messages and logs, where record
        # values have no business.
        thrown = args[0] if isinstance(args, list) and len(args) == 1 else args
        if not (isinstance(thrown, str) or args == []):
            yield "error", "throw takes a literal error type (a string)", op_pointer
        return
    if operator in ("missing", "missing_some"):
        yield from _walk_missing(operator, args, op_pointer, scope)
        return
    if operator in ("val", "exists"):
        yield from _walk_path(operator, args, op_pointer, scope)
        return
    if operator == "var":
        # {"var": []} and {"var": ""} (and null) read the whole data: the record, or the item
        # inside map/filter/...; that names no field.
        name = (args[0] if args else "") if isinstance(args, list) else args
        name_pointer = f"{op_pointer}/0" if isinstance(args, list) else op_pointer
        if isinstance(args, list) and len(args) > 1:
            yield from _walk(args[1], f"{op_pointer}/1", scope)
        if isinstance(name, (dict, list)):
            # A computed name is allowed only when every name it can yield is a literal in the
            # rule ({"var": {"if": [cond, "a.b", "a.c"]}}): each of them is checked like a
            # literal name. A name computed from literals alone was folded into its value at
            # upload (see _fold_constant_names). Anything else (cat or arithmetic over data)
            # could read any field.
            choices = _name_choices(name)
            if choices is None:
                yield "error", "a var name must be a literal string, or an if/?: choosing between literal strings", op_pointer
                return
            yield from _walk_conditions(name, name_pointer, scope)
            names = choices
        else:
            names = [name]
        if scope:
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
        inner_scope = scope + 1 if operator in _SCOPED_OPERATORS and index == 1 else scope
        child_pointer = f"{op_pointer}/{index}" if isinstance(args, list) else op_pointer
        yield from _walk(item, child_pointer, inner_scope)


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


def _walk_conditions(node: Any, pointer: str, scope: int) -> Iterator[tuple[str, str, str]]:
    """The conditions of a computed var name (see :func:`_name_choices`) read data too."""
    if not isinstance(node, dict):
        return
    ((operator, args),) = node.items()
    conditions, results = _branches(args)
    for index in conditions:
        yield from _walk(args[index], f"{pointer}/{escape(operator)}/{index}", scope)
    for index in results:
        yield from _walk_conditions(args[index], f"{pointer}/{escape(operator)}/{index}", scope)


def _walk_missing(operator: str, args: Any, op_pointer: str, scope: int) -> Iterator[tuple[str, str, str]]:
    """`missing` / `missing_some` only test whether names are present. Literal names are
    listed like `var`s; a computed list of names (`{"missing": {"merge": [...]}}`, classic
    JSONLogic) is allowed, and the `var`s it reads are walked, but its names are not checked."""
    names: Any = args
    names_pointer = op_pointer
    if operator == "missing_some" and isinstance(args, list):
        if args:
            yield from _walk(args[0], f"{op_pointer}/0", scope)
        names = args[1] if len(args) > 1 else []
        names_pointer = f"{op_pointer}/1"
    if isinstance(names, dict):
        yield from _walk(names, names_pointer, scope)
        return
    listed = isinstance(names, list)
    for index, name in enumerate(names if listed else [names]):
        where = f"{names_pointer}/{index}" if listed else names_pointer
        if isinstance(name, (dict, list)):
            yield from _walk(name, where, scope)
        elif isinstance(name, str) and name != "" and not scope:
            yield "var", name, where


def _walk_path(operator: str, args: Any, op_pointer: str, scope: int) -> Iterator[tuple[str, str, str]]:
    """`val` / `exists` take a path as a list of keys (`{"val": ["owner", "name"]}`), where a
    key is taken literally (`"a.b"` is one key, unlike in `var`). Allowed with literal keys
    only (a path computed from literals alone was folded at upload); an empty key or one
    holding a dot is refused, since field names are dotted paths.

    `val` may start with a scope jump `[n]`: inside iterations it reads the data
    ``ceil(|n| / 2)`` iterations up, or the record when there are not that many; for an odd
    ``n`` (or 0) a lone `"index"` / `"key"` is an iteration's position, not data. That is how the
    native core resolves jumps (checked against its own read analysis, see
    :func:`_reads_not_listed`), so a jump that lands on the record lists its path like a `var`
    at the top level, and one that lands on an enclosing item reads no field."""
    keys = args if isinstance(args, list) else [args]
    if keys == [""] or keys == [None]:
        keys = []
    levels: int | None = None
    if operator == "val" and keys and isinstance(keys[0], list):
        jump = keys[0]
        if len(jump) != 1 or not _is_integer(jump[0]):
            yield "error", "val: a scope jump is [n] with an integer n", op_pointer
            return
        levels = int(jump[0])
        keys = keys[1:]
    for key in keys:
        if isinstance(key, list):
            where = "may only come first" if operator == "val" else "are not supported"
            yield "error", f"{operator}: scope jumps ([n]) {where}", op_pointer
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
    if not keys:
        return
    if levels is None:
        if scope:
            return
    else:
        if len(keys) == 1 and keys[0] in ("index", "key") and (levels == 0 or levels % 2 == 1):
            return  # the position of an iteration, not data
        if scope - (abs(levels) + 1) // 2 > 0:
            return  # an enclosing item, not the record
    yield "var", ".".join(str(key) for key in keys), op_pointer


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, Decimal):
        return value == value.to_integral_value()
    return isinstance(value, int)


# Operators that read the data; a name built without them is a constant.
_READERS = frozenset({"var", "val", "exists", "missing", "missing_some"})


def _fold_constant_names(rule: Any, pointer: str) -> tuple[Any, list[Issue]]:
    """The rule with every computed `var`/`val`/`exists` name that reads no data
    (`{"val": {"cat": ["te", "st"]}}`) replaced by its value (`"test"`), computed once here.
    Such a name is as fixed as a literal, so the field check can see it. A name that reads data
    is left as it is (and refused by the walk unless it is an if/?: over literals)."""
    issues: list[Issue] = []

    def fold(node: Any, where: str) -> Any:
        if isinstance(node, list):
            return [fold(item, f"{where}/{index}") for index, item in enumerate(node)]
        if not isinstance(node, dict) or len(node) != 1:
            return node
        ((operator, args),) = node.items()
        op_pointer = f"{where}/{escape(operator)}"
        listed = isinstance(args, list)
        if operator == "var" and _name_choices(args[0] if listed and args else args) is None:
            if listed and args:
                rest = [fold(item, f"{op_pointer}/{index}") for index, item in enumerate(args[1:], 1)]
                return {operator: [constant(args[0], f"{op_pointer}/0", path=False), *rest]}
            return {operator: constant(args, op_pointer, path=False)}
        if operator in ("val", "exists"):
            if isinstance(args, dict):
                value = constant(args, op_pointer, path=True)
                return {operator: value if isinstance(value, (list, dict)) else [value]}
            if listed:
                return {operator: [constant(item, f"{op_pointer}/{index}", path=False)
                                   if isinstance(item, dict) else item for index, item in enumerate(args)]}
            return node
        if listed:
            return {operator: [fold(item, f"{op_pointer}/{index}") for index, item in enumerate(args)]}
        return {operator: fold(args, op_pointer)}

    def constant(node: Any, where: str, path: bool) -> Any:
        if not isinstance(node, dict) or not _reads_nothing(node):
            return fold(node, where)
        try:
            value = _from_native(_ENGINE.compile(_native_json(_normalise(node))).evaluate(None))
        except BaseException as exc:  # noqa: BLE001 - the native core may raise anything
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            detail = _short(f"a computed name fails: {exc}")
            issues.append(Issue(where, "definition.bad_rule", {"detail": detail}))
            return node
        if _is_name(value) or (path and isinstance(value, list) and all(map(_is_name, value))):
            return value
        detail = "a computed name must be a string or an integer"
        issues.append(Issue(where, "definition.bad_rule", {"detail": detail}))
        return node

    folded = fold(rule, pointer)
    return folded, issues


def _is_name(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _reads_nothing(node: Any) -> bool:
    """Built only from allowed operators, none of which reads data."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            if len(item) != 1:
                return False
            ((operator, args),) = item.items()
            if operator not in ALLOWED_OPERATORS or operator in _READERS:
                return False
            stack.append(args)
    return True


def _reads_not_listed(compiled: Any, variables: list[VariableUse]) -> list[str]:
    """Record fields the native core's own read analysis finds and the walk did not list. The
    walk is meant to be complete; this catches any disagreement on how a path is resolved (scope
    jumps above all) before a rule that reads an unchecked field is accepted."""
    facts = compiled.facts()
    if not facts.get("reads_complete"):
        return []  # a computed name (if/?: over literals, a computed missing list): walked above
    listed = {use.name for use in variables}
    # [] and [""] are the whole data (`{"var": ""}`, `{"val": []}`, `{"exists": ""}`): no field
    names = (".".join(str(key) for key in path) for path in facts.get("reads", []))
    return [name for name in names if name and name not in listed]


def _top_level_reads(compiled: Any, variables: list[VariableUse]) -> frozenset[str] | None:
    """The top-level keys of the data that the rule can read, from the native core's read
    analysis and the walk's names together (``a`` and ``a.b`` for ``{"var": "a.b"}``, should a
    key hold a dot), or None when the rule may read the whole data or a computed name."""
    facts = compiled.facts()
    if not facts.get("reads_complete") or facts.get("computed_reads"):
        return None
    names: set[str] = set()
    for path in facts.get("reads", []):
        if not path:
            return None  # [] is the whole data
        names.add(str(path[0]))
        names.add(".".join(str(key) for key in path))
    for use in variables:
        names.add(use.name)
        names.add(use.name.split(".", 1)[0])
    return frozenset(names)


def _normalise(rule: Any) -> Any:
    """What the native core runs, where it would answer differently than the engine means:

    - `{"and": []}` and `{"or": []}` are `false` (the core answers null; both are falsy, but a
      computed field must not turn into "absent");
    - `map`/`filter`/`reduce`/`all`/`some`/`none` over a literal that is not an array
      (`{"map": [null, ...]}`), and `map`/`filter` with a literal `null` in place of the
      per-item rule, are invalid arguments: they fail (throw) when evaluated. The core would
      iterate over `[literal]` (or over nothing)."""
    if isinstance(rule, list):
        return [_normalise(item) for item in rule]
    if isinstance(rule, dict) and len(rule) == 1:
        ((operator, args),) = rule.items()
        if operator in ("and", "or") and args == []:
            return False
        if operator in _SCOPED_OPERATORS and isinstance(args, list) and args:
            not_an_array = args[0] is None or isinstance(args[0], (bool, int, float, Decimal, str))
            no_rule = operator in ("map", "filter") and len(args) > 1 and args[1] is None
            if not_an_array or no_rule:
                return {"throw": "Invalid Arguments"}
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
    kind = type(value)
    if kind is str or kind is bool or kind is float or value is None:
        return value
    if kind is dict:
        return {key: _plain(item) for key, item in value.items()}
    if kind is list:
        return [_plain(item) for item in value]
    if kind is Decimal:
        return to_plain(value)
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
