"""What a frontend needs to draw a form: the JSON Schema with labels in one language, a
react-jsonschema-form uiSchema and a JSON Forms UI schema, and the rules it may preview with
``POST /forms/{key}/evaluate``."""
from __future__ import annotations

import copy
from typing import Any, Mapping

from engine.forms.spec import FormSpec

_RJSF_WIDGETS = {"text": "text", "textarea": "textarea", "select": "select", "radio": "radio",
                 "checkbox": "checkbox", "date": "date", "datetime": "datetime", "email": "email",
                 "uri": "uri", "updown": "updown", "range": "range", "hidden": "hidden", "password": "password"}


def localize(text: Any, language: str) -> Any:
    """``{"zh-CN": ..., "en": ...}`` → the text in ``language`` (English when missing)."""
    if isinstance(text, Mapping):
        return text.get(language) or text.get("en") or next(iter(text.values()), None)
    return text


def render_payload(spec: FormSpec, language: str) -> dict[str, Any]:
    schema = _localized_schema(spec.schema, language)
    computed = [field.name for field in spec.computed]
    for name in computed:
        node = schema.get("properties", {}).get(name)
        if isinstance(node, dict):
            node["readOnly"] = True
    order = list(spec.ui.get("order") or schema.get("properties", {}).keys())
    field_hints: Mapping[str, Any] = spec.ui.get("fields", {})
    return {
        "key": spec.key,
        "version": spec.version,
        "language": language,
        "title": localize(spec.title, language),
        "description": localize(spec.description, language),
        "schema": schema,
        "uiSchema": _rjsf_ui_schema(order, field_hints, computed, language),
        "jsonForms": {"uischema": _json_forms_ui_schema(order, schema, field_hints, computed, language)},
        "computed": computed,
        "conditions": {
            condition.field: {
                **({"visibleWhen": condition.visible_when.source} if condition.visible_when else {}),
                **({"requiredWhen": condition.required_when.source} if condition.required_when else {}),
            }
            for condition in spec.conditions
        },
        "refs": dict(spec.refs),
    }


def _localized_schema(schema: Mapping[str, Any], language: str) -> dict[str, Any]:
    result = copy.deepcopy(dict(schema))
    stack: list[Any] = [result]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if isinstance(node.get("x-title"), Mapping):
            node["title"] = localize(node["x-title"], language)
        if isinstance(node.get("x-description"), Mapping):
            node["description"] = localize(node["x-description"], language)
        labels = node.get("x-enum-titles")
        if isinstance(labels, Mapping) and isinstance(node.get("enum"), list):
            # Labelled choices the way both renderers read them: oneOf of const + title.
            node["oneOf"] = [{"const": value, "title": localize(labels.get(str(value), str(value)), language)}
                             for value in node.pop("enum")]
        for key, value in node.items():
            if isinstance(value, (dict, list)) and not key.startswith("x-"):
                stack.append(value)
    return result


def _rjsf_ui_schema(order: list[str], hints: Mapping[str, Any], computed: list[str], language: str) -> dict[str, Any]:
    ui: dict[str, Any] = {"ui:order": [*order, "*"]}
    for name in set(order) | set(hints) | set(computed):
        entry: dict[str, Any] = {}
        hint = hints.get(name, {})
        if "widget" in hint:
            entry["ui:widget"] = _RJSF_WIDGETS[hint["widget"]]
        if "help" in hint:
            entry["ui:help"] = localize(hint["help"], language)
        if "placeholder" in hint:
            entry["ui:placeholder"] = localize(hint["placeholder"], language)
        if name in computed:
            entry["ui:readonly"] = True
        if entry:
            ui[name] = entry
    return ui


def _json_forms_ui_schema(order: list[str], schema: Mapping[str, Any], hints: Mapping[str, Any],
                          computed: list[str], language: str) -> dict[str, Any]:
    properties = schema.get("properties", {})
    elements = []
    for name in order:
        control: dict[str, Any] = {"type": "Control", "scope": f"#/properties/{name}"}
        label = properties.get(name, {}).get("title")
        if label:
            control["label"] = label
        options: dict[str, Any] = {}
        if name in computed:
            options["readonly"] = True
        if hints.get(name, {}).get("widget") == "textarea":
            options["multi"] = True
        if options:
            control["options"] = options
        elements.append(control)
    return {"type": "VerticalLayout", "elements": elements}
