"""The mirror's DuckDB connection is locked down even against raw SQL: no files, no network, no
extensions, no settings, no Python variables; memory, threads and query time are bounded."""

from __future__ import annotations

import time
from datetime import timedelta

import duckdb
import pytest

from engine.reports import ReportMirror
from engine.reports.safety import ReportOutOfMemory, ReportTimeout
from engine.reports.settings import ReportSettings

SLOW = "SELECT sum(a.range * b.range) FROM range(200000) a CROSS JOIN range(200000) b"
"""4e10 rows: minutes of work, stopped long before."""


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "secret.csv"
    path.write_text("name,value\nkey,s3cr3t\n")
    return path


def hostile(secret_file) -> list[str]:
    target = secret_file.parent
    return [
        "SELECT * FROM read_csv('/etc/passwd')",
        f"SELECT * FROM read_csv('{secret_file}')",
        f"SELECT * FROM read_text('{secret_file}')",
        f"SELECT * FROM '{secret_file}'",
        f"COPY (SELECT 42) TO '{target / 'out.csv'}'",
        f"ATTACH '{target / 'other.duckdb'}' AS other",
        f"EXPORT DATABASE '{target / 'dump'}'",
        "INSTALL httpfs",
        "LOAD httpfs",
        f"LOAD '{target / 'evil.duckdb_extension'}'",  # (built-in ones such as json are loaded already)
        "INSTALL spatial FROM community",
        "SELECT * FROM read_csv('https://example.com/data.csv')",
        "SET enable_external_access = true",
        "SET memory_limit = '64GB'",
        "SET threads = 64",
        "SET python_enable_replacements = true",
        "SET lock_configuration = false",
        "RESET lock_configuration",
        "PRAGMA memory_limit = '64GB'",
        "SET allow_unsigned_extensions = true",
        "SELECT getenv('HOME')",
    ]


def test_raw_sql_on_the_connection_is_refused(mirror, secret_file):
    connection = mirror._connection  # as if someone got raw SQL past the query compiler
    for sql in hostile(secret_file):
        with pytest.raises(duckdb.Error):
            connection.execute(sql).fetchall()
    assert not (secret_file.parent / "out.csv").exists()
    assert not (secret_file.parent / "other.duckdb").exists()
    assert not (secret_file.parent / "dump").exists()


def test_raw_sql_through_execute_is_refused(mirror, secret_file):
    for sql in hostile(secret_file):
        with pytest.raises(duckdb.Error):
            mirror.execute(sql, [])


def test_a_python_variable_is_not_a_table(mirror):
    secret_rows = duckdb.connect().sql("SELECT 's3cr3t' AS secret")  # a replacement-scan target
    assert secret_rows.fetchall() == [("s3cr3t",)]
    with pytest.raises(duckdb.CatalogException):
        mirror._connection.execute("SELECT * FROM secret_rows").fetchall()
    with pytest.raises(duckdb.CatalogException):
        mirror.execute("SELECT * FROM secret_rows", [])


def test_the_settings_are_in_force_and_locked(database, forms, clock):
    settings = ReportSettings(memory_limit="256MB", threads=1, timeout_seconds=5)
    mirror = ReportMirror(database, forms, clock=clock, settings=settings)
    try:
        rows = dict(mirror._connection.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access',"
            " 'autoload_known_extensions', 'autoinstall_known_extensions', 'allow_community_extensions',"
            " 'allow_unsigned_extensions', 'python_enable_replacements', 'threads', 'memory_limit',"
            " 'lock_configuration', 'temp_directory', 'allow_extension_repositories')").fetchall())
    finally:
        mirror.close()
    assert rows["enable_external_access"] == "false"
    assert rows["autoload_known_extensions"] == "false"
    assert rows["autoinstall_known_extensions"] == "false"
    assert rows["allow_community_extensions"] == "false"
    assert rows["allow_unsigned_extensions"] == "false"
    assert rows["allow_extension_repositories"] == "forbidden"
    assert rows["python_enable_replacements"] == "false"
    assert rows["lock_configuration"] == "true"
    assert rows["threads"] == "1"
    assert rows["memory_limit"] == "244.1 MiB"  # 256 MB
    assert rows["temp_directory"] == ""


def test_a_slow_query_is_interrupted_and_the_connection_still_works(database, forms, clock):
    mirror = ReportMirror(database, forms, clock=clock, settings=ReportSettings(timeout_seconds=0.3),
                          gap_grace=timedelta(minutes=10))
    try:
        started = time.monotonic()
        with pytest.raises(ReportTimeout) as caught:
            mirror.execute(SLOW, [])
        elapsed = time.monotonic() - started
        assert caught.value.code == "report.timeout"
        assert caught.value.status == 503
        assert caught.value.params == {"seconds": "0.3"}
        assert "报表查询超过 0.3 秒" in caught.value.issues[0].message("zh-CN")
        assert elapsed < 10
        assert mirror.execute("SELECT 40 + ?", [2]) == [(42,)]  # no interrupt lingers
        time.sleep(0.4)  # the cancelled timer of a fast query must not stop the next one
        assert mirror.execute("SELECT 1", []) == [(1,)]
    finally:
        mirror.close()


def test_a_query_over_the_memory_limit_fails_cleanly(database, forms, clock):
    mirror = ReportMirror(database, forms, clock=clock, settings=ReportSettings(memory_limit="64MB"))
    try:
        with pytest.raises(ReportOutOfMemory) as caught:
            mirror.execute("SELECT count(DISTINCT range::VARCHAR) FROM range(20000000)", [])
        assert caught.value.code == "report.out_of_memory"
        assert caught.value.status == 503
        assert mirror.execute("SELECT 1", []) == [(1,)]
    finally:
        mirror.close()


def test_settings_from_the_environment():
    settings = ReportSettings.from_environ({"LOWCODE_REPORT_MEMORY_LIMIT": "512MiB", "LOWCODE_REPORT_THREADS": "4",
                                            "LOWCODE_REPORT_TIMEOUT_SECONDS": "2.5"})
    assert settings == ReportSettings(memory_limit="512MiB", threads=4, timeout_seconds=2.5)
    assert ReportSettings.from_environ({}) == ReportSettings()
    for name, value in [("LOWCODE_REPORT_MEMORY_LIMIT", "lots"), ("LOWCODE_REPORT_MEMORY_LIMIT", "1GB'; SET x=1"),
                        ("LOWCODE_REPORT_THREADS", "0"), ("LOWCODE_REPORT_THREADS", "two"),
                        ("LOWCODE_REPORT_TIMEOUT_SECONDS", "0"), ("LOWCODE_REPORT_TIMEOUT_SECONDS", "nan"),
                        ("LOWCODE_REPORT_TIMEOUT_SECONDS", "-1")]:
        with pytest.raises(ValueError, match=name):
            ReportSettings.from_environ({name: value})
