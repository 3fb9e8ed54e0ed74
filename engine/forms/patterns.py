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


def ecma_mismatch(pattern: str) -> str | None:
    """Why ``pattern`` would mean one thing to the server's engine and another (or a syntax
    error) to ECMA-262, which browsers apply; None when both read it alike. Refused at upload,
    since a value could then pass one validator and fail the other:

    - a ``[`` inside a character class: the server nests classes (``[[:alpha:]]`` is a POSIX
      class of letters, ``[a[bc]]`` a union), ECMA-262 reads the characters ``[``, ``:``...
      followed by a literal ``]``;
    - ``&&``, ``--`` or ``~~`` inside a class: set operations on the server, characters in
      ECMA-262;
    - ``(?`` followed by a letter or ``-``: inline flags ``(?i)`` or ``(?P<name>`` on the
      server, a syntax error in ECMA-262;
    - ``[]`` and ``[^]``: complete classes in ECMA-262 (nothing, anything), while the server
      reads the ``]`` as the class's first character.
    """
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
            elif char == "[":
                return "a [ inside a character class (write it as \\[)"
            elif pattern[index:index + 2] in ("&&", "--", "~~"):
                return f"{pattern[index:index + 2]} inside a character class"
        elif char == "[":
            in_class = True
            index += 2 if pattern[index + 1:index + 2] == "^" else 1
            if pattern[index:index + 1] == "]":
                return "[] or [^] (a complete class in ECMA-262, a literal ] to the server)"
            continue
        elif pattern[index:index + 2] == "(?" and index + 2 < len(pattern) and (
                pattern[index + 2].isalpha() or pattern[index + 2] == "-"):
            return "inline flags or (?P<...>) groups, which ECMA-262 does not have"
        index += 1
    return None


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
