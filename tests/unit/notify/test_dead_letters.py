"""Dead letters over Python and HTTP: staff only, listed with rendered errors, retried once."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from engine import Conflict, Engine, Forbidden, NotFound, Principal
from engine.notify.delivery import error_note
from engine.notify.errors import PermanentDeliveryError
from engine.store.models import AuditRow, OutboxRow
from tests.unit.notify.outbox_support import add_message, outbox_row

OPERATOR = Principal("ops-1", frozenset({"operator"}))
CLERK = Principal("clerk-1", frozenset({"clerk"}))


def dead(engine: Engine, status: int = 400, **fields: Any) -> int:
    message_id = add_message(engine, status="dead", attempts=1, **fields)
    with engine.db.transaction() as session:
        session.execute(update(OutboxRow).where(OutboxRow.id == message_id).values(
            last_error=error_note(PermanentDeliveryError("outbox.http_status", params={"status": status}))))
    return message_id


def test_dead_letters_are_listed_newest_first_with_errors_in_the_callers_language(engine: Engine) -> None:
    older, newer = dead(engine, 400, dedup_key="a"), dead(engine, 410, dedup_key="b")
    add_message(engine)  # pending: not a dead letter
    page = engine.dead_letters(actor=OPERATOR, language="zh-CN")
    assert [item["id"] for item in page["items"]] == [newer, older]
    assert page["total"] == 2
    assert page["items"][0]["last_error"] == {"code": "outbox.http_status", "message": "接收方返回 HTTP 410",
                                              "params": {"status": 410}}
    assert page["items"][1]["dedup_key"] == "a"


def test_dead_letters_page(engine: Engine) -> None:
    ids = [dead(engine, dedup_key=f"k{n}") for n in range(5)]
    page = engine.dead_letters(offset=1, limit=2, actor=OPERATOR)
    assert [item["id"] for item in page["items"]] == [ids[3], ids[2]]
    assert (page["total"], page["offset"], page["limit"]) == (5, 1, 2)


def test_non_staff_may_not_list_or_retry(engine: Engine) -> None:
    message_id = dead(engine)
    with pytest.raises(Forbidden) as listing:
        engine.dead_letters(actor=CLERK)
    with pytest.raises(Forbidden):
        engine.retry_dead_letter(message_id, actor=CLERK)
    assert listing.value.params == {"roles": ["admin", "operator"]}
    assert outbox_row(engine, message_id).status == "dead"


def test_retry_puts_the_message_back_due_now_with_attempts_reset_and_audits(engine: Engine) -> None:
    message_id = dead(engine, dedup_key="keep-me")
    view = engine.retry_dead_letter(message_id, actor=OPERATOR)
    row = outbox_row(engine, message_id)
    assert (view["status"], view["attempts"], view["next_attempt_at"]) == ("pending", 0, None)
    assert (row.status, row.attempts, row.dedup_key) == ("pending", 0, "keep-me")
    with engine.db.read() as session:
        audit = session.scalars(select(AuditRow).where(AuditRow.action == "outbox.retry")).one()
    assert (audit.actor, audit.object_id) == ("ops-1", str(message_id))


def test_retrying_a_message_that_is_not_dead_conflicts(engine: Engine) -> None:
    message_id = dead(engine)
    engine.retry_dead_letter(message_id, actor=OPERATOR)
    with pytest.raises(Conflict) as caught:
        engine.retry_dead_letter(message_id, actor=OPERATOR)
    assert caught.value.params == {"id": message_id, "status": "pending"}


@pytest.mark.parametrize("message_id", [999, 0, -1, 2**63])
def test_retrying_an_unknown_message_is_not_found(engine: Engine, message_id: int) -> None:
    with pytest.raises(NotFound) as caught:
        engine.retry_dead_letter(message_id, actor=OPERATOR)
    assert caught.value.code == "outbox.not_found"


def test_http_listing_for_an_operator(engine: Engine, client: Any) -> None:
    message_id = dead(engine, 422)
    response = client.get("/api/v1/outbox/dead-letters?limit=10", headers={"X-User": "o", "X-Roles": "operator"})
    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body["items"]] == [message_id]
    assert body["items"][0]["last_error"]["message"] == "The receiver answered HTTP 422"


def test_http_refuses_non_staff_with_the_structured_error_body(engine: Engine, client: Any) -> None:
    dead(engine)
    response = client.get("/api/v1/outbox/dead-letters", headers={"X-User": "c", "X-Roles": "clerk",
                                                                  "Accept-Language": "zh-CN"})
    assert response.status_code == 403
    assert response.json() == {"errors": [{"path": "", "code": "outbox.forbidden",
                                           "message": "查看或重试死信需要以下角色之一：admin, operator",
                                           "params": {"roles": ["admin", "operator"]}}]}


def test_http_retry(engine: Engine, client: Any) -> None:
    message_id = dead(engine)
    staff = {"X-User": "a", "X-Roles": "admin"}
    first = client.post(f"/api/v1/outbox/{message_id}/retry", headers=staff)
    second = client.post(f"/api/v1/outbox/{message_id}/retry", headers=staff)
    missing = client.post("/api/v1/outbox/not-a-number/retry", headers=staff)
    assert (first.status_code, first.json()["status"]) == (200, "pending")
    assert (second.status_code, second.json()["errors"][0]["code"]) == (409, "outbox.not_dead")
    assert (missing.status_code, missing.json()["errors"][0]["code"]) == (404, "outbox.not_found")


def test_http_bad_paging_is_a_bad_request(engine: Engine, client: Any) -> None:
    response = client.get("/api/v1/outbox/dead-letters?limit=0", headers={"X-User": "a", "X-Roles": "admin"})
    assert (response.status_code, response.json()["errors"][0]["path"]) == (400, "limit")
