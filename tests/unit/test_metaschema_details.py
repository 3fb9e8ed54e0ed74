"""A definition error never echoes the offending instance in full."""
from __future__ import annotations

import json
from pathlib import Path

from engine.definitions.metaschema import MAX_DETAIL, check_against_metaschema

DASHBOARD = Path(__file__).resolve().parents[2] / "examples" / "bank" / "dashboards" / "satisfaction.json"


def test_a_dashboard_over_max_items_does_not_repeat_its_array() -> None:
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    document["parameters"] = [f"p{index}" for index in range(5000)]
    issues = [issue for issue in check_against_metaschema("dashboard", document) if issue.path == "/parameters"]
    assert [issue.params["detail"] for issue in issues] == ["has more than 20 items"]


def test_any_other_detail_is_cut() -> None:
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    document["kind"] = "x" * 10_000
    details = [issue.params["detail"] for issue in check_against_metaschema("dashboard", document)]
    assert details and all(len(detail) <= MAX_DETAIL + 1 for detail in details)
