"""Bulk import benchmark: customer rows per second through the whole pipeline into SQLite, next to
raw JSON Schema validation of the same rows (jsonschema-rs and python-jsonschema), in one run.

    .venv/bin/python benchmarks/import_customers.py [--rows 50000] [--batch-size 1000]
                                                   [--source sba|synthetic] [--one-by-one 300]

The rows: the SBA 7(a) loans of ../shared/data/sba-loans (2,101 real rows) repeated with unique
loan numbers up to --rows, imported with examples/bank/imports/sba_customers.json; without the
data (or with --source synthetic) generated rows with the same columns. The pipeline is
`Engine.run_import`: read the CSV, convert the cells, then per row what `Engine.submit` does
(exact-JSON checks, computed fields, schema + rule validation, keyed duplicate check) and the
writes (record, record_values, change, audit, outbox) into a fresh SQLite file, in batches.

The peers validate the very rows the import submitted (converted, as dicts) against the same
form schema, with nothing else: jsonschema-rs (the engine's validator, `is_valid`) and
python-jsonschema (`Draft202012Validator` with format checking, `is_valid`). The one-by-one
figure is `Engine.submit` per row (one transaction each) on a sample, for scale.

Timing is wall-clock, single process. The machine is printed with the results; ratios (not
absolute figures) are what compare across machines.
"""
from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import describe  # noqa: E402 (benchmarks/ is this script's folder)
from engine import Engine
from engine.imports import load_mapping, open_source
from engine.imports.runner import _compile_fields

BANK = REPO / "examples" / "bank"
MAPPING = BANK / "imports" / "sba_customers.json"
SBA = REPO.parent / "shared" / "data" / "sba-loans" / "SBAcase.11.13.17.csv"


def write_rows(path: Path, rows: int, source: str) -> str:
    """A CSV of `rows` customer rows with the SBA file's columns; returns where they came from."""
    if source == "sba" and SBA.exists():
        with SBA.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            originals = list(reader)
        key = header.index("LoanNr_ChkDgt")
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(header)
            for number in range(rows):
                row = list(originals[number % len(originals)])
                row[key] = f"{row[key]}-{number // len(originals)}"
                writer.writerow(row)
        return f"{SBA.name} ({len(originals):,} real rows) repeated with unique loan numbers"
    generator = random.Random(7)
    header = ["LoanNr_ChkDgt", "Name", "City", "State", "Zip", "Bank", "NAICS", "ApprovalDate", "NoEmp",
              "NewExist", "UrbanRural"]
    cities = ["ANAHEIM", "TORRANCE", "FRESNO", "SAN JOSE", "OAKLAND", "IRVINE"]
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for number in range(rows):
            writer.writerow([f"{1000000000 + number}", f"COMPANY {number} LLC", generator.choice(cities), "CA",
                             f"9{generator.randrange(10000):04d}", "CALIFORNIA BANK & TRUST",
                             str(generator.choice([532420, 531210, 722110, 0])), str(generator.randrange(14000, 16500)),
                             str(generator.randrange(0, 200)), str(generator.choice([0, 1, 2])),
                             str(generator.choice([0, 1, 2]))])
    return "generated rows (SBA column layout)"


def converted_rows(csv_path: Path) -> list[dict[str, Any]]:
    """The records the import submits, converted by the mapping, for the validator peers."""
    mapping = load_mapping(MAPPING)
    fillers = _compile_fields(mapping)
    records = []
    with open_source(csv_path, mapping.source) as source:
        for row in source:
            data: dict[str, Any] = {}
            for fill in fillers:
                fill(row.cells, data)
            records.append(data)
    return records


def timed(label: str, count: int, action: Any) -> dict[str, Any]:
    start = time.perf_counter()
    action()
    seconds = time.perf_counter() - start
    return {"what": label, "rows": count, "seconds": seconds, "rows_per_s": count / seconds if seconds else float("inf")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--source", choices=["sba", "synthetic"], default="sba")
    parser.add_argument("--one-by-one", type=int, default=300, help="rows for the Engine.submit sample (0: skip)")
    args, _ignored = parser.parse_known_args()  # run_all.sh passes every script the same extra arguments

    import jsonschema

    facts = describe()
    with tempfile.TemporaryDirectory(prefix="lowcode-bench-") as folder:
        work = Path(folder)
        source_csv = work / "customers.csv"
        origin = write_rows(source_csv, args.rows, args.source)

        engine = Engine(f"sqlite:///{work / 'bench.db'}")
        engine.migrate()
        engine.load_dir(BANK)
        report: Any = None

        def pipeline() -> None:
            nonlocal report
            report = engine.run_import("customer", source_csv, MAPPING, batch_size=args.batch_size)

        results = [timed("pipeline: CSV -> records in SQLite (Engine.run_import)", args.rows, pipeline)]
        assert report is not None and report.imported == args.rows, (report.imported, report.rejected_count)
        assert engine.records("customer")["total"] == args.rows

        rows = converted_rows(source_csv)
        spec = engine.registry.form("customer")
        assert spec is not None
        rs_validator = spec.validator
        py_validator = jsonschema.Draft202012Validator(dict(spec.schema),
                                                      format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)

        def validate_rs() -> None:
            assert all(rs_validator.is_valid(row) for row in rows)

        def validate_py() -> None:
            assert all(py_validator.is_valid(row) for row in rows)

        results.append(timed("jsonschema-rs is_valid (the engine's validator), same rows", len(rows), validate_rs))
        results.append(timed("python-jsonschema Draft202012Validator is_valid, same rows", len(rows), validate_py))

        if args.one_by_one:
            sample = rows[: args.one_by_one]
            sample = [{**row, "external_id": f"{row['external_id']}-one"} for row in sample]

            def one_by_one() -> None:
                for row in sample:
                    engine.submit("customer", row)

            results.append(timed("Engine.submit one by one (a transaction per row), sample", len(sample), one_by_one))
        engine.close()

    print("# Bulk import benchmark: customer form")
    for name, value in facts.items():
        print(f"- {name}: {value}")
    print(f"- rows: {args.rows:,} from {origin}; batch size {args.batch_size}")
    print()
    pipeline_rate = results[0]["rows_per_s"]
    print("| what | rows | seconds | rows/s | ratio to the pipeline |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for result in results:
        ratio = result["rows_per_s"] / pipeline_rate
        print(f"| {result['what']} | {result['rows']:,} | {result['seconds']:.2f} | {result['rows_per_s']:,.0f} | "
              f"{ratio:.2f}x |")


if __name__ == "__main__":
    main()
