"""The bank example's SLAs on an injected clock: the credit-limit steps' 24 business hours on
China's calendar (Spring Festival 2026 and its make-up Saturday), the reminder at 20 h, the
escalation to the branch head at 24 h; the complaint process's 48 h, reassignment, customer
confirmation with a 7-day timeout; the applicant notified at each state change."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from engine import Engine, FakeClock, Principal
from engine.jsoncodec import loads
from engine.store.models import OutboxRow, TimerRow

CST = timezone(timedelta(hours=8))
APPLICANT = Principal("clerk-7", frozenset({"teller"}))
MANAGER = Principal("mgr-01", frozenset({"account_manager"}))
BRANCH_HEAD = Principal("head-01", frozenset({"branch_head"}))


def _at(clock: FakeClock, when: datetime) -> None:
    clock.advance(when - clock.now())


def _customer(bank: Engine) -> str:
    return bank.submit("customer", {"company_name": "Fujian Example Trading Co., Ltd.", "region": "Fujian",
                                    "risk_level": "low"}, APPLICANT)["id"]


def _outbox(bank: Engine, topic: str) -> list[OutboxRow]:
    with bank.db.read() as session:
        return list(session.scalars(select(OutboxRow).where(OutboxRow.topic == topic).order_by(OutboxRow.id)).all())


def _timers(bank: Engine, task_id: str) -> dict[tuple[str, int], tuple[str, datetime]]:
    with bank.db.read() as session:
        rows = session.scalars(select(TimerRow).where(TimerRow.task_id == task_id)).all()
        return {(row.kind, row.step): (row.status, row.fire_at) for row in rows}


@pytest.fixture
def application(bank: Engine, clock: FakeClock) -> dict[str, Any]:
    """A 25 % rise submitted on Friday 13 February 2026 at 16:00 in Shanghai, the eve of the
    make-up working Saturday before Spring Festival."""
    _at(clock, datetime(2026, 2, 13, 16, 0, tzinfo=CST))
    customer = _customer(bank)
    record = bank.submit("credit_limit_adjustment", {
        "customer_id": customer, "current_limit": Decimal("2000000.00"), "requested_limit": Decimal("2500000.00"),
        "risk_rating": "medium", "reason": "Seasonal working capital"}, APPLICANT)
    return record


def test_due_time_counts_24_business_hours_across_spring_festival(bank: Engine, application: dict[str, Any]) -> None:
    instance = bank.instance(application["instances"][0]["id"])
    (task,) = [t for t in instance["tasks"] if t["status"] == "open"]
    # Fri 16:00-17:30 (1.5 h) + make-up Sat 14 Feb (7 h) + Tue 24 and Wed 25 (14 h; 15-23 Feb are
    # holidays or weekend) = 22.5 h; 1.5 h more on Thu 26 Feb: 10:30 in Shanghai.
    assert task["due_at"] == datetime(2026, 2, 26, 10, 30, tzinfo=CST).astimezone(timezone.utc).isoformat()
    timers = _timers(bank, task["id"])
    # the reminder after 20 business hours: 15.5 h by Wed morning, 09:00-12:00 and 13:30-15:00.
    assert timers[("remind", 0)] == ("pending", datetime(2026, 2, 25, 15, 0, tzinfo=CST))
    assert timers[("escalate", 0)] == ("pending", datetime(2026, 2, 26, 10, 30, tzinfo=CST))
    assert timers[("due", 0)][1] == datetime(2026, 2, 26, 10, 30, tzinfo=CST)


def test_reminder_then_escalation_to_the_branch_head_who_decides(bank: Engine, clock: FakeClock,
                                                                 application: dict[str, Any]) -> None:
    instance_id = application["instances"][0]["id"]
    (task,) = [t for t in bank.instance(instance_id)["tasks"] if t["status"] == "open"]

    _at(clock, datetime(2026, 2, 25, 14, 59, tzinfo=CST))
    assert bank.run_timers()["fired"] == 0
    assert _outbox(bank, "notify.remind") == []

    _at(clock, datetime(2026, 2, 25, 15, 0, tzinfo=CST))
    assert bank.run_timers()["fired"] == 1
    (reminder,) = _outbox(bank, "notify.remind")
    assert (reminder.channel, reminder.recipient) == ("app", "role:account_manager")
    assert "2026-02-26T02:30:00+00:00" in loads(reminder.payload)["text"]["en"]
    assert bank.run_timers()["fired"] == 0  # fired once

    _at(clock, datetime(2026, 2, 26, 10, 30, tzinfo=CST))
    assert bank.run_timers()["fired"] == 2  # escalation and the SLA breach
    (escalation,) = _outbox(bank, "notify.escalate")
    assert (escalation.channel, escalation.recipient) == ("app", "role:branch_head")
    assert len(_outbox(bank, "task.overdue")) == 1
    tasks = bank.instance(instance_id)["tasks"]
    head_task = next(t for t in tasks if t["origin"] == "escalation")
    assert (head_task["assignee_role"], head_task["status"], head_task["state"]) == ("branch_head", "open", "manager_review")

    after = bank.act(head_task["id"], "approve", BRANCH_HEAD, "Approved on escalation")
    assert after["state"] == "risk_countersign"
    statuses = {t["id"]: t["status"] for t in after["tasks"]}
    assert statuses[task["id"]] == "cancelled"  # the account manager's task closed, kept in history
    assert _timers(bank, task["id"])[("remind", 0)][0] == "fired"
    # nothing of the closed step fires any more, even long after
    clock.advance(timedelta(days=30))
    fired = bank.run_timers()
    # only the countersign's own timers (2 officers x remind, escalate, due) are due by now
    assert fired["fired"] == 6
    assert all(status != "pending" for status, _ in _timers(bank, task["id"]).values())


def test_applicant_gets_an_sms_at_every_state_change(bank: Engine, clock: FakeClock,
                                                     application: dict[str, Any]) -> None:
    instance_id = application["instances"][0]["id"]
    (task,) = [t for t in bank.instance(instance_id)["tasks"] if t["status"] == "open"]
    bank.act(task["id"], "reject", MANAGER, "Insufficient collateral")
    texts = [(row.channel, row.recipient, loads(row.payload)["text"]["en"]) for row in _outbox(bank, "notify.enter")
             if row.recipient == "user:clerk-7"]
    assert texts == [
        ("sms", "user:clerk-7", "Your Credit limit adjustment approval (requested limit 2500000.00) is now at: Instant approval rules."),
        ("sms", "user:clerk-7", "Your Credit limit adjustment approval (requested limit 2500000.00) is now at: Account manager review."),
        ("sms", "user:clerk-7", "Your Credit limit adjustment approval (requested limit 2500000.00) is now at: Rejected."),
    ]
    (closing,) = _outbox(bank, "notify.end")
    assert loads(closing.payload)["text"]["zh-CN"] == "您的授信额度调整审批已办结：已拒绝。"


def test_auto_approval_records_the_rule_and_its_inputs(bank: Engine, clock: FakeClock) -> None:
    customer = _customer(bank)
    record = bank.submit("credit_limit_adjustment", {
        "customer_id": customer, "current_limit": Decimal("1000000.00"), "requested_limit": Decimal("1080000.00"),
        "risk_rating": "low", "reason": "Renewal"}, APPLICANT)
    instance = bank.instance(record["instances"][0]["id"])
    assert (instance["state"], instance["outcome"]) == ("approved", "approved")
    (decision,) = [step for step in instance["history"] if step["event"] == "transition"]
    assert decision["detail"]["rule"] == "triage"
    assert decision["detail"]["transition"] == 0
    assert decision["detail"]["inputs"] == {"increase_pct": Decimal("8.00"), "requested_limit": Decimal("1080000.00"),
                                            "current_limit": Decimal("1000000.00"), "risk_rating": "low",
                                            "customer_risk_level": "low"}  # copied from the customer (refs fill)


# -- complaints ------------------------------------------------------------------------------

def _complaint(bank: Engine, actor: Principal, **extra: Any) -> dict[str, Any]:
    return bank.submit("complaint", {"received_on": "2026-03-02", "product": "Checking or savings account",
                                     "issue": "Managing an account", "channel": "web", **extra}, actor)


def test_complaint_48h_sla_reassigns_then_customer_reopens_and_confirms(bank: Engine, clock: FakeClock) -> None:
    customer = Principal("cust-42", frozenset({"customer"}))
    agent = Principal("cs-01", frozenset({"customer_service"}))
    supervisor = Principal("csm-01", frozenset({"customer_service_manager"}))
    _at(clock, datetime(2026, 3, 2, 9, 0, tzinfo=CST))
    instance_id = _complaint(bank, customer)["instances"][0]["id"]
    (handle,) = [t for t in bank.instance(instance_id)["tasks"] if t["status"] == "open"]
    assert handle["due_at"] == datetime(2026, 3, 4, 9, 0, tzinfo=CST).astimezone(timezone.utc).isoformat()  # 48 calendar hours

    clock.advance(timedelta(hours=48))
    assert bank.run_timers()["fired"] == 3  # reminder (40 h), escalation and breach (48 h)
    moved = bank.task(handle["id"])
    assert (moved["assignee_role"], moved["status"]) == ("customer_service_manager", "open")
    with pytest.raises(Exception) as refused:
        bank.act(handle["id"], "resolve", agent, "Refunded the fee")
    assert getattr(refused.value, "code", None) == "task.not_assignee"
    with pytest.raises(Exception) as silent:
        bank.act(handle["id"], "resolve", supervisor)
    assert getattr(silent.value, "code", None) == "task.comment_required"
    at_customer = bank.act(handle["id"], "resolve", supervisor, "Refunded the fee")
    assert at_customer["state"] == "customer_confirmation"
    (confirm,) = [t for t in at_customer["tasks"] if t["status"] == "open"]
    assert confirm["assignee_user"] == "cust-42"

    reopened = bank.act(confirm["id"], "reopen", customer, "The fee is still on my statement")
    assert (reopened["state"], reopened["view"]) == ("handle", "applicant")  # the customer's answer names no staff
    assert "customer_service" not in str(reopened["tasks"])
    (again,) = [t for t in bank.instance(instance_id)["tasks"] if t["status"] == "open"]
    assert (again["entry"], again["assignee_role"]) == (2, "customer_service")
    resolved = bank.act(again["id"], "resolve", agent, "Reversed on the statement")
    (second_confirm,) = [t for t in resolved["tasks"] if t["status"] == "open"]
    closing = bank.act(second_confirm["id"], "confirm", customer)
    assert (closing["status"], closing["outcome"]) == ("completed", "resolved")


def test_unanswered_confirmation_times_out_after_seven_days(bank: Engine, clock: FakeClock) -> None:
    customer = Principal("cust-43", frozenset({"customer"}))
    agent = Principal("cs-02", frozenset({"customer_service"}))
    instance_id = _complaint(bank, customer)["instances"][0]["id"]
    (handle,) = [t for t in bank.instance(instance_id)["tasks"] if t["status"] == "open"]
    bank.act(handle["id"], "resolve", agent, "Explained the charge")
    clock.advance(timedelta(days=7) - timedelta(seconds=1))
    bank.run_timers()
    assert bank.instance(instance_id)["state"] == "customer_confirmation"
    clock.advance(timedelta(seconds=1))
    bank.run_timers()
    done = bank.instance(instance_id)
    assert (done["status"], done["outcome"]) == ("completed", "resolved")
    (timeout,) = [step for step in done["history"] if step["event"] == "task_completed" and step["actor"] == "system"]
    assert (timeout["action"], timeout["detail"]) == ("confirm", {"timeout": True})


def test_imported_handled_complaint_is_archived_without_tasks(bank: Engine) -> None:
    record = _complaint(bank, Principal("import"), handled_on="2026-03-03", timely=True)
    instance = bank.instance(record["instances"][0]["id"])
    assert (instance["status"], instance["outcome"], instance["tasks"]) == ("completed", "imported_closed", [])


def test_rule_decision_is_in_the_audit_log(bank: Engine) -> None:
    from engine.store.models import AuditRow

    customer = _customer(bank)
    record = bank.submit("credit_limit_adjustment", {
        "customer_id": customer, "current_limit": Decimal("1000000.00"), "requested_limit": Decimal("1500000.00"),
        "risk_rating": "low", "reason": "Expansion"}, APPLICANT)
    instance_id = record["instances"][0]["id"]
    with bank.db.read() as session:
        (row,) = session.scalars(select(AuditRow).where(AuditRow.action == "instance.rule_decision",
                                                        AuditRow.object_id == instance_id)).all()
    detail = loads(row.detail)
    # 50 % is over the instant-approval ceiling: the default transition (index 1) fired
    assert (detail["rule"], detail["transition"], detail["default"], detail["to"]) == ("triage", 1, True, "manager_review")
    assert detail["inputs"]["increase_pct"] == Decimal("50.00")  # what the instant-approval rule saw


def test_event_payload_times_are_iso_utc_as_the_api_writes_them(bank: Engine, application: dict[str, Any]) -> None:
    instance = bank.instance(application["instances"][0]["id"])
    (task,) = [t for t in instance["tasks"] if t["status"] == "open"]
    (created,) = [row for row in _outbox(bank, "task.created") if loads(row.payload)["task"] == task["id"]]
    due_at = loads(created.payload)["due_at"]
    assert due_at == "2026-02-26T02:30:00+00:00"  # 10:30 in Shanghai, written as the API writes it
    assert due_at == datetime.fromisoformat(task["due_at"]).astimezone(timezone.utc).isoformat()
