"""What a write's insight hooks cost, and that the shortcuts taken keep every result: the batched
aggregates (one query per level of children for all the profile's related forms) equal the
per-record ones, only the aggregates the tags read are computed, the catalog is asked once per
transaction yet an upload made elsewhere is seen by the next write, and a credit-limit
application's hooks issue a handful of statements instead of one per aggregate."""
from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import event, select

from engine import Engine
from engine.insight import aggregates, tagging
from engine.rules import compile_rule
from engine.store.models import RecordRow

BANK = Path(__file__).resolve().parents[2] / "examples" / "bank"
KINDS = ("form", "process", "profile", "tag", "trigger")


def _populate(engine: Engine, seed: int) -> list[str]:
    rnd = random.Random(seed)
    customers: list[str] = []
    for number in range(25):
        data: dict[str, Any] = {"company_name": f"Company {number}"}
        if customers and rnd.random() < 0.6:  # subsidiaries, several levels deep
            data["parent_company"] = rnd.choice(customers)
        customers.append(engine.submit("customer", data)["id"])
    today = engine.clock.now().date()
    for _ in range(60):
        engine.submit("deposit_account", {"customer_id": rnd.choice(customers),
                                          "product": rnd.choice(["current", "time_deposit", "wealth_management"]),
                                          "average_balance": rnd.choice([0, 10, 5000000, 6000000])})
    for _ in range(30):
        engine.submit("complaint", {"customer_id": rnd.choice(customers), "product": "loan", "issue": "fees",
                                    "channel": "web", "satisfaction": rnd.randint(0, 10),
                                    "received_on": (today - timedelta(days=rnd.randint(0, 200))).isoformat()})
    for _ in range(20):
        engine.submit("credit_limit_adjustment", {"customer_id": rnd.choice(customers), "current_limit": 100,
                                                  "requested_limit": rnd.choice([150, 2000000]), "reason": "growth"})
    return customers


def test_batched_aggregates_equal_per_record_aggregates_for_all_or_some_names(engine: Engine) -> None:
    engine.load_dir(BANK, kinds=KINDS)
    customers = _populate(engine, 3)
    profile = engine.insight.current().profiles["customer_360"]
    now = engine.clock.now()
    with engine.db.read() as session:
        each = {item: aggregates.compute(session, profile, item, now, read=engine.insight.read) for item in customers}
        assert aggregates.compute_many(session, profile, customers, now, read=engine.insight.read) == each
        some = {"average_balance", "complaints_90d", "total_approved_limit"}
        assert aggregates.compute_many(session, profile, customers, now, read=engine.insight.read, names=some) == {
            item: {name: value for name, value in figures.items() if name in some} for item, figures in each.items()}
        assert aggregates.compute_many(session, profile, customers, now, names=set()) == {item: {} for item in customers}
    assert any(figures["applications"] for figures in each.values())


def test_only_the_aggregates_a_tag_reads_are_computed(engine: Engine) -> None:
    engine.load_dir(BANK, kinds=KINDS)
    catalog = engine.insight.current()
    profile = catalog.profiles["customer_360"]
    read = {tag.key: tagging.aggregates_read(tag, profile) for tag in catalog.tags}
    assert read == {"cash_rich": {"average_balance"}, "complained_recently": {"complaints_90d"},
                    "cross_sell": {"average_balance", "wealth_products"},
                    "rate_sensitive": {"average_balance", "term_balance"}}

    def tag(rule: Any) -> Any:
        compiled, issues = compile_rule(rule, "/rule")
        assert compiled is not None, issues
        return SimpleNamespace(rule=compiled)

    assert tagging.aggregates_read(tag({"!!": [{"var": "agg"}]}), profile) is None  # the whole object
    assert tagging.aggregates_read(tag({"!!": [{"var": ""}]}), profile) is None  # the whole data
    assert tagging.aggregates_read(tag({"==": [{"var": "company_name"}, "x"]}), profile) == frozenset()
    assert tagging._reads_data(tag({"==": [{"var": "company_name"}, "x"]}))  # the record is opened for it
    assert tagging._reads_data(tag({"!!": [{"var": ""}]}))
    assert not tagging._reads_data(tag({">=": [{"var": "agg.complaints_90d"}, 1]}))  # the bank's tags
    assert tagging.aggregates_read(tag({">": [{"var": "agg.applications"}, {"var": ["agg.flow_alerts_90d", 0]}]}),
                                   profile) == {"applications", "flow_alerts_90d"}


def _statements(engine: Engine) -> tuple[list[str], Any]:
    seen: list[str] = []
    on = [False]

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if on[0]:
            seen.append(" ".join(statement.split())[:60])

    event.listen(engine.db.engine, "before_cursor_execute", count)
    hook = engine.insight.after_record_write

    def counted(*args: Any, **kwargs: Any) -> None:
        on[0] = True
        try:
            hook(*args, **kwargs)
        finally:
            on[0] = False

    return seen, counted


def test_a_credit_application_write_hook_issues_a_few_statements(engine: Engine, monkeypatch: Any) -> None:
    engine.load_dir(BANK, kinds=KINDS)
    customer = engine.submit("customer", {"company_name": "Acme"})["id"]
    engine.submit("deposit_account", {"customer_id": customer, "product": "current", "average_balance": 6000000})
    engine.submit("credit_limit_adjustment", {"customer_id": customer, "current_limit": 100, "requested_limit": 150, "reason": "growth"})
    seen, counted = _statements(engine)
    monkeypatch.setattr(engine.insight, "after_record_write", counted)
    engine.submit("credit_limit_adjustment", {"customer_id": customer, "current_limit": 100, "requested_limit": 200, "reason": "growth"})
    # the catalog, the customer, its related records (all forms at once), its current tags;
    # the hook took about 12 before (a catalog check, one query per aggregate form, ...)
    assert len(seen) <= 4, seen
    assert [item["tag"] for item in engine.record_360(customer)["tags"]] == ["cash_rich", "cross_sell"]


def test_a_tag_uploaded_by_another_engine_applies_to_the_next_write(engine: Engine, database_url: str) -> None:
    engine.load_dir(BANK, kinds=KINDS)
    customer = engine.submit("customer", {"company_name": "Acme"})["id"]
    engine.submit("deposit_account", {"customer_id": customer, "product": "current", "average_balance": 10})
    other = Engine(database_url)
    try:
        other.upload({"kind": "tag", "key": "has_accounts", "profile": "customer_360", "title": "Has accounts",
                      "rule": {">": [{"var": "agg.average_balance"}, 0]}})
    finally:
        other.close()
    engine.submit("deposit_account", {"customer_id": customer, "product": "current", "average_balance": 5})
    assert "has_accounts" in [item["tag"] for item in engine.record_360(customer)["tags"]]


def test_an_import_of_applications_retags_their_customers_as_submissions_do(engine: Engine, tmp_path: Path) -> None:
    engine.load_dir(BANK, kinds=KINDS)
    customers = [engine.submit("customer", {"company_name": f"C{number}"})["id"] for number in range(6)]
    rows = [{"customer_id": customers[number % 6], "product": "current",
             "average_balance": 6000000 if number % 3 == 0 else 10} for number in range(30)]
    source = tmp_path / "accounts.jsonl"
    import json

    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    report = engine.run_import("deposit_account", source)
    assert report.imported == 30
    with engine.db.read() as session:
        assert session.scalar(select(RecordRow.id).where(RecordRow.form_key == "deposit_account").limit(1))
    tagged = {item: sorted(tag["tag"] for tag in engine.record_360(item)["tags"]) for item in customers}
    assert tagged == {item: (["cash_rich", "cross_sell"] if index % 3 == 0 else []) for index, item in enumerate(customers)}


def test_a_customer_import_retags_the_parents_its_rows_name_and_no_other(engine: Engine, tmp_path: Path) -> None:
    from sqlalchemy import delete

    from engine.store.models import RecordTagRow

    engine.load_dir(BANK, kinds=KINDS)
    parent = engine.submit("customer", {"company_name": "Parent"})["id"]
    grand = engine.submit("customer", {"company_name": "Grand"})["id"]
    engine.submit("customer", {"company_name": "Middle", "parent_company": grand})
    bystander = engine.submit("customer", {"company_name": "Bystander"})["id"]
    for item in (parent, grand, bystander):
        engine.submit("deposit_account", {"customer_id": item, "product": "current", "average_balance": 9000000})
    with engine.db.transaction() as session:  # stale: only a write that may change them refreshes them
        session.execute(delete(RecordTagRow).where(RecordTagRow.record_id.in_([parent, grand, bystander])))
    with engine.db.read() as session:
        middle = session.scalar(select(RecordRow.id).where(RecordRow.form_key == "customer",
                                                           RecordRow.data.contains("Middle")))
    import json

    source = tmp_path / "customers.jsonl"
    source.write_text(json.dumps({"company_name": "Child", "parent_company": parent}) + "\n"
                      + json.dumps({"company_name": "Grandchild", "parent_company": middle}) + "\n"
                      + json.dumps({"company_name": "Alone"}) + "\n", encoding="utf-8")
    assert engine.run_import("customer", source).imported == 3
    with engine.db.read() as session:
        stored = {(row.record_id, row.tag) for row in session.scalars(select(RecordTagRow))}
    assert (parent, "cash_rich") in stored  # named by a row
    assert (grand, "cash_rich") in stored  # the parent of a parent a row names
    assert not [tag for record, tag in stored if record == bystander]


def test_recomputing_after_an_import_of_a_form_no_tag_depends_on_reads_nothing_but_the_catalog(engine: Engine) -> None:
    engine.load_dir(BANK, kinds=KINDS)
    person = engine.submit("person", {"full_name": "Li Lei"})["id"]
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine.db.engine, "before_cursor_execute", count)
    try:
        assert engine.insight.recompute_records("person", [person]) == 0
    finally:
        event.remove(engine.db.engine, "before_cursor_execute", count)
    selects = [" ".join(item.split()) for item in seen if item.lstrip().upper().startswith("SELECT")]
    assert len(selects) <= 1 and all("FROM definitions" in item for item in selects), selects  # the catalog only


def test_an_import_recomputes_each_record_its_rows_name_once(engine: Engine, tmp_path: Path, monkeypatch: Any) -> None:
    import json

    engine.load_dir(BANK, kinds=KINDS)
    customers = [engine.submit("customer", {"company_name": f"C{number}"})["id"] for number in range(3)]
    asked: list[str] = []
    recompute = tagging.recompute

    def counted(session: Any, catalog: Any, record_ids: Any, *args: Any, **kwargs: Any) -> Any:
        record_ids = list(record_ids)
        asked.extend(record_ids)
        return recompute(session, catalog, record_ids, *args, **kwargs)

    monkeypatch.setattr(tagging, "BATCH", 4)  # rows naming the same customers in several batches
    monkeypatch.setattr(tagging, "recompute", counted)
    source = tmp_path / "accounts.jsonl"
    source.write_text("".join(json.dumps({"customer_id": customers[number % 3], "product": "current",
                                          "average_balance": 6000000}) + "\n" for number in range(12)), encoding="utf-8")
    assert engine.run_import("deposit_account", source).imported == 12
    assert sorted(asked) == sorted(customers)
    assert all([tag["tag"] for tag in engine.record_360(item)["tags"]] == ["cash_rich", "cross_sell"] for item in customers)
