"""engine/ knows nothing about the bank: every bank word lives in examples/bank as JSON
(DESIGN.md §1). The same check as ``grep -riE 'loan|credit|complaint|bank' engine/``."""
from __future__ import annotations

import re
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "engine"
BANK_WORDS = re.compile(r"loan|credit|complaint|bank", re.IGNORECASE)


def test_no_file_under_engine_names_the_bank() -> None:
    found = []
    for path in sorted(ENGINE.rglob("*")):
        if path.is_file() and path.suffix in {".py", ".md", ".json", ".txt", ".toml", ".ini", ".mako"}:
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if BANK_WORDS.search(line):
                    found.append(f"{path.relative_to(ENGINE.parent)}:{number}: {line.strip()[:80]}")
    assert found == []
