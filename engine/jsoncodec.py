"""Exact JSON: numbers with a fraction parse to ``Decimal`` and serialize back unchanged.

The standard library parses ``1.10`` to a float; money must never take that path. Every JSON
document the engine reads (request bodies, stored records, definitions) goes through
:func:`loads`, and everything it writes through :func:`dumps`.
"""
from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

from engine.errors import BadRequest

MAX_DEPTH = 64
MAX_NUMBER_DIGITS = 40
"""Significant digits a JSON number may carry: far beyond any amount of money, and small enough
that a number can never become a memory or CPU bomb (``1e999999999``) or outgrow what the
database, the report mirror (DECIMAL(38, s)) and int conversion accept."""
MAX_NUMBER_EXPONENT = 40
_INT_LIMIT = 10**MAX_NUMBER_DIGITS


def _reject_constant(name: str) -> Any:
    raise BadRequest("request.non_finite_number", path="", params={"token": name})


def _parse_decimal(text: str) -> Decimal:
    value = Decimal(text)
    digits = value.as_tuple().digits
    exponent = value.adjusted()
    if len(digits) > MAX_NUMBER_DIGITS or abs(exponent) > MAX_NUMBER_EXPONENT:
        raise BadRequest("request.number_out_of_range", params={"digits": MAX_NUMBER_DIGITS})
    return value


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise BadRequest("request.number_out_of_range", params={"digits": MAX_NUMBER_DIGITS})
    return int(text)


class _DuplicatedObject(dict):  # type: ignore[type-arg]
    """An object of the parsed text that names a key twice (``duplicate`` is the first such key)."""

    duplicate: str = ""


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON with exact decimals; reject NaN/Infinity, nesting deeper than ``max_depth`` and
    an object naming a key twice.

    Raises :class:`BadRequest` (``request.invalid_json``, ``request.non_finite_number``,
    ``request.too_deep``, ``request.duplicate_key`` at the pointer of the object holding it: a
    proxy or a browser may read the first of two equal keys where the engine would read the last).
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("request.invalid_json", params={"reason": "not UTF-8"}) from None
    _check_depth(text, max_depth)
    duplicated = False

    def make_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal duplicated
        made = dict(pairs)
        if len(made) == len(pairs):
            return made
        duplicated = True
        flagged = _DuplicatedObject(made)
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                flagged.duplicate = key
                break
            seen.add(key)
        return flagged

    try:
        value = json.loads(text, parse_float=_parse_decimal, parse_int=_parse_int, parse_constant=_reject_constant,
                           object_pairs_hook=make_object)
    except json.JSONDecodeError as exc:
        raise BadRequest(
            "request.invalid_json", params={"reason": f"{exc.msg} at line {exc.lineno} column {exc.colno}"}
        ) from None
    except RecursionError:
        raise BadRequest("request.too_deep", params={"limit": max_depth}) from None
    if duplicated:
        _refuse_duplicate(value)
    check_document(value)
    return value


def _refuse_duplicate(value: Any) -> None:
    from engine.jsonpointer import escape

    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, _DuplicatedObject):
            raise BadRequest("request.duplicate_key", path=where, params={"key": item.duplicate[:200]})
        if isinstance(item, dict):
            stack.extend((child, f"{where}/{escape(key)}") for key, child in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend((child, f"{where}/{index}") for index, child in reversed(list(enumerate(item))))


def check_document(value: Any) -> None:
    """Refuse what cannot be stored exactly: numbers past the bounds above, floats (money must
    arrive as ``Decimal``), NUL characters (PostgreSQL text cannot hold them) and unpaired
    surrogates (not UTF-8). Every document entering the engine passes here, whether parsed from
    JSON or handed over by an embedding program or an import. Raises :class:`BadRequest`."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise BadRequest("request.not_object")
                _check_text(key)
                stack.append(child)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, str):
            _check_text(item)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if abs(item) >= _INT_LIMIT:
                raise BadRequest("request.number_out_of_range", params={"digits": MAX_NUMBER_DIGITS})
        elif isinstance(item, Decimal):
            if not item.is_finite():
                raise BadRequest("request.non_finite_number", params={"token": str(item)})
            if len(item.as_tuple().digits) > MAX_NUMBER_DIGITS or abs(item.adjusted()) > MAX_NUMBER_EXPONENT:
                raise BadRequest("request.number_out_of_range", params={"digits": MAX_NUMBER_DIGITS})
        elif isinstance(item, float):
            raise BadRequest("request.float_number")
        else:
            raise BadRequest("request.unsupported_value", params={"type": type(item).__name__})


def check_text(text: str, path: str = "") -> None:
    """Refuse a text that cannot be stored (a NUL character, an unpaired surrogate) with
    ``request.bad_string`` at ``path``: the check :func:`check_document` makes, for a single
    value handed over outside a document (a comment, a user id)."""
    _check_text(text, path)


def _check_text(text: str, path: str = "") -> None:
    if "\x00" in text:
        raise BadRequest("request.bad_string", path=path, params={"reason": "NUL character"})
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("request.bad_string", path=path, params={"reason": "unpaired surrogate"}) from None


def _check_depth(text: str, max_depth: int) -> None:
    # A cheap scan before parsing: brackets inside strings are skipped, so a deep document is
    # refused before the recursive parser (and later the rule engine) ever sees it.
    depth = 0
    in_string = False
    escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                raise BadRequest("request.too_deep", params={"limit": max_depth})
        elif ch in "]}":
            depth -= 1


def dumps(value: Any) -> str:
    """Serialize to compact JSON; ``Decimal`` is written with its exact digits."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts)


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        first = True
        for key, item in value.items():
            if not first:
                out.append(",")
            first = False
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("non-finite decimal cannot be written as JSON")
        out.append(_decimal_text(value))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("non-finite float cannot be written as JSON")
        out.append(repr(value))
    elif isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        out.append(json.dumps(value, ensure_ascii=False))
    else:
        out.append(json.dumps(str(value), ensure_ascii=False))


def _decimal_text(value: Decimal) -> str:
    # Plain notation, never "1E+2": every JSON parser and spreadsheet reads it the same way.
    text = format(value, "f")
    return "0" if text in ("-0", "") else text


def to_plain(value: Any) -> Any:
    """Copy a JSON value with ``Decimal`` turned into ``int`` or ``float`` for libraries that
    only take plain JSON types (the rule engine). Never used for storage or output."""
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_plain(item) for item in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)
    return value
