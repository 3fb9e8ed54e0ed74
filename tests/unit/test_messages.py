"""The message catalogue: every code once, each in English and Chinese (a code written twice in
the dict literal silently keeps only the later text)."""
from __future__ import annotations

import ast
from pathlib import Path

import engine.messages
from engine.messages import CATALOGUE


def test_no_code_is_written_twice() -> None:
    tree = ast.parse(Path(engine.messages.__file__).read_text(encoding="utf-8"))
    literal = next(node.value for node in ast.walk(tree)
                   if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "CATALOGUE")
    codes = [key.value for key in literal.keys if isinstance(key, ast.Constant)]
    assert sorted({code for code in codes if codes.count(code) > 1}) == []


def test_every_code_speaks_both_languages() -> None:
    assert [code for code, texts in CATALOGUE.items() if not texts.get("en") or not texts.get("zh-CN")] == []
