"""OLTP storage: SQLAlchemy models and the database handle. The only place that writes SQL for
the transactional store."""
from __future__ import annotations

from engine.store.database import Database
from engine.store import models
from engine.store import audit  # noqa: F401  (chains every audit entry a session writes)

__all__ = ["Database", "models"]
