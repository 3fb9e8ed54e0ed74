"""The 360 view of an imported SBA customer: its credit application (linked by the import
mapping's lookup), a complaint linked to it, its tags and aggregates; tags recomputed after the
import."""
from __future__ import annotations

from datetime import timedelta

from engine import Engine

from realdata_support import BANK, MAPPINGS, data_file

KINDS = ("form", "process", "profile", "tag", "trigger")


def test_the_360_of_an_imported_sba_customer_shows_its_applications_complaints_and_tags(engine: Engine) -> None:
    loans = data_file("sba-loans", "SBAcase.11.13.17.csv")
    engine.load_dir(BANK, kinds=KINDS)
    assert engine.run_import("customer", loans, MAPPINGS / "sba_customers.json").imported == 2101
    assert engine.run_import("credit_limit_adjustment", loans, MAPPINGS / "sba_credit_applications.json").imported == 2101
    customers = engine.records("customer", limit=3)["items"]
    customer = customers[0]
    today = engine.clock.now().date()
    engine.submit("complaint", {"customer_id": customer["id"], "received_on": (today - timedelta(days=10)).isoformat(),
                                "product": "Business loan", "issue": "Slow disbursement", "channel": "phone"})
    view = engine.record_360(customer["id"])
    [application] = view["related"]["credit_limit_adjustment"]["items"]
    assert application["data"]["external_id"] == customer["data"]["external_id"]
    assert view["related"]["complaint"]["total"] == 1
    assert [item["tag"] for item in view["tags"]] == ["complained_recently"]
    assert view["aggregates"]["applications"]["value"] == 1
    assert [case["current_step"]["en"] for case in view["instances"] if case["process"] == "credit_limit_adjustment"] \
        == ["Account manager review"]
    assert engine.records("customer", tag="complained_recently")["total"] == 1
    assert engine.record_360(customers[1]["id"])["tags"] == []
