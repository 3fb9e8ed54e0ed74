"""The DuckDB mirror: incremental catch-up, late commits below the last sequence number, new form
versions, rebuilds, conversions and the locked-down connection."""

from __future__ import annotations

import random
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

import duckdb
import pytest
from sqlalchemy import event, insert, text

from engine.reports import ReportMirror, run_report


def _ids(mirror: ReportMirror, form: str) -> list[str]:
    return [row[0] for row in mirror.execute(f'SELECT "_id" FROM "form_{form}" ORDER BY 1', [])]


def test_catch_up_applies_new_records_once(forms, writer, mirror):
    forms.add("visit", [("customer", "string")])
    writer.add("visit", {"customer": "a"}, record_id="a")
    assert mirror.catch_up() == 1
    assert mirror.catch_up() == 0

    writer.add("visit", {"customer": "b"}, record_id="b")

    assert mirror.catch_up() == 1
    assert _ids(mirror, "visit") == ["a", "b"]
    assert mirror.last_seq == 2


def test_updates_and_deletes_follow_the_records_table(forms, writer, mirror):
    forms.add("visit", [("customer", "string")])
    writer.add("visit", {"customer": "a"}, record_id="a")
    writer.add("visit", {"customer": "b"}, record_id="b")
    mirror.catch_up()

    writer.update("visit", "a", {"customer": "changed"})
    writer.delete("visit", "b")
    mirror.catch_up()

    assert mirror.execute('SELECT "_id", "customer" FROM "form_visit"', []) == [("a", "changed")]


@contextmanager
def _open_transaction(database):
    """On PostgreSQL, a transaction with an id of its own held open: gaps noticed meanwhile wait
    for it (it could hold their numbers). Nothing on SQLite."""
    if database.dialect != "postgresql":
        yield
        return
    connection = database.engine.connect()
    try:
        connection.execute(text("SELECT pg_current_xact_id()"))
        yield
    finally:
        connection.rollback()
        connection.close()


def test_a_commit_below_the_last_sequence_number_is_not_missed(database, forms, writer, mirror):
    forms.add("visit", [("customer", "string")])
    # Seq 5 commits first; 3 was taken earlier by a transaction that commits later (PostgreSQL).
    with _open_transaction(database):
        writer.add("visit", {"customer": "late"}, record_id="early", seq=5)
        _assert_gap_split(forms, writer, mirror)


def _assert_gap_split(forms, writer, mirror):
    mirror.catch_up()
    assert _ids(mirror, "visit") == ["early"]
    assert [(gap.low, gap.high) for gap in mirror.gaps] == [(1, 4)]

    writer.add("visit", {"customer": "later"}, record_id="late", seq=3)
    mirror.catch_up()

    assert _ids(mirror, "visit") == ["early", "late"]
    assert [(gap.low, gap.high) for gap in mirror.gaps] == [(1, 2), (4, 4)]
    assert mirror.last_seq == 5


def test_a_gap_is_awaited_from_when_it_was_noticed(forms, writer, mirror, clock):
    forms.add("visit", [("customer", "string")])
    clock.advance(timedelta(minutes=-30))
    writer.add("visit", {"customer": "a"}, record_id="a", seq=5)  # its writer's clock runs late
    clock.advance(timedelta(minutes=30))
    mirror.catch_up()
    clock.advance(timedelta(minutes=9))
    writer.add("visit", {"customer": "b"}, record_id="b", seq=3)

    mirror.catch_up()

    assert _ids(mirror, "visit") == ["a", "b"]


def test_gaps_are_given_up_after_the_grace_window(database, forms, writer, mirror, clock):
    if database.dialect == "postgresql":
        pytest.skip("PostgreSQL gives gaps up by transaction-id watermarks, not by the clock")
    forms.add("visit", [("customer", "string")])
    writer.add("visit", {"customer": "a"}, record_id="a", seq=5)
    mirror.catch_up()
    clock.advance(timedelta(minutes=9))
    mirror.catch_up()
    assert mirror.gaps

    clock.advance(timedelta(minutes=2))
    mirror.catch_up()

    assert mirror.gaps == ()
    # A commit that late is only seen by a rebuild (documented in engine/reports/README.md).
    writer.add("visit", {"customer": "b"}, record_id="b", seq=3)
    mirror.catch_up()
    assert _ids(mirror, "visit") == ["a"]
    mirror.rebuild()
    assert _ids(mirror, "visit") == ["a", "b"]


def test_old_holes_found_on_a_first_catch_up_are_not_kept(database, forms, writer, mirror, clock):
    if database.dialect == "postgresql":
        pytest.skip("PostgreSQL: see test_a_rolled_back_gap_is_given_up_once_later_transactions_pass")
    forms.add("visit", [("customer", "string")])
    clock.advance(timedelta(hours=-2))
    writer.add("visit", {"customer": "a"}, record_id="a", seq=7)  # written two hours ago
    clock.advance(timedelta(hours=2))

    mirror.catch_up()

    assert mirror.gaps == ()


def test_catch_up_reads_in_batches(database, forms, writer, clock):
    forms.add("visit", [("n", "integer")])
    writer.add_many("visit", [{"n": n} for n in range(25)])
    mirror = ReportMirror(database, forms, clock=clock, batch_size=10)
    try:
        assert mirror.catch_up() == 25
        assert mirror.execute('SELECT count(*), sum("n") FROM "form_visit"', []) == [(25, 300)]
        assert mirror.gaps == ()
    finally:
        mirror.close()


def test_a_new_form_version_adds_a_column_and_old_rows_read_null(forms, writer, mirror, report):
    forms.add("visit", [("customer", "string")])
    writer.add("visit", {"customer": "a"}, record_id="a")
    mirror.catch_up()

    v2 = forms.add("visit", [("customer", "string"), ("score", "integer")])
    writer.add("visit", {"customer": "b", "score": 9}, version=2, record_id="b")
    spec = report(
        v2,
        dimensions=[
            {"name": "customer", "field": "customer"},
            {"name": "score", "field": "score"},
            {"name": "version", "field": "_form_version"},
        ],
    )

    assert run_report(mirror, spec)["rows"] == [["a", None, 1, 1], ["b", 9, 2, 1]]


def test_a_report_on_a_new_column_works_before_any_record_has_it(forms, writer, mirror, report):
    forms.add("visit", [("customer", "string")])
    writer.add("visit", {"customer": "a"})
    mirror.catch_up()
    v2 = forms.add("visit", [("customer", "string"), ("score", "integer")])

    spec = report(v2, measures=[{"name": "total", "agg": "sum", "field": "score"}])

    assert run_report(mirror, spec)["rows"] == [[None]]


def test_a_column_that_changes_type_is_reloaded_from_the_stored_json(forms, writer, mirror, report):
    forms.add("item", [("code", "string")])
    writer.add("item", {"code": "12"})
    writer.add("item", {"code": "x7"})
    mirror.catch_up()

    v2 = forms.add("item", [("code", "integer")])
    writer.add("item", {"code": 30}, version=2)
    spec = report(
        v2,
        measures=[
            {"name": "total", "agg": "sum", "field": "code"},
            {"name": "coded", "agg": "count", "field": "code"},
        ],
    )

    assert run_report(mirror, spec)["rows"] == [[42, 2]]


def test_values_that_do_not_fit_their_column_become_null(forms, writer, mirror):
    forms.add(
        "mixed",
        [
            ("n", "integer"),
            ("d", "date"),
            ("t", "datetime"),
            ("b", "boolean"),
            ("m", "decimal", 2),
            ("f", "number"),
            ("j", "json"),
            ("s", "string"),
        ],
    )
    writer.add(
        "mixed",
        {
            "n": "abc",
            "d": "2024-13-45",
            "t": "2024-03-01T10:00:00",
            "b": "yes",
            "m": "12x",
            "f": True,
            "j": {"a": [1, Decimal("2.50")]},
            "s": 5,
        },
        record_id="bad",
    )
    writer.add(
        "mixed",
        {
            "n": 2**63,
            "d": "2024-02-29",
            "t": "2024-03-01T10:00:00.123456789+08:00",
            "b": False,
            "m": Decimal("1.005"),
            "f": Decimal("1.5"),
            "s": "ok",
        },
        record_id="ok",
    )
    mirror.catch_up()

    rows = mirror.execute(
        'SELECT "_id", "n", CAST("d" AS VARCHAR), epoch_us("t"), "b", "m", "f", "j", "s" '
        'FROM "form_mixed" ORDER BY 1',
        [],
    )

    assert rows == [
        ("bad", None, None, None, None, None, None, '{"a":[1,2.50]}', "5"),
        ("ok", None, "2024-02-29", 1709258400123456, False, Decimal("1.01"), 1.5, None, "ok"),
    ]


def test_rebuild_gives_the_same_result(forms, writer, mirror, report):
    form = forms.add("payment", [("amount", "decimal", 2), ("kind", "string")])
    for index in range(30):
        writer.add("payment", {"amount": Decimal(index) / 4, "kind": "abc"[index % 3]})
    spec = report(
        form,
        dimensions=[{"name": "kind", "field": "kind"}],
        measures=[{"name": "total", "agg": "sum", "field": "amount"}],
    )
    before = run_report(mirror, spec)

    mirror.rebuild()

    assert run_report(mirror, spec) == before
    assert mirror.last_seq == 30


def test_records_of_an_unknown_form_get_no_table(forms, writer, mirror):
    writer.add("ghost", {"x": 1})

    assert mirror.catch_up() == 1
    assert mirror.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'form_ghost'", []
    ) == [(1,)]
    assert mirror.execute('SELECT count(*) FROM "form_ghost"', []) == [(1,)]


def test_ten_thousand_records_load_quickly(forms, writer, mirror, report):
    form = forms.add(
        "payment",
        [
            ("amount", "decimal", 2),
            ("day", "date"),
            ("at", "datetime"),
            ("kind", "string"),
            ("n", "integer"),
        ],
    )
    writer.add_many(
        "payment",
        [
            {
                "amount": Decimal(index) / 100,
                "day": f"2024-01-{index % 28 + 1:02d}",
                "at": f"2024-01-01T{index % 24:02d}:00:00Z",
                "kind": "abcd"[index % 4],
                "n": index,
            }
            for index in range(10_000)
        ],
    )

    started = time.perf_counter()
    assert mirror.catch_up() == 10_000
    elapsed = time.perf_counter() - started

    spec = report(form, measures=[{"name": "total", "agg": "sum", "field": "amount"}])
    assert run_report(mirror, spec)["rows"] == [[Decimal("499950.00")]]
    assert elapsed < 15, f"catch-up of 10k records took {elapsed:.1f}s"


def test_the_connection_cannot_read_files_or_load_extensions(mirror):
    with pytest.raises(duckdb.Error):
        mirror.execute("SELECT * FROM read_csv('/etc/passwd')", [])
    with pytest.raises(duckdb.Error):
        mirror.execute("INSTALL httpfs", [])
    with pytest.raises(duckdb.Error):
        mirror.execute("LOAD httpfs", [])
    with pytest.raises(duckdb.Error):
        mirror.execute("SET enable_external_access = true", [])
    with pytest.raises(duckdb.Error):
        mirror.execute("ATTACH '/tmp/mirror-escape.duckdb' AS escape", [])
    assert mirror.execute("SELECT current_setting('lock_configuration')", []) == [(True,)]


def test_a_transaction_that_commits_after_a_later_one_is_picked_up(
    database, forms, writer, mirror, clock
):
    if database.dialect == "sqlite":
        pytest.skip("SQLite serialises writers: sequence numbers always commit in order")
    from sqlalchemy import insert

    from engine.jsoncodec import dumps
    from engine.store.models import ChangeRow, RecordRow

    forms.add("visit", [("customer", "string")])
    now = clock.now()
    slow = database.engine.connect()
    try:
        transaction = slow.begin()
        slow.execute(
            insert(RecordRow).values(
                id="slow",
                form_key="visit",
                form_version=1,
                data=dumps({"customer": "s"}),
                row_version=1,
                created_at=now,
                updated_at=now,
                created_by="t",
            )
        )
        slow.execute(
            insert(ChangeRow).values(entity="record", entity_id="slow", scope="visit", at=now)
        )
        writer.add(
            "visit", {"customer": "f"}, record_id="fast"
        )  # takes the next number, commits first
        mirror.catch_up()
        assert _ids(mirror, "visit") == ["fast"]
        assert len(mirror.gaps) == 1

        transaction.commit()
    finally:
        slow.close()
    mirror.catch_up()

    assert _ids(mirror, "visit") == ["fast", "slow"]
    assert mirror.gaps == ()


def test_queries_and_catch_ups_from_several_threads(forms, writer, mirror, report):
    import threading

    form = forms.add("visit", [("n", "integer")])
    spec = report(form, measures=[{"name": "total", "agg": "sum", "field": "n"}])
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                run_report(mirror, spec)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for n in range(1, 41):
            writer.add("visit", {"n": n})
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    assert errors == []
    assert run_report(mirror, spec)["rows"] == [[820]]


# -- PostgreSQL: gaps end by transaction-id watermarks, never by the clock -----------------------


def _pg_only(database):
    if database.dialect != "postgresql":
        pytest.skip("SQLite serialises writers: sequence numbers always commit in order")


def _begin_slow(database, clock, record_id):
    """A transaction that writes a record and takes a change number, left open."""
    from engine.jsoncodec import dumps
    from engine.store.models import ChangeRow, RecordRow

    now = clock.now()
    connection = database.engine.connect()
    connection.execute(
        insert(RecordRow).values(
            id=record_id, form_key="visit", form_version=1, data=dumps({"customer": record_id}),
            row_version=1, created_at=now, updated_at=now, created_by="t",
        )
    )
    connection.execute(
        insert(ChangeRow).values(entity="record", entity_id=record_id, scope="visit", at=now)
    )
    return connection


def _catch_up_until_no_gaps(mirror, seconds=30.0):
    """Other transactions of the server (other databases too) may hold the oldest running
    transaction id back for a moment: catch up until the gaps are given up."""
    deadline = time.monotonic() + seconds
    while True:
        mirror.catch_up()
        if mirror.gaps == () or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def test_a_transaction_open_for_hours_that_then_commits_is_picked_up(
    database, forms, writer, mirror, clock
):
    _pg_only(database)
    forms.add("visit", [("customer", "string")])
    slow = _begin_slow(database, clock, "slow")  # takes number 1 and stays open
    try:
        writer.add("visit", {"customer": "f"}, record_id="fast")  # number 2 commits first
        mirror.catch_up()
        assert _ids(mirror, "visit") == ["fast"]
        assert [(gap.low, gap.high) for gap in mirror.gaps] == [(1, 1)]
        for hour in range(1, 7):  # far past the old 10-minute grace window
            clock.advance(timedelta(hours=1))
            writer.add("visit", {"customer": "x"}, record_id=f"later{hour}")
            mirror.catch_up()
            assert [(gap.low, gap.high) for gap in mirror.gaps] == [(1, 1)]
        slow.commit()
    finally:
        slow.close()

    mirror.catch_up()

    assert "slow" in _ids(mirror, "visit")
    assert len(_ids(mirror, "visit")) == 8
    _catch_up_until_no_gaps(mirror)
    assert mirror.gaps == ()


def test_a_rolled_back_gap_is_given_up_once_later_transactions_pass(
    database, forms, writer, mirror, clock
):
    _pg_only(database)
    forms.add("visit", [("customer", "string")])
    slow = _begin_slow(database, clock, "gone")
    try:
        writer.add("visit", {"customer": "f"}, record_id="fast")
        mirror.catch_up()
        assert [(gap.low, gap.high) for gap in mirror.gaps] == [(1, 1)]
        mirror.catch_up()
        assert [(gap.low, gap.high) for gap in mirror.gaps] == [(1, 1)]  # still open: kept
        slow.rollback()
    finally:
        slow.close()
    writer.add("visit", {"customer": "g"}, record_id="after")

    _catch_up_until_no_gaps(mirror)

    assert mirror.gaps == ()
    assert _ids(mirror, "visit") == ["after", "fast"]


def test_a_change_row_flushed_first_gets_its_transaction_id_before_its_number(
    database, forms, writer
):
    _pg_only(database)
    statements: list[str] = []

    def remember(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", remember)
    try:
        writer.change_only("visit", "nothing", seq=None)  # the change row is the only write
    finally:
        event.remove(database.engine, "before_cursor_execute", remember)
    xid = next(i for i, s in enumerate(statements) if "pg_current_xact_id" in s)
    change = next(i for i, s in enumerate(statements) if "INSERT INTO changes" in s)
    assert xid < change


def test_concurrent_writers_committing_out_of_order_are_never_missed(
    database, forms, clock
):
    """8 threads x 50 transactions, each sleeping a random moment between taking its change
    number and committing (so numbers commit out of order, and about 1 in 10 rolls back), while
    another thread catches up and runs a count report without pause and the clock jumps hours.
    The mirror must end with exactly the committed rows, five times over."""
    from engine.jsoncodec import dumps
    from engine.reports import compile_report
    from engine.store.models import ChangeRow, RecordRow

    form = forms.add("visit", [("n", "integer")])
    spec = compile_report(
        {"kind": "report", "key": "count", "title": "Count", "source": {"form": "visit"},
         "measures": [{"name": "rows", "agg": "count"}]},
        form, 1,
    )
    mirror = ReportMirror(database, forms, clock=clock, gap_grace=timedelta(0))
    committed_total = 0
    try:
        for run in range(5):
            committed = [0] * 8
            errors: list[BaseException] = []
            stop = threading.Event()

            def write(thread: int, run: int = run) -> None:
                rng = random.Random(run * 100 + thread)
                try:
                    for n in range(50):
                        rollback = rng.random() < 0.1
                        try:
                            with database.transaction() as session:
                                now = clock.now()
                                record_id = f"{run}-{thread}-{n}"
                                session.add(RecordRow(
                                    id=record_id, form_key="visit", form_version=1,
                                    data=dumps({"n": n}), row_version=1, created_at=now,
                                    updated_at=now, created_by="t"))
                                session.add(ChangeRow(entity="record", entity_id=record_id,
                                                      scope="visit", at=now))
                                session.flush()  # the change number is taken here
                                time.sleep(rng.random() * 0.01)
                                if rollback:
                                    raise _RollBack
                        except _RollBack:
                            continue
                        committed[thread] += 1
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                    errors.append(exc)

            def follow() -> None:
                try:
                    while not stop.is_set():
                        mirror.catch_up()
                        run_report(mirror, spec)
                        clock.advance(timedelta(hours=1))  # no clock may end a gap
                except BaseException as exc:  # noqa: BLE001
                    errors.append(exc)

            follower = threading.Thread(target=follow)
            writers = [threading.Thread(target=write, args=(t,)) for t in range(8)]
            follower.start()
            for thread in writers:
                thread.start()
            for thread in writers:
                thread.join()
            stop.set()
            follower.join()
            assert errors == []
            committed_total += sum(committed)
            counted = run_report(mirror, spec)["rows"][0][0]
            rows_in_oltp = _count_records(database)
            print(f"run {run + 1}: committed {committed_total} ({sum(committed)} this run), "
                  f"records table {rows_in_oltp}, report count {counted}, "
                  f"gaps still awaited {len(mirror.gaps)}")
            assert counted == committed_total == rows_in_oltp
    finally:
        mirror.close()


class _RollBack(Exception):
    pass


def _count_records(database) -> int:
    from sqlalchemy import func, select

    from engine.store.models import RecordRow

    with database.read() as session:
        return session.scalar(select(func.count()).select_from(RecordRow))
