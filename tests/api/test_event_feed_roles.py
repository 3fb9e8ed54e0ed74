"""Who reads the event feed under the bank's roles (README, settings and roles.json agree), and
what a reader that may not see every entry gets: the stored sequence has no gaps, a reader's
page skips what it may not see, and ``next`` moves past the skipped entries so it never stalls."""
from __future__ import annotations

from typing import Any, Callable

from sqlalchemy import func, select

from engine import Engine, Principal
from engine.store.models import EventRow

API = "/api/v1"
SYSTEM_ADMIN = Principal("admin-1", frozenset({"admin"}))


def test_operator_and_integration_read_the_feed_and_the_operator_the_dead_letters(
        bank_roles: Engine, client: Any, token_for: Callable[..., dict[str, str]]) -> None:
    bank_roles.submit("customer", {"company_name": "Acme"}, SYSTEM_ADMIN)
    both = token_for("ops-1", ["operator", "integration"])
    integration = token_for("sys-1", ["integration"])
    teller = token_for("am-1", ["account_manager"])
    assert client.get(f"{API}/events", headers=both).status_code == 200
    feed = client.get(f"{API}/events", headers=integration)
    assert feed.status_code == 200 and [item["topic"] for item in feed.json()["items"]] == ["record.created"]
    assert client.get(f"{API}/outbox/dead-letters", headers=both).status_code == 200
    assert client.get(f"{API}/outbox/dead-letters", headers=integration).status_code == 403  # events only
    assert client.get(f"{API}/events", headers=teller).status_code == 403


def test_a_reader_s_page_skips_what_it_may_not_see_and_next_moves_past_it(
        bank_roles: Engine, client: Any, token_for: Callable[..., dict[str, str]]) -> None:
    bank_roles.upload({"kind": "roles", "key": "feed_probe", "title": "Feed probe", "roles": {"customer_feed": {
        "may": ["events.read"], "forms": {"customer": {"read": ["*"]}}}}})
    customer = bank_roles.submit("customer", {"company_name": "Acme"}, SYSTEM_ADMIN)["id"]
    bank_roles.submit("deposit_account", {"customer_id": customer, "product": "current", "average_balance": 10},
                      SYSTEM_ADMIN)
    with bank_roles.db.read() as session:
        stored = list(session.scalars(select(EventRow.seq).order_by(EventRow.seq)))
        last = session.scalar(select(func.max(EventRow.seq)))
    assert stored == list(range(1, len(stored) + 1))  # the stored sequence has no gap
    reader = token_for("feed-1", ["customer_feed"])
    page = client.get(f"{API}/events", headers=reader).json()
    assert [item["payload"]["form"] for item in page["items"]] == ["customer"]  # the deposit account's is skipped
    assert page["items"][-1]["seq"] < last and page["next"] == last  # the cursor still moves past it
    assert client.get(f"{API}/events", params={"after": page["next"]}, headers=reader).json() == {
        "items": [], "next": last}
    admin = client.get(f"{API}/events", headers=token_for("admin-1", ["admin"])).json()
    assert [item["seq"] for item in admin["items"]] == stored  # a reader that sees everything: no gap
