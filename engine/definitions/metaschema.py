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
KINDS = ("form", "process", "report", "dashboard")


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
        Issue(pointer(error.absolute_path), "definition.schema", {"detail": error.message[:300]})
        for error in _leaf_errors(_validator(kind).iter_errors(document))
    ]
    return sorted(issues, key=lambda issue: issue.path)


def _leaf_errors(errors: Iterator[jsonschema.ValidationError]) -> Iterator[jsonschema.ValidationError]:
    # For oneOf/anyOf failures the useful message is in the best-matching branch.
    for error in errors:
        if error.context:
            yield jsonschema.exceptions.best_match(error.context)
        else:
            yield error

