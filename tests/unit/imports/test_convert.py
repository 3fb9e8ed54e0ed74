"""Cell conversion: exact numbers, dates in three notations, booleans."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from engine.imports import BadCell, CellType, ColumnField, convert_cell, convert_value


def column(cell_type: CellType, **options: object) -> ColumnField:
    return ColumnField("field", "Column", cell_type, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$1,234,567.89", "1234567.89"),
        ("1234567.89", "1234567.89"),
        ("30000", "30000"),
        ("0.10", "0.10"),
        ("-$5.10", "-5.10"),
        ("$-5.10", "-5.10"),
        (".5", "0.5"),
        ("1 234.50", "1234.50"),
        ("+7", "7"),
    ],
)
def test_decimal_cell_is_exact(text: str, expected: str) -> None:
    value = convert_cell(text, column(CellType.DECIMAL))
    assert isinstance(value, Decimal)
    assert value == Decimal(expected)
    assert str(value) == expected  # same digits, same scale: never went through float


def test_decimal_keeps_digits_a_float_would_lose() -> None:
    value = convert_cell("12345678901234567.89", column(CellType.DECIMAL))
    assert value == Decimal("12345678901234567.89")
    assert float("12345678901234567.89") != value


@pytest.mark.parametrize(
    "text", ["NaN", "Infinity", "-inf", "1e3", "1,5", "12,34", "5.", "$", "-$-5", "1.2.3", "abc"]
)
def test_decimal_cell_rejects_what_is_not_a_plain_amount(text: str) -> None:
    with pytest.raises(BadCell) as caught:
        convert_cell(text, column(CellType.DECIMAL))
    assert caught.value.expected == "decimal number"


@pytest.mark.parametrize(("text", "expected"), [("650", 650), ("1,234", 1234), ("-7", -7), ("0", 0)])
def test_integer_cell(text: str, expected: int) -> None:
    value = convert_cell(text, column(CellType.INTEGER))
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize("text", ["12.0", "1,5", "seven", "1e2", ""])
def test_integer_cell_rejects_non_integers(text: str) -> None:
    with pytest.raises(BadCell):
        convert_cell(text, column(CellType.INTEGER))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", "1960-01-01"),
        ("-1", "1959-12-31"),
        ("366", "1961-01-01"),  # 1960 is a leap year
        ("15074", "2001-04-09"),  # first SBA row: ApprovalDate 15074, ApprovalFY 2001
        ("15095", "2001-04-30"),  # its DisbursementDate, three weeks later
    ],
)
def test_sas_day_number_counts_days_from_1960(text: str, expected: str) -> None:
    assert convert_cell(text, column(CellType.DATE, date_format="sas")) == expected


@pytest.mark.parametrize("text", ["15074.5", "15,074", "99999999", "day one"])
def test_sas_date_rejects_non_day_numbers(text: str) -> None:
    with pytest.raises(BadCell):
        convert_cell(text, column(CellType.DATE, date_format="sas"))


def test_iso_date_is_strict() -> None:
    assert convert_cell("2019-03-01", column(CellType.DATE)) == "2019-03-01"
    for text in ("2019-02-30", "20190301", "2019-3-1", "2019-03-01T00:00"):
        with pytest.raises(BadCell):
            convert_cell(text, column(CellType.DATE))


def test_strptime_date_format_reads_us_dates() -> None:
    spec = column(CellType.DATE, date_format="%m/%d/%Y")
    assert convert_cell("09/12/2016", spec) == "2016-09-12"
    with pytest.raises(BadCell):
        convert_cell("2016-09-12", spec)
    with pytest.raises(BadCell):
        convert_cell("13/01/2016", spec)


def test_boolean_default_words_are_case_insensitive() -> None:
    spec = column(CellType.BOOLEAN)
    assert [convert_cell(t, spec) for t in ("Yes", "TRUE", "y", "1")] == [True] * 4
    assert [convert_cell(t, spec) for t in ("No", "false", "N", "0")] == [False] * 4
    with pytest.raises(BadCell):
        convert_cell("maybe", spec)


def test_boolean_custom_words_replace_the_defaults() -> None:
    spec = column(CellType.BOOLEAN, true_values=frozenset({"ja"}), false_values=frozenset({"nein"}))
    assert convert_cell("Ja", spec) is True
    assert convert_cell("nein", spec) is False
    with pytest.raises(BadCell):
        convert_cell("yes", spec)


def test_string_cell_is_kept() -> None:
    assert convert_cell("Winset, Inc. dba Bankers Hill", column(CellType.STRING)) == (
        "Winset, Inc. dba Bankers Hill"
    )


# -- JSON Lines values that are not strings --------------------------------------------------------


@pytest.mark.parametrize(("value", "cell_type", "expected"), [
    (5, CellType.INTEGER, 5),
    (Decimal("12.0"), CellType.INTEGER, 12),
    (5, CellType.DECIMAL, Decimal(5)),
    (Decimal("1.10"), CellType.DECIMAL, Decimal("1.10")),
    (True, CellType.BOOLEAN, True),
    (1, CellType.BOOLEAN, True),
    (0, CellType.BOOLEAN, False),
    (92801, CellType.STRING, "92801"),
    (Decimal("1.50"), CellType.STRING, "1.50"),
    (15074, CellType.DATE, "2001-04-09"),
    ({"a": [1]}, CellType.JSON, {"a": [1]}),
    ([1, 2], CellType.JSON, [1, 2]),
])
def test_json_values_convert_exactly(value: Any, cell_type: CellType, expected: Any) -> None:
    date_format = "sas" if cell_type is CellType.DATE else "iso"
    result = convert_value(value, ColumnField("x", "X", cell_type, date_format=date_format))
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(("value", "cell_type"), [
    (Decimal("1.5"), CellType.INTEGER), (True, CellType.INTEGER), (True, CellType.DECIMAL),
    ({"a": 1}, CellType.STRING), ([1], CellType.DECIMAL), (2, CellType.BOOLEAN),
])
def test_json_values_that_do_not_fit_are_bad_cells(value: Any, cell_type: CellType) -> None:
    with pytest.raises(BadCell):
        convert_value(value, ColumnField("x", "X", cell_type))


def test_a_json_cell_of_a_csv_file_is_parsed_exactly() -> None:
    assert convert_cell('{"amount": 1.10, "tags": ["a"]}', ColumnField("x", "X", CellType.JSON)) == {
        "amount": Decimal("1.10"), "tags": ["a"]}
    with pytest.raises(BadCell):
        convert_cell("{NaN}", ColumnField("x", "X", CellType.JSON))


@pytest.mark.parametrize("text", ["0", "007", "650", "1,234", "+5", "-7", "\u00b2", "\u0663", "12 345", "1\u00a0000"])
def test_plain_digits_read_as_the_pattern_reads_them(text: str) -> None:
    from engine.imports.convert import _INTEGER, _SPACES

    match = _INTEGER.fullmatch(_SPACES.sub("", text))
    if match is None:
        with pytest.raises(BadCell):
            convert_cell(text, column(CellType.INTEGER))
    else:
        assert convert_cell(text, column(CellType.INTEGER)) == int(match["sign"] + match["int"].replace(",", ""))


def test_a_repeated_date_converts_the_same_and_a_bad_one_fails_every_time() -> None:
    for _ in range(3):
        assert convert_cell("15074", column(CellType.DATE, date_format="sas")) == "2001-04-09"
        assert convert_cell("01/02/2003", column(CellType.DATE, date_format="%m/%d/%Y")) == "2003-01-02"
        with pytest.raises(BadCell):
            convert_cell("day one", column(CellType.DATE, date_format="sas"))
