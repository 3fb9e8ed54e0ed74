"""What the real-data tests share: where the bank example and ../shared/data are, reading the CSV
files the way the importer does, and reading a report result by column name."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BANK = REPO / "examples" / "bank"
MAPPINGS = BANK / "imports"
DATA = REPO.parent / "shared" / "data"


def data_file(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test with the reason."""
    path = DATA.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"real data not present: {path} (the shared data folder ../shared/data "
                    "sits next to the repository in CI)")
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def table(result: dict[str, Any]) -> list[dict[str, Any]]:
    """A report result as one dict per row, keyed by column name."""
    names = [column["name"] for column in result["columns"]]
    return [dict(zip(names, row, strict=True)) for row in result["rows"]]
