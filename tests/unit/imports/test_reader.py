"""Reading delimited files: header checks, numbering, ragged records, encodings."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from engine.imports import (
    SourceError,
    SourceOptions,
    SourceRow,
    open_source,
    read_header,
    read_rows,
)

CSV = SourceOptions()


def write(tmp_path: Path, content: str | bytes, name: str = "data.csv") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def test_rows_are_numbered_from_the_first_data_record(tmp_path: Path) -> None:
    path = write(tmp_path, 'a,b\r\n1,"x, y"\r\n2,"two\nlines"\r\n3,z\r\n')
    rows = list(read_rows(path, CSV))
    assert rows == [
        SourceRow(1, {"a": "1", "b": "x, y"}),
        SourceRow(2, {"a": "2", "b": "two\nlines"}),
        SourceRow(3, {"a": "3", "b": "z"}),
    ]


def test_byte_order_mark_is_not_part_of_the_first_header(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffSelected,LoanNr_ChkDgt\n0,1004285007\n".encode())
    options = SourceOptions(encoding="utf-8-sig")
    assert read_header(path, options) == ("Selected", "LoanNr_ChkDgt")
    assert list(read_rows(path, options)) == [SourceRow(1, {"Selected": "0", "LoanNr_ChkDgt": "1004285007"})]


def test_short_record_gets_empty_cells_and_long_record_reports_its_surplus(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b,c\n1\n1,2,3,4,5\n")
    short, long = read_rows(path, CSV)
    assert short == SourceRow(1, {"a": "1", "b": "", "c": ""}, 0)
    assert long == SourceRow(2, {"a": "1", "b": "2", "c": "3"}, 2, ("4", "5"))


def test_delimiter_and_header_spaces(tmp_path: Path) -> None:
    path = write(tmp_path, ' age ; job \n58;"management"\n')
    options = SourceOptions(delimiter=";")
    assert list(read_rows(path, options)) == [SourceRow(1, {"age": "58", "job": "management"})]


def test_long_cells_are_read(tmp_path: Path) -> None:
    narrative = "x" * 300_000
    path = write(tmp_path, f'id,text\n1,"{narrative}"\n')
    [row] = read_rows(path, CSV)
    assert len(row.cells["text"]) == 300_000


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("", "empty"), ("a,a\n1,2\n", "duplicate header name(s): a"), ("a,,c\n1,2,3\n", "column(s) 2")],
)
def test_bad_header_is_a_source_error(tmp_path: Path, content: str, fragment: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(SourceError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        list(read_rows(path, CSV))


def test_undecodable_bytes_are_a_source_error(tmp_path: Path) -> None:
    path = write(tmp_path, b"name\nM\xfcller\n")
    with pytest.raises(SourceError, match="not valid utf-8"):
        list(read_rows(path, CSV))
    assert list(read_rows(path, SourceOptions(encoding="latin-1"))) == [SourceRow(1, {"name": "Müller"})]


def test_missing_file_and_unknown_encoding_are_source_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError):
        read_header(tmp_path / "absent.csv", CSV)
    path = write(tmp_path, "a\n1\n")
    with pytest.raises(SourceError):
        read_header(path, SourceOptions(encoding="no-such-codec"))


def test_unterminated_quote_is_a_source_error_not_a_swallowed_row(tmp_path: Path) -> None:
    path = write(tmp_path, b'company_name,region\n"Acme Ltd,Fujian\nBeta,Fujian\nGamma,Fujian\n')
    with pytest.raises(SourceError):
        list(read_rows(path, SourceOptions()))


# -- JSON Lines -----------------------------------------------------------------------------------

JSONL = SourceOptions(format="jsonl")


def test_json_lines_rows_are_numbered_by_line_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, '\ufeff{"a": 1.10, "b": "x"}\n\n   \r\n{"a": null}\r\n{"c": [1, {"d": 2}]}', "data.jsonl")
    rows = list(read_rows(path, JSONL))
    assert [(row.row_number, row.cells) for row in rows] == [
        (1, {"a": Decimal("1.10"), "b": "x"}), (4, {"a": None}), (5, {"c": [1, {"d": 2}]})]
    assert str(rows[0].cells["a"]) == "1.10"
    assert read_header(path, JSONL) == ()


@pytest.mark.parametrize(("line", "code"), [
    ("[1, 2]", "import.bad_row"),
    ('"text"', "import.bad_row"),
    ("{oops", "request.invalid_json"),
    ('{"a": NaN}', "request.non_finite_number"),
    ('{"a": Infinity}', "request.non_finite_number"),
    ('{"a": 1e999999}', "request.number_out_of_range"),
    ('{"a": ' + "[" * 100 + "]" * 100 + "}", "request.too_deep"),
    ('{"a": "\\u0000"}', "request.bad_string"),
    ('{"a": 1, "b": {"c": 1, "c": 2}}', "request.duplicate_key"),
])
def test_a_bad_json_line_becomes_a_row_with_its_problem_and_reading_goes_on(
        tmp_path: Path, line: str, code: str) -> None:
    path = write(tmp_path, f'{line}\n{{"ok": true}}\n', "data.jsonl")
    bad, good = read_rows(path, JSONL)
    assert (bad.row_number, bad.cells, bad.problem.code if bad.problem else None, bad.raw) == (1, {}, code, line)
    assert bad.problem is not None and bad.problem.message
    assert (good.row_number, good.cells, good.problem) == (2, {"ok": True}, None)


def test_an_overlong_json_line_is_rejected_without_being_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.imports import reader

    monkeypatch.setattr(reader, "MAX_LINE_CHARS", 50)
    path = write(tmp_path, '{"a": "' + "x" * 500 + '"}\n{"b": 1}\n', "data.jsonl")
    long, short = read_rows(path, JSONL)
    assert long.problem is not None and long.problem.code == "import.bad_row" and len(long.raw or "") <= 200
    assert (short.row_number, short.cells) == (2, {"b": 1})


def test_undecodable_json_lines_are_a_source_error(tmp_path: Path) -> None:
    path = write(tmp_path, b'{"a": 1}\n{"b": "\xff"}\n', "data.jsonl")
    with pytest.raises(SourceError, match="utf-8"):
        list(read_rows(path, JSONL))


def test_the_reader_reports_how_far_it_has_read(tmp_path: Path) -> None:
    path = write(tmp_path, "a\n" + "".join(f"{n}\n" for n in range(1000)))
    with open_source(path, CSV) as source:
        assert source.size == path.stat().st_size
        first = next(source)
        assert first.row_number == 1 and 0 < source.position <= source.size
        rest = list(source)
        assert len(rest) == 999 and source.position == source.size
