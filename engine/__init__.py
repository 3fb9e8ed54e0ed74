"""lowcode-engine: forms, processes and reports from JSON definitions.

The public embedding API is :class:`Engine`; its errors live in :mod:`engine.errors`.
"""
from __future__ import annotations

from engine.clock import Clock, FakeClock, SystemClock
from engine.errors import (
    BadRequest,
    Conflict,
    DefinitionInvalid,
    EngineError,
    Forbidden,
    Invalid,
    Issue,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    ValidationFailed,
)
from engine.facade import Engine
from engine.security import Principal

__all__ = [
    "BadRequest",
    "Clock",
    "Conflict",
    "DefinitionInvalid",
    "Engine",
    "EngineError",
    "FakeClock",
    "Forbidden",
    "Invalid",
    "Issue",
    "NotFound",
    "PreconditionFailed",
    "PreconditionRequired",
    "Principal",
    "SystemClock",
    "ValidationFailed",
]
