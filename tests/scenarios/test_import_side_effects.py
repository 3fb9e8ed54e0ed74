"""An import has the outcome of submitting its rows (its records' triggers fire), except that it
tells nobody: the notifications of the processes it starts are recorded ``withheld``, not sent,
unless the import asks to notify (history loaded into the engine is no news)."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine import Engine
from engine.store.models import InstanceRow, OutboxRow


def _notices(engine: Engine) -> dict[str, int]:
    with engine.db.read() as session:
        rows = session.execute(select(OutboxRow.status, func.count()).where(OutboxRow.channel != "event")
                               .group_by(OutboxRow.status)).all()
    return {status: count for status, count in rows}


def _write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("one_by_one", [False, True])
def test_an_imported_large_flow_alert_starts_a_risk_review_as_a_submitted_one_does(
        bank: Engine, tmp_path: Path, one_by_one: bool) -> None:
    customer = bank.submit("customer", {"company_name": "Acme Trading"})["id"]
    submitted = bank.submit("account_flow_alert", {"customer_id": customer, "amount": Decimal("1500000.00"),
                                                   "pattern": "rapid_in_out", "observed_on": "2026-11-02"})["id"]
    source = _write(tmp_path / "alert.csv", "customer_id,amount,pattern,observed_on",
                    [f"{customer},1500000.00,rapid_in_out,2026-11-03", f"{customer},20.00,other,2026-11-03"])
    report = bank.run_import("account_flow_alert", source, one_by_one=one_by_one, batch_size=1)
    assert report.imported == 2
    with bank.db.read() as session:
        started = session.execute(select(InstanceRow.process_key, InstanceRow.record_id)).all()
    assert sorted(process for process, _ in started) == ["risk_review", "risk_review"]  # not for the small one
    (other,) = [record for _, record in started if record != submitted]
    assert bank.record(other)["data"]["amount"] == Decimal("1500000.00")

@pytest.mark.parametrize("one_by_one", [False, True])
def test_an_import_queues_no_notification_unless_asked(bank: Engine, tmp_path: Path, one_by_one: bool) -> None:
    rows = [f"2019-0{n}-01,Mortgage,Trouble,web" for n in range(1, 4)]
    source = _write(tmp_path / "complaints.csv", "received_on,product,issue,channel", rows)
    report = bank.run_import("complaint", source, one_by_one=one_by_one)
    assert report.imported == 3
    quiet = _notices(bank)
    assert quiet.get("pending", 0) == 0 and quiet.get("withheld", 0) >= 3  # recorded, not queued
    with bank.db.read() as session:  # the feed still has the records
        events = session.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.channel == "event",
                                                                                   OutboxRow.topic == "record.created",
                                                                                   OutboxRow.status == "pending"))
    assert events == 3

    bank.run_import("complaint", source, one_by_one=one_by_one, notify=True)
    assert _notices(bank).get("pending", 0) == quiet["withheld"]  # the same notices, queued this time
