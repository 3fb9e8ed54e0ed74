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


def _reject_constant(name: str) -> Any:
    raise BadRequest("request.non_finite_number", path="", params={"token": name})


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON with exact decimals; reject NaN/Infinity and nesting deeper than ``max_depth``.

    Raises :class:`BadRequest` (``request.invalid_json``, ``request.non_finite_number``,
    ``request.too_deep``).
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("request.invalid_json", params={"reason": "not UTF-8"}) from None
    _check_depth(text, max_depth)
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BadRequest(
            "request.invalid_json", params={"reason": f"{exc.msg} at line {exc.lineno} column {exc.colno}"}
        ) from None
    except RecursionError:
        raise BadRequest("request.too_deep", params={"limit": max_depth}) from None


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
