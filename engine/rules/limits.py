"""Bounds on uploaded rules. The native evaluator crashes on very deep rules and panics past its
operation budget, so every rule is measured before it is compiled and metered while it runs."""
from __future__ import annotations

MAX_RULE_DEPTH = 32
"""Nesting of operators and arrays inside one rule."""

MAX_RULE_NODES = 2_000
"""Operators, arrays and literals in one rule."""

OPS_BUDGET = 100_000
"""Operations one evaluation may charge before it is stopped (fails closed)."""
