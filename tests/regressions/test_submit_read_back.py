"""Regressions of the submission path's read-back (c554764: the answer is read back inside the
record's transaction, ``Engine._read_back``).

- test_read_sensitive_is_audited_after_the_create: failed from c554764 until b96821d fixed it. The submission's
  ``record.read_sensitive`` entry is now added to the session after an intermediate flush, while
  the transaction's earlier entries (``record.create``) are held by engine/store/audit.py and
  re-added at commit: ``before_flush`` sorts by insert order, so the read is chained BEFORE the
  create of the very record it read (before: create in the submit's transaction, read in the
  read-back's own one, in that order).
- the other tests pass: they pin what the submit answer must equal (the GET of the same record,
  masks per role, one read_sensitive entry per answer showing plaintext).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine import Engine
from engine.security import SYSTEM, Principal
from engine.store.models import AuditRow

AM1 = Principal("mgr-01", frozenset({"account_manager"}), {"branch": "FZ01"})
CS = Principal("cs-01", frozenset({"customer_service"}), {})
ANALYST = Principal("an-01", frozenset({"analyst"}), {})
CUSTOMER = {"company_name": "Fuzhou Tea", "uscc": "91350100M000100Y43", "contact_phone": "+86 591 8765 4321",
            "account_manager": "mgr-01", "branch": "FZ01"}


def _entries(engine: Engine, record_id: str) -> list[tuple[str, str]]:
    with engine.db.read() as session:
        rows = session.scalars(select(AuditRow).where(AuditRow.object_id == record_id).order_by(AuditRow.id)).all()
        return [(row.actor, row.action) for row in rows]


def test_read_sensitive_is_audited_after_the_create(bank_roles: Engine) -> None:
    created = bank_roles.submit("customer", CUSTOMER, AM1)
    assert created["data"]["contact_phone"] == CUSTOMER["contact_phone"]  # shown in plaintext: audited
    assert _entries(bank_roles, created["id"]) == [("mgr-01", "record.create"), ("mgr-01", "record.read_sensitive")]
    assert bank_roles.verify_audit().intact


def test_read_sensitive_after_create_unrestricted(bank: Engine) -> None:
    created = bank.submit("person", {"full_name": "Li Lei", "id_number": "350102199001011234"}, SYSTEM)
    assert _entries(bank, created["id"]) == [("system", "record.create"), ("system", "record.read_sensitive")]


def _same_as_get(engine: Engine, created: dict[str, Any], actor: Principal) -> None:
    assert created == engine.record(created["id"], actor)


def test_submit_answer_equals_get_for_scoped_and_masked_roles(bank_roles: Engine) -> None:
    created = bank_roles.submit("customer", CUSTOMER, AM1)
    _same_as_get(bank_roles, created, AM1)
    application = bank_roles.submit("credit_limit_adjustment", {"customer_id": created["id"], "current_limit": 1000000,
                                    "requested_limit": 1500000, "reason": "Harvest"},
                                    Principal("cust-01", frozenset({"customer"}), {}))
    assert application["instances"] and application["instances"][0]["status"] == "active"
    _same_as_get(bank_roles, application, Principal("cust-01", frozenset({"customer"}), {}))
    complaint = bank_roles.submit("complaint", {"customer_id": created["id"], "channel": "web", "product": "loan",
                                                "issue": "fees", "received_on": "2026-11-30", "narrative": "x"}, CS)
    _same_as_get(bank_roles, complaint, CS)


def test_one_read_sensitive_entry_per_plaintext_answer(bank_roles: Engine) -> None:
    created = bank_roles.submit("customer", CUSTOMER, AM1)
    bank_roles.record(created["id"], CS)  # masked: no entry
    bank_roles.record(created["id"], ANALYST)  # masked: no entry
    actions = [action for _actor, action in _entries(bank_roles, created["id"])]
    assert sorted(actions) == ["record.create", "record.read_sensitive"]


def test_submit_answer_equals_get_for_several_roles_and_scoped_grants(bank_roles: Engine) -> None:
    """Two roles (full and masked grants), and a scoped plus an unscoped grant on one form."""
    customer = bank_roles.submit("customer", CUSTOMER, SYSTEM)["id"]
    both = Principal("cs-an", frozenset({"customer_service", "analyst"}), {})
    complaint = bank_roles.submit("complaint", {"customer_id": customer, "channel": "web", "product": "loan",
                                                "issue": "fees", "received_on": "2026-11-30", "narrative": "x"}, both)
    _same_as_get(bank_roles, complaint, both)
    mixed = Principal("mgr-01", frozenset({"account_manager", "customer_service"}), {"branch": "FZ01"})
    created = bank_roles.submit("customer", CUSTOMER, mixed)
    _same_as_get(bank_roles, created, mixed)
    other = bank_roles.submit("customer", {**CUSTOMER, "account_manager": "mgr-02"}, SYSTEM)
    assert bank_roles.record(other["id"], mixed)["data"]["contact_phone"] != CUSTOMER["contact_phone"]  # masked there
