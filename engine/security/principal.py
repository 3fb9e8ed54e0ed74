"""Who is acting: an id, roles, and attributes such as a branch."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True)
class Principal:
    id: str
    roles: frozenset[str] = frozenset()
    attributes: Mapping[str, str] = field(default_factory=dict)

    def has_role(self, role: str | None) -> bool:
        return role is not None and role in self.roles


SYSTEM = Principal("system", frozenset({"system"}))
"""The engine itself: rule-decided steps, imports run from the command line."""
