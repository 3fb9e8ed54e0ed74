"""The definitions registry: upload, meta-schema and semantic validation, versions, and the
cache of compiled specs."""
from __future__ import annotations

from engine.definitions.registry import DefinitionRegistry, UploadResult

__all__ = ["DefinitionRegistry", "UploadResult"]
