"""Which insight definitions are current: the latest profile, tag and trigger versions, and which
forms refer to which (the record graph's edges), rebuilt only when a definition was uploaded."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


from engine.insight.spec import ProfileSpec, TagSpec, TriggerSpec


@dataclass(frozen=True)
class Catalog:
    profiles: dict[str, ProfileSpec] = field(default_factory=dict)
    """By profile key."""
    tags: tuple[TagSpec, ...] = ()
    triggers: tuple[TriggerSpec, ...] = ()
    referrers: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    """Form -> ``(form, field)`` of every reference field (of a latest form version) pointing at it."""
    refs: dict[str, dict[str, str]] = field(default_factory=dict)
    """Form -> its reference fields and their target forms (latest versions)."""

    def profile_of(self, form_key: str) -> ProfileSpec | None:
        """The profile of a form (the first by key when several name it)."""
        return next((spec for key, spec in sorted(self.profiles.items()) if spec.form == form_key), None)

    def tags_of(self, form_key: str) -> tuple[TagSpec, ...]:
        return tuple(tag for tag in self.tags if tag.form == form_key)

    def tag(self, key: str) -> TagSpec | None:
        return next((tag for tag in self.tags if tag.key == key), None)


class CatalogSource:
    """Builds the :class:`Catalog` from the registry, again only after a new upload."""

    def __init__(self, db: Any, registry: Any) -> None:
        self._db = db
        self._registry = registry
        self._lock = threading.Lock()
        self._built: tuple[tuple[int, int], Catalog] | None = None
        self._info_key = ("insight.catalog", id(self))

    def current(self, session: Any | None = None) -> Catalog:
        """The catalog as of the newest definition ``session`` sees; asked of the database once
        per transaction of ``session`` (the hooks of one write, and the writes a trigger chain
        makes in it, share what its first look found)."""
        if session is None:
            with self._db.read() as reader:
                return self.current(reader)
        transaction = session.get_transaction() if hasattr(session, "get_transaction") else None
        held = session.info.get(self._info_key) if transaction is not None else None
        if held is not None and held[0] is transaction:
            return held[1]
        catalog = self._current(session)
        transaction = session.get_transaction() if hasattr(session, "get_transaction") else None
        if transaction is not None:  # the query began it, if nothing had
            session.info[self._info_key] = (transaction, catalog)
        return catalog

    def _current(self, session: Any) -> Catalog:
        # The registry's snapshot (keyed by the table's row count and highest id: a definition
        # committed out of id order is seen too), pinned for the operation when it is.
        snapshot = self._registry.snapshot(session)
        newest = snapshot.stamp
        built = self._built
        if built is not None and built[0] == newest:
            return built[1]
        rows = [(kind, key, version) for (kind, key), version in sorted(snapshot.latest.items())]
        profiles: dict[str, ProfileSpec] = {}
        tags: list[TagSpec] = []
        triggers: list[TriggerSpec] = []
        refs: dict[str, dict[str, str]] = {}
        for kind, key, version in rows:
            if kind not in ("form", "profile", "tag", "trigger"):
                continue
            spec = self._registry.spec(kind, key, version)
            if kind == "form" and spec is not None:
                refs[key] = dict(spec.refs)
            elif isinstance(spec, ProfileSpec):
                profiles[key] = spec
            elif isinstance(spec, TagSpec):
                tags.append(spec)
            elif isinstance(spec, TriggerSpec):
                triggers.append(spec)
        referrers: dict[str, list[tuple[str, str]]] = {}
        for form_key, fields in sorted(refs.items()):
            for name, target in fields.items():
                referrers.setdefault(target, []).append((form_key, name))
        catalog = Catalog(profiles, tuple(tags), tuple(triggers),
                          {key: tuple(value) for key, value in referrers.items()}, refs)
        with self._lock:
            self._built = (newest, catalog)
        return catalog


__all__ = ["Catalog", "CatalogSource"]
