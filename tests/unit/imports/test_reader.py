"""Reading delimited files: header checks, numbering, ragged records, encodings."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.imports import SourceError, SourceOptions, SourceRow, read_header, read_rows

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
    assert long == SourceRow(2, {"a": "1", "b": "2", "c": "3"}, 2)


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
