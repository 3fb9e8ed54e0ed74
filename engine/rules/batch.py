"""Evaluate rules over many rows at once: in DuckDB where a rule compiles to SQL
(:mod:`engine.rules.to_sql`), row by row with the engine's evaluator where it does not, and for
the rows the SQL leaves to the evaluator. Either way each row's answer is the one
:meth:`CompiledRule.holds` gives on it."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import duckdb

from engine.reports.mirror import connect_duckdb
from engine.rules.compiler import CompiledRule, RuleError
from engine.rules.to_sql import Column, ColumnPlan, NotCompilable, SqlRule, compile_sql, lookup
from engine.rules.to_sql import native_number, profile_column

ERROR = "error"
"""A row on which the rule fails (the engine's evaluator raises :class:`RuleError`)."""


@dataclass(frozen=True)
class RuleOutcome:
    """One rule over every row."""

    results: tuple[Any, ...]
    """Per row: ``True``/``False`` (or the value with ``want="value"``), or :data:`ERROR`."""
    sql_rows: int
    """Rows decided in DuckDB."""
    row_rows: int
    """Rows decided by the engine's evaluator."""
    mode: str
    """``exact`` or ``native`` SQL, or ``rows`` when the rule did not compile."""
    reason: str | None = None
    """Why the rule (or the query) fell back to row-by-row evaluation."""


class _Profiles:
    """The values at each path the rules read (looked up once) and the column they make."""

    def __init__(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.rows = rows
        self.found: dict[str, list[tuple[bool, Any]]] = {}
        self.cache: dict[str, Column] = {}

    def values(self, path: str) -> list[tuple[bool, Any]]:
        if path not in self.found:
            self.found[path] = [lookup(row, path) for row in self.rows]
        return self.found[path]

    def __call__(self, path: str) -> Column:
        if path not in self.cache:
            self.cache[path] = profile_column([value for _, value in self.values(path)])
        return self.cache[path]


def evaluate_rules(rules: Mapping[str, CompiledRule], rows: Sequence[Mapping[str, Any]], *,
                   want: Literal["truth", "value"] = "truth",
                   connection: duckdb.DuckDBPyConnection | None = None) -> dict[str, RuleOutcome]:
    """Each rule of ``rules`` over every row of ``rows`` (the data each would be evaluated on)."""
    profiles = _Profiles(rows)
    plan = ColumnPlan()
    compiled: dict[str, SqlRule] = {}
    refused: dict[str, str] = {}
    for index, (name, rule) in enumerate(rules.items()):
        try:
            compiled[name] = compile_sql(rule, profiles, plan, prefix=f"r{index}_", want=want)
        except NotCompilable as exc:
            refused[name] = str(exc)
    outcomes: dict[str, RuleOutcome] = {}
    for name, reason in refused.items():
        outcomes[name] = _row_by_row(rules[name], rows, want, range(len(rows)), reason=reason)
    if compiled:
        own = connection is None
        con = connect_duckdb() if own else connection
        assert con is not None
        try:
            table = _load(con, plan, profiles)
            try:
                for name, sql in compiled.items():
                    outcomes[name] = _run(con, table, sql, rules[name], rows, want)
            finally:
                con.execute(f'DROP TABLE "{table}"')
        finally:
            if own:
                con.close()
    return {name: outcomes[name] for name in rules}


def _row_by_row(rule: CompiledRule, rows: Sequence[Mapping[str, Any]], want: str, which: Any, *,
                reason: str | None) -> RuleOutcome:
    results = tuple(_evaluate(rule, rows[index], want) for index in which)
    return RuleOutcome(results, 0, len(results), "rows", reason)


def _evaluate(rule: CompiledRule, row: Mapping[str, Any], want: str) -> Any:
    try:
        return rule.evaluate(row) if want == "value" else rule.holds(row)  # type: ignore[arg-type]
    except RuleError:
        return ERROR


_TABLE_COUNTER = [0]


def _load(con: duckdb.DuckDBPyConnection, plan: ColumnPlan, profiles: _Profiles) -> str:
    """A temporary table with one row per row of ``rows`` (``rid`` its index) and the columns
    of ``plan``, filled from lists bound as parameters (one statement)."""
    _TABLE_COUNTER[0] += 1
    table = f"rows_{_TABLE_COUNTER[0]}"
    definitions = ['"rid" INTEGER']
    selects = ["unnest($rid)"]
    rows = profiles.rows
    params: dict[str, Any] = {"rid": list(range(len(rows)))}
    for (path, representation), column in plan.columns.items():
        values = profiles.values(path)
        if representation == "present":
            sql_type, data = "BOOLEAN", [found for found, _ in values]
            selects.append(f"unnest(CAST(${column} AS BOOLEAN[]))")
        elif representation == "dec":
            scale = profiles(path).scale
            sql_type = f"DECIMAL(38, {scale})"
            data = [None if value is None else format(Decimal(value), "f") for _, value in values]
            selects.append(f"CAST(unnest(CAST(${column} AS VARCHAR[])) AS {sql_type})")
        elif representation == "dbl":
            sql_type = "DOUBLE"
            data = [None if value is None else native_number(value) for _, value in values]
            selects.append(f"unnest(CAST(${column} AS DOUBLE[]))")
        elif representation == "bool":
            sql_type, data = "BOOLEAN", [value for _, value in values]
            selects.append(f"unnest(CAST(${column} AS BOOLEAN[]))")
        else:
            sql_type, data = "VARCHAR", [value for _, value in values]
            selects.append(f"unnest(CAST(${column} AS VARCHAR[]))")
        definitions.append(f'"{column}" {sql_type}')
        params[column] = data
    con.execute(f'CREATE TEMPORARY TABLE "{table}" ({", ".join(definitions)})')
    if rows:
        con.execute(f'INSERT INTO "{table}" SELECT {", ".join(selects)}', params)
    return table


def _run(con: duckdb.DuckDBPyConnection, table: str, sql: SqlRule, rule: CompiledRule,
         rows: Sequence[Mapping[str, Any]], want: str) -> RuleOutcome:
    answer = sql.value if want == "value" else sql.truth
    query = f'SELECT {sql.fallback}, {answer} FROM "{table}" ORDER BY "rid"'
    try:
        params = {name: item for name, item in sql.params.items() if f"${name} AS" in query}
        fetched = con.execute(query, params).fetchall()
    except duckdb.Error as exc:  # a value out of DECIMAL range: DuckDB fails rather than rounds
        return _row_by_row(rule, rows, want, range(len(rows)), reason=f"the SQL failed ({type(exc).__name__})")
    results: list[Any] = []
    row_rows = 0
    for index, (fallback, value) in enumerate(fetched):
        if fallback:
            row_rows += 1
            results.append(_evaluate(rule, rows[index], want))
        else:
            results.append(_from_sql(value, sql) if want == "value" else bool(value))
    return RuleOutcome(tuple(results), len(rows) - row_rows, row_rows, sql.mode)


def _from_sql(value: Any, sql: SqlRule) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))  # as the engine reads a double back from the native core
    return value  # DECIMAL comes back as Decimal, VARCHAR as str, BOOLEAN as bool, NULL as None
