"""Sensitive fields at rest: sealed with AES-256-GCM in every stored row (records, lookup rows,
the report mirror), opened on read with an audit entry, bound to their record and field, found
by blind index, re-sealed by key rotation; missing and wrong keys fail clearly. SQLite and
(when configured) PostgreSQL."""
from __future__ import annotations

import base64
import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from engine import Engine, FakeClock, Principal
from engine.config import Settings
from engine.errors import DefinitionInvalid, EngineError, ValidationFailed
from engine.security.crypto import IntegrityFailed
from engine.security.keyring import KeySettings, KeySource, KeyUnavailable, write_key_file

SECRET_ID = "350102198001011234"
SECRET_PHONE = "13800138000"
FORM = {
    "kind": "form", "key": "client", "title": "Client",
    "schema": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"},
        "id_number": {"type": "string", "sensitive": True},
        "phone": {"type": "string", "sensitive": True},
        "income": {"type": "integer", "sensitive": True},
        "region": {"type": "string"},
        "contacts": {"type": "array", "items": {"type": "object", "properties": {
            "who": {"type": "string"}, "mobile": {"type": "string", "sensitive": True}}}}}},
}
REPORT = {"kind": "report", "key": "clients_by_region", "title": "Clients", "source": {"form": "client"},
          "dimensions": [{"name": "region", "field": "region"}], "measures": [{"name": "n", "agg": "count"}]}
CLERK = Principal("clerk-1", frozenset({"clerk"}))


def _key() -> bytes:
    return os.urandom(32)


def _engine(database_url: str, key_file: Path, clock: FakeClock | None = None, **settings: Any) -> Engine:
    base = Settings.from_env()
    trusted = {"trust_identity_headers": True} if hasattr(base, "trust_identity_headers") else {}
    return Engine(database_url, clock=clock or FakeClock(),
                  settings=dataclasses.replace(base, database_url=database_url, **trusted,
                                               encryption=KeySettings(key_file=key_file, **settings)))


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    write_key_file(path, {"k1": _key()}, "k1")
    return path


@pytest.fixture
def sealed(database_url: str, key_file: Path) -> Iterator[Engine]:
    eng = _engine(database_url, key_file)
    eng.migrate()
    eng.upload(FORM)
    yield eng
    eng.close()


def _submit(engine: Engine, **data: Any) -> dict[str, Any]:
    return engine.submit("client", {"name": "Acme", "id_number": SECRET_ID, "phone": SECRET_PHONE, "income": 987654,
                                    "region": "Fujian", "contacts": [{"who": "Li", "mobile": "13911112222"}], **data},
                         CLERK)


def _raw(engine: Engine, sql: str, **params: Any) -> list[Any]:
    with engine.db.engine.connect() as connection:
        return list(connection.execute(text(sql), params).all())


def _dump_every_table(engine: Engine) -> str:
    """Every row of every table as text (what someone with the database files could read)."""
    from engine.store.models import Base

    parts = []
    with engine.db.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(table.select()):
                parts.append(repr(tuple(row)))
    return "\n".join(parts)


def test_sensitive_values_are_sealed_in_every_stored_row(sealed: Engine) -> None:
    record = _submit(sealed)
    assert record["data"]["id_number"] == SECRET_ID and record["data"]["income"] == 987654
    assert record["data"]["contacts"][0]["mobile"] == "13911112222"
    sealed.update(record["id"], {"region": "Zhejiang", "phone": "13700000000"}, CLERK, 1)
    stored = json.loads(_raw(sealed, "SELECT data FROM records")[0][0])
    assert stored["name"] == "Acme" and stored["region"] == "Zhejiang"
    for field in ("id_number", "phone", "income"):
        assert set(stored[field]) == {"$sealed", "kid", "nonce", "ct"} and stored[field]["kid"] == "k1"
    assert set(stored["contacts"][0]["mobile"]) == {"$sealed", "kid", "nonce", "ct"}
    everything = _dump_every_table(sealed)
    for secret in (SECRET_ID, SECRET_PHONE, "13700000000", "987654", "13911112222"):
        assert secret not in everything
    lookup_rows = _raw(sealed, "SELECT field, value, key_id FROM record_values WHERE field IN ('id_number', 'phone')")
    assert len(lookup_rows) == 2 and all(kid == "k1" and len(value) == 64 for _f, value, kid in lookup_rows)


def test_the_report_mirror_holds_no_plaintext(sealed: Engine) -> None:
    sealed.upload(REPORT)
    _submit(sealed)
    _submit(sealed, region="Zhejiang", id_number="110101199003072316")
    result = sealed.run_report("clients_by_region")
    assert sorted(row[0] for row in result["rows"]) == ["Fujian", "Zhejiang"]
    table = next(name for (name,) in sealed.mirror.execute("SELECT table_name FROM information_schema.tables", [])
                 if "client" in name)
    rows = sealed.mirror.execute(f'SELECT CAST(COLUMNS(*) AS VARCHAR) FROM "{table}"', [])
    assert len(rows) == 2
    mirrored = repr(rows)
    for secret in (SECRET_ID, "110101199003072316", SECRET_PHONE, "987654", "13911112222", "$sealed"):
        assert secret not in mirrored
    assert "Acme" in mirrored


def test_reading_plaintext_is_audited_in_the_same_transaction(sealed: Engine) -> None:
    record = _submit(sealed)
    reader = Principal("auditor-x", frozenset({"clerk"}))
    sealed.record(record["id"], reader)
    page = sealed.records("client", actor=reader)
    assert page["items"][0]["data"]["phone"] == SECRET_PHONE
    entries = _raw(sealed, "SELECT actor, object_id, detail FROM audit_log WHERE action = 'record.read_sensitive' "
                           "ORDER BY id")
    # the submission's answer, the get and the list: one entry each, naming the record and fields
    assert [(actor, object_id) for actor, object_id, _ in entries] == [
        ("clerk-1", record["id"]), ("auditor-x", record["id"]), ("auditor-x", record["id"])]
    detail = json.loads(entries[1][2])
    assert detail["form"] == "client"
    assert sorted(detail["fields"]) == ["/contacts/0/mobile", "/id_number", "/income", "/phone"]
    assert sealed.verify_audit().intact


def test_a_record_without_sensitive_values_is_read_without_audit(sealed: Engine) -> None:
    record = sealed.submit("client", {"name": "Plain", "region": "Fujian"}, CLERK)
    sealed.record(record["id"], CLERK)
    assert _raw(sealed, "SELECT count(*) FROM audit_log WHERE action = 'record.read_sensitive'")[0][0] == 0


def test_a_ciphertext_moved_to_another_record_or_field_does_not_open(sealed: Engine) -> None:
    first = _submit(sealed)
    second = _submit(sealed, id_number="110101199003072316")
    data = {row[0]: json.loads(row[1]) for row in _raw(sealed, "SELECT id, data FROM records")}
    moved = dict(data[second["id"]], id_number=data[first["id"]]["id_number"])  # another record's ciphertext
    with sealed.db.engine.begin() as connection:
        connection.execute(text("UPDATE records SET data = :d WHERE id = :id"), {"d": json.dumps(moved), "id": second["id"]})
    with pytest.raises(IntegrityFailed) as caught:
        sealed.record(second["id"])
    assert caught.value.code == "crypto.integrity_failed" and caught.value.path == "/id_number"
    assert caught.value.params["record"] == second["id"]
    swapped = dict(data[first["id"]], phone=data[first["id"]]["id_number"])  # another field of the same record
    with sealed.db.engine.begin() as connection:
        connection.execute(text("UPDATE records SET data = :d WHERE id = :id"), {"d": json.dumps(swapped), "id": first["id"]})
    with pytest.raises(IntegrityFailed) as caught:
        sealed.record(first["id"])
    assert caught.value.path == "/phone"


@pytest.mark.parametrize("tamper", ["ct", "nonce", "kid_swap"])
def test_a_tampered_ciphertext_is_an_integrity_error(sealed: Engine, key_file: Path, tamper: str) -> None:
    record = _submit(sealed)
    data = json.loads(_raw(sealed, "SELECT data FROM records")[0][0])
    envelope = data["id_number"]
    if tamper == "ct":
        raw = bytearray(base64.b64decode(envelope["ct"]))
        raw[0] ^= 1
        envelope["ct"] = base64.b64encode(bytes(raw)).decode()
    elif tamper == "nonce":
        envelope["nonce"] = base64.b64encode(os.urandom(12)).decode()
    with sealed.db.engine.begin() as connection:
        connection.execute(text("UPDATE records SET data = :d"), {"d": json.dumps(data)})
    if tamper == "kid_swap":
        # a second key in the ring, and the envelope claiming it: the key id is bound too
        document = json.loads(key_file.read_text())
        document["keys"]["k2"] = base64.b64encode(_key()).decode()
        key_file.write_text(json.dumps(document))
        sealed.vault.cipher.keys.reload()
        envelope["kid"] = "k2"
        with sealed.db.engine.begin() as connection:
            connection.execute(text("UPDATE records SET data = :d"), {"d": json.dumps(data)})
    with pytest.raises(IntegrityFailed) as caught:
        sealed.record(record["id"])
    assert caught.value.code == "crypto.integrity_failed"
    assert caught.value.status == 503


def test_a_submitted_envelope_shape_is_refused(sealed: Engine) -> None:
    fake = {"$sealed": "v1", "kid": "k1", "nonce": "AAAAAAAAAAAAAAAA", "ct": "AAAA"}
    with pytest.raises(ValidationFailed) as caught:
        sealed.submit("client", {"name": "X", "contacts": [{"who": "A", "mobile": "1"}], "region": "Fujian",
                                 "id_number": "1"} | {"contacts": [{"who": fake}]}, CLERK)
    assert any(issue.code in ("record.reserved_value", "record.type") for issue in caught.value.issues)


def test_blind_index_finds_exact_values_without_decrypting(sealed: Engine) -> None:
    first = _submit(sealed)
    _submit(sealed, id_number="110101199003072316", phone="13900000000")
    assert sealed.find_record_id("client", "id_number", SECRET_ID) == first["id"]
    # normalized: surrounding spaces, full-width digits, case of the check letter
    wide = "".join(chr(ord(c) + 0xFEE0) for c in SECRET_ID)
    assert sealed.find_record_id("client", "id_number", f"  {wide} ") == first["id"]
    x_record = _submit(sealed, id_number="11010119900307231X", phone="13600000000")
    assert sealed.find_record_id("client", "id_number", "11010119900307231x") == x_record["id"]
    page = sealed.records("client", filters={"phone": SECRET_PHONE})
    assert [item["id"] for item in page["items"]] == [first["id"]] and page["total"] == 1
    assert sealed.records("client", filters={"income": "987654"})["total"] == 3  # typed like its column
    assert sealed.records("client", filters={"phone": "1380013800"})["total"] == 0  # exact, not prefix
    assert sealed.find_record_id("client", "id_number", "nobody") is None


def test_lookups_over_http_use_the_blind_index(sealed: Engine) -> None:
    from fastapi.testclient import TestClient

    from engine.api.app import create_app

    first = _submit(sealed)
    with TestClient(create_app(sealed)) as client:
        response = client.get("/api/v1/forms/client/records", params={"id_number": SECRET_ID},
                              headers={"X-User": "clerk-2", "X-Roles": "clerk"})
        assert response.status_code == 200
        assert [item["id"] for item in response.json()["items"]] == [first["id"]]
        assert response.json()["items"][0]["data"]["id_number"] == SECRET_ID
    actors = [row[0] for row in _raw(sealed, "SELECT actor FROM audit_log WHERE action = 'record.read_sensitive'")]
    assert actors.count("clerk-2") == 1


def test_rotation_reseals_everything_under_the_new_key(sealed: Engine, key_file: Path) -> None:
    ids = [_submit(sealed, id_number=f"35010219800101{n:04d}")["id"] for n in range(7)]
    before = sealed.key_status()
    assert before.values == {"k1": 7 * 4} and before.index == {"k1": 21}
    document = json.loads(key_file.read_text())
    document["keys"]["k2"] = base64.b64encode(_key()).decode()
    document["active"] = "k2"
    key_file.write_text(json.dumps(document))
    sealed.vault.cipher.keys.reload()
    # before rotating, old values still open and old index entries still match
    assert sealed.record(ids[3])["data"]["id_number"] == "350102198001010003"
    assert sealed.find_record_id("client", "id_number", "350102198001010003") == ids[3]
    result = sealed.rotate_keys(batch=3)
    assert (result.records, result.batches) == (7, 3)
    after = sealed.key_status()
    assert after.values == {"k2": 7 * 4} and after.index == {"k2": 21}
    assert not any('"kid":"k1"' in data for (data,) in _raw(sealed, "SELECT data FROM records"))
    assert _raw(sealed, "SELECT count(*) FROM record_values WHERE key_id = 'k1'")[0][0] == 0
    # the old key can go: everything opens and is found with k2 alone
    document["keys"].pop("k1")
    key_file.write_text(json.dumps(document))
    sealed.vault.cipher.keys.reload()
    for n, record_id in enumerate(ids):
        assert sealed.record(record_id)["data"]["id_number"] == f"35010219800101{n:04d}"
        assert sealed.find_record_id("client", "id_number", f"35010219800101{n:04d}") == record_id
    assert sealed.rotate_keys().records == 0  # nothing left: resumable, idempotent
    rotations = _raw(sealed, "SELECT detail FROM audit_log WHERE action = 'keys.rotate'")
    assert sum(json.loads(detail)["records"] for (detail,) in rotations) == 7
    assert sealed.verify_audit().intact


def test_a_missing_key_in_production_is_a_clear_error(database_url: str, key_file: Path, tmp_path: Path) -> None:
    eng = Engine(database_url, clock=FakeClock(), settings=dataclasses.replace(
        Settings.from_env(), database_url=database_url, encryption=KeySettings(production=True)))
    try:
        eng.migrate()
        eng.upload(FORM)
        with pytest.raises(KeyUnavailable) as caught:
            _submit(eng)
        assert caught.value.code == "crypto.key_missing" and caught.value.status == 503
        assert eng.sensitive_forms_without_key() == ["client"]
        eng.submit("client", {"name": "no secrets"}, CLERK)  # nothing to seal: still works
    finally:
        eng.close()


def test_a_value_sealed_under_a_key_no_longer_held_names_the_key(sealed: Engine, key_file: Path) -> None:
    record = _submit(sealed)
    write_key_file(key_file.with_name("other.json"), {"k9": _key()}, "k9")
    key_file.unlink()
    key_file.with_name("other.json").rename(key_file)
    sealed.vault.cipher.keys.reload()
    with pytest.raises(KeyUnavailable) as caught:
        sealed.record(record["id"])
    assert caught.value.code == "crypto.unknown_key" and caught.value.params == {"kid": "k1"}


def test_development_mode_generates_a_key_file(tmp_path: Path) -> None:
    path = tmp_path / "var" / "master-keys.json"
    ring = KeySource(KeySettings(dev_key_file=path)).keyring()
    assert path.exists() and oct(path.stat().st_mode & 0o777) == "0o600"
    assert KeySource(KeySettings(dev_key_file=path)).keyring().keys == ring.keys  # reused, not regenerated


@pytest.mark.parametrize("bad, reason", [("bm90IDMyIGJ5dGVz", "bytes"), ("%%%", "base64")])
def test_a_malformed_master_key_is_refused(bad: str, reason: str) -> None:
    with pytest.raises(KeyUnavailable) as caught:
        KeySource(KeySettings(master_key=bad)).keyring()
    assert caught.value.code == "crypto.bad_key" and reason in caught.value.params["reason"]


def test_a_reference_field_cannot_be_sensitive(sealed: Engine) -> None:
    with pytest.raises(DefinitionInvalid) as caught:
        sealed.upload({"kind": "form", "key": "link", "title": "Link", "refs": {"client_id": {"form": "client"}},
                       "schema": {"type": "object", "properties": {"client_id": {"type": "string", "sensitive": True}}}})
    assert [issue.code for issue in caught.value.issues] == ["definition.sensitive_ref"]


def test_bulk_import_seals_and_indexes(sealed: Engine, tmp_path: Path) -> None:
    source = tmp_path / "clients.jsonl"
    source.write_text("".join(json.dumps({"name": f"C{n}", "id_number": f"ID-{n:05d}", "phone": f"139{n:08d}",
                                          "region": "Fujian"}) + "\n" for n in range(40)), encoding="utf-8")
    report = sealed.run_import("client", source, batch_size=15)
    assert report.imported == 40
    everything = _dump_every_table(sealed)
    assert "ID-00017" not in everything and "13900000017" not in everything
    found = sealed.find_record_id("client", "id_number", "id-00017")
    assert found is not None and sealed.record(found)["data"]["phone"] == "13900000017"
    assert sealed.key_status().index == {"k1": 80}


def test_bank_personal_data_is_sealed_and_found_by_blind_index(bank_roles: Engine) -> None:
    person = bank_roles.submit("person", {"full_name": "Wang Fang", "id_number": SECRET_ID, "phone": "13800001111"})
    customer = bank_roles.submit("customer", {"company_name": "Fujian Example Trading Co., Ltd.", "region": "Fujian",
                                              "uscc": "91350100M000100Y43", "contact_phone": "+86 591 8765 4321",
                                              "legal_representative": person["id"], "industry_code": "423840",
                                              "employees": 45, "risk_level": "low", "branch": "FZ01",
                                              "account_manager": "mgr-01"})
    everything = _dump_every_table(bank_roles)
    for secret in (SECRET_ID, "13800001111", "8765 4321"):
        assert secret not in everything
    assert bank_roles.find_record_id("person", "id_number", SECRET_ID) == person["id"]
    assert bank_roles.record(customer["id"])["data"]["contact_phone"] == "+86 591 8765 4321"
    # customer service sees the phone masked: its read is not audited as a plaintext read of it
    service = Principal("cs-01", frozenset({"customer_service"}))
    shown = bank_roles.record(customer["id"], service)["data"]["contact_phone"]
    assert shown != "+86 591 8765 4321" and shown.endswith("4321")
    reads = _raw(bank_roles, "SELECT actor, detail FROM audit_log WHERE action = 'record.read_sensitive' "
                             "AND object_id = :id ORDER BY id", id=customer["id"])
    assert [actor for actor, _ in reads] == ["system", "system"]  # the submission's answer and the plain get
    assert json.loads(reads[-1][1])["fields"] == ["/contact_phone"]


def test_a_trigger_updating_a_record_keeps_its_sensitive_fields_sealed(engine: Engine) -> None:
    engine.load_dir(Path(__file__).resolve().parents[2] / "examples" / "bank",
                    kinds=("form", "process", "profile", "tag", "trigger"))
    customer = engine.submit("customer", {"company_name": "Acme Trading", "risk_level": "low",
                                          "contact_phone": "+86 591 8765 4321"})["id"]
    engine.submit("account_flow_alert", {"customer_id": customer, "amount": 1000000, "observed_on": "2024-05-01"})
    [task] = engine.tasks(role="risk_officer")["items"]
    engine.act(task["id"], "confirm", Principal("risk-01", frozenset({"risk_officer"})), "confirmed")
    record = engine.record(customer)
    assert (record["data"]["risk_level"], record["row_version"]) == ("high", 2)  # set by the trigger
    assert record["data"]["contact_phone"] == "+86 591 8765 4321"
    [(data,)] = _raw(engine, "SELECT data FROM records WHERE id = :id", id=customer)
    assert "8765" not in data and json.loads(data)["contact_phone"]["$sealed"] == "v1"


def test_the_keys_commands_show_and_rotate(sealed: Engine, key_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from engine.cli import app

    for n in range(3):
        _submit(sealed, id_number=f"ID-{n}")
    monkeypatch.setenv("LOWCODE_MASTER_KEY_FILE", str(key_file))
    monkeypatch.delenv("LOWCODE_MASTER_KEY", raising=False)
    url = ["--database-url", sealed.db.url]
    shown = CliRunner().invoke(app, ["keys", "status", *url])
    assert shown.exit_code == 0, shown.output
    assert "k1" in shown.output and "12" in shown.output and "9" in shown.output  # 12 values, 9 index rows
    document = json.loads(key_file.read_text())
    document["keys"]["k2"] = base64.b64encode(_key()).decode()
    document["active"] = "k2"
    key_file.write_text(json.dumps(document))
    rotated = CliRunner().invoke(app, ["keys", "rotate", "--batch", "2", *url])
    assert rotated.exit_code == 0, rotated.output
    assert "Re-sealed 3 records under key k2; 0 values remain under other keys" in rotated.output
    sealed.vault.cipher.keys.reload()
    assert sealed.key_status().values == {"k2": 12}


def test_serve_refuses_production_with_sensitive_fields_and_no_key(database_url: str) -> None:
    import typer

    from engine.cli import _refuse_sensitive_without_key

    eng = Engine(database_url, clock=FakeClock(), settings=dataclasses.replace(
        Settings.from_env(), database_url=database_url, encryption=KeySettings(production=True)))
    try:
        eng.migrate()
        _refuse_sensitive_without_key(eng)  # no sensitive form yet: starts
        eng.upload(FORM)
        with pytest.raises(typer.Exit) as stopped:
            _refuse_sensitive_without_key(eng)
        assert stopped.value.exit_code == 2
    finally:
        eng.close()


def test_the_360_view_audits_the_sensitive_values_of_related_records(engine: Engine) -> None:
    engine.load_dir(Path(__file__).resolve().parents[2] / "examples" / "bank",
                    kinds=("form", "process", "profile", "tag", "trigger"))
    person = engine.submit("person", {"full_name": "Wang Fang", "id_number": SECRET_ID, "phone": "13800001111"})["id"]
    customer = engine.submit("customer", {"company_name": "Acme Trading", "legal_representative": person})["id"]
    viewer = Principal("mgr-01", frozenset({"account_manager"}))
    view = engine.record_360(customer, viewer)
    assert SECRET_ID in json.dumps(view, default=str)  # the legal representative, opened
    reads = _raw(engine, "SELECT object_id, detail FROM audit_log WHERE action = 'record.read_sensitive' "
                         "AND actor = 'mgr-01'")
    assert [(object_id, sorted(json.loads(detail)["fields"])) for object_id, detail in reads] == [
        (person, ["/id_number", "/phone"])]


def test_sensitive_must_be_a_boolean(sealed: Engine) -> None:
    with pytest.raises(DefinitionInvalid) as caught:
        sealed.upload({"kind": "form", "key": "odd", "title": "Odd",
                       "schema": {"type": "object", "properties": {"a": {"type": "string", "sensitive": "yes"}}}})
    assert [issue.path for issue in caught.value.issues] == ["/schema/properties/a/sensitive"]


def test_a_report_cannot_use_a_sensitive_field(sealed: Engine) -> None:
    for place in ({"dimensions": [{"name": "phone", "field": "phone"}], "measures": [{"name": "n", "agg": "count"}]},
                  {"dimensions": [{"name": "region", "field": "region"}],
                   "measures": [{"name": "n", "agg": "count_distinct", "field": "id_number"}]}):
        with pytest.raises(DefinitionInvalid) as caught:
            sealed.upload({**REPORT, "key": "leaky", **place})
        assert [issue.code for issue in caught.value.issues] == ["definition.sensitive_field"]


SCORED = {"kind": "form", "key": "scored", "title": "Scored", "process": "screen",
          "schema": {"type": "object", "properties": {"income": {"type": "integer", "sensitive": True},
                                                      "region": {"type": "string"}}}}
SCREEN = {"kind": "process", "key": "screen", "form": "scored", "title": "Screen", "start": "check",
          "states": {"check": {"type": "auto", "transitions": [
                         {"when": {"and": [{">": [{"var": "income"}, 765432]}, {"==": [{"var": "region"}, "Fujian"]}]},
                          "to": "yes"}, {"to": "no"}]},
                     "yes": {"type": "end", "outcome": "approved"}, "no": {"type": "end", "outcome": "rejected"}}}


@pytest.mark.parametrize("bulk", [False, True])
def test_a_rule_decision_records_no_sensitive_input(sealed: Engine, tmp_path: Path, bulk: bool) -> None:
    sealed.upload(SCORED)
    sealed.upload(SCREEN)
    if bulk:
        source = tmp_path / "scored.jsonl"
        source.write_text(json.dumps({"income": 987654, "region": "Fujian"}) + "\n", encoding="utf-8")
        assert sealed.run_import("scored", source).imported == 1
        record_id = sealed.records("scored")["items"][0]["id"]
        instance = sealed.record(record_id)["instances"][0]
    else:
        instance = sealed.submit("scored", {"income": 987654, "region": "Fujian"}, CLERK)["instances"][0]
    assert instance["outcome"] == "approved"  # the rule saw the value
    decided = [event for event in sealed.instance(instance["id"])["history"] if event["detail"] and "inputs" in event["detail"]]
    assert [event["detail"]["inputs"] for event in decided] == [{"income": "[sensitive]", "region": "Fujian"}]
    assert "987654" not in _dump_every_table(sealed)
