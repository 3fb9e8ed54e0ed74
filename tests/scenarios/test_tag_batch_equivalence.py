"""The batched tag recomputation (tagging.recompute: aggregates read per batch of records) gives
exactly what the one-record-at-a-time path (tagging.recompute_each) gives: the same changes in the
same order, the same ``record_tags`` and the same ``tag_history``, over random-ish customers with
subsidiaries (to several levels), accounts and complaints; and an import retags only the records
it may change."""
from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from engine import Engine
from engine.insight import tagging
from engine.store.models import RecordRow, RecordTagRow, TagChangeRow

BANK = Path(__file__).resolve().parents[2] / "examples" / "bank"
KINDS = ("form", "process", "profile", "tag", "trigger")


class _Rollback(Exception):
    pass


def _populate(engine: Engine, seed: int) -> list[str]:
    rnd = random.Random(seed)
    customers: list[str] = []
    for number in range(40):
        data: dict[str, Any] = {"company_name": f"Company {number}"}
        if customers and rnd.random() < 0.5:  # subsidiaries, several levels deep
            data["parent_company"] = rnd.choice(customers)
        customers.append(engine.submit("customer", data)["id"])
    today = engine.clock.now().date()
    for _ in range(120):
        engine.submit("deposit_account", {"customer_id": rnd.choice(customers),
                                          "product": rnd.choice(["current", "time_deposit", "structured_deposit", "wealth_management"]),
                                          "average_balance": rnd.choice([0, 10, 999999, 5000000, 6000000, 20000000])})
    for _ in range(60):
        engine.submit("complaint", {"customer_id": rnd.choice(customers), "product": "loan", "issue": "fees",
                                    "channel": rnd.choice(["web", "phone"]), "satisfaction": rnd.randint(0, 10),
                                    "received_on": (today - timedelta(days=rnd.randint(0, 200))).isoformat()})
    return customers


def _run(engine: Engine, recompute: Any, seed: int) -> tuple[list[Any], list[Any], list[Any]]:
    """Forget some tags, recompute every tagged record with ``recompute``, read the outcome, roll back."""
    rnd = random.Random(seed)
    result: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
    catalog = engine.insight.current()
    forms = sorted({tag.form for tag in catalog.tags})
    try:
        with engine.db.transaction() as session:
            ids = list(session.scalars(select(RecordRow.id).where(RecordRow.form_key.in_(forms)).order_by(RecordRow.id)))
            tagged = list(session.scalars(select(RecordTagRow).order_by(RecordTagRow.id)))
            forget = [row.id for row in tagged if rnd.random() < 0.5]
            session.execute(delete(RecordTagRow).where(RecordTagRow.id.in_(forget)))
            first = session.scalar(select(TagChangeRow.id).order_by(TagChangeRow.id.desc()).limit(1)) or 0
            rnd.shuffle(ids)
            changes = recompute(session, catalog, ids + ids[:7], engine.clock.now(), "recompute", read=engine.insight.read)
            session.flush()
            stored = [(row.record_id, row.form_key, row.tag) for row in
                      session.scalars(select(RecordTagRow).order_by(RecordTagRow.record_id, RecordTagRow.tag))]
            history = [(row.record_id, row.tag, row.on, row.cause) for row in
                       session.scalars(select(TagChangeRow).where(TagChangeRow.id > first).order_by(TagChangeRow.id))]
            result = (changes, stored, history)
            raise _Rollback
    except _Rollback:
        pass
    return result


def test_batched_tags_equal_per_record_tags(engine: Engine) -> None:
    engine.load_dir(BANK, kinds=KINDS)
    _populate(engine, 7)
    for seed in (1, 2, 3):
        batched = _run(engine, tagging.recompute, seed)
        each = _run(engine, tagging.recompute_each, seed)
        assert batched == each
        assert batched[0] and batched[2]  # something was forgotten and found again
    assert {tag for _id, _form, tag in _run(engine, tagging.recompute, 4)[1]} >= {"cash_rich"}


def test_batches_smaller_than_the_records_give_the_same_tags(engine: Engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    engine.load_dir(BANK, kinds=KINDS)
    _populate(engine, 11)
    each = _run(engine, tagging.recompute_each, 5)
    monkeypatch.setattr(tagging, "BATCH", 3)
    assert _run(engine, tagging.recompute, 5) == each


def test_an_import_retags_the_records_it_may_change_and_only_those(engine: Engine, tmp_path: Path) -> None:
    engine.load_dir(BANK, kinds=KINDS)
    parent = engine.submit("customer", {"company_name": "Parent"})["id"]
    child = engine.submit("customer", {"company_name": "Child", "parent_company": parent})["id"]
    bystander = engine.submit("customer", {"company_name": "Bystander"})["id"]
    engine.submit("deposit_account", {"customer_id": bystander, "product": "current", "average_balance": 9000000})
    with engine.db.transaction() as session:  # a stale tag no import row touches: left as it is
        session.execute(delete(RecordTagRow).where(RecordTagRow.record_id == bystander))
    source = tmp_path / "accounts.jsonl"
    source.write_text(f'{{"customer_id": "{child}", "product": "current", "average_balance": 7000000}}\n'
                      f'{{"customer_id": "{child}", "product": "time_deposit", "average_balance": 10}}\n')
    report = engine.run_import("deposit_account", source)
    assert report.imported == 2
    with engine.db.read() as session:
        stored = {(row.record_id, row.tag) for row in session.scalars(select(RecordTagRow))}
        causes = {row.cause.split(":")[0] for row in session.scalars(select(TagChangeRow).where(TagChangeRow.record_id == parent))}
    assert {tag for record, tag in stored if record == child} >= {"cash_rich"}
    assert (parent, "cash_rich") in stored  # a subsidiary's accounts count for its parent
    assert causes == {"import"}
    assert not [tag for record, tag in stored if record == bystander]
