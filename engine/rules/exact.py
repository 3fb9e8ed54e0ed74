"""Exact evaluation of JSONLogic arithmetic and comparisons over ``Decimal``.

The native evaluator computes in binary floating point: ``0.10 + 0.20`` is
``0.30000000000000004`` there, and a rise of exactly 10.005 % can round to 10.00 and slip under
an approval threshold. Money must not take that path. Rules built only from the operators below
are evaluated here, with decimals. When a value falls outside what this evaluator decides
exactly (text in arithmetic, comparisons with ``null``, arrays), it gives up with
:class:`NotExact` and the caller evaluates the whole rule natively, so the JSONLogic semantics
of those cases stay the native evaluator's.
"""
from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any, Callable, Mapping

# Sums, differences and products: 100 significant digits, so that they are exact for the numbers
# of at most 40 digits a request may hold (decimal128's 34 would round the difference of two
# 40-digit amounts). Quotients: 34 significant digits (IEEE 754 decimal128), enough for any ratio
# that is rounded to a declared scale afterwards, and short enough to store.
_CONTEXT = decimal.Context(prec=100, rounding=decimal.ROUND_HALF_EVEN, traps=[
    decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow])
_QUOTIENT_CONTEXT = decimal.Context(prec=34, rounding=decimal.ROUND_HALF_EVEN, traps=[
    decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow])


class NotExact(Exception):
    """This evaluation needs the native evaluator."""


class ExactError(Exception):
    """The rule fails on this data (division by zero, overflow): it fails closed."""


def _number(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise NotExact()
    return Decimal(value)


def _result(value: Decimal) -> Decimal | int:
    exponent = value.as_tuple().exponent
    whole = isinstance(exponent, int) and exponent >= 0
    return int(value) if whole and value == value.to_integral_value() else value


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
    if isinstance(a, (int, Decimal)) and isinstance(b, (int, Decimal)) and not isinstance(a, bool) and not isinstance(b, bool):
        return Decimal(a) == Decimal(b)
    if type(a) is type(b) and isinstance(a, (str, bool)):
        return bool(a == b)
    if a is None and b is None:
        return True
    raise NotExact()


def _strict_equal(a: Any, b: Any) -> bool:
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
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
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


def evaluate_exact(rule: Any, data: Any) -> Any:
    """Evaluate ``rule`` with decimals; raises :class:`NotExact` or :class:`ExactError`."""

    def run(node: Any) -> Any:
        if isinstance(node, list):
            return [run(item) for item in node]
        if not isinstance(node, dict):
            return node
        ((operator, raw),) = node.items()
        args = raw if isinstance(raw, list) else [raw]
        if operator == "var":
            return _var(args, data, run)
        if operator in ("if", "?:", "and", "or") and not isinstance(raw, list):
            raise NotExact()  # the native evaluator refuses a non-array argument list here
        if operator in ("if", "?:"):
            index = 0
            while index + 1 < len(args):
                if _truthy(run(args[index])):
                    return run(args[index + 1])
                index += 2
            return run(args[index]) if index < len(args) else None
        if operator in ("and", "or"):
            if not args:
                raise NotExact()
            value = None
            for arg in args:
                value = run(arg)
                if _truthy(value) != (operator == "and"):
                    return value
            return value
        if operator == "!":
            return not _truthy(run(args[0] if args else None))
        if operator == "!!":
            return _truthy(run(args[0] if args else None))
        if operator == "throw":
            raise NotExact()  # the native evaluator raises it, with its message
        if operator in _COMPARISONS:
            return _compare(args, _COMPARISONS[operator], run)
        if operator in ("==", "!=", "===", "!==") and len(args) != 2:
            raise NotExact()  # before evaluating: the native chain is lazy past a mismatch
        values = [run(arg) for arg in args]
        if operator in ("==", "!="):
            return _loose_equal(*values) == (operator == "==")
        if operator in ("===", "!=="):
            return _strict_equal(*values) == (operator == "===")
        return _arithmetic(operator, values)

    return run(rule)
