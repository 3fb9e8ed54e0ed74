"""ECMA-262 meaning for the two pattern tokens the server's regex engine reads differently.

The engine behind jsonschema-rs follows ECMA-262 for ``\\d``, ``\\w``, ``$`` and the rest, but
``.`` there excludes only ``\\n`` (ECMA-262 also excludes ``\\r``, U+2028 and U+2029) and ``\\b``
uses Unicode word characters (ECMA-262: ASCII ``[A-Za-z0-9_]``). Patterns are rewritten for
the server's validator only; the schema served to browsers keeps what the analyst wrote.
"""
from __future__ import annotations

import copy
from typing import Any

_ANY_BUT_LINE_TERMINATOR = "[^\\n\\r\\u2028\\u2029]"
_ASCII_BOUNDARY = {"b": "(?-u:\\b)", "B": "(?-u:\\B)"}


def to_server_pattern(pattern: str) -> str:
    """``pattern`` with ``.`` and ``\\b``/``\\B`` outside character classes spelled so that the
    server's engine gives them their ECMA-262 meaning."""
    out: list[str] = []
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            escaped = pattern[index + 1]
            out.append(_ASCII_BOUNDARY[escaped] if not in_class and escaped in _ASCII_BOUNDARY else char + escaped)
            index += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
        elif char == "[":
            in_class = True
            # ECMA-262: "[]" and "[^]" are complete classes, so a "]" right after them closes
            if pattern[index + 1:index + 2] == "^":
                out.append("[^")
                index += 2
                continue
        elif char == ".":
            out.append(_ANY_BUT_LINE_TERMINATOR)
            index += 1
            continue
        out.append(char)
        index += 1
    return "".join(out)


def with_server_patterns(schema: Any) -> Any:
    """A copy of ``schema`` whose ``pattern`` values and ``patternProperties`` keys are
    rewritten by :func:`to_server_pattern`. Values under ``const``, ``enum``, ``default`` and
    ``examples`` are data and stay as they are."""
    result = copy.deepcopy(schema)
    stack = [result]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if isinstance(node.get("pattern"), str):
            node["pattern"] = to_server_pattern(node["pattern"])
        if isinstance(node.get("patternProperties"), dict):
            node["patternProperties"] = {to_server_pattern(key): value for key, value in node["patternProperties"].items()}
        for key, value in node.items():
            if key not in ("const", "enum", "default", "examples") and isinstance(value, (dict, list)):
                stack.append(value)
    return result
