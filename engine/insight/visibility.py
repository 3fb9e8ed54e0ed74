"""Which tags a principal sees: a tag is computed from data (its rule's fields, the aggregates it
reads over related forms), so it tells what that data is. A tag is visible to a principal only
if the principal may read in full every form field its rule and those aggregates read
(engine.security.definition_access.tag_reads); otherwise it is absent from the 360 view's tags
and timeline and from the event feed, and a record list filtered on it answers as for a tag
that does not exist (the same answer, so no oracle)."""
from __future__ import annotations

from typing import Any

from engine.security.access import Access
from engine.security.definition_access import reads_all, tag_reads


def hidden_tags(catalog: Any, access: Access) -> set[str]:
    """Keys of the catalog's tags ``access`` may not see (none for an unrestricted caller)."""
    if not access.restricted:
        return set()
    return {tag.key for tag in catalog.tags
            if not reads_all(access, tag_reads(tag, catalog.profiles.get(tag.profile)))}


def without_hidden(view: dict[str, Any], hidden: set[str]) -> dict[str, Any]:
    """A 360 view without the tags in ``hidden`` (its ``tags`` and its timeline's tag entries)."""
    if not hidden:
        return view
    return {**view, "tags": [item for item in view.get("tags", []) if item.get("tag") not in hidden],
            "timeline": [entry for entry in view.get("timeline", [])
                         if not (str(entry.get("type", "")).startswith("tag.") and entry.get("tag") in hidden)]}


def events_without_hidden(items: list[dict[str, Any]], hidden: set[str]) -> list[dict[str, Any]]:
    """Event feed items without the changes of tags in ``hidden``."""
    if not hidden:
        return items
    return [item for item in items if not (item.get("topic") == "tag.changed" and isinstance(item.get("payload"), dict)
                                           and item["payload"].get("tag") in hidden)]


__all__ = ["events_without_hidden", "hidden_tags", "without_hidden"]
