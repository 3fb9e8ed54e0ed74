"""Customer insight over the record graph: profiles (360 views and their aggregates), tags,
triggers and the integration event feed. See README.md."""
from __future__ import annotations

from engine.insight import events  # noqa: F401  (numbers every event outbox row a session writes)
from engine.insight.catalog import Catalog, CatalogSource
from engine.insight.service import Insight
from engine.insight.spec import AggregateSpec, ProfileSpec, TagSpec, TriggerSpec

__all__ = ["AggregateSpec", "Catalog", "CatalogSource", "Insight", "ProfileSpec", "TagSpec", "TriggerSpec"]
