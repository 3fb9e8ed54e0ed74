"""Reading a source file as numbered rows of `{column: cell}`, streaming: one row in memory at a time.

Two formats (`SourceOptions.format`):

- `csv`: the first record is the header. Rows are numbered from 1 for the first data record, so a
  spreadsheet shows row N at line N + 1; quoted cells may span lines, so this is not a line number.
  Cells are strings.
- `jsonl` (JSON Lines): one JSON object per line, parsed like a request body (`engine.jsoncodec`:
  exact decimals, NaN/Infinity refused, bounded digits and depth). A row's number is its line
  number. Blank lines are skipped. Cells are JSON values (a missing key is no cell). A line that is
  not a JSON object, or longer than `MAX_LINE_CHARS`, becomes a row with a `problem` (rejected by
  the runner with that reason) and the file goes on.

`open_source` also tells how far into the file reading has got (`SourceReader.position`), for a
progress bar that needs no first pass to count rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, Self, TextIO

from engine.imports.mapping import SourceOptions

__all__ = ["MAX_LINE_CHARS", "SourceError", "SourceReader", "SourceRow", "open_source", "read_header",
           "read_rows"]

# Real exports carry long free-text cells (narratives of tens of kB); the csv module's 128 kB
# default would abort the whole file on one long cell. The limit is process-wide in the csv
# module, so it is only ever raised, never lowered.
_FIELD_SIZE_LIMIT = 16 * 1024 * 1024
MAX_LINE_CHARS = 16 * 1024 * 1024
"""The longest JSON Lines line read; a longer one is rejected (and skipped) without being held."""


class SourceError(ValueError):
    """The file cannot be read as the mapping's source format (no header, bad encoding...)."""


class RowProblem(NamedTuple):
    """Why a row cannot be used at all (JSON Lines): an issue for the whole row."""

    code: str
    message: str
    params: Mapping[str, Any] = MappingProxyType({})


class SourceRow(NamedTuple):
    """One data record of the file."""

    row_number: int
    """1 for the first record after the header (CSV); the line number (JSON Lines)."""
    cells: dict[str, Any]
    """Column -> cell. CSV: header name -> text, a short record has its missing trailing cells as
    ''. JSON Lines: the line's object."""
    surplus: int = 0
    """How many cells the record has beyond the header (its extra cells are in `extra`)."""
    extra: tuple[str, ...] = ()
    """CSV: the cells beyond the header, for the rejects file."""
    problem: RowProblem | None = None
    """JSON Lines: the line is not a usable object (then `cells` is empty and `raw` is its text)."""
    raw: str | None = None


def read_header(path: Path, options: SourceOptions) -> tuple[str, ...]:
    """The header names of a CSV file (trimmed); raises `SourceError`. JSON Lines has none: ()."""
    if options.format == "jsonl":
        return ()
    with _open(path, options) as handle:
        return _header(_reader(handle, options), path)


def read_rows(path: Path, options: SourceOptions) -> Iterator[SourceRow]:
    """Yield the data records of `path` in order; raises `SourceError`.

    CSV: the header must be present, with unique non-empty names. Bytes that do not decode in the
    given encoding raise `SourceError` when they are reached.
    """
    with open_source(path, options) as source:
        yield from source


def open_source(path: Path, options: SourceOptions) -> SourceReader:
    """The rows of `path` as an iterator that also reports its byte position; use it in a `with`."""
    return SourceReader(path, options)


class SourceReader:
    """Iterates the rows of one file; `position` and `size` are in bytes."""

    def __init__(self, path: Path, options: SourceOptions) -> None:
        self.path = path
        self.options = options
        try:
            self._binary = path.open("rb")
        except OSError as exc:
            raise SourceError(f"cannot open {path}: {exc}") from exc
        try:
            self.size = path.stat().st_size
            self._text = io.TextIOWrapper(self._binary, encoding=options.encoding, newline="")
        except LookupError as exc:
            self._binary.close()
            raise SourceError(f"cannot open {path}: {exc}") from exc
        self._rows = self._jsonl() if options.format == "jsonl" else self._csv()

    @property
    def position(self) -> int:
        """Bytes read so far (decoding reads ahead by a buffer, so slightly ahead of the rows)."""
        try:
            return min(self._binary.tell(), self.size)
        except (OSError, ValueError):
            return self.size

    def __iter__(self) -> Iterator[SourceRow]:
        return self._rows

    def __next__(self) -> SourceRow:
        return next(self._rows)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._text.close()

    def _csv(self) -> Iterator[SourceRow]:
        csv.field_size_limit(max(csv.field_size_limit(), _FIELD_SIZE_LIMIT))
        path, options = self.path, self.options
        reader = _reader(self._text, options)
        header = _header(reader, path)
        width = len(header)
        number = 0
        try:
            for record in reader:
                number += 1
                if len(record) == width:
                    yield SourceRow(number, dict(zip(header, record)))
                    continue
                cells = dict(zip(header, record, strict=False))
                for name in header[len(record):]:
                    cells[name] = ""
                surplus = max(0, len(record) - width)
                yield SourceRow(number, cells, surplus, tuple(record[width:]))
        except UnicodeDecodeError as exc:
            # Decoding runs ahead of parsing by a buffer, so the record number is approximate.
            raise SourceError(f"{path.name}: not valid {options.encoding} "
                              f"(at or after record {number + 1})") from exc
        except csv.Error as exc:
            raise SourceError(f"{path.name}: record {number + 1}: {exc}") from exc

    def _jsonl(self) -> Iterator[SourceRow]:
        from engine.errors import EngineError
        from engine.jsoncodec import loads

        handle = self._text
        number = 0
        while True:
            try:
                line = handle.readline(MAX_LINE_CHARS + 1)
            except UnicodeDecodeError as exc:
                raise SourceError(f"{self.path.name}: not valid {self.options.encoding} "
                                  f"(at or after line {number + 1})") from exc
            if not line:
                return
            number += 1
            if len(line) > MAX_LINE_CHARS and not line.endswith("\n"):
                while True:  # skip the rest of the line without holding it
                    rest = handle.readline(MAX_LINE_CHARS)
                    if not rest or rest.endswith("\n"):
                        break
                yield SourceRow(number, {}, problem=RowProblem(
                    "import.bad_row", f"the line is longer than {MAX_LINE_CHARS} characters",
                    {"limit": MAX_LINE_CHARS}), raw=line[:200])
                continue
            text = line.strip()
            if number == 1 and text.startswith("\ufeff"):
                text = text[1:].strip()  # a byte-order mark read as utf-8
            if not text:
                continue
            try:
                value = loads(text)
            except EngineError as exc:
                issue = exc.issues[0]
                yield SourceRow(number, {}, problem=RowProblem(issue.code, issue.message(), dict(issue.params)),
                                raw=text)
                continue
            if not isinstance(value, dict):
                yield SourceRow(number, {}, problem=RowProblem(
                    "import.bad_row", "the line is not a JSON object"), raw=text)
                continue
            yield SourceRow(number, value)


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
