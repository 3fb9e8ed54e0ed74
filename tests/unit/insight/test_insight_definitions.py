"""Profiles, tags and triggers are checked at upload: every wrong name comes back with its pointer."""
from __future__ import annotations

import pytest

from engine import Engine
from engine.errors import DefinitionInvalid

FORMS = [
    {"kind": "form", "key": "client", "title": "Client",
     "schema": {"type": "object", "properties": {"name": {"type": "string"}, "parent": {"type": "string"},
                                                  "level": {"type": "string"}}},
     "refs": {"parent": {"form": "client"}}},
    {"kind": "form", "key": "order", "title": "Order",
     "schema": {"type": "object", "properties": {"client": {"type": "string"}, "amount": {"type": "number"},
                                                  "note": {"type": "string"}, "day": {"type": "string", "format": "date"}}},
     "refs": {"client": {"form": "client"}}},
]
PROFILE = {"kind": "profile", "key": "client_view", "title": "Client", "form": "client", "children": "parent",
           "aggregates": {"spent": {"form": "order", "via": "client", "agg": "sum", "field": "amount"}}}


@pytest.fixture
def eng(engine: Engine) -> Engine:
    for document in FORMS:
        engine.upload(document)
    return engine


def issues(eng: Engine, document: dict) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionInvalid) as caught:
        eng.upload(document)
    return sorted((issue.path, issue.code) for issue in caught.value.issues)


def test_a_profile_names_real_forms_refs_and_fields_of_the_right_type(eng: Engine) -> None:
    bad = {**PROFILE, "children": "name", "aggregates": {
        "a": {"form": "order", "via": "note", "agg": "count"},
        "b": {"form": "order", "via": "client", "agg": "sum", "field": "note"},
        "c": {"form": "order", "via": "client", "agg": "max", "field": "missing"},
        "d": {"form": "order", "via": "client", "agg": "count", "where": {"==": [{"var": "nope"}, 1]}},
        "e": {"form": "order", "via": "client", "agg": "count", "within_days": {"field": "note", "days": 3}}}}
    assert issues(eng, bad) == [
        ("/aggregates/a/via", "definition.unknown_ref"), ("/aggregates/b/field", "definition.bad_field_type"),
        ("/aggregates/c/field", "definition.unknown_field"), ("/aggregates/d/where/==/0/var", "definition.unknown_field"),
        ("/aggregates/e/within_days/field", "definition.bad_field_type"), ("/children", "definition.unknown_ref")]
    assert eng.upload(PROFILE)["created"] is True


def test_a_tag_reads_only_fields_and_aggregates_of_its_profile(eng: Engine) -> None:
    eng.upload(PROFILE)
    assert issues(eng, {"kind": "tag", "key": "big", "title": "Big", "profile": "client_view",
                        "rule": {"and": [{">": [{"var": "agg.spent_total"}, 1]}, {"var": "colour"}]}}) == [
        ("/rule/and/0/>/0/var", "definition.unknown_field"), ("/rule/and/1/var", "definition.unknown_field")]
    assert issues(eng, {"kind": "tag", "key": "big", "title": "Big", "profile": "nowhere", "rule": True}) == [
        ("/profile", "definition.unknown_profile")]
    eng.upload({"kind": "tag", "key": "big", "title": "Big", "profile": "client_view",
                "rule": {">": [{"var": "agg.spent"}, 100]}})


def test_a_trigger_names_a_process_of_its_form_or_fields_of_the_referenced_form(eng: Engine) -> None:
    assert issues(eng, {"kind": "trigger", "key": "t", "title": "T", "on": "record.created", "form": "order",
                        "when": {"var": "colour"}, "update": {"ref": "note", "set": {"level": "high"}}}) == [
        ("/update/ref", "definition.unknown_ref"), ("/when/var", "definition.unknown_field")]
    assert issues(eng, {"kind": "trigger", "key": "t", "title": "T", "on": "record.created", "form": "order",
                        "update": {"ref": "client", "set": {"grade": "high"}}}) == [
        ("/update/set/grade", "definition.unknown_field")]
    assert issues(eng, {"kind": "trigger", "key": "t", "title": "T", "on": "instance.completed", "process": "none",
                        "update": {"ref": "client", "set": {"level": "high"}}}) == [
        ("/process", "definition.unknown_process")]
    # the meta-schema: exactly one of start / update
    assert [code for _path, code in issues(eng, {"kind": "trigger", "key": "t", "title": "T", "on": "record.created",
                                                 "form": "order"})] == ["definition.schema"]


def test_a_bulk_import_numbers_its_events_in_the_feed_without_gaps(eng: Engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    eng.submit("client", {"name": "first"})
    source = tmp_path / "clients.csv"
    source.write_text("name\n" + "\n".join(f"client {index}" for index in range(250)) + "\n", encoding="utf-8")
    report = eng.run_import("client", source, batch_size=100)
    assert report.imported == 250
    eng.submit("client", {"name": "last"})
    items = eng.events(0, 1000)["items"]
    assert [item["seq"] for item in items] == list(range(1, 253))
    assert [item["topic"] for item in items] == ["record.created"] * 252
    assert len({item["id"] for item in items}) == 252


def test_tags_and_aggregates_read_sealed_values_opened(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import dataclasses
    import os

    from engine import FakeClock
    from engine.config import Settings
    from engine.security.keyring import KeySettings, write_key_file

    keys = tmp_path / "keys.json"
    write_key_file(keys, {"k1": os.urandom(32)}, "k1")
    sealed = Engine(database_url, clock=FakeClock(), settings=dataclasses.replace(
        Settings.from_env(), database_url=database_url, encryption=KeySettings(key_file=keys)))
    sealed.migrate()
    try:
        sealed.upload({"kind": "form", "key": "client", "title": "Client", "schema": {"type": "object", "properties": {
            "name": {"type": "string"}, "income": {"type": "integer", "sensitive": True}}}})
        sealed.upload({"kind": "form", "key": "order", "title": "Order", "schema": {"type": "object", "properties": {
            "client": {"type": "string"}, "amount": {"type": "integer", "sensitive": True}}},
            "refs": {"client": {"form": "client"}}})
        sealed.upload({"kind": "profile", "key": "client_view", "title": "Client", "form": "client",
                       "aggregates": {"spent": {"form": "order", "via": "client", "agg": "sum", "field": "amount"}}})
        sealed.upload({"kind": "tag", "key": "vip", "title": "VIP", "profile": "client_view",
                       "rule": {"and": [{">": [{"var": "income"}, 1000]}, {">=": [{"var": "agg.spent"}, 500]}]}})
        client = sealed.submit("client", {"name": "Acme", "income": 5000})["id"]
        sealed.submit("order", {"client": client, "amount": 300})
        assert sealed.record_360(client)["tags"] == []
        sealed.submit("order", {"client": client, "amount": 200})
        view = sealed.record_360(client)
        assert [item["tag"] for item in view["tags"]] == ["vip"]
        assert view["aggregates"]["spent"]["value"] == 500
    finally:
        sealed.close()


def test_an_instance_completed_by_a_timer_fires_its_triggers(eng: Engine, clock) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    eng.upload({"kind": "process", "key": "order_check", "form": "order", "title": "Check", "start": "check",
                "states": {"check": {"type": "task", "title": "Check", "assignee": {"role": "clerk"},
                                     "sla": {"due": "PT1H", "timeout": {"after": "PT1H", "action": "approve"}},
                                     "actions": {"approve": {"transitions": [{"to": "done"}]}}},
                           "done": {"type": "end", "title": "Done", "outcome": "checked"}}})
    eng.upload({"kind": "trigger", "key": "check_orders", "title": "Check", "on": "record.created", "form": "order",
                "start": "order_check"})
    eng.upload({"kind": "trigger", "key": "checked_levels_client", "title": "Checked", "on": "instance.completed",
                "process": "order_check", "when": {"==": [{"var": "_process.outcome"}, "checked"]},
                "update": {"ref": "client", "set": {"level": "checked"}}})
    client = eng.submit("client", {"name": "Acme"})["id"]
    order = eng.submit("order", {"client": client, "amount": 5})
    assert [case["process"] for case in order["instances"]] == ["order_check"]
    clock.advance(timedelta(hours=2))
    eng.run_timers()
    assert eng.record(order["id"])["instances"][0]["outcome"] == "checked"
    assert eng.record(client)["data"]["level"] == "checked"


def test_lowcode_tags_recompute_rebuilds_lost_tags(eng: Engine, database_url: str) -> None:
    from sqlalchemy import delete
    from typer.testing import CliRunner

    from engine.cli import app
    from engine.store.models import RecordTagRow

    eng.upload(PROFILE)
    eng.upload({"kind": "tag", "key": "big", "title": "Big", "profile": "client_view",
                "rule": {">": [{"var": "agg.spent"}, 100]}})
    client = eng.submit("client", {"name": "Acme"})["id"]
    eng.submit("order", {"client": client, "amount": 150})
    with eng.db.transaction() as session:
        session.execute(delete(RecordTagRow))
    result = CliRunner().invoke(app, ["tags", "recompute", "--database-url", database_url])
    assert result.exit_code == 0, result.output
    assert "records: 1  tag changes: 1" in result.output
    assert [item["tag"] for item in eng.record_360(client)["tags"]] == ["big"]
    misspelt = CliRunner().invoke(app, ["tags", "recompute", "--form", "nosuch", "--database-url", database_url])
    assert misspelt.exit_code == 2 and "definition.not_found" in misspelt.output
