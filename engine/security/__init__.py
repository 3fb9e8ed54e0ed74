"""Principals and (later) roles, field permissions, encryption and the audit chain."""
from __future__ import annotations

from engine.security.principal import SYSTEM, Principal

__all__ = ["Principal", "SYSTEM"]
