"""Which definition versions are current is cached per registry and re-checked with one query per
operation; an upload by another process (another Engine on the same database) is seen by the
next operation, and one operation sees one catalog from start to end."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from engine import Engine, FakeClock


def _form(title: str, extra: str | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {"name": {"type": "string", "title": "Name"}}
    if extra:
        properties[extra] = {"type": "string", "title": extra}
    return {"kind": "form", "key": "visit", "title": title,
            "schema": {"type": "object", "properties": properties, "required": ["name"]}}


@pytest.fixture
def other(database_url: str, engine: Engine, clock: FakeClock) -> Iterator[Engine]:
    """A second engine on the same database, as another server process would be."""
    second = Engine(database_url, clock=clock)
    yield second
    second.close()


def test_an_upload_elsewhere_is_seen_by_the_next_lookup(engine: Engine, other: Engine) -> None:
    engine.upload(_form("Visit"))
    assert other.registry.form("visit").version == 1  # cached in `other` from here on
    engine.upload(_form("Visit", extra="note"))
    assert other.registry.form("visit").version == 2
    assert other.submit("visit", {"name": "A", "note": "n"})["form_version"] == 2


def test_one_operation_sees_one_catalog(engine: Engine, other: Engine) -> None:
    engine.upload(_form("Visit"))
    with other.registry.pinned():
        assert other.registry.latest_version("form", "visit") == 1
        engine.upload(_form("Visit", extra="note"))
        assert other.registry.latest_version("form", "visit") == 1  # the snapshot it started with
    assert other.registry.latest_version("form", "visit") == 2


def test_a_definition_uploaded_in_a_rolled_back_transaction_is_not_kept(engine: Engine) -> None:
    engine.upload(_form("Visit"))
    from engine.store.models import DefinitionRow

    with pytest.raises(RuntimeError), engine.db.transaction() as session:
        session.add(DefinitionRow(kind="form", key="visit", version=2, body="{}", digest="x" * 64,
                                  created_at=engine.clock.now(), created_by="test"))
        session.flush()
        assert engine.registry.latest_version("form", "visit") == 2  # the transaction sees its own row
        raise RuntimeError("roll back")
    assert engine.registry.latest_version("form", "visit") == 1


def test_a_submission_asks_the_catalog_once(engine: Engine) -> None:
    engine.upload(_form("Visit"))
    statements: Counter[str] = Counter()

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        text = " ".join(statement.split())
        if "FROM definitions" in text and text != "SELECT max(definitions.id) AS max_1 FROM definitions":
            statements[text[:80]] += 1  # the registry's (the insight catalog checks its own stamp)

    engine.registry.form("visit")  # the catalogs as of the upload are cached
    engine.insight.current()
    event.listen(engine.db.engine, "before_cursor_execute", seen)
    if engine.db._read_engine is not engine.db.engine:
        event.listen(engine.db._read_engine, "before_cursor_execute", seen)
    engine.submit("visit", {"name": "A"})
    assert sum(statements.values()) == 1, statements  # the catalog's stamp, for the form, roles and process
