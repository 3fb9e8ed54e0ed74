"""The submission pipeline, pure: empty values dropped, hidden fields cleared, computed fields in
dependency order, then every check at once. Storage happens elsewhere (the engine wraps this in
one transaction).

    data ─► drop "" / null ─► compute ─► visibleWhen ─► clear hidden ─► compute ─► requiredWhen
         ─► schema + decimal scale + cross-field rules ─► Outcome(data, issues, visible, required)
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any, Iterator, Mapping

from engine.errors import Issue
from engine.forms.spec import DecimalField, FormSpec
from engine.jsoncodec import MAX_NUMBER_DIGITS, MAX_NUMBER_EXPONENT
from engine.jsonpointer import escape
from engine.jsonpointer import pointer as to_pointer
from engine.rules import RuleError, is_truthy

_ROUNDING = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN, "down": ROUND_DOWN}


@dataclass(frozen=True)
class Outcome:
    data: dict[str, Any]
    """What would be stored: cleared, computed."""
    issues: list[Issue]
    visible: dict[str, bool]
    """Fields with a ``visibleWhen`` condition, and whether they are shown for this data."""
    required: dict[str, bool]
    """Fields with a ``requiredWhen`` condition, and whether they are required for this data."""


def run(spec: FormSpec, data: Mapping[str, Any]) -> Outcome:
    """The whole pipeline for one record (see the module docstring)."""
    cleaned = drop_empty(data)
    first, _ = compute(spec, cleaned)
    visible: dict[str, bool] = {}
    issues: list[Issue] = []
    for condition in spec.conditions:
        if condition.visible_when is None:
            continue
        try:
            visible[condition.field] = condition.visible_when.holds(first)
        except RuleError:
            visible[condition.field] = True  # fail visible: the field is kept and validated
            issues.append(Issue(f"/{condition.field}", "record.rule_error", {"rule": "visibleWhen"}))
    hidden = {name for name, shown in visible.items() if not shown}
    computed, compute_issues = compute(spec, {k: v for k, v in cleaned.items() if k not in hidden})
    for name in hidden:
        computed.pop(name, None)  # a computed field can be hidden too
    issues += compute_issues
    required: dict[str, bool] = {}
    for condition in spec.conditions:
        if condition.required_when is None or condition.field in hidden:
            continue
        try:
            required[condition.field] = condition.required_when.holds(computed)
        except RuleError:
            required[condition.field] = True  # fail closed: ask for the value
        if required[condition.field] and condition.field not in computed:
            issues.append(Issue(f"/{condition.field}", "record.required"))
    hidden_pointers = {f"/{name}" for name in hidden}
    issues += [issue for issue in validate(spec, computed)
               if not (issue.code == "record.required" and issue.path in hidden_pointers)]
    return Outcome(computed, issues, visible, required)


def drop_empty(data: Mapping[str, Any]) -> dict[str, Any]:
    """``""`` and ``null`` mean "no value": such keys are removed (in nested objects too), so a
    required field sent empty is reported missing, and an optional one is simply absent. A
    negative zero (``-0.0``) becomes zero of the same scale (``0.0``): the same value, one text."""
    return {key: _without_empty(value) for key, value in data.items() if value is not None and value != ""}


def _without_empty(value: Any) -> Any:
    if isinstance(value, dict):
        return drop_empty(value)
    if isinstance(value, list):
        return [_without_empty(item) for item in value]
    if isinstance(value, Decimal):
        return _unsigned_zero(value)
    return value


def _unsigned_zero(value: Decimal) -> Decimal:
    return value.copy_abs() if value.is_zero() and value.is_signed() else value


def compute(spec: FormSpec, data: Mapping[str, Any]) -> tuple[dict[str, Any], list[Issue]]:
    """Return a copy of ``data`` with every computed field (re)calculated. Values a client sent
    for computed fields are discarded: the server's result is the only one stored."""
    result = dict(data)
    issues: list[Issue] = []
    for field in spec.computed:
        result.pop(field.name, None)
    for field in spec.computed:
        try:
            value = field.rule.evaluate(result)
        except RuleError:
            issues.append(Issue(f"/{field.name}", "record.compute_error", {"field": field.name}))
            continue
        try:
            value = _round(value, field.scale, field.rounding)
        except InvalidOperation:  # never silently absent: a value that cannot be stored is an error
            issues.append(Issue(f"/{field.name}", "record.compute_error", {"field": field.name}))
            continue
        too_large = _too_large(value, field.scale)
        if too_large is not None:  # reported with the other issues, at the field, not as a 400 later
            issues.append(Issue(f"/{field.name}", too_large.code, too_large.params or {"field": field.name}))
            continue
        if value is not None:  # a rule that yields null leaves the field empty
            result[field.name] = value
    return result, issues


def _round(value: Any, scale: int | None, rounding: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        return value
    if scale is None:
        return _unsigned_zero(value) if isinstance(value, Decimal) else value
    with localcontext() as context:  # the default 28 digits would refuse amounts the request allows
        context.prec = 120
        rounded = Decimal(value).quantize(Decimal(1).scaleb(-scale), rounding=_ROUNDING[rounding])
    return int(rounded) if scale == 0 else _unsigned_zero(rounded)  # -0.004 rounds to 0.00, not -0.00


def _too_large(value: Any, scale: int | None) -> Issue | None:
    """The issue of a computed number that cannot be stored (path left empty: the caller sets the
    field's pointer), or None. With a declared scale, the bound of `_scale_issues`
    (``record.decimal_too_large``); otherwise the bounds every JSON number has
    (``record.compute_error``)."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        return None
    number = Decimal(value)
    if not number.is_finite():
        return Issue("", "record.compute_error")
    if number.is_zero():
        return None
    if scale is not None and number.adjusted() >= MAX_DECIMAL_DIGITS - scale:
        return Issue("", "record.decimal_too_large", {"digits": MAX_DECIMAL_DIGITS - scale})
    if len(number.as_tuple().digits) > MAX_NUMBER_DIGITS or abs(number.adjusted()) > MAX_NUMBER_EXPONENT:
        return Issue("", "record.compute_error")
    return None


def validate(spec: FormSpec, data: Mapping[str, Any]) -> list[Issue]:
    """Every schema, decimal-scale and cross-field problem of ``data``, in that order."""
    issues = list(_schema_issues(spec, data))
    issues += list(_scale_issues(spec.decimals, data))
    for rule in spec.rules:
        try:
            holds = is_truthy(rule.rule.evaluate(dict(data)))
        except RuleError:
            if issues:
                continue  # the rule read a field that is already reported as wrong
            issues.append(Issue(rule.path, "record.rule_error", {"rule": rule.code}))
            continue
        if not holds:
            issues.append(Issue(rule.path, rule.code, messages=rule.messages))
    return issues


def _schema_issues(spec: FormSpec, data: Mapping[str, Any]) -> Iterator[Issue]:
    for error in spec.validator.iter_errors(dict(data)):
        where = to_pointer(error.instance_path)
        kind = error.kind
        name = type(kind).__name__
        if name == "Required":
            yield Issue(f"{where}/{escape(str(kind.property))}", "record.required")
        elif name == "AdditionalProperties":
            for extra in kind.unexpected:
                yield Issue(f"{where}/{escape(str(extra))}", "record.additional_properties")
        elif name == "Type":
            yield Issue(where, "record.type", {"expected": _type_names(kind.types)})
        elif name in _LIMIT_CODES:
            yield Issue(where, _LIMIT_CODES[name], {"limit": _number(kind.limit)})
        elif name == "MultipleOf":
            yield Issue(where, "record.multiple_of", {"limit": _number(kind.multiple_of)})
        elif name == "Pattern":
            yield Issue(where, "record.pattern")
        elif name == "Format":
            yield Issue(where, "record.format", {"format": kind.format})
        elif name == "Enum":
            yield Issue(where, "record.enum", {"allowed": _shown_options(kind.options)})
        elif name == "Constant":
            yield Issue(where, "record.const")
        elif name == "UniqueItems":
            yield Issue(where, "record.unique_items")
        else:
            yield Issue(where, "record.schema", {"keyword": _keyword(error.schema_path, name)})


_LIMIT_CODES = {
    "Minimum": "record.minimum",
    "Maximum": "record.maximum",
    "ExclusiveMinimum": "record.exclusive_minimum",
    "ExclusiveMaximum": "record.exclusive_maximum",
    "MinLength": "record.min_length",
    "MaxLength": "record.max_length",
    "MinItems": "record.min_items",
    "MaxItems": "record.max_items",
}


# Exact decimals are stored and reported as DECIMAL(38, scale) (the widest exact type of DuckDB,
# and what every report over the field sums in): a value with more integer digits is refused at
# the door rather than dropped from a report later.
MAX_DECIMAL_DIGITS = 38


def _scale_issues(decimals: tuple[DecimalField, ...], data: Mapping[str, Any]) -> Iterator[Issue]:
    for field in decimals:
        for pointer, value in _values_at(data, field.pointer_parts, ""):
            if isinstance(value, int) and not isinstance(value, bool):
                value = Decimal(value)
            if isinstance(value, Decimal) and value.is_finite():
                exponent = value.as_tuple().exponent
                if isinstance(exponent, int) and exponent < -field.scale and value != value.quantize(
                    Decimal(1).scaleb(-field.scale), rounding=ROUND_DOWN
                ):
                    yield Issue(pointer, "record.scale", {"scale": field.scale})
                elif value.adjusted() >= MAX_DECIMAL_DIGITS - field.scale:
                    yield Issue(pointer, "record.decimal_too_large", {"digits": MAX_DECIMAL_DIGITS - field.scale})


def _values_at(node: Any, parts: tuple[str, ...], pointer: str) -> Iterator[tuple[str, Any]]:
    if not parts:
        yield pointer, node
        return
    head, rest = parts[0], parts[1:]
    if head == "*":
        if isinstance(node, list):
            for index, item in enumerate(node):
                yield from _values_at(item, rest, f"{pointer}/{index}")
    elif isinstance(node, Mapping) and head in node:
        yield from _values_at(node[head], rest, f"{pointer}/{escape(head)}")


MAX_SHOWN_OPTIONS = 20
"""An error names at most this many allowed values (an enum may list thousands); the rest are
counted as a last entry ``…(+N)``, so a message and its params stay small."""
MAX_SHOWN_TEXT = 200


def _shown_options(options: Any) -> list[Any]:
    values = list(options) if isinstance(options, (list, tuple)) else [options]
    shown = [_bounded(value) for value in values[:MAX_SHOWN_OPTIONS]]
    if len(values) > MAX_SHOWN_OPTIONS:
        shown.append(f"…(+{len(values) - MAX_SHOWN_OPTIONS})")
    return shown


def _bounded(value: Any) -> Any:
    if isinstance(value, (bool, int, float, Decimal)) or value is None:
        return value
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= MAX_SHOWN_TEXT else text[:MAX_SHOWN_TEXT] + "…"


def _type_names(types: Any) -> str:
    names = [str(item).split(".")[-1].lower() for item in (types if isinstance(types, (list, tuple)) else [types])]
    return "/".join(names)


def _number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _keyword(schema_path: Any, fallback: str) -> str:
    parts = [str(part) for part in schema_path] if schema_path else []
    return parts[-1] if parts else fallback
