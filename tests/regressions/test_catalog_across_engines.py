"""Regressions of the cached definition catalogs across processes (c554764: registry snapshot
keyed by (row count, max id), pinned per Engine operation; the insight catalog keyed by max id).
Two Engine objects on one database stand for two server processes.

- test_revoked_grant_*, test_new_form_version_*, test_new_process_version_*: pass (pin that an
  upload by another process is seen by the very next operation; a revoked grant refused at once).
- test_out_of_order_commit_*: PostgreSQL only. A definition whose id was taken first but which
  commits AFTER a later id was committed and seen. The registry's count catches it (passes);
  the insight catalog (engine/insight/catalog.py ``CatalogSource._current``, keyed by
  ``max(definitions.id)`` only) never saw the late tag until some other upload happened: failed
  until b96821d keyed the insight catalog by the registry's snapshot.
"""
from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from engine import Engine, FakeClock
from engine.definitions.metaschema import KINDS
from engine.errors import Forbidden
from engine.jsoncodec import dumps
from engine.security import Principal
from engine.store.models import DefinitionRow

BANK = Path(__file__).resolve().parents[2] / "examples" / "bank"
CUST1 = Principal("cust-01", frozenset({"customer"}), {})
COMPLAINT = {"channel": "web", "product": "loan", "issue": "fees", "received_on": "2026-11-30"}


@pytest.fixture
def other(database_url: str, engine: Engine, clock: FakeClock) -> Iterator[Engine]:
    second = Engine(database_url, clock=clock)
    yield second
    second.close()


def _roles_without_complaint_submit() -> dict:
    roles = json.loads((BANK / "roles.json").read_text())
    roles = copy.deepcopy(roles)
    roles["roles"]["customer"]["submit"] = ["credit_limit_adjustment"]
    return roles


def test_revoked_grant_is_refused_at_once_by_another_engine(bank_roles: Engine, other: Engine) -> None:
    customer = bank_roles.submit("customer", {"company_name": "Acme"})["id"]
    other.submit("complaint", {**COMPLAINT, "customer_id": customer}, CUST1)  # `other` caches the catalog
    bank_roles.upload(_roles_without_complaint_submit())
    with pytest.raises(Forbidden):
        other.submit("complaint", {**COMPLAINT, "customer_id": customer}, CUST1)


def test_new_form_version_is_used_by_another_engine_next(bank: Engine, other: Engine) -> None:
    assert other.submit("customer", {"company_name": "A"})["form_version"] == 1
    form = json.loads((BANK / "forms" / "customer.json").read_text())
    form["schema"]["properties"]["nickname"] = {"type": "string", "title": "Nickname"}
    assert bank.upload(form)["version"] == 2
    created = other.submit("customer", {"company_name": "B", "nickname": "b"})
    assert created["form_version"] == 2 and created["data"]["nickname"] == "b"


def test_new_process_version_is_started_by_another_engine_next(bank: Engine, other: Engine) -> None:
    customer = bank.submit("customer", {"company_name": "Acme"})["id"]
    body = {"customer_id": customer, "current_limit": 100, "requested_limit": 150, "reason": "growth"}
    assert other.submit("credit_limit_adjustment", body)["instances"][0]["process_version"] == 1
    process = json.loads((BANK / "processes" / "credit_limit_adjustment.json").read_text())
    process["title"] = {"en": "Credit limit adjustment v2"}
    assert bank.upload(process)["version"] == 2
    assert other.submit("credit_limit_adjustment", body)["instances"][0]["process_version"] == 2


def _late_definition(url: str, document: dict) -> tuple[Session, int]:
    """A definition row inserted (its id taken) in a transaction left open."""
    bind = create_engine(url, poolclass=NullPool)
    session = Session(bind)
    digest = hashlib.sha256(dumps(document).encode()).hexdigest()
    row = DefinitionRow(kind=document["kind"], key=document["key"], version=1, body=dumps(document), digest=digest,
                        created_at=FakeClock().now(), created_by="late")
    session.add(row)
    session.flush()
    return session, row.id


TAG = {"kind": "tag", "key": "has_accounts", "profile": "customer_360", "title": "Has accounts",
       "rule": {">": [{"var": "agg.average_balance"}, 0]}}


def _pg(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("needs two open write transactions (PostgreSQL)")


def test_out_of_order_commit_registry_sees_the_late_definition(engine: Engine, other: Engine, database_url: str) -> None:
    _pg(database_url)
    engine.load_dir(BANK, kinds=KINDS)
    late, late_id = _late_definition(database_url, {**TAG, "key": "late_tag"})
    try:
        engine.upload({**TAG, "key": "early_tag"})  # a later id, committed first
        assert other.registry.latest_version("tag", "late_tag") is None
        late.commit()
    finally:
        late.close()
    assert other.registry.latest_version("tag", "late_tag") == 1


def test_out_of_order_commit_insight_applies_the_late_tag(engine: Engine, other: Engine, database_url: str) -> None:
    _pg(database_url)
    engine.load_dir(BANK, kinds=KINDS)
    customer = other.submit("customer", {"company_name": "Acme"})["id"]
    late, _late_id = _late_definition(database_url, TAG)  # id N, not yet committed
    try:
        engine.upload({"kind": "tag", "key": "early_tag", "profile": "customer_360", "title": "Early",
                       "rule": {"<": [{"var": "agg.average_balance"}, 0]}})  # id N+1, committed
        other.submit("deposit_account", {"customer_id": customer, "product": "current", "average_balance": 5})
        late.commit()  # id N committed now: max(id) unchanged
    finally:
        late.close()
    assert other.registry.latest_version("tag", "has_accounts") == 1  # the registry sees it
    other.submit("deposit_account", {"customer_id": customer, "product": "current", "average_balance": 7})
    assert "has_accounts" in [item["tag"] for item in other.record_360(customer)["tags"]]
