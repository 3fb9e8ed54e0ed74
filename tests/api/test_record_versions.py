"""Editing records without losing data: PATCH with If-Match against the record's own form
version, and POST with Idempotency-Key. Runs on SQLite, and on PostgreSQL when configured."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, update

from engine import Engine, Principal
from engine.errors import Conflict
from engine.jsoncodec import dumps, loads
from engine.store.models import AuditRow, ChangeRow, IdempotencyKeyRow, OutboxRow, RecordRow

MERGE = {"Content-Type": "application/merge-patch+json"}

# v1 knows legacy_code (required) and keeps names short; v2 drops legacy_code, adds segment and
# allows longer names. Both refuse unknown fields.
ACCOUNT_V1 = {
    "kind": "form", "key": "account", "title": "Account",
    "schema": {"type": "object", "additionalProperties": False, "required": ["name", "legacy_code"],
               "properties": {
                   "name": {"type": "string", "maxLength": 10},
                   "legacy_code": {"type": "string", "pattern": "^L[0-9]{3}$"},
                   "credit_line": {"type": "number", "minimum": 0, "x-decimal": {"scale": 2}},
                   "fee": {"type": "number", "x-decimal": {"scale": 2}, "readOnly": True},
                   "address": {"type": "object", "properties": {"city": {"type": "string"},
                                                                "street": {"type": "string"}}}}},
    "computed": {"fee": {"rule": {"if": [{"!==": [{"var": "credit_line"}, None]},
                                         {"*": [{"var": "credit_line"}, Decimal("0.01")]}, None]}, "rounding": "half_up"}},
}
ACCOUNT_V2 = {
    "kind": "form", "key": "account", "title": "Account",
    "schema": {"type": "object", "additionalProperties": False, "required": ["name"],
               "properties": {
                   "name": {"type": "string", "maxLength": 100},
                   "segment": {"type": "string", "enum": ["sme", "corporate"]},
                   "credit_line": {"type": "number", "minimum": 0, "x-decimal": {"scale": 2}},
                   "fee": {"type": "number", "x-decimal": {"scale": 2}, "readOnly": True},
                   "address": {"type": "object", "properties": {"city": {"type": "string"},
                                                                "street": {"type": "string"}}}}},
    "computed": {"fee": {"rule": {"if": [{"!==": [{"var": "credit_line"}, None]},
                                         {"*": [{"var": "credit_line"}, Decimal("0.02")]}, None]}, "rounding": "half_up"}},
}


def exact(response: Any) -> Any:
    return loads(response.content)


def _create(client: Any, body: dict[str, Any], form: str = "account", **headers: str) -> Any:
    response = client.post(f"/api/v1/forms/{form}/records", content=dumps(body),
                           headers={"Content-Type": "application/json", **headers})
    assert response.status_code == 201, response.text
    return response


def _patch(client: Any, record_id: str, changes: dict[str, Any], etag: str | None, **headers: str) -> Any:
    extra = {"If-Match": etag} if etag is not None else {}
    return client.patch(f"/api/v1/records/{record_id}", content=dumps(changes), headers={**MERGE, **extra, **headers})


def _count(engine: Engine, model: Any, *where: Any) -> int:
    with engine.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


@pytest.fixture
def v1_record(engine: Engine, client: Any) -> str:
    """A record written under account v1, after which v2 is uploaded."""
    engine.upload(ACCOUNT_V1)
    record = exact(_create(client, {"name": "Acme", "legacy_code": "L001", "credit_line": Decimal("1000.00")}))
    assert engine.upload(ACCOUNT_V2)["version"] == 2
    return str(record["id"])


# -- ETag and If-Match ---------------------------------------------------------------------------

def test_record_responses_carry_a_strong_etag_of_the_row_version(engine: Engine, client: Any) -> None:
    engine.upload(ACCOUNT_V2)
    created = _create(client, {"name": "Acme"})
    assert created.headers["ETag"] == '"1"'
    record_id = created.json()["id"]
    assert client.get(f"/api/v1/records/{record_id}").headers["ETag"] == '"1"'
    patched = _patch(client, record_id, {"segment": "sme"}, '"1"')
    assert patched.status_code == 200, patched.text
    assert patched.headers["ETag"] == '"2"' and patched.json()["row_version"] == 2
    assert client.get(f"/api/v1/records/{record_id}").headers["ETag"] == '"2"'


@pytest.mark.parametrize("if_match", [None, "", "*"])
def test_patch_without_a_version_is_428_and_changes_nothing(engine: Engine, client: Any, if_match: str | None) -> None:
    engine.upload(ACCOUNT_V2)
    record_id = _create(client, {"name": "Acme"}).json()["id"]
    response = _patch(client, record_id, {"name": "Other"}, if_match)
    assert response.status_code == 428
    assert response.json()["errors"][0]["code"] == "record.precondition_required"
    assert client.get(f"/api/v1/records/{record_id}").json()["data"] == {"name": "Acme"}


@pytest.mark.parametrize("if_match", ['"1"', 'W/"2"', '"2", "3"', "2", "garbage"])
def test_stale_or_unusable_if_match_is_412_and_nothing_is_written(engine: Engine, client: Any, if_match: str) -> None:
    engine.upload(ACCOUNT_V2)
    record_id = _create(client, {"name": "Acme"}).json()["id"]
    assert _patch(client, record_id, {"name": "Second"}, '"1"').status_code == 200
    counts = [_count(engine, model) for model in (AuditRow, OutboxRow, ChangeRow)]

    response = _patch(client, record_id, {"name": "Lost update"}, if_match, **{"Accept-Language": "zh-CN"})

    assert response.status_code == 412
    error = response.json()["errors"][0]
    assert error["code"] == "record.version_mismatch" and error["params"] == {"current": 2}
    assert "刷新" in error["message"]
    stored = client.get(f"/api/v1/records/{record_id}").json()
    assert (stored["data"], stored["row_version"]) == ({"name": "Second"}, 2)
    assert [_count(engine, model) for model in (AuditRow, OutboxRow, ChangeRow)] == counts


def test_patch_of_an_unknown_record_is_404(engine: Engine, client: Any) -> None:
    response = _patch(client, "00000000-0000-4000-8000-000000000000", {"name": "x"}, '"1"')
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "record.not_found"


# -- merge patch semantics and what one update writes --------------------------------------------

def test_patch_is_a_json_merge_patch_null_removes_and_objects_merge(engine: Engine, client: Any) -> None:
    engine.upload(ACCOUNT_V2)
    record_id = _create(client, {"name": "Acme", "segment": "sme", "address": {"city": "Xiamen", "street": "1 Road"}}).json()["id"]
    response = _patch(client, record_id, {"segment": None, "address": {"street": None, "city": "Fuzhou"}}, '"1"')
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"name": "Acme", "address": {"city": "Fuzhou"}}


def test_patch_body_must_be_an_object(engine: Engine, client: Any) -> None:
    engine.upload(ACCOUNT_V2)
    record_id = _create(client, {"name": "Acme"}).json()["id"]
    response = client.patch(f"/api/v1/records/{record_id}", content="[1]", headers={**MERGE, "If-Match": '"1"'})
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "request.not_object"


def test_one_update_writes_record_values_change_audit_and_outbox_together(engine: Engine, client: Any, clock: Any) -> None:
    from datetime import timedelta

    engine.upload(ACCOUNT_V2)
    created = exact(_create(client, {"name": "Acme", "credit_line": Decimal("100.00")}))
    record_id = created["id"]
    clock.advance(timedelta(minutes=5))

    response = _patch(client, record_id, {"credit_line": Decimal("250.00"), "segment": "corporate"}, '"1"',
                      **{"X-User": "clerk-7"})

    assert response.status_code == 200, response.text
    record = exact(response)
    assert record["data"]["fee"] == Decimal("5.00")  # recomputed
    assert record["updated_at"] != created["updated_at"] and record["created_at"] == created["created_at"]
    with engine.db.read() as session:
        audit = session.scalars(select(AuditRow).where(AuditRow.action == "record.update")).one()
        assert (audit.actor, audit.object_id) == ("clerk-7", record_id)
        assert loads(audit.detail) == {"form": "account", "version": 1, "row_version": 2,
                                       "fields": ["credit_line", "fee", "segment"]}
        outbox = session.scalars(select(OutboxRow).where(OutboxRow.topic == "record.updated")).one()
        assert loads(outbox.payload)["fields"] == ["credit_line", "fee", "segment"]
        assert outbox.dedup_key == f"record.updated:{record_id}:2"
    assert _count(engine, ChangeRow, ChangeRow.entity_id == record_id) == 2
    # record_values were rewritten: lookups see the new value only
    assert client.get("/api/v1/forms/account/records", params={"segment": "corporate"}).json()["total"] == 1
    assert client.get("/api/v1/forms/account/records", params={"credit_line": "100"}).json()["total"] == 0
    assert client.get("/api/v1/forms/account/records", params={"credit_line": "250"}).json()["total"] == 1


def test_a_patch_that_changes_nothing_writes_nothing(engine: Engine, client: Any) -> None:
    engine.upload(ACCOUNT_V2)
    record_id = _create(client, {"name": "Acme"}).json()["id"]
    response = _patch(client, record_id, {"name": "Acme", "fee": 99}, '"1"')
    assert response.status_code == 200 and response.headers["ETag"] == '"1"'
    assert _count(engine, AuditRow, AuditRow.action == "record.update") == 0


def test_an_update_reaches_the_report_mirror(bank_client: Any) -> None:
    def regions() -> dict[str, int]:
        body = bank_client.get("/api/v1/reports/customers_by_region_industry").json()
        names = [column["name"] for column in body["columns"]]
        return {row[names.index("region")]: row[names.index("customers")] for row in body["rows"]}

    record_id = _create(bank_client, {"company_name": "Mirror Co", "region": "Fujian"}, form="customer").json()["id"]
    assert regions() == {"Fujian": 1}
    assert _patch(bank_client, record_id, {"region": "Zhejiang"}, '"1"').status_code == 200
    assert regions() == {"Zhejiang": 1}


# -- versions --------------------------------------------------------------------------------------

def test_editing_an_old_record_keeps_a_field_v2_removed_and_validates_against_v1(client: Any, v1_record: str) -> None:
    response = _patch(client, v1_record, {"name": "Acme Ltd"}, '"1"')
    assert response.status_code == 200, response.text
    record = exact(response)
    assert record["form_version"] == 1
    assert record["data"] == {"name": "Acme Ltd", "legacy_code": "L001", "credit_line": Decimal("1000.00"),
                              "fee": Decimal("10.00")}  # v1's fee rule (1 %), not v2's (2 %)
    # v1's limits apply, not v2's: a name of 11 characters is too long, legacy_code is required
    response = _patch(client, v1_record, {"name": "Acme Holdings", "legacy_code": None}, '"2"')
    assert response.status_code == 422
    assert {(e["path"], e["code"]) for e in response.json()["errors"]} == {
        ("/name", "record.max_length"), ("/legacy_code", "record.required")}
    response = _patch(client, v1_record, {"legacy_code": "X1"}, '"2"')
    assert [(e["path"], e["code"]) for e in response.json()["errors"]] == [("/legacy_code", "record.pattern")]
    assert client.get(f"/api/v1/records/{v1_record}").json()["row_version"] == 2


def test_a_field_only_v2_knows_is_refused_on_a_v1_record(client: Any, v1_record: str) -> None:
    response = _patch(client, v1_record, {"segment": "sme"}, '"1"')
    assert response.status_code == 422
    assert [(e["path"], e["code"]) for e in response.json()["errors"]] == [("/segment", "record.additional_properties")]
    # the same field on a v2 record is fine
    v2_record = _create(client, {"name": "New Co"}).json()["id"]
    assert _patch(client, v2_record, {"segment": "sme"}, '"1"').status_code == 200


def test_stored_fields_the_records_version_does_not_declare_are_kept(engine: Engine, client: Any, v1_record: str) -> None:
    # e.g. written by another version, or by a migration script: v1 refuses unknown fields, yet
    # an update must neither drop them nor fail because of them
    with engine.db.transaction() as session:
        row = session.get(RecordRow, v1_record)
        assert row is not None
        row.data = dumps({**loads(row.data), "segment": "corporate", "kyc_note": {"by": "ops"}})
    response = _patch(client, v1_record, {"credit_line": Decimal("2000.00")}, '"1"')
    assert response.status_code == 200, response.text
    data = exact(response)["data"]
    assert (data["segment"], data["kyc_note"], data["fee"]) == ("corporate", {"by": "ops"}, Decimal("20.00"))
    # naming such a field sets it through v1's checks; null removes it on purpose
    assert _patch(client, v1_record, {"segment": "sme"}, '"2"').status_code == 422
    response = _patch(client, v1_record, {"kyc_note": None}, '"2"')
    assert response.status_code == 200 and "kyc_note" not in response.json()["data"]
    assert response.json()["data"]["segment"] == "corporate"


def test_engine_update_is_the_same_operation(engine: Engine, v1_record: str) -> None:
    from engine.errors import PreconditionFailed, PreconditionRequired

    with pytest.raises(PreconditionRequired):
        engine.update(v1_record, {"name": "X"}, Principal("u1"))
    record = engine.update(v1_record, {"name": "X"}, Principal("u1"), 1)
    assert (record["row_version"], record["data"]["name"], record["data"]["legacy_code"]) == (2, "X", "L001")
    with pytest.raises(PreconditionFailed):
        engine.update(v1_record, {"name": "Y"}, Principal("u1"), if_match=1)


# -- a record in a running process ---------------------------------------------------------------

LEAVE_FORM = {"kind": "form", "key": "leave", "title": "Leave", "process": "leave_approval",
              "schema": {"type": "object", "required": ["days"], "additionalProperties": False,
                         "properties": {"days": {"type": "integer", "minimum": 1}, "note": {"type": "string"}}}}
LEAVE_PROCESS = {"kind": "process", "key": "leave_approval", "form": "leave", "title": "Leave", "start": "triage",
                 "states": {
                     "triage": {"type": "auto", "transitions": [{"to": "approved", "when": {"<=": [{"var": "days"}, 1]}},
                                                                {"to": "review"}]},
                     "review": {"type": "task", "assignee": {"role": "manager"}, "actions": {
                         "approve": {"transitions": [{"to": "director", "when": {">": [{"var": "days"}, 5]}},
                                                     {"to": "approved"}]}}},
                     "director": {"type": "task", "assignee": {"role": "director"}, "actions": {
                         "approve": {"transitions": [{"to": "approved"}]}}},
                     "approved": {"type": "end", "outcome": "approved"}}}


def _leave_record(engine: Engine, client: Any, days: int) -> dict[str, Any]:
    engine.upload(LEAVE_FORM)
    engine.upload(LEAVE_PROCESS)
    return dict(exact(_create(client, {"days": days}, form="leave", **{"X-User": "emp-1"})))


def _writes(engine: Engine, record_id: str) -> tuple[int, int, int]:
    return (_count(engine, AuditRow, AuditRow.action == "record.update", AuditRow.object_id == record_id),
            _count(engine, OutboxRow, OutboxRow.topic == "record.updated"),
            _count(engine, ChangeRow, ChangeRow.entity == "record", ChangeRow.entity_id == record_id))


@pytest.mark.parametrize("days, state", [(3, "review"), (1, "approved")])
def test_a_record_that_started_a_process_is_locked_while_it_runs_and_after_it_ended(
        engine: Engine, client: Any, days: int, state: str) -> None:
    record = _leave_record(engine, client, days)
    assert record["instances"][0]["state"] == state
    before = _writes(engine, record["id"])
    for if_match in ('"1"', None, '"7"'):  # 409 whatever the version: the record is not editable at all
        response = _patch(client, record["id"], {"days": 30}, if_match, **{"X-User": "emp-1", "Accept-Language": "zh-CN"})
        assert response.status_code == 409, response.text
        (error,) = response.json()["errors"]
        assert (error["path"], error["code"]) == ("", "record.in_process")
        assert error["params"] == {"status": record["instances"][0]["status"]}
        assert "流程" in error["message"]
    english = _patch(client, record["id"], {"days": 30}, '"1"').json()["errors"][0]["message"]
    assert "process" in english and "{" not in english
    stored = exact(client.get(f"/api/v1/records/{record['id']}"))
    assert (stored["data"], stored["row_version"]) == ({"days": days}, 1)
    assert _writes(engine, record["id"]) == before
    with pytest.raises(Conflict) as caught:  # the Python API is the same operation
        engine.update(record["id"], {"days": 30}, Principal("emp-1"), 1)
    assert caught.value.code == "record.in_process"


def test_a_record_without_a_process_stays_editable(engine: Engine, client: Any) -> None:
    engine.upload({name: value for name, value in LEAVE_FORM.items() if name != "process"})
    record = exact(_create(client, {"days": 3}, form="leave"))
    assert record["instances"] == []
    assert _patch(client, record["id"], {"days": 4}, '"1"').status_code == 200


# -- Idempotency-Key -------------------------------------------------------------------------------

def test_a_retry_with_the_same_key_replays_the_first_result(engine: Engine, client: Any) -> None:
    engine.upload(ACCOUNT_V2)
    first = _create(client, {"name": "Acme"}, **{"Idempotency-Key": "order-42"})
    assert "Idempotent-Replayed" not in first.headers
    counts = [_count(engine, model) for model in (RecordRow, AuditRow, OutboxRow, ChangeRow)]

    retry = _create(client, {"name": "Acme"}, **{"Idempotency-Key": "order-42"})

    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json() and retry.headers["ETag"] == first.headers["ETag"]
    assert [_count(engine, model) for model in (RecordRow, AuditRow, OutboxRow, ChangeRow)] == counts
    with engine.db.read() as session:
        row = session.scalars(select(IdempotencyKeyRow)).one()
        assert (row.key, row.actor, row.record_id, len(row.request_digest)) == ("order-42", "anonymous", first.json()["id"], 64)


def test_the_same_key_with_another_body_or_form_is_refused(engine: Engine, client: Any) -> None:
    engine.upload(ACCOUNT_V2)
    engine.upload({name: value for name, value in LEAVE_FORM.items() if name != "process"})
    _create(client, {"name": "Acme"}, **{"Idempotency-Key": "k-1"})
    for form, body in (("account", {"name": "Other"}), ("leave", {"days": 2})):
        response = client.post(f"/api/v1/forms/{form}/records", json=body,
                               headers={"Idempotency-Key": "k-1", "Accept-Language": "zh-CN"})
        assert response.status_code == 422
        assert response.json()["errors"][0]["code"] == "record.idempotency_key_reused"
    assert _count(engine, RecordRow) == 1


def test_keys_belong_to_their_actor(engine: Engine, client: Any) -> None:
    engine.upload(ACCOUNT_V2)
    one = _create(client, {"name": "Acme"}, **{"Idempotency-Key": "k", "X-User": "alice"}).json()["id"]
    two = _create(client, {"name": "Acme"}, **{"Idempotency-Key": "k", "X-User": "bob"}).json()["id"]
    assert one != two


def test_a_refused_first_attempt_does_not_use_up_the_key(engine: Engine, client: Any) -> None:
    engine.upload(ACCOUNT_V2)
    refused = client.post("/api/v1/forms/account/records", json={"segment": "sme"}, headers={"Idempotency-Key": "k"})
    assert refused.status_code == 422
    assert _count(engine, IdempotencyKeyRow) == 0
    assert "Idempotent-Replayed" not in _create(client, {"name": "Acme"}, **{"Idempotency-Key": "k"}).headers


@pytest.mark.parametrize("key", ["", "x" * 201, "caf\u00e9", "tab\there"])
def test_keys_are_1_to_200_printable_ascii_characters(engine: Engine, client: Any, key: str) -> None:
    engine.upload(ACCOUNT_V2)
    response = client.post("/api/v1/forms/account/records", json={"name": "Acme"},
                           headers={"Idempotency-Key": key.encode("latin-1")})  # type: ignore[dict-item]
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["code"] == "record.idempotency_key_invalid"
    assert _count(engine, RecordRow) == 0


def test_a_key_of_200_characters_is_accepted(engine: Engine, client: Any) -> None:
    engine.upload(ACCOUNT_V2)
    key = "A-z~ 0" * 33 + "xy"
    assert len(key) == 200
    _create(client, {"name": "Acme"}, **{"Idempotency-Key": key})
    assert _create(client, {"name": "Acme"}, **{"Idempotency-Key": key}).headers["Idempotent-Replayed"] == "true"


def test_engine_submit_takes_an_idempotency_key(engine: Engine) -> None:
    engine.upload(ACCOUNT_V2)
    actor = Principal("importer")
    first = engine.submit("account", {"name": "Acme"}, actor, idempotency_key="batch-7/row-1")
    again = engine.submit_replayable("account", {"name": "Acme"}, actor, idempotency_key="batch-7/row-1")
    assert again.replayed and again.record["id"] == first["id"]
    # the replay returns the record as it is now
    engine.update(first["id"], {"segment": "sme"}, actor, 1)
    assert engine.submit("account", {"name": "Acme"}, actor, idempotency_key="batch-7/row-1")["data"]["segment"] == "sme"
    assert _count(engine, RecordRow) == 1


def test_an_unconditional_sql_update_is_never_used(engine: Engine, v1_record: str) -> None:
    """The version check is in the UPDATE itself: a row changed behind the engine's back after
    its read is detected at write time."""
    from engine.store import records as record_store

    with engine.db.transaction() as session:
        session.execute(update(RecordRow).where(RecordRow.id == v1_record).values(row_version=5))
    with engine.db.transaction() as session:
        assert record_store.update_if_version(session, v1_record, 1, {"name": "x"}, engine.clock.now()) is False
        assert record_store.update_if_version(session, v1_record, 5, {"name": "x"}, engine.clock.now()) is True
