"""Exact evaluation of JSONLogic arithmetic and comparisons over ``Decimal``.

The native evaluator computes in binary floating point: ``0.10 + 0.20`` is
``0.30000000000000004`` there, and a rise of exactly 10.005 % can round to 10.00 and slip under
an approval threshold. Money must not take that path. Rules built only from the operators below
are evaluated here, with decimals. When a value falls outside what this evaluator decides
exactly (text in arithmetic, comparisons with ``null``, arrays other than those iterated over,
see :func:`compile_exact_iterating`), it gives up with :class:`NotExact` and the caller
evaluates the whole rule natively, so the JSONLogic semantics of those cases stay the native
evaluator's.
"""
from __future__ import annotations

import decimal
import operator as _op
from decimal import Decimal
from typing import Any, Callable, Mapping

from engine.rules.limits import OPS_BUDGET

# Sums, differences and products: 100 significant digits, so that they are exact for the numbers
# of at most 40 digits a request may hold (decimal128's 34 would round the difference of two
# 40-digit amounts). Quotients: 34 significant digits (IEEE 754 decimal128), enough for any ratio
# that is rounded to a declared scale afterwards, and short enough to store.
_CONTEXT = decimal.Context(prec=100, rounding=decimal.ROUND_HALF_EVEN, traps=[
    decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow])
_QUOTIENT_CONTEXT = decimal.Context(prec=34, rounding=decimal.ROUND_HALF_EVEN, traps=[
    decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow])
# _CONTEXT where nothing may be rounded or clamped: an addition or a product that completes in it
# is exact, so it equals the one _CONTEXT computes from the identity (0 + a + b, 1 * a * b) once
# its result is taken as an int or kept (see _result); one that does not is done the long way.
_UNROUNDED_CONTEXT = decimal.Context(prec=100, rounding=decimal.ROUND_HALF_EVEN, traps=[
    decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow, decimal.Rounded,
    decimal.Inexact, decimal.Clamped, decimal.Subnormal, decimal.Underflow])
_NOT_UNROUNDED = (decimal.Rounded, decimal.Inexact, decimal.Clamped, decimal.Subnormal, decimal.Underflow)


class NotExact(Exception):
    """This evaluation needs the native evaluator."""


class ExactError(Exception):
    """The rule fails on this data (division by zero, overflow): it fails closed."""


def _number(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise NotExact()
    return Decimal(value)


_CENT = Decimal("0.01")
_ONE = Decimal(1)
_INT_LIMIT = 10**100


def _result(value: Decimal) -> Decimal | int:
    """An ``int`` when the decimal has no fraction digits at all (exponent >= 0: ``100``,
    ``1E+2``), else the decimal as it is (``100.00`` keeps its scale)."""
    if value.same_quantum(_CENT):  # the usual exponent of money, -2: kept as it is
        return value
    if value.same_quantum(_ONE):  # exponent 0 (finite: an infinity or NaN has no quantum)
        return int(value)
    integral = value.to_integral_value()  # the value itself when its exponent is >= 0
    if value.same_quantum(integral) and value.is_finite():
        return int(value)
    return value


def _truthy(value: Any) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return value != 0
    if isinstance(value, (str, list, dict)):  # {} is falsy, as in the native evaluator
        return len(value) > 0
    return True


def _var(args: list[Any], data: Any, run: Callable[[Any], Any]) -> Any:
    name = run(args[0]) if args else None
    if name is None or name == "":
        return data
    if not isinstance(name, (str, int)) or isinstance(name, bool):
        raise NotExact()

    def default() -> Any:  # evaluated only when needed, as in the native evaluator
        return run(args[1]) if len(args) > 1 else None

    node: Any = data
    for part in str(name).split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return default()
    if node is None:
        fallback = default()
        return node if fallback is None else fallback
    return node


def _loose_equal(a: Any, b: Any) -> bool:
    kind_a, kind_b = type(a), type(b)
    if (kind_a is Decimal or kind_a is int) and (kind_b is Decimal or kind_b is int):
        return bool(a == b)  # exact between int and Decimal, as Decimal(a) == Decimal(b)
    if isinstance(a, (int, Decimal)) and isinstance(b, (int, Decimal)) and not isinstance(a, bool) and not isinstance(b, bool):
        return Decimal(a) == Decimal(b)
    if type(a) is type(b) and isinstance(a, (str, bool)):
        return bool(a == b)
    if a is None and b is None:
        return True
    raise NotExact()


def _strict_equal(a: Any, b: Any) -> bool:
    kind_a, kind_b = type(a), type(b)
    if (kind_a is Decimal or kind_a is int) and (kind_b is Decimal or kind_b is int):
        return bool(a == b)
    numeric_a = isinstance(a, (int, Decimal)) and not isinstance(a, bool)
    numeric_b = isinstance(b, (int, Decimal)) and not isinstance(b, bool)
    if numeric_a and numeric_b:
        return Decimal(a) == Decimal(b)
    if numeric_a != numeric_b:
        return False
    if a is None or b is None:
        return a is None and b is None
    if type(a) is type(b) and isinstance(a, (str, bool)):
        return bool(a == b)
    if isinstance(a, (str, bool)) and isinstance(b, (str, bool)):
        return False
    raise NotExact()


def _compare(args: list[Any], test: Callable[[Decimal, Decimal], bool],
             run: Callable[[Any], Any]) -> bool:
    """A chain (`{"<": [a, b, c]}` is a < b < c), decided left to right: the arguments past the
    first comparison that fails are not evaluated, as in the native evaluator."""
    if len(args) not in (2, 3):
        raise NotExact()
    left = _number(run(args[0]))
    for arg in args[1:]:
        right = _number(run(arg))
        if not test(left, right):
            return False
        left = right
    return True


def _arithmetic(operator: str, args: list[Any]) -> Decimal | int:
    try:
        if operator == "+":
            total = Decimal(0)
            for arg in args:
                total = _CONTEXT.add(total, _number(arg))
            return _result(total)
        if operator == "*":
            if not args:
                raise NotExact()
            product = Decimal(1)
            for arg in args:
                product = _CONTEXT.multiply(product, _number(arg))
            return _result(product)
        if operator == "-":
            if len(args) == 1:
                return _result(_CONTEXT.minus(_number(args[0])))
            if len(args) != 2:
                raise NotExact()
            return _result(_CONTEXT.subtract(_number(args[0]), _number(args[1])))
        if operator == "/":
            if len(args) != 2:
                raise NotExact()
            return _result(_QUOTIENT_CONTEXT.divide(_number(args[0]), _number(args[1])))
        if operator == "%":
            if len(args) != 2:
                raise NotExact()
            return _result(_CONTEXT.remainder(_number(args[0]), _number(args[1])))
        if operator in ("min", "max"):
            if not args:
                raise NotExact()
            numbers = [_number(arg) for arg in args]
            return _result(min(numbers) if operator == "min" else max(numbers))
        if operator == "abs" and len(args) == 1:
            return _result(abs(_number(args[0])))
        if operator in ("ceil", "floor") and len(args) == 1:
            rounding = decimal.ROUND_CEILING if operator == "ceil" else decimal.ROUND_FLOOR
            return int(_number(args[0]).to_integral_value(rounding=rounding))
    except (decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow) as exc:
        raise ExactError(f"{operator}: {type(exc).__name__}") from None
    raise NotExact()


_ARITHMETIC = frozenset({"+", "-", "*", "/", "%", "min", "max", "abs", "ceil", "floor"})
_COMPARISONS: dict[str, Callable[[Decimal, Decimal], bool]] = {
    "<": _op.lt, "<=": _op.le, ">": _op.gt, ">=": _op.ge}
EXACT_OPERATORS = frozenset({"var", "if", "?:", "and", "or", "!", "!!", "==", "!=", "===", "!==",
                             "throw"} | _ARITHMETIC | set(_COMPARISONS))
"""Rules built only from these operators are evaluated with decimals. A `throw` that is reached
hands the evaluation to the native evaluator, which raises it (the rule fails closed)."""


def uses_only_exact_operators(rule: Any) -> bool:
    stack = [rule]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if len(node) != 1:
                return False
            ((operator, args),) = node.items()
            if operator not in EXACT_OPERATORS:
                return False
            stack.append(args)
    return True


Evaluator = Callable[[Any], Any]
"""A compiled exact rule: data in, value out; raises :class:`NotExact` or :class:`ExactError`."""


def evaluate_exact(rule: Any, data: Any) -> Any:
    """Evaluate ``rule`` with decimals; raises :class:`NotExact` or :class:`ExactError`."""
    return compile_exact(rule)(data)


def compile_exact(rule: Any) -> Evaluator:
    """``rule`` as a tree of closures, built once (at upload) and called per evaluation: the
    operator dispatch, argument counts and literal variable paths are decided here instead of
    at each call. Every check that fails (:class:`NotExact`) fails when the evaluation reaches
    it, as a walk of the rule would: ``{"if": [true, 1, {"throw": "x"}]}`` is 1."""
    return _build(rule)


def _refuse(_data: Any) -> Any:
    raise NotExact()


def _constant(value: Any) -> Evaluator:
    return lambda _data: value


def _build(node: Any) -> Evaluator:
    if isinstance(node, list):
        items = [_build(item) for item in node]
        return lambda data: [item(data) for item in items]
    if not isinstance(node, dict):
        return _constant(node)
    if len(node) != 1:
        return _refuse
    ((operator, raw),) = node.items()
    args = raw if isinstance(raw, list) else [raw]
    if operator == "var":
        return _build_var(args)
    if operator in ("if", "?:", "and", "or") and not isinstance(raw, list):
        return _refuse  # the native evaluator refuses a non-array argument list here
    if operator in ("if", "?:"):
        return _build_if([_build(arg) for arg in args])
    if operator in ("and", "or"):
        return _build_and_or(operator == "and", [_build(arg) for arg in args]) if args else _refuse
    if operator in ("!", "!!"):
        single = _build(args[0]) if args else _constant(None)
        if operator == "!":
            return lambda data: not _truthy(single(data))
        return lambda data: _truthy(single(data))
    if operator == "throw":
        return _refuse  # the native evaluator raises it, with its message
    if operator in ITERATION_OPERATORS:
        return _build_iteration(operator, raw)
    if operator in _COMPARISONS:
        if len(args) not in (2, 3):
            return _refuse
        literal = args[1] if len(args) == 2 and type(args[1]) in (int, Decimal) else _ABSENT
        return _build_compare(_COMPARISONS[operator], [_build_operand(arg) for arg in args], literal,
                              _field_name(args[0]))
    if operator in ("==", "!=", "===", "!=="):
        if len(args) != 2:
            return _refuse  # before evaluating: the native chain is lazy past a mismatch
        left, right = (_build_operand(arg) for arg in args)
        equal: Callable[[Any, Any], bool] = _loose_equal if operator in ("==", "!=") else _strict_equal
        if operator in ("===", "!==") and args[1] is None:
            # `x === null` is `x is None` whatever x is (numbers, text, lists: never null)
            name = _field_name(args[0])
            if name is not None:  # a field, read in place
                if operator == "===":
                    return lambda data: data.get(name) is None if type(data) is dict else left(data) is None
                return lambda data: data.get(name) is not None if type(data) is dict else left(data) is not None
            if operator == "===":
                return lambda data: left(data) is None
            return lambda data: left(data) is not None
        if operator in ("==", "!=") and type(args[1]) is str:
            equal = _equal_to_text
        elif operator in ("===", "!==") and type(args[1]) is str:
            equal = _strictly_equal_to_text
        if type(args[1]) is str and _field_name(args[0]) is not None:
            return _build_field_is_text(_field_name(args[0]), args[1], left, equal, operator in ("==", "==="))
        if operator in ("==", "==="):
            return lambda data: equal(left(data), right(data))
        return lambda data: not equal(left(data), right(data))
    return _build_arithmetic(operator, [_build(arg) for arg in args], nodes=args)


def _equal_to_text(a: Any, text: str) -> bool:
    """:func:`_loose_equal` against a literal ``str``: only a ``str`` compares with it."""
    if type(a) is str:
        return a == text
    raise NotExact()


def _build_field_is_text(name: str, text: str, left: Evaluator, equal: Callable[[Any, str], bool],
                         positive: bool) -> Evaluator:
    """``{"==": [{"var": name}, text]}`` (and ``!=``, ``===``, ``!==``): the field read in place,
    a text compared here, any other value by ``equal`` (False, or :class:`NotExact`)."""

    def field_is_text(data: Any) -> bool:
        value = data.get(name) if type(data) is dict else left(data)
        if type(value) is str:
            return (value == text) is positive
        return equal(value, text) is positive

    return field_is_text


def _strictly_equal_to_text(a: Any, text: str) -> bool:
    """:func:`_strict_equal` against a literal ``str``."""
    if type(a) is str:
        return a == text
    if a is None or isinstance(a, (str, bool, int, Decimal)):
        return False  # null, a number, a bool (or a str subclass) is never that text
    raise NotExact()


def _build_var(args: list[Any]) -> Evaluator:
    default = _build(args[1]) if len(args) > 1 else None  # evaluated only when needed
    if args and isinstance(args[0], (dict, list)):
        name_of = _build(args[0])

        def computed(data: Any) -> Any:
            name = name_of(data)
            if name is None or name == "":
                return data
            if not isinstance(name, (str, int)) or isinstance(name, bool):
                raise NotExact()
            return _read(str(name).split("."), data, default)

        return computed
    name = args[0] if args else None
    if name is None or name == "":
        return lambda data: data
    if not isinstance(name, (str, int)) or isinstance(name, bool):
        return _refuse
    parts = str(name).split(".")
    if len(parts) == 1:
        part = parts[0]

        if default is None:
            def plain(data: Any) -> Any:
                if type(data) is dict:  # the usual case: a record
                    return data.get(part)  # absent or null: None
                return _read(parts, data, None)

            return plain

        def one(data: Any) -> Any:
            if type(data) is dict:  # the usual case: a record
                value = data.get(part)
                if value is None:
                    return default(data)
                return value
            return _read(parts, data, default)

        return one
    if len(parts) == 2:
        outer, inner = parts

        def two(data: Any) -> Any:
            if type(data) is dict:  # the usual case: a field of a record's object (an item)
                node = data.get(outer)
                if type(node) is dict:
                    value = node.get(inner)
                    if value is not None:
                        return value
                    return default(data) if default is not None else None
                if node is None:  # absent or null: as _read, which finds no next part
                    return default(data) if default is not None else None
            return _read(parts, data, default)

        return two
    return lambda data: _read(parts, data, default)


_ABSENT = object()


def _read(parts: list[str], data: Any, default: Evaluator | None) -> Any:
    node: Any = data
    for part in parts:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return default(data) if default is not None else None
    if node is None and default is not None:
        return default(data)  # a null value takes the default too (None when it is null)
    return node


def _build_if(branches: list[Evaluator]) -> Evaluator:
    count = len(branches)
    if count == 3:
        condition, then, otherwise = branches

        def choose_of_two(data: Any) -> Any:
            value = condition(data)
            if value is True or (value is not False and _truthy(value)):
                return then(data)
            return otherwise(data)

        return choose_of_two

    def choose(data: Any) -> Any:
        index = 0
        while index + 1 < count:
            if _truthy(branches[index](data)):
                return branches[index + 1](data)
            index += 2
        return branches[index](data) if index < count else None

    return choose


def _build_and_or(conjunction: bool, operands: list[Evaluator]) -> Evaluator:
    if conjunction:
        def conjoin(data: Any) -> Any:
            value = None
            for operand in operands:
                value = operand(data)
                if value is False or (value is not True and not _truthy(value)):
                    return value
            return value

        return conjoin

    def combine(data: Any) -> Any:
        value = None
        for operand in operands:
            value = operand(data)
            if value is True or (value is not False and _truthy(value)):
                return value
        return value

    return combine


def _exact_number(value: Any) -> Any:
    """:func:`_number` without the copy for the usual types (an ``int`` and a ``Decimal``
    compare exactly with each other)."""
    kind = type(value)
    if kind is Decimal or kind is int:
        return value
    return _number(value)


def _ordered(test: Callable[[Any, Any], bool], left: Any, right: Any) -> bool:
    """One comparison of a chain: two numbers exactly; two strings by code point, as the
    native evaluator compares them (``"10" < "9"``, ISO dates in date order); anything else
    is the native evaluator's."""
    if type(left) is str and type(right) is str:
        return test(left, right)
    return test(_exact_number(left), _exact_number(right))


def _build_compare(test: Callable[[Any, Any], bool], operands: list[Evaluator],
                   literal: Any = _ABSENT, field: str | None = None) -> Evaluator:
    """A chain (`{"<": [a, b, c]}` is a < b < c), decided left to right: the arguments past the
    first comparison that fails are not evaluated, as in the native evaluator. A string
    operand is only decided here when both sides of its comparison are strings. ``literal``:
    the second of two operands when it is a number literal (``{">": [{"var": "x"}, 1000]}``),
    compared without evaluating it; ``field``: the first operand is that field, read in place."""
    if len(operands) == 2 and literal is not _ABSENT:
        first = operands[0]

        def against_literal(data: Any) -> bool:
            left = data.get(field) if field is not None and type(data) is dict else first(data)
            kind = type(left)
            if kind is Decimal or kind is int:
                return test(left, literal)
            return test(_exact_number(left), literal)  # raises NotExact for any other type

        return against_literal
    if len(operands) == 2:
        first, second = operands

        def pair(data: Any) -> bool:
            left = first(data)
            if type(left) is not str:
                return test(_exact_number(left), _exact_number(second(data)))
            return _ordered(test, left, second(data))

        return pair

    def chain(data: Any) -> bool:
        left = operands[0](data)
        if type(left) is not str:
            left = _exact_number(left)
        for operand in operands[1:]:
            right = operand(data)
            if type(right) is not str or type(left) is not str:
                left, right = _exact_number(left), _exact_number(right)
            if not test(left, right):
                return False
            left = right
        return True

    return chain


_BINARY: dict[str, Callable[[Decimal, Decimal], Decimal]] = {
    "+": _CONTEXT.add, "-": _CONTEXT.subtract, "*": _CONTEXT.multiply, "/": _QUOTIENT_CONTEXT.divide}


def _build_operand(node: Any) -> Evaluator:
    """An operand of a comparison or an equality, where only its value counts: an arithmetic
    result is not turned into an int (see :func:`_result`), which changes no value."""
    if isinstance(node, dict) and len(node) == 1:
        ((operator, raw),) = node.items()
        if operator in _BINARY and isinstance(raw, list) and len(raw) == 2:
            return _build_arithmetic(operator, [_build(arg) for arg in raw], canonical=False, nodes=raw)
    return _build(node)


def _field_name(node: Any) -> str | None:
    """The name of ``{"var": "name"}`` (or ``["name"]``) without a dot or a default: a field that
    :func:`_build_var` reads from a dict with ``data.get(name)``."""
    if not isinstance(node, dict) or len(node) != 1 or "var" not in node:
        return None
    name = node["var"]
    if isinstance(name, list):
        name = name[0] if len(name) == 1 else None
    if not isinstance(name, str) or name == "" or "." in name:
        return None
    return name


def _build_arithmetic(operator: str, operands: list[Evaluator], canonical: bool = True,
                      nodes: list[Any] | None = None) -> Evaluator:
    """``nodes``: the operands as written, so that a field (a plain `var`) is read and a number
    literal taken in place, without calling their evaluators (which would answer the same)."""
    binary = _BINARY.get(operator)
    if binary is not None and len(operands) == 2:
        first, second = operands
        left_name = right_name = None
        right_constant: Any = _ABSENT
        if nodes is not None:
            left_name, right_name = _field_name(nodes[0]), _field_name(nodes[1])
            if type(nodes[1]) in (int, Decimal):
                right_constant = nodes[1]

        # Two ints: the int result when it has at most 100 digits, as _CONTEXT computes it (exact,
        # exponent 0, then an int from _result). A quotient is not an int: never here.
        integral = {"+": _op.add, "-": _op.sub, "*": _op.mul}.get(operator)
        identity = Decimal(0) if operator == "+" else Decimal(1) if operator == "*" else None
        unrounded = {"+": _UNROUNDED_CONTEXT.add, "*": _UNROUNDED_CONTEXT.multiply}.get(operator)

        def apply(data: Any) -> Any:
            # both evaluated (a field read in place, a literal taken), then checked, as _arithmetic does
            if type(data) is dict:
                left = data.get(left_name) if left_name is not None else first(data)
                if right_constant is not _ABSENT:
                    right = right_constant
                else:
                    right = data.get(right_name) if right_name is not None else second(data)
            else:
                left, right = first(data), second(data)
            kind, right_kind = type(left), type(right)
            if kind is int and right_kind is int and integral is not None:
                value = integral(left, right)
                if -_INT_LIMIT < value < _INT_LIMIT:
                    return value
            if kind is not Decimal and kind is not int:
                left = _number(left)
            if right_kind is not Decimal and right_kind is not int:
                right = _number(right)
            if unrounded is not None:
                try:
                    value = unrounded(left, right)  # exact: as from the identity
                except ArithmeticError:
                    pass
                else:
                    if canonical and not value.same_quantum(_CENT):  # _result keeps those as they are
                        return _result(value)
                    return value
            try:
                # + and * as _arithmetic: from the identity (0 or 1), so the result's exponent is the same
                value = binary(binary(identity, left), right) if identity is not None else binary(left, right)
            except (decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow) as exc:
                raise ExactError(f"{operator}: {type(exc).__name__}") from None
            if canonical and not value.same_quantum(_CENT):  # _result keeps those as they are
                return _result(value)
            return value

        return apply
    return lambda data: _arithmetic(operator, [operand(data) for operand in operands])


# -- iterations ---------------------------------------------------------------------------------

ITERATION_OPERATORS = frozenset({"map", "filter", "reduce", "all", "some", "none"})
"""Evaluated with decimals only in the rules :func:`compile_exact_iterating` accepts."""

_MAX_ITERATIONS = 4
"""Iteration operators in one rule evaluated here; a rule with more goes to the native core."""

_ITERATION_OPS = OPS_BUDGET // 50
"""What one iteration may cost here (items times the nodes of its per-item rule, roughly what the
native core charges): over it, the native core evaluates the rule and meters it with its
operations budget. At most :data:`_MAX_ITERATIONS` of them stay far below that budget, so no rule
the core would stop for its budget is answered here."""

_ZERO = Decimal(0)


def compile_exact_iterating(rule: Any) -> Evaluator | None:
    """The decimal evaluator for a rule that iterates (`map`, `filter`, `reduce`, `all`, `some`,
    `none` over an array of the record) and is otherwise built from :data:`EXACT_OPERATORS`, or
    None when the rule is not one this evaluator follows the native core on:

    - iterations are not nested, take their argument lists whole (two, three for `reduce`) and
      at most :data:`_MAX_ITERATIONS` of them appear;
    - no `var` has a default or a computed name (the native core does not apply a default to a
      null value, the decimal evaluator does);
    - inside `reduce` only `current...` and `accumulator...` are read (the core reads the item
      for any other name).

    Inside an iteration `var` reads the item, as in the core; over a missing (null) array the
    iterations answer as over ``[]``; an array that is not a list, or one too long for
    :data:`_ITERATION_OPS`, hands the rule to the core. Any error (a division by zero) does too,
    so that the rule fails with the core's own error, as it did before this evaluator took it."""
    inner = compile_iterating(rule)
    if inner is None:
        return None

    def evaluate(data: Any) -> Any:
        try:
            return inner(data)
        except ExactError:
            raise NotExact() from None

    return evaluate


def compile_iterating(rule: Any) -> Evaluator | None:
    """:func:`compile_exact_iterating` without turning :class:`ExactError` into
    :class:`NotExact`: the caller does (``CompiledRule._native_errors``)."""
    count = [0]
    if not _iterating_ok(rule, None, count) or not 0 < count[0] <= _MAX_ITERATIONS:
        return None
    return _build(rule)


def _iterating_ok(node: Any, body: str | None, count: list[int]) -> bool:
    """``body``: None at the record's level, "item" in the per-item rule of map/filter/all/
    some/none, "reduce" in that of reduce."""
    if isinstance(node, list):
        return all(_iterating_ok(item, body, count) for item in node)
    if not isinstance(node, dict):
        return True
    if len(node) != 1:
        return False
    ((operator, raw),) = node.items()
    if operator == "var":
        args = raw if isinstance(raw, list) else [raw]
        if len(args) > 1:
            return False
        name = args[0] if args else None
        if isinstance(name, (dict, list)):
            return False
        if body == "reduce":
            return isinstance(name, str) and name.split(".", 1)[0] in ("current", "accumulator")
        return True
    if operator in ITERATION_OPERATORS:
        if body is not None or not isinstance(raw, list) or len(raw) != (3 if operator == "reduce" else 2):
            return False
        count[0] += 1
        inner = "reduce" if operator == "reduce" else "item"
        return (_iterating_ok(raw[0], None, count) and _iterating_ok(raw[1], inner, count)
                and (operator != "reduce" or _iterating_ok(raw[2], None, count)))
    if operator not in EXACT_OPERATORS:
        return False
    return _iterating_ok(raw, body, count)


def _nodes(node: Any) -> int:
    count, stack = 0, [node]
    while stack:
        item = stack.pop()
        count += 1
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return count


def _build_iteration(operator: str, raw: Any) -> Evaluator:
    if not isinstance(raw, list) or len(raw) != (3 if operator == "reduce" else 2):
        return _refuse
    source = raw[0]
    if source is None or isinstance(source, (bool, int, float, Decimal, str)):
        return _refuse  # the core is given a throw for these (see compiler._normalise)
    if operator in ("map", "filter") and raw[1] is None:
        return _refuse
    array = _build(source)
    limit = _ITERATION_OPS // (_nodes(raw[1]) + 2)

    def items_of(data: Any) -> list[Any]:
        value = array(data)
        if type(value) is list:
            if len(value) > limit:
                raise NotExact()
            return value
        if value is None:
            return []  # a missing array: as over [], as in the core
        raise NotExact()  # an object, a string, a number: the core's

    if operator == "reduce":
        return _build_reduce(items_of, raw[1], _build(raw[2]))
    body = _build(raw[1])
    compared = _field_against_literal(raw[1])
    if compared is not None and operator in ("some", "all", "none"):
        return _build_quantifier(operator, items_of, body, *compared)
    if operator == "map":
        return lambda data: [body(item) for item in items_of(data)]
    if operator == "filter":
        return lambda data: [item for item in items_of(data) if _truthy(body(item))]
    if operator == "some":
        def some(data: Any) -> bool:
            for item in items_of(data):
                value = body(item)
                if value is True or (value is not False and _truthy(value)):
                    return True
            return False

        return some
    if operator == "all":
        def every(data: Any) -> bool:
            items = items_of(data)
            if not items:
                return False  # as in the core
            for item in items:
                value = body(item)
                if value is False or (value is not True and not _truthy(value)):
                    return False
            return True

        return every

    def none(data: Any) -> bool:
        for item in items_of(data):
            value = body(item)
            if value is True or (value is not False and _truthy(value)):
                return False
        return True

    return none


def _field_against_literal(rule: Any) -> tuple[str, Callable[[Any, Any], bool], Any] | None:
    """(field, test, number) for a per-item rule ``{">": [{"var": "field"}, number]}``."""
    if not isinstance(rule, dict) or len(rule) != 1:
        return None
    ((operator, args),) = rule.items()
    test = _COMPARISONS.get(operator)
    if test is None or not isinstance(args, list) or len(args) != 2 or type(args[1]) not in (int, Decimal):
        return None
    name = _field_name(args[0])
    return None if name is None else (name, test, args[1])


def _build_quantifier(operator: str, items_of: Callable[[Any], list[Any]], body: Evaluator, field: str,
                      test: Callable[[Any, Any], bool], literal: Any) -> Evaluator:
    """`some`/`all`/`none` of ``{op: [{"var": field}, literal]}``: a number in a field of an
    object item is compared in the loop; any other item goes through ``body`` (which decides it,
    or hands the rule to the native core)."""
    wanted = operator != "all"  # the answer of the per-item rule that ends the loop

    def quantify(data: Any) -> bool:
        items = items_of(data)
        if operator == "all" and not items:
            return False  # as in the core
        for item in items:
            if type(item) is dict:
                left = item.get(field)
                kind = type(left)
                if kind is Decimal or kind is int:
                    if test(left, literal) is wanted:
                        return operator == "some"
                    continue
            if body(item) is wanted:  # a comparison answers True or False
                return operator == "some"
        return operator != "some"

    return quantify


def _reads_accumulator(node: Any) -> bool:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            for operator, args in item.items():
                if operator == "var":
                    name = args[0] if isinstance(args, list) and args else args
                    if not isinstance(name, str) or name.split(".", 1)[0] != "current":
                        return True
                stack.append(args)
    return False


def _build_reduce(items_of: Callable[[Any], list[Any]], rule: Any, initial: Evaluator) -> Evaluator:
    """`reduce`: the per-item rule reads ``{"current": item, "accumulator": value}``. A sum
    (`{"+": [x, {"var": "accumulator"}]}`, either way round, ``x`` not reading the accumulator)
    runs as one loop, with the same additions, in the same order, as step by step."""
    if (isinstance(rule, dict) and len(rule) == 1 and isinstance(rule.get("+"), list) and len(rule["+"]) == 2):
        operands = rule["+"]
        accumulator = {"var": "accumulator"}
        for index in (0, 1):
            term = operands[1 - index]
            if operands[index] == accumulator and not _reads_accumulator(term):
                name = term.get("var") if isinstance(term, dict) and len(term) == 1 else None
                field = name[len("current."):] if isinstance(name, str) and name.startswith("current.") else None
                if field is not None and ("." in field or field == ""):
                    field = None
                return _build_sum(items_of, _build(term), initial, accumulator_first=index == 0, field=field)
    body = _build(rule)

    def reduce(data: Any) -> Any:
        items = items_of(data)
        value = initial(data)
        for item in items:
            value = body({"current": item, "accumulator": value})
        return value

    return reduce


def _build_sum(items_of: Callable[[Any], list[Any]], term: Evaluator, initial: Evaluator, *,
               accumulator_first: bool, field: str | None = None) -> Evaluator:
    """``field``: the term is ``{"var": "current.<field>"}``, read from the item directly."""
    add = _CONTEXT.add
    unrounded = _UNROUNDED_CONTEXT.add

    def term_of(item: Any) -> Any:
        if field is not None and type(item) is dict:
            return item.get(field)  # as {"var": "current.<field>"}: absent or null is None
        return term({"current": item})

    def total(data: Any) -> Any:
        items = items_of(data)
        value = initial(data)
        if not items:
            return value
        start = _exact_number(value)
        value = start
        try:
            # exact (nothing rounded): the same value as step by step, and the same int or
            # Decimal once _result takes it (the steps' ints change no value, and an exponent
            # of 0 from the identity only matters when every exponent is >= 0: an int either way)
            for item in items:
                number = item.get(field) if field is not None and type(item) is dict else term({"current": item})
                kind = type(number)
                if kind is not Decimal and kind is not int:
                    number = _number(number)
                value = unrounded(value, number)
            return _result(value)
        except ArithmeticError:
            pass
        value = start
        try:
            for item in items:
                number = _exact_number(term_of(item))
                # as _build_arithmetic's `+` of [x, accumulator] from the identity: 0 + x + accumulator
                value = add(add(_ZERO, value), number) if accumulator_first else add(add(_ZERO, number), value)
        except (decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow) as exc:
            raise ExactError(f"+: {type(exc).__name__}") from None
        return _result(value)

    return total
