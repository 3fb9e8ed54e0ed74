"""Check uploaded documents against the published meta-schemas in ``metadata/`` (python-jsonschema,
with a local registry: nothing is fetched)."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping

import jsonschema
from referencing import Registry, Resource

from engine.errors import Issue
from engine.jsonpointer import pointer

METADATA_DIR = Path(__file__).resolve().parent.parent / "metadata"
KINDS = ("form", "process", "report", "dashboard", "roles", "profile", "tag", "trigger")


@lru_cache(maxsize=None)
def _registry() -> Registry:
    resources = []
    for path in sorted(METADATA_DIR.glob("*.schema.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        resources.append((document["$id"], Resource.from_contents(document)))
    return Registry().with_resources(resources)


@lru_cache(maxsize=None)
def _validator(kind: str) -> jsonschema.Draft202012Validator:
    document = json.loads((METADATA_DIR / f"{kind}.schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(document, registry=_registry())


def check_against_metaschema(kind: str, document: Mapping[str, Any]) -> list[Issue]:
    """Every place where ``document`` breaks ``metadata/<kind>.schema.json``."""
    issues = [
        Issue(pointer(error.absolute_path), "definition.schema", {"detail": _detail(error)})
        for error in _leaf_errors(_validator(kind).iter_errors(document))
    ]
    return sorted(issues, key=lambda issue: issue.path)


MAX_DETAIL = 200
"""python-jsonschema's messages start with the offending instance (a whole array over maxItems,
a long text): a detail never echoes more than this many characters of it."""
_WITHOUT_INSTANCE = {
    "maxItems": "has more than {} items", "minItems": "has fewer than {} items",
    "maxLength": "is longer than {} characters", "minLength": "is shorter than {} characters",
    "maxProperties": "has more than {} members", "minProperties": "has fewer than {} members",
}


def _detail(error: jsonschema.ValidationError) -> str:
    template = _WITHOUT_INSTANCE.get(str(error.validator))
    if template is not None:
        return template.format(error.validator_value)
    if error.validator == "enum" and isinstance(error.validator_value, list):
        options = [repr(option)[:40] for option in error.validator_value[:20]]
        more = len(error.validator_value) - len(options)
        return "is not one of " + ", ".join(options) + (f", …(+{more})" if more > 0 else "")
    message = error.message
    return message if len(message) <= MAX_DETAIL else message[:MAX_DETAIL] + "…"


def _leaf_errors(errors: Iterator[jsonschema.ValidationError]) -> Iterator[jsonschema.ValidationError]:
    # For oneOf/anyOf failures the useful message is in the best-matching branch.
    for error in errors:
        if error.context:
            yield jsonschema.exceptions.best_match(error.context)
        else:
            yield error

