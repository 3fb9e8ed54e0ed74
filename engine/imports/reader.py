"""Reading a delimited text file as numbered rows of `{column: cell}`.

The first record is the header. Rows are numbered from 1 for the first data record, so a
spreadsheet shows row N at line N + 1; quoted cells may span lines, so this is not a line number.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple, TextIO

from engine.imports.mapping import SourceOptions

__all__ = ["SourceError", "SourceRow", "read_header", "read_rows"]

# Real exports carry long free-text cells (narratives of tens of kB); the csv module's 128 kB
# default would abort the whole file on one long cell. The limit is process-wide in the csv
# module, so it is only ever raised, never lowered.
_FIELD_SIZE_LIMIT = 16 * 1024 * 1024


class SourceError(ValueError):
    """The file cannot be read as the mapping's source format (no header, bad encoding...)."""


class SourceRow(NamedTuple):
    """One data record of the file."""

    row_number: int
    """1 for the first record after the header."""
    cells: dict[str, str]
    """Header name -> cell text; a short record has its missing trailing cells as ''."""
    surplus: int = 0
    """How many cells the record has beyond the header (its extra cells are not in `cells`)."""


def read_header(path: Path, options: SourceOptions) -> tuple[str, ...]:
    """The header names of the file (trimmed); raises `SourceError`."""
    with _open(path, options) as handle:
        return _header(_reader(handle, options), path)


def read_rows(path: Path, options: SourceOptions) -> Iterator[SourceRow]:
    """Yield the data records of `path` in order; raises `SourceError`.

    The header must be present, with unique non-empty names. Bytes that do not decode in the
    given encoding raise `SourceError` when they are reached.
    """
    csv.field_size_limit(max(csv.field_size_limit(), _FIELD_SIZE_LIMIT))
    with _open(path, options) as handle:
        reader = _reader(handle, options)
        header = _header(reader, path)
        width = len(header)
        number = 0
        try:
            for record in reader:
                number += 1
                cells = dict(zip(header, record, strict=False))
                for name in header[len(record):]:
                    cells[name] = ""
                yield SourceRow(number, cells, max(0, len(record) - width))
        except UnicodeDecodeError as exc:
            # Decoding runs ahead of parsing by a buffer, so the record number is approximate.
            raise SourceError(f"{path.name}: not valid {options.encoding} "
                              f"(at or after record {number + 1})") from exc
        except csv.Error as exc:
            raise SourceError(f"{path.name}: record {number + 1}: {exc}") from exc


def _header(reader: Iterator[list[str]], path: Path) -> tuple[str, ...]:
    try:
        first = next(reader, None)
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{path.name}: not valid {exc.encoding} (at or after the header)") from exc
    except csv.Error as exc:
        raise SourceError(f"{path.name}: cannot read the header: {exc}") from exc
    if first is None:
        raise SourceError(f"{path.name}: the file is empty (no header)")
    header = tuple(name.strip() for name in first)
    blanks = [str(index + 1) for index, name in enumerate(header) if not name]
    if blanks:
        raise SourceError(f"{path.name}: header column(s) {', '.join(blanks)} have no name")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise SourceError(f"{path.name}: duplicate header name(s): {', '.join(duplicates)}")
    return header


def _open(path: Path, options: SourceOptions) -> TextIO:
    try:
        return path.open(encoding=options.encoding, newline="")
    except (OSError, LookupError) as exc:
        raise SourceError(f"cannot open {path}: {exc}") from exc


def _reader(handle: TextIO, options: SourceOptions) -> Iterator[list[str]]:
    # strict: an unterminated quote is an error, never a cell that swallows the rows after it
    return csv.reader(handle, delimiter=options.delimiter, quotechar=options.quotechar, strict=True)
