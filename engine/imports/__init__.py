"""Bulk import: rows of a CSV or JSON Lines file become form submissions, as a mapping file says.

`load_mapping` checks and compiles a mapping; `run_import` streams the file and submits its rows
in batches through an import target (the engine's bulk path, or a one-by-one fake in tests) and
returns an `ImportReport`. See README.md.
"""

from __future__ import annotations

from engine.imports.convert import SAS_EPOCH, BadCell, convert_cell, convert_value
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
from engine.imports.reader import (
    SourceError,
    SourceReader,
    SourceRow,
    open_source,
    read_header,
    read_rows,
)
from engine.imports.runner import (
    BAD_ROW,
    BAD_VALUE,
    DEFAULT_BATCH_SIZE,
    DEFAULT_KEEP_REJECTED,
    IMPORT_ERROR,
    REF_AMBIGUOUS,
    REF_NOT_FOUND,
    BatchImportTarget,
    ImportIssue,
    ImportProgress,
    ImportReport,
    ImportSession,
    ImportTarget,
    RejectedRow,
    run_import,
)

__all__ = [
    "BAD_ROW",
    "BAD_VALUE",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_KEEP_REJECTED",
    "IMPORT_ERROR",
    "REF_AMBIGUOUS",
    "REF_NOT_FOUND",
    "SAS_EPOCH",
    "BadCell",
    "BatchImportTarget",
    "CellType",
    "ColumnField",
    "ConstantField",
    "FieldMapping",
    "ImportIssue",
    "ImportMapping",
    "ImportProgress",
    "ImportReport",
    "ImportSession",
    "ImportTarget",
    "LookupField",
    "MappingError",
    "MappingIssue",
    "RejectedRow",
    "SourceError",
    "SourceOptions",
    "SourceReader",
    "SourceRow",
    "check_mapping_fields",
    "compile_mapping",
    "convert_cell",
    "convert_value",
    "load_mapping",
    "open_source",
    "read_header",
    "read_rows",
    "run_import",
]
