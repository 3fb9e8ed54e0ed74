"""JSONLogic rules: static checks at upload, guarded evaluation at run time."""
from __future__ import annotations

from engine.rules.compiler import CompiledRule, RuleError, compile_rule, is_truthy, rule_variables

__all__ = ["CompiledRule", "RuleError", "compile_rule", "is_truthy", "rule_variables"]
