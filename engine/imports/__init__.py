"""Bulk import: rows of a tabular file become form submissions, as a mapping file says.

`load_mapping` checks and compiles a mapping; `run_import` submits each row through an
`ImportTarget` (the engine, or a fake in tests) and returns an `ImportReport`.
"""

from __future__ import annotations

from engine.imports.convert import SAS_EPOCH, BadCell, convert_cell
from engine.imports.mapping import (
    CellType,
    ColumnField,
    ConstantField,
    FieldMapping,
    ImportMapping,
    LookupField,
    MappingError,
    MappingIssue,
    SourceOptions,
    check_mapping_fields,
    compile_mapping,
    load_mapping,
)
from engine.imports.reader import SourceError, SourceRow, read_header, read_rows
from engine.imports.runner import (
    BAD_ROW,
    BAD_VALUE,
    IMPORT_ERROR,
    REF_AMBIGUOUS,
    REF_NOT_FOUND,
    ImportIssue,
    ImportReport,
    ImportTarget,
    RejectedRow,
    run_import,
)

__all__ = [
    "BAD_ROW",
    "BAD_VALUE",
    "IMPORT_ERROR",
    "REF_AMBIGUOUS",
    "REF_NOT_FOUND",
    "SAS_EPOCH",
    "BadCell",
    "CellType",
    "ColumnField",
    "ConstantField",
    "FieldMapping",
    "ImportIssue",
    "ImportMapping",
    "ImportReport",
    "ImportTarget",
    "LookupField",
    "MappingError",
    "MappingIssue",
    "RejectedRow",
    "SourceError",
    "SourceOptions",
    "SourceRow",
    "check_mapping_fields",
    "compile_mapping",
    "convert_cell",
    "load_mapping",
    "read_header",
    "read_rows",
    "run_import",
]
