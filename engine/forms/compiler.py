"""Compile a form definition: check its JSON Schema (2020-12, local refs only, patterns that
compile), its computed fields (declared, acyclic) and rules (every `var` names a field), and
build the immutable :class:`FormSpec`."""
from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping
from urllib.parse import urldefrag, urljoin

import jsonschema
import jsonschema_rs

from engine.errors import Issue
from engine.forms.patterns import ecma_mismatch, with_server_patterns
from engine.forms.spec import (ColumnSpec, ColumnType, ComputedField, CrossFieldRule, DecimalField, FieldCondition,
                               FormSpec)
from engine.jsonpointer import escape
from engine.jsonpointer import pointer as to_pointer
from engine.rules import CompiledRule, compile_rule

_REF_KEYWORDS = ("$ref", "$dynamicRef")
_DIALECTS = ("https://json-schema.org/draft/2020-12/schema", "https://json-schema.org/draft/2020-12/schema#")
"""The ``$schema`` values a form schema may declare: the dialect the engine validates with."""
MAX_SCALE = 18
"""Fraction digits a decimal field may declare (the report mirror holds DECIMAL(38, s))."""
_META_SCHEMA = jsonschema.Draft202012Validator(jsonschema.Draft202012Validator.META_SCHEMA)
_LINEAR_PATTERNS = jsonschema_rs.RegexOptions()


def build_validator(schema: Mapping[str, Any] | bool) -> Any:
    """A jsonschema-rs validator that never fetches anything (no remote, no ``file:``).

    Formats are asserted (date, date-time, email, uri, ...), patterns follow ECMA-262, and
    numbers are compared exactly: instances may hold ``Decimal`` (as the engine parses them)
    and the verdicts are those of the decimal value, not of a float approximation. A boolean
    schema (``true``/``false``) is accepted too, as JSON Schema allows.

    Patterns run on the linear-time engine (``RegexOptions``): no input can make a match take
    more than time proportional to its length. The backtracking engine needed for look-around
    and back-references was measured at 55 s for one 100 kB string against ``(?=a)(a+)+$``,
    so such patterns are refused at upload instead (``definition.bad_pattern``). ECMA-262
    meaning is kept on both engines: ``\\d`` is ASCII only and ``$`` does not match before a
    trailing newline.
    """
    document = schema if isinstance(schema, bool) else with_server_patterns(dict(schema))
    return jsonschema_rs.Draft202012Validator(document, validate_formats=True, offline=True,
                                              pattern_options=_LINEAR_PATTERNS)


def compile_form(
    document: Mapping[str, Any], version: int, form_exists: Callable[[str], bool]
) -> tuple[FormSpec | None, list[Issue]]:
    """Semantic checks and compilation; the meta-schema check has already passed."""
    schema = document["schema"]
    issues = list(_check_schema(schema))
    validator = None
    if not issues:
        try:
            validator = build_validator(schema)
        except jsonschema_rs.ValidationError as exc:
            issues.append(_schema_build_issue(exc))
        except BaseException as exc:  # noqa: BLE001 - native builder; fail closed
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            issues.append(Issue("/schema", "definition.bad_schema", {"detail": str(exc)[:200]}))

    properties: Mapping[str, Any] = schema.get("properties", {})
    computed, computed_issues = _compile_computed(document.get("computed", {}), schema)
    issues += computed_issues
    rules: list[CrossFieldRule] = []
    for index, entry in enumerate(document.get("rules", [])):
        pointer = f"/rules/{index}/rule"
        rule, rule_issues = compile_rule(entry["rule"], pointer)
        issues += rule_issues
        if rule is not None:
            issues += _unknown_variables(rule, schema)
            rules.append(CrossFieldRule(entry["code"], entry.get("path", ""), rule, entry["message"]))
    conditions: list[FieldCondition] = []
    for field, entry in document.get("conditions", {}).items():
        pointer = f"/conditions/{escape(field)}"
        if field not in properties:
            issues.append(Issue(pointer, "definition.unknown_field", {"field": field}))
            continue
        compiled: dict[str, CompiledRule | None] = {"visibleWhen": None, "requiredWhen": None}
        for key in compiled:
            if key in entry:
                rule, rule_issues = compile_rule(entry[key], f"{pointer}/{key}")
                issues += rule_issues
                if rule is not None:
                    issues += _unknown_variables(rule, schema)
                    compiled[key] = rule
        conditions.append(FieldCondition(field, compiled["visibleWhen"], compiled["requiredWhen"]))
    issues += list(_ui_issues(document.get("ui", {}), properties))
    refs: dict[str, str] = {}
    for field, ref in document.get("refs", {}).items():
        if field not in properties:
            issues.append(Issue(f"/refs/{field}", "definition.unknown_field", {"field": field}))
        elif ref["form"] != document["key"] and not form_exists(ref["form"]):
            issues.append(Issue(f"/refs/{field}/form", "definition.unknown_form", {"form": ref["form"]}))
        refs[field] = ref["form"]
        for target in ref.get("fill", {}):
            if target not in properties:
                issues.append(Issue(f"/refs/{field}/fill/{target}", "definition.unknown_field", {"field": target}))
    sensitive = tuple(_sensitive_paths(schema, ()))
    for path in sensitive:
        if len(path) == 1 and path[0] in refs:
            issues.append(Issue(f"/refs/{escape(path[0])}", "definition.sensitive_ref", {"field": path[0]}))
    if issues:
        return None, issues
    spec = FormSpec(
        key=document["key"],
        version=version,
        title=document["title"],
        schema=schema,
        validator=validator,
        columns=tuple(_columns(properties)),
        computed=tuple(computed),
        rules=tuple(rules),
        refs=refs,
        decimals=tuple(_decimal_fields(schema, ())),
        process=document.get("process"),
        ui=document.get("ui", {}),
        conditions=tuple(conditions),
        description=document.get("description"),
        sensitive=sensitive,
        ref_fills={field: dict(ref["fill"]) for field, ref in document.get("refs", {}).items() if ref.get("fill")},
    )
    return spec, []


def _sensitive_paths(node: Mapping[str, Any], parts: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """The paths of the properties marked ``"sensitive": true``, through nested objects and
    array items; a marked property is sealed whole (nothing under it is looked at)."""
    for name, child in (node.get("properties") or {}).items():
        if not isinstance(child, Mapping):
            continue
        if child.get("sensitive") is True:
            yield (*parts, name)
            continue
        yield from _sensitive_paths(child, (*parts, name))
        items = child.get("items")
        if isinstance(items, Mapping):
            yield from _sensitive_paths(items, (*parts, name, "*"))


def _ui_issues(ui: Mapping[str, Any], properties: Mapping[str, Any]) -> Iterator[Issue]:
    for index, name in enumerate(ui.get("order", [])):
        if name not in properties:
            yield Issue(f"/ui/order/{index}", "definition.unknown_field", {"field": name})
    for name in ui.get("fields", {}):
        if name not in properties:
            yield Issue(f"/ui/fields/{escape(name)}", "definition.unknown_field", {"field": name})


def _check_schema(schema: Mapping[str, Any]) -> Iterator[Issue]:
    for error in _META_SCHEMA.iter_errors(schema):
        yield Issue(to_pointer(error.absolute_path, "/schema"), "definition.bad_schema", {"detail": error.message[:200]})
    for pointer, value in _walk_keyword(schema, "/schema", "$schema"):
        # another dialect's URI makes a browser-side validator fetch it, or read the schema by
        # rules the server does not apply; an object is a property that happens to be named so
        if not isinstance(value, Mapping) and value not in _DIALECTS:
            yield Issue(pointer, "definition.bad_schema", {"detail": f"$schema must be {_DIALECTS[0]} (or absent)"})
    for pointer, pattern in _patterns(schema):
        mismatch = ecma_mismatch(pattern)
        if mismatch is not None:
            yield Issue(pointer, "definition.bad_pattern", {"detail": f"{pattern[:100]!r} uses {mismatch}"})
    embedded = {target for _, target, _ in _walk_ids(schema, "/schema", "")}
    for pointer, value, base in _walk_refs(schema, "/schema", ""):
        if not isinstance(value, str):
            yield Issue(pointer, "definition.remote_ref")
        elif not value.startswith("#") and urldefrag(urljoin(base, value)).url not in embedded:
            yield Issue(pointer, "definition.remote_ref")
    for pointer, value in _walk_keyword(schema, "/schema", "x-decimal"):
        scale = value.get("scale") if isinstance(value, Mapping) else None
        if not isinstance(value, Mapping) or set(value) != {"scale"} or isinstance(scale, bool) \
                or not isinstance(scale, int) or not 0 <= scale <= MAX_SCALE:
            yield Issue(pointer, "definition.bad_decimal", {"limit": MAX_SCALE})


def _patterns(node: Any, pointer: str = "/schema") -> Iterator[tuple[str, str]]:
    """Every ``pattern`` value and ``patternProperties`` key, with its pointer (values under
    ``const``, ``enum``, ``default`` and ``examples`` are data)."""
    if isinstance(node, list):
        for index, value in enumerate(node):
            yield from _patterns(value, f"{pointer}/{index}")
        return
    if not isinstance(node, Mapping):
        return
    for key, value in node.items():
        child = f"{pointer}/{escape(key)}"
        if key == "pattern" and isinstance(value, str):
            yield child, value
        elif key == "patternProperties" and isinstance(value, Mapping):
            yield from ((f"{child}/{escape(name)}", name) for name in value)
        if key not in ("const", "enum", "default", "examples"):
            yield from _patterns(value, child)


def _walk_keyword(node: Any, pointer: str, keyword: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{pointer}/{escape(key)}"
            if key == keyword:
                yield child, value
            else:
                yield from _walk_keyword(value, child, keyword)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk_keyword(value, f"{pointer}/{index}", keyword)


def _walk_refs(node: Any, pointer: str, base: str) -> Iterator[tuple[str, Any, str]]:
    """Every ``$ref`` with the base URI it resolves against. A ``$ref`` whose value is an object
    is a property that happens to be named so, not a reference."""
    if isinstance(node, dict):
        if isinstance(node.get("$id"), str):
            base = urldefrag(urljoin(base, node["$id"])).url
        for key, value in node.items():
            child = f"{pointer}/{escape(key)}"
            if key in _REF_KEYWORDS and not isinstance(value, dict):
                yield child, value, base
            else:
                yield from _walk_refs(value, child, base)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk_refs(value, f"{pointer}/{index}", base)


def _walk_ids(node: Any, pointer: str, base: str) -> Iterator[tuple[str, str, str]]:
    """Resources embedded in the schema by ``$id``: a ``$ref`` to one of them stays inside the
    uploaded document, so it is local even though it does not start with ``#``."""
    if isinstance(node, dict):
        if isinstance(node.get("$id"), str):
            base = urldefrag(urljoin(base, node["$id"])).url
            yield pointer, base, base
        for key, value in node.items():
            yield from _walk_ids(value, f"{pointer}/{escape(key)}", base)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk_ids(value, f"{pointer}/{index}", base)


def _schema_build_issue(exc: jsonschema_rs.ValidationError) -> Issue:
    pointer = to_pointer(exc.instance_path, "/schema")
    detail = str(exc).splitlines()[0][:200]
    code = "definition.bad_pattern" if "regex" in detail or pointer.endswith("/pattern") else "definition.bad_schema"
    return Issue(pointer, code, {"detail": detail})


def _compile_computed(
    entries: Mapping[str, Any], schema: Mapping[str, Any]
) -> tuple[list[ComputedField], list[Issue]]:
    properties: Mapping[str, Any] = schema.get("properties", {})
    issues: list[Issue] = []
    compiled: dict[str, ComputedField] = {}
    depends: dict[str, set[str]] = {}
    for name, entry in entries.items():
        pointer = f"/computed/{escape(name)}"
        if name not in properties:
            issues.append(Issue(pointer, "definition.computed_undeclared", {"field": name}))
            continue
        rule, rule_issues = compile_rule(entry["rule"], f"{pointer}/rule")
        if rule is None:
            issues += rule_issues
            continue
        issues += _unknown_variables(rule, schema)
        field_schema = properties[name]
        scale = 0 if _json_type(field_schema) == "integer" else _decimal_scale(field_schema)
        compiled[name] = ComputedField(name, rule, entry.get("rounding", "half_up"), scale)
        depends[name] = {use.name.split(".")[0] for use in rule.variables} & set(entries)
    order, cycle = _topological(depends)
    if cycle:
        issues.append(Issue(f"/computed/{escape(cycle[0])}", "definition.computed_cycle", {"cycle": " -> ".join(cycle)}))
    return [compiled[name] for name in order if name in compiled], issues


def _topological(depends: Mapping[str, set[str]]) -> tuple[list[str], list[str]]:
    order: list[str] = []
    state: dict[str, int] = {}
    for root in sorted(depends):
        if state.get(root):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(depends[root])))]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                state[node] = 2
                order.append(node)
            elif state.get(child) == 1:
                path = [name for name, _ in stack]
                return order, path[path.index(child):] + [child]
            elif not state.get(child):
                state[child] = 1
                stack.append((child, iter(sorted(depends.get(child, ())))))
    return order, []


def _unknown_variables(rule: CompiledRule, schema: Mapping[str, Any]) -> list[Issue]:
    return [
        Issue(use.pointer, "definition.unknown_field", {"field": use.name})
        for use in rule.variables
        if not field_exists(schema, use.name)
    ]


def field_exists(schema: Mapping[str, Any], dotted: str) -> bool:
    """Whether ``a.b.0.c`` names a property declared in ``schema``. A node that declares no
    ``properties`` (a free-form object) accepts any deeper name."""
    node: Any = schema
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return False
        if "properties" in node:
            properties = node["properties"]
            if part not in properties:
                return False
            node = properties[part]
        elif "items" in node and part.isdigit():
            node = node["items"]
        elif node.get("type") == "object" or "additionalProperties" in node:
            return True
        else:
            return False
    return True


def _json_type(field_schema: Mapping[str, Any]) -> str | None:
    declared = field_schema.get("type")
    if isinstance(declared, list):
        non_null = [item for item in declared if item != "null"]
        return non_null[0] if len(non_null) == 1 else None
    if declared is None and "enum" in field_schema:
        values = [value for value in field_schema["enum"] if value is not None]
        if values and all(isinstance(value, str) for value in values):
            return "string"
    if declared is None and "oneOf" in field_schema:
        consts = [branch.get("const") for branch in field_schema["oneOf"] if isinstance(branch, Mapping)]
        if consts and all(isinstance(value, str) for value in consts):
            return "string"
    return declared if isinstance(declared, str) else None


def _decimal_scale(field_schema: Mapping[str, Any]) -> int | None:
    marker = field_schema.get("x-decimal")
    if isinstance(marker, Mapping) and isinstance(marker.get("scale"), int):
        return int(marker["scale"])
    return None


def _columns(properties: Mapping[str, Any]) -> Iterator[ColumnSpec]:
    for name, field_schema in properties.items():
        if not isinstance(field_schema, Mapping):
            continue
        json_type = _json_type(field_schema)
        column_type: ColumnType
        scale = None
        if json_type == "string":
            fmt = field_schema.get("format")
            column_type = "date" if fmt == "date" else "datetime" if fmt == "date-time" else "string"
        elif json_type == "integer":
            column_type = "integer"
        elif json_type == "number":
            scale = _decimal_scale(field_schema)
            column_type = "decimal" if scale is not None else "number"
        elif json_type == "boolean":
            column_type = "boolean"
        else:
            column_type = "json"
        yield ColumnSpec(name, column_type, scale, field_schema.get("title"))


def _decimal_fields(node: Mapping[str, Any], parts: tuple[str, ...]) -> Iterator[DecimalField]:
    scale = _decimal_scale(node)
    if scale is not None and parts:
        yield DecimalField(parts, scale)
    for name, child in (node.get("properties") or {}).items():
        if isinstance(child, Mapping):
            yield from _decimal_fields(child, parts + (name,))
    items = node.get("items")
    if isinstance(items, Mapping):
        yield from _decimal_fields(items, parts + ("*",))
