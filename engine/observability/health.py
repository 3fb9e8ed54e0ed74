"""Readiness: may this process take traffic? The database answers and its schema is at the
migrations this engine brings (``alembic_version`` equals the bundled head)."""
from __future__ import annotations

import logging
from typing import Any

from engine.errors import Issue

log = logging.getLogger("engine.observability")


def readiness(db: Any) -> list[Issue]:
    """Why ``db`` (``engine.store.Database``) is not ready; empty when it is."""
    try:
        current, head = db.schema_revisions()
    except Exception as exc:  # noqa: BLE001 - readiness reports, never raises
        log.warning("not ready: database unreachable: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return [Issue("/database", "ready.database_unreachable", {"type": type(exc).__name__})]
    if current == head:
        return []
    shown = {"current": ", ".join(sorted(current)) or "none", "head": ", ".join(sorted(head))}
    if current and not current <= _known():
        return [Issue("/database/migrations", "ready.schema_unknown", shown)]
    return [Issue("/database/migrations", "ready.migrations_pending", shown)]


def _known() -> set[str]:
    """Every revision the bundled migrations define."""
    from alembic.script import ScriptDirectory

    from engine.store.database import MIGRATIONS

    return {script.revision for script in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}


__all__ = ["readiness"]
