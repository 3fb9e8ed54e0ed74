"""JSON Merge Patch (RFC 7396): how ``PATCH /records/{id}`` changes a stored document.

A member of the patch replaces the target's member of the same name; ``null`` removes it; an
object merges into an object recursively; anything else (arrays included) replaces whole.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.jsoncodec import dumps


def merge_patch(target: Any, patch: Any) -> Any:
    """The result of applying ``patch`` to ``target``; neither argument is changed."""
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Top-level names whose value was added, removed or changed, sorted. Values compare by
    their exact JSON text, so ``1.0`` → ``1.00`` is a change (it is stored differently)."""
    names = set(before) | set(after)
    return sorted(name for name in names
                  if (name in before) != (name in after) or dumps(before.get(name)) != dumps(after.get(name)))


__all__ = ["changed_fields", "merge_patch"]
