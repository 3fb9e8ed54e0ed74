"""Compile a JSONLogic rule into DuckDB SQL over one row, exactly or not at all.

A rule compiles to three SQL expressions over a table with one row per evaluation:

- ``truth``: whether the rule holds (JSONLogic truthiness), never NULL where ``fallback`` is false;
- ``value``: the rule's value (numbers as ``DECIMAL``/``DOUBLE``, strings, booleans, NULL for
  null), when it has one SQL type;
- ``fallback``: the rows the SQL does not decide. Those rows are evaluated by the engine's own
  evaluator (:meth:`engine.rules.CompiledRule.evaluate`), so the answer is the engine's on every
  row by construction of this split, not by approximation.

The engine evaluates a rule in one of two ways (``engine/rules/README.md``), and the compiler
follows the one it takes:

- **exact** rules (``CompiledRule.exact``: only the decimal evaluator's operators) are computed
  with decimals, as :mod:`engine.rules.exact` does: ``DECIMAL(38, s)`` columns and literals,
  explicit casts so that DuckDB never rounds, ``/`` and ``%`` refused (DuckDB divides decimals in
  doubles). A row on which the decimal evaluator would give up (a comparison with null, a
  loose ``==`` across types), which then re-evaluates the whole rule natively, is a fallback
  row; the condition follows the evaluator's short-circuits, so ``{"and": [{"!==": [x, null]},
  {"<=": [x, 10]}]}`` decides a null ``x`` in SQL. An out-of-range value (over 38 digits) makes
  DuckDB fail, never round: the caller then evaluates the rule row by row.
- **native** rules (any other operator: ``in``, ``cat``, ``missing``, ``missing_some``) are
  computed by the native core in binary floating point: numbers are ``DOUBLE`` with the very
  values the core is given (``Decimal`` to ``int`` or ``float`` as the engine converts them).
  Only operations whose native result is plain on non-null operands of one type are compiled;
  any null operand of a comparison, ``in`` or ``cat`` is a fallback row.

Everything else is refused with :class:`NotCompilable` and its reason. Rule content never reaches
the SQL text: literals are bound parameters (``$name``), columns are names the caller's
:class:`ColumnPlan` hands out (``"k0"``, ``"k1"``...), never a field name.
"""
from __future__ import annotations

import decimal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from engine.jsoncodec import to_plain
from engine.rules.compiler import CompiledRule

Kind = Literal["num", "str", "bool", "null", "other"]
"""What a column holds on every row that has a value: numbers, strings, booleans, nothing at
all, or anything else (mixed types, arrays, objects), which no rule over it compiles for."""

Repr = Literal["dec", "dbl", "str", "bool", "present"]

MAX_DIGITS = 38
"""DuckDB's widest DECIMAL."""
_EXACT_DOUBLE = 2**53


class NotCompilable(Exception):
    """The rule (or a part of it) has no exact SQL form here; ``str(exc)`` says why."""


@dataclass(frozen=True)
class Column:
    """What the data holds at one ``var`` path (see :func:`profile_column`)."""

    kind: Kind
    scale: int = 0
    """Numbers: the most digits after the point of any value (its ``DECIMAL(38, scale)``)."""
    fits_decimal: bool = True
    """Numbers: every value fits ``DECIMAL(38, scale)``."""
    fits_double: bool = True
    """Numbers: every value reaches the native core as a double (or an integer below 2^53)."""


@dataclass
class ColumnPlan:
    """The columns SQL rules read: one name per (path, representation), handed out in order.
    The caller builds the table from :attr:`columns` (see :mod:`engine.rules.batch`)."""

    columns: dict[tuple[str, Repr], str] = field(default_factory=dict)

    def ref(self, path: str, representation: Repr) -> str:
        name = self.columns.setdefault((path, representation), f"k{len(self.columns)}")
        return f'"{name}"'


@dataclass(frozen=True)
class SqlRule:
    mode: Literal["exact", "native"]
    truth: str
    fallback: str
    value: str | None
    kind: Kind | None
    params: Mapping[str, Any]


def lookup(data: Any, name: str) -> tuple[bool, Any]:
    """``(found, value)`` at dotted ``name``, walked as the decimal evaluator walks a ``var``."""
    if type(data) is dict and "." not in name:  # the usual case: a top-level field of a record
        return (True, data[name]) if name in data else (False, None)
    node: Any = data
    for part in name.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def is_number(value: Any) -> bool:
    return isinstance(value, (int, Decimal)) and not isinstance(value, bool)


def profile_column(values: list[Any]) -> Column:
    """The column that holds ``values`` (``None`` is null)."""
    kinds = set()
    scale = 0
    largest = 0
    fits_double = True
    for value in values:
        if value is None:
            continue
        kind = type(value)
        if kind is Decimal or (kind is int or (isinstance(value, int) and not isinstance(value, bool))):
            kinds.add("num")
            if kind is Decimal:
                if not value.is_finite():
                    return Column("other")
                exponent = value.as_tuple().exponent
                assert isinstance(exponent, int)
                if -exponent > scale:
                    scale = -exponent
            elif _EXACT_DOUBLE <= abs(value) < 2**63:
                fits_double = False  # an integer the native core keeps as an i64
            magnitude = abs(value)
            if magnitude > largest:
                largest = magnitude
        elif isinstance(value, bool):
            kinds.add("bool")
        elif isinstance(value, str):
            if not _plain_text(value):
                return Column("other")
            kinds.add("str")
        else:
            return Column("other")
    if not kinds:
        return Column("null")
    if len(kinds) > 1:
        return Column("other")
    kind = kinds.pop()
    if kind != "num":
        return Column(kind)  # type: ignore[arg-type]
    if scale > MAX_DIGITS:
        return Column("num", scale, False, fits_double)
    # DECIMAL(38, scale) holds magnitudes below 10^(38 - scale)
    return Column("num", scale, largest < Decimal(10) ** (MAX_DIGITS - scale), fits_double)


def native_number(value: int | Decimal) -> float:
    """The double of the number the native core is given for ``value`` (``compiler._plain``:
    an ``int`` below 2^53, which a double holds exactly, or a ``float``)."""
    return float(to_plain(value) if isinstance(value, Decimal) else value)


def _plain_text(value: str) -> bool:
    """A string DuckDB holds as it is: valid UTF-8 without NUL."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _integer_digits(value: Decimal) -> int:
    digits = value.as_tuple()
    assert isinstance(digits.exponent, int)
    return max(len(digits.digits) + digits.exponent, 0)


# -- expressions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Expr:
    sql: str | None
    """The value (NULL is JSON null); None when only the truth is known (mixed types)."""
    kind: Kind
    truth: str
    """SQL boolean, not NULL wherever ``bail`` is false."""
    bail: str = "FALSE"
    """SQL boolean: the SQL cannot decide this row (the engine's evaluator must)."""
    scale: int = 0
    nullable: bool = True


_TRUE, _FALSE = "TRUE", "FALSE"


def _or(*parts: str) -> str:
    useful = [part for part in parts if part != _FALSE]
    if not useful:
        return _FALSE
    if _TRUE in useful:
        return _TRUE
    return useful[0] if len(useful) == 1 else "(" + " OR ".join(useful) + ")"


def _and(*parts: str) -> str:
    useful = [part for part in parts if part != _TRUE]
    if not useful:
        return _TRUE
    if _FALSE in useful:
        return _FALSE
    return useful[0] if len(useful) == 1 else "(" + " AND ".join(useful) + ")"


def _not(part: str) -> str:
    return _FALSE if part == _TRUE else _TRUE if part == _FALSE else f"(NOT {part})"


def _truth_of(sql: str, kind: Kind) -> str:
    if kind == "num":
        return f"COALESCE(({sql}) <> 0, FALSE)"
    if kind == "str":
        return f"COALESCE(({sql}) <> '', FALSE)"
    if kind == "bool":
        return f"COALESCE(({sql}), FALSE)"
    return _FALSE


def _is_null(expr: _Expr) -> str:
    if expr.kind == "null":
        return _TRUE
    if not expr.nullable:
        return _FALSE
    return f"(({expr.sql}) IS NULL)"


def _bool(sql: str, bail: str) -> _Expr:
    return _Expr(sql, "bool", sql, bail, nullable=False)


class _Compiler:
    def __init__(self, columns: Callable[[str], Column], plan: ColumnPlan, prefix: str, mode: str) -> None:
        self.columns = columns
        self.plan = plan
        self.prefix = prefix
        self.mode = mode
        self.params: dict[str, Any] = {}

    def param(self, value: Any, sql_type: str) -> str:
        name = f"{self.prefix}{len(self.params)}"
        self.params[name] = value
        return f"CAST(${name} AS {sql_type})"

    # -- dispatch -----------------------------------------------------------------------

    def compile(self, node: Any, want: str) -> _Expr:
        if isinstance(node, dict):
            if len(node) != 1:
                raise NotCompilable("an object that is not one operation")
            ((operator, raw),) = node.items()
            handler = (_EXACT_HANDLERS if self.mode == "exact" else _NATIVE_HANDLERS).get(operator)
            if handler is None:
                raise NotCompilable(f"operator {operator!r} has no exact SQL form in {self.mode} mode")
            return handler(self, raw, want)
        return self.literal(node)

    def literal(self, value: Any) -> _Expr:
        if value is None:
            return _Expr("NULL", "null", _FALSE)
        if isinstance(value, bool):
            sql = _TRUE if value else _FALSE
            return _Expr(sql, "bool", sql, nullable=False)
        if isinstance(value, str):
            if not _plain_text(value):
                raise NotCompilable("a string with NUL or a lone surrogate")
            sql = self.param(value, "VARCHAR")
            return _Expr(sql, "str", _truth_of(sql, "str"), nullable=False)
        if is_number(value):
            if self.mode == "native":
                if isinstance(value, int) and _EXACT_DOUBLE <= abs(value) < 2**63:
                    raise NotCompilable("an integer literal of 2^53 or more")
                sql = self.param(native_number(value), "DOUBLE")
                return _Expr(sql, "num", _truth_of(sql, "num"), nullable=False)
            number = Decimal(value)
            if not number.is_finite():
                raise NotCompilable("a number that is not finite")
            exponent = number.as_tuple().exponent
            assert isinstance(exponent, int)
            scale = max(-exponent, 0)
            if scale > MAX_DIGITS or _integer_digits(number) + scale > MAX_DIGITS:
                raise NotCompilable("a number literal over 38 digits")
            sql = self.param(format(number, "f"), f"DECIMAL(38, {scale})")
            return _Expr(sql, "num", _truth_of(sql, "num"), scale=scale, nullable=False)
        raise NotCompilable("an array or object literal")

    def column(self, path: str) -> _Expr:
        column = self.columns(path)
        if column.kind == "other":
            raise NotCompilable(f"a field holding mixed or structured values ({path!r})")
        if column.kind == "null":
            return _Expr("NULL", "null", _FALSE)
        if column.kind == "num":
            if self.mode == "exact":
                if not column.fits_decimal:
                    raise NotCompilable(f"a field with numbers over 38 digits ({path!r})")
                sql = self.plan.ref(path, "dec")
                return _Expr(sql, "num", _truth_of(sql, "num"), scale=column.scale)
            if not column.fits_double:
                raise NotCompilable(f"a field with integers of 2^53 or more ({path!r})")
            sql = self.plan.ref(path, "dbl")
            return _Expr(sql, "num", _truth_of(sql, "num"))
        sql = self.plan.ref(path, column.kind)  # type: ignore[arg-type]
        return _Expr(sql, column.kind, _truth_of(sql, column.kind))

    def decimal(self, expr: _Expr, scale: int) -> str:
        if self.mode == "native":
            return f"({expr.sql})"
        return f"CAST(({expr.sql}) AS DECIMAL(38, {scale}))"

    # -- shared structure --------------------------------------------------------------

    def unify(self, exprs: list[_Expr], want: str) -> tuple[Kind, int, list[str]] | None:
        """The one kind of ``exprs`` (ignoring nulls) and their SQL cast to it; None when they
        differ (then only their truth can be compiled)."""
        kinds = {expr.kind for expr in exprs if expr.kind != "null"}
        if any(expr.sql is None for expr in exprs) or len(kinds) > 1:
            if want == "value":
                raise NotCompilable("branches of different types where the value is needed")
            return None
        kind: Kind = kinds.pop() if kinds else "null"
        scale = max((expr.scale for expr in exprs), default=0)
        if kind == "num":
            return kind, scale, [self.decimal(expr, scale) if expr.kind == "num" else "NULL" for expr in exprs]
        return kind, scale, [str(expr.sql) for expr in exprs]

    @staticmethod
    def lazy_bail(pieces: list[tuple[str, str]]) -> str:
        """``pieces`` are (guard, bail): a piece is evaluated only when its guard holds. Both
        evaluators short-circuit ``and``, ``or``, ``if`` and comparison chains."""
        return _or(*(_and(guard, bail) for guard, bail in pieces if bail != _FALSE))


def _args(raw: Any) -> list[Any]:
    return raw if isinstance(raw, list) else [raw]


# -- operators shared by both modes -------------------------------------------------------


def _var(c: _Compiler, raw: Any, want: str) -> _Expr:
    args = _args(raw)
    name = args[0] if args else None
    if not ((isinstance(name, str) and name) or (isinstance(name, int) and not isinstance(name, bool))):
        raise NotCompilable("a var without a literal field name")
    path = str(name)
    if c.mode == "native" and (len(args) > 1 or any(not part or part.isdigit() for part in path.split("."))):
        raise NotCompilable("a native var with a default or an array index")
    column = c.column(path)
    if len(args) < 2:
        return column
    default = c.compile(args[1], "value")
    if column.kind == "null":
        return default
    if default.kind == "null" and default.bail == _FALSE:
        return column
    unified = c.unify([column, default], "value")
    assert unified is not None
    kind, scale, (first, second) = unified
    sql = f"COALESCE({first}, {second})"
    bail = _and(_is_null(column), default.bail)
    return _Expr(sql, kind, _truth_of(sql, kind), bail, scale, default.nullable)


def _if(c: _Compiler, raw: Any, want: str) -> _Expr:
    if not isinstance(raw, list):
        raise NotCompilable("if without an argument list")
    if c.mode == "native" and len(raw) < 2:
        raise NotCompilable("a native if with fewer than two arguments")
    conditions: list[_Expr] = []
    branches: list[_Expr] = []
    index = 0
    while index + 1 < len(raw):
        conditions.append(c.compile(raw[index], "truth"))
        branches.append(c.compile(raw[index + 1], want))
        index += 2
    otherwise = c.compile(raw[index], want) if index < len(raw) else c.literal(None)
    pieces: list[tuple[str, str]] = []
    guard = _TRUE
    for condition, branch in zip(conditions, branches):
        pieces.append((guard, condition.bail))
        pieces.append((_and(guard, condition.truth), branch.bail))
        guard = _and(guard, _not(condition.truth))
    pieces.append((guard, otherwise.bail))
    bail = c.lazy_bail(pieces)
    outcomes = branches + [otherwise]
    truth = _case([cond.truth for cond in conditions], [out.truth for out in outcomes])
    unified = c.unify(outcomes, want)
    if unified is None:
        return _Expr(None, "other", truth, bail)
    kind, scale, sqls = unified
    sql = _case([cond.truth for cond in conditions], sqls)
    return _Expr(sql, kind, truth, bail, scale)


def _case(conditions: list[str], values: list[str]) -> str:
    if not conditions:
        return values[-1]
    whens = " ".join(f"WHEN {cond} THEN {value}" for cond, value in zip(conditions, values))
    return f"(CASE {whens} ELSE {values[-1]} END)"


def _and_or(operator: str) -> Callable[[_Compiler, Any, str], _Expr]:
    def handler(c: _Compiler, raw: Any, want: str) -> _Expr:
        if not isinstance(raw, list) or not raw:
            raise NotCompilable(f"{operator} without a non-empty argument list")
        parts = [c.compile(arg, want) for arg in raw]
        stop = [(_not(part.truth) if operator == "and" else part.truth) for part in parts]
        pieces: list[tuple[str, str]] = []
        guard = _TRUE
        for part, stops in zip(parts, stop):
            pieces.append((guard, part.bail))
            guard = _and(guard, _not(stops))
        bail = c.lazy_bail(pieces)
        truth = (_and if operator == "and" else _or)(*(part.truth for part in parts))
        unified = c.unify(parts, want)
        if unified is None:
            return _Expr(None, "other", truth, bail)
        kind, scale, sqls = unified
        return _Expr(_case(stop[:-1], sqls), kind, truth, bail, scale)

    return handler


def _negation(double: bool) -> Callable[[_Compiler, Any, str], _Expr]:
    def handler(c: _Compiler, raw: Any, want: str) -> _Expr:
        args = _args(raw)
        if c.mode == "native" and len(args) != 1:
            raise NotCompilable("a native ! or !! with other than one argument")
        inner = c.compile(args[0], "truth") if args else c.literal(None)
        truth = inner.truth if double else _not(inner.truth)
        return _bool(truth, inner.bail)

    return handler


_COMPARE = {"<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _comparison(operator: str) -> Callable[[_Compiler, Any, str], _Expr]:
    def handler(c: _Compiler, raw: Any, want: str) -> _Expr:
        args = _args(raw)
        if len(args) not in (2, 3):
            raise NotCompilable(f"{operator} with other than two or three arguments")
        parts = [c.compile(arg, "value") for arg in args]
        if any(part.kind not in ("num", "null") for part in parts):
            raise NotCompilable(f"{operator} over values that are not numbers")
        if any(part.kind == "null" for part in parts):  # a field no row has: each row's own evaluator
            return _bool(_FALSE, _TRUE)
        scale = max(part.scale for part in parts)
        sqls = [c.decimal(part, scale) for part in parts]
        tests = [f"({sqls[i]} {_COMPARE[operator]} {sqls[i + 1]})" for i in range(len(parts) - 1)]
        # a0 and a1 are always evaluated; a2 only when the first comparison holds.
        pieces = [(_TRUE, _or(parts[0].bail, _is_null(parts[0]), parts[1].bail, _is_null(parts[1])))]
        if len(parts) == 3:
            pieces.append((tests[0], _or(parts[2].bail, _is_null(parts[2]))))
        return _bool(_and(*tests), c.lazy_bail(pieces))

    return handler


def _equality(operator: str) -> Callable[[_Compiler, Any, str], _Expr]:
    strict = operator in ("===", "!==")
    negate = operator in ("!=", "!==")

    def handler(c: _Compiler, raw: Any, want: str) -> _Expr:
        if not isinstance(raw, list) or len(raw) != 2:
            raise NotCompilable(f"{operator} with other than two arguments")
        a, b = (c.compile(arg, "value") for arg in raw)
        if a.sql is None or b.sql is None:
            raise NotCompilable(f"{operator} over a value of mixed type")
        null_a, null_b = _is_null(a), _is_null(b)
        bail = _or(a.bail, b.bail)
        if c.mode == "native":
            if a.kind != b.kind or a.kind == "null":
                raise NotCompilable(f"native {operator} across types or with null")
            equal = f"({c.decimal(a, 0)} = {c.decimal(b, 0)})"
            bail = _or(bail, null_a, null_b)
        elif a.kind == b.kind or "null" in (a.kind, b.kind):
            both_null = _and(null_a, null_b)
            if a.kind == b.kind == "null":
                equal = _TRUE
            elif "null" in (a.kind, b.kind):
                equal = both_null  # only reached when the other is null too (or bails, loose)
            else:
                scale = max(a.scale, b.scale)
                value = f"({c.decimal(a, scale)} = {c.decimal(b, scale)})" if a.kind == "num" else f"(({a.sql}) = ({b.sql}))"
                equal = f"(CASE WHEN {_or(null_a, null_b)} THEN {both_null} ELSE {value} END)"
            if not strict:  # the decimal evaluator gives up on null against a value
                bail = _or(bail, f"({null_a} <> {null_b})")
        elif strict:  # different kinds: equal only when both are null
            equal = _and(null_a, null_b)
        else:
            raise NotCompilable(f"{operator} across types (the native core decides those)")
        return _bool(_not(equal) if negate else equal, bail)

    return handler


# -- exact-only operators ---------------------------------------------------------------------


def _numbers(c: _Compiler, raw: Any, operator: str) -> list[_Expr]:
    parts = [c.compile(arg, "value") for arg in _args(raw)]
    if any(part.kind != "num" for part in parts):
        raise NotCompilable(f"{operator} over values that are not numbers")
    return parts


def _arithmetic(operator: str) -> Callable[[_Compiler, Any, str], _Expr]:
    def handler(c: _Compiler, raw: Any, want: str) -> _Expr:
        parts = _numbers(c, raw, operator)
        bail = _or(*(_or(part.bail, _is_null(part)) for part in parts))
        if operator == "+":
            if not parts:
                return c.literal(0)
            scale = max(part.scale for part in parts)
            sql = "(" + " + ".join(c.decimal(part, scale) for part in parts) + ")"
        elif operator == "-":
            if len(parts) not in (1, 2):
                raise NotCompilable("- with other than one or two arguments")
            scale = max(part.scale for part in parts)
            sql = (f"(- {c.decimal(parts[0], scale)})" if len(parts) == 1
                   else f"({c.decimal(parts[0], scale)} - {c.decimal(parts[1], scale)})")
        elif operator == "*":
            if not parts:
                raise NotCompilable("* without arguments")
            scale = sum(part.scale for part in parts)
            if scale > MAX_DIGITS:
                raise NotCompilable("a product with more than 38 decimal places")
            sql = "(" + " * ".join(c.decimal(part, part.scale) for part in parts) + ")"
        elif operator in ("min", "max"):
            if not parts:
                raise NotCompilable(f"{operator} without arguments")
            scale = max(part.scale for part in parts)
            function = "least" if operator == "min" else "greatest"
            sql = f"{function}(" + ", ".join(c.decimal(part, scale) for part in parts) + ")"
        else:  # abs, ceil, floor
            if len(parts) != 1:
                raise NotCompilable(f"{operator} with other than one argument")
            scale = parts[0].scale if operator == "abs" else 0
            sql = f"{operator}({c.decimal(parts[0], parts[0].scale)})"
            if operator != "abs":
                sql = f"CAST({sql} AS DECIMAL(38, 0))"
        return _Expr(sql, "num", _truth_of(sql, "num"), bail, scale)

    return handler


# -- native-only operators --------------------------------------------------------------------


def _in(c: _Compiler, raw: Any, want: str) -> _Expr:
    if not isinstance(raw, list) or len(raw) != 2:
        raise NotCompilable("in with other than two arguments")
    needle = c.compile(raw[0], "value")
    if needle.kind == "null":  # a field no row has: each row's own evaluator
        return _bool(_FALSE, _TRUE)
    if needle.kind not in ("str", "num"):
        raise NotCompilable("in with a needle that is not a string or a number")
    bail = _or(needle.bail, _is_null(needle))
    if isinstance(raw[1], list):
        items = [c.literal(item) for item in raw[1]]
        if any(item.kind != needle.kind for item in items):
            raise NotCompilable("in over an array of other types than the needle")
        if not items:
            return _bool(_FALSE, bail)
        listed = "list_value(" + ", ".join(str(item.sql) for item in items) + ")"
        return _bool(f"list_contains({listed}, ({needle.sql}))", bail)
    haystack = c.compile(raw[1], "value")
    if haystack.kind != "str" or needle.kind != "str":
        raise NotCompilable("in over a value that is not a string or a literal array")
    return _bool(f"contains(({haystack.sql}), ({needle.sql}))", _or(bail, haystack.bail, _is_null(haystack)))


def _names(raw: Any) -> list[str]:
    names = _args(raw)
    if not all(isinstance(name, str) and name and not any(not part or part.isdigit() for part in name.split("."))
               for name in names):
        raise NotCompilable("missing with names that are not literal field paths")
    return names


def _missing(c: _Compiler, raw: Any, want: str) -> _Expr:
    if want == "value":
        raise NotCompilable("the list that missing answers (only its truth compiles)")
    absent = [_not(c.plan.ref(name, "present")) for name in _names(raw)]
    return _Expr(None, "other", _or(*absent) if absent else _FALSE)


def _missing_some(c: _Compiler, raw: Any, want: str) -> _Expr:
    if want == "value":
        raise NotCompilable("the list that missing_some answers (only its truth compiles)")
    if not isinstance(raw, list) or len(raw) != 2 or not isinstance(raw[0], int) or isinstance(raw[0], bool) \
            or not isinstance(raw[1], list) or raw[0] < 0:
        raise NotCompilable("missing_some without a literal count and a literal list of names")
    names = _names(raw[1])
    if not names:
        return _Expr(None, "other", _FALSE)
    count = " + ".join(f"(CASE WHEN {c.plan.ref(name, 'present')} THEN 0 ELSE 1 END)" for name in names)
    # [] when at least `need` are present; otherwise the missing ones (which may be none at all)
    return _Expr(None, "other", f"(({count}) > {max(len(names) - raw[0], 0)})")


def _cat(c: _Compiler, raw: Any, want: str) -> _Expr:
    parts = [c.compile(arg, "value") for arg in _args(raw)]
    if any(part.kind != "str" for part in parts):
        raise NotCompilable("cat over values that are not strings")
    if not parts:
        return c.literal("")
    sql = "(" + " || ".join(f"({part.sql})" for part in parts) + ")"
    bail = _or(*(_or(part.bail, _is_null(part)) for part in parts))
    return _Expr(sql, "str", _truth_of(sql, "str"), bail, nullable=False)


_COMMON: dict[str, Callable[[_Compiler, Any, str], _Expr]] = {
    "var": _var, "if": _if, "?:": _if, "and": _and_or("and"), "or": _and_or("or"),
    "!": _negation(False), "!!": _negation(True),
    **{op: _comparison(op) for op in _COMPARE},
    **{op: _equality(op) for op in ("==", "!=", "===", "!==")},
}
_EXACT_HANDLERS = {**_COMMON, **{op: _arithmetic(op) for op in ("+", "-", "*", "min", "max", "abs", "ceil", "floor")}}
_NATIVE_HANDLERS = {**_COMMON, "in": _in, "missing": _missing, "missing_some": _missing_some, "cat": _cat}


def compile_sql(rule: CompiledRule, columns: Callable[[str], Column], plan: ColumnPlan, *,
                prefix: str = "p", want: Literal["truth", "value"] = "truth") -> SqlRule:
    """The SQL of ``rule`` over a row whose fields ``columns`` describes; raises
    :class:`NotCompilable`. ``want="value"`` also compiles its value (or refuses)."""
    mode: Literal["exact", "native"] = "exact" if rule.exact else "native"
    compiler = _Compiler(columns, plan, prefix, mode)
    try:
        expr = compiler.compile(rule.source, want)
    except (decimal.InvalidOperation, ValueError, TypeError) as exc:
        raise NotCompilable(f"cannot compile: {type(exc).__name__}") from None
    fallback = f"COALESCE({expr.bail}, TRUE)"
    value = expr.sql if want == "value" else None
    truth = f"COALESCE({expr.truth}, FALSE)"
    text = " ".join((truth, fallback, value or ""))
    # A part folded away (a constant comparison) leaves its parameter unused; DuckDB refuses those.
    params = {name: item for name, item in compiler.params.items() if f"${name} AS" in text}
    return SqlRule(mode, truth, fallback, value, expr.kind if want == "value" else None, params)
