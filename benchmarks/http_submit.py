"""HTTP submission benchmark: credit-limit applications through the REST API on PostgreSQL, next to
a floor endpoint in the same server process, at concurrency 1, 8 and 32; then the same with two
uvicorn worker processes (the stretch goal: 500 requests/s).

    .venv/bin/python benchmarks/http_submit.py [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/lowcode_bench_http]
                                               [--concurrency 1,8,32] [--seconds 5] [--rounds 3]
                                               [--stretch-workers 2] [--customers 200]

The database named in the URL is DROPPED and created again, migrated, loaded with
examples/bank and given --customers customer records. Then a real uvicorn server
(``benchmarks/_bench_server.py``: ``engine.api.app.create_app`` plus the floor route, which
exists only there) runs in a subprocess on loopback, without the background worker (as
``lowcode serve --no-worker`` next to a separate ``lowcode worker``).

engine: ``POST /api/v1/forms/credit_limit_adjustment/records`` as an account manager (X-User /
X-Roles): parse with exact decimals, check the document, compute ``increase_pct``, JSON Schema +
rule validation, the ``requiredWhen`` condition, the customer (read for the fields copied from
it, then its existence and the caller's scope checked inside the transaction), then in one
transaction the record, its lookup values, the change sequence, the hash-chained audit entry,
the outbox row and its event-feed entry, the customer's tags, and the process start (the
instance, its history, the triage rules; for two shapes out of three a task with its SLA timers
and their audit and outbox rows); the answer is the stored record, read back in the same
transaction. Three application shapes in
turn (see ``_http_load.application_bodies``).

floor: ``POST /bench/floor`` with the same bytes: ``json.loads``, one INSERT of the JSON text
with SQLAlchemy Core on the engine's own pool, 201 with the id.

The pairs are measured interleaved: for each concurrency, --rounds slices of --seconds each per
side, alternating which side goes first, so that load from elsewhere on the machine hits both.
The load generator (``_http_load.load``, asyncio, one keep-alive connection per client) runs in
this process on the same machine and takes CPU from the server; the server's own CPU time per
request (from /proc) is printed too, and is the steadier figure on a shared machine.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from _http_load import (DEFAULT_URL, ENGINE_PATH, FLOOR_PATH, Server, Slice, application_bodies,  # noqa: E402
                        count_rows, cpu_seconds, fresh_database, load, percentile, raw_requests,
                        server_version)
from _machine import describe, load_average  # noqa: E402


def measured(server: Server, requests: list[bytes], concurrency: int, seconds: float) -> tuple[Slice, float]:
    """One slice of load, and the server processes' CPU seconds it took."""
    before = sum(cpu_seconds(pid) for pid in server.pids())
    result = load(server.port, requests, concurrency, seconds, warmup=0.5)
    after = sum(cpu_seconds(pid) for pid in server.pids())
    return result, after - before


def interleaved(server: Server, sides: dict[str, list[bytes]], concurrency: int, seconds: float,
                rounds: int) -> dict[str, dict[str, Any]]:
    totals = {name: {"slice": Slice(), "cpu": 0.0} for name in sides}
    names = list(sides)
    for round_number in range(rounds):
        for name in names if round_number % 2 == 0 else names[::-1]:
            result, cpu = measured(server, sides[name], concurrency, seconds)
            totals[name]["slice"].merge(result)
            totals[name]["cpu"] += cpu
    return totals


def row(label: str, concurrency: int, workers: int, side: str, figures: dict[str, Any], peer_rps: float | None) -> dict[str, Any]:
    result: Slice = figures["slice"]
    rps = result.ok / result.seconds if result.seconds else 0.0
    answered = len(result.latencies)
    return {"label": label, "concurrency": concurrency, "workers": workers, "side": side, "rps": rps,
            "p50": percentile(result.latencies, 0.50) * 1000, "p99": percentile(result.latencies, 0.99) * 1000,
            "errors": result.errors, "requests": answered, "first_error": result.first_error,
            "cpu_ms": figures["cpu"] / answered * 1000 if answered else float("nan"),
            "ratio": rps / peer_rps if peer_rps else None, "created_total": result.created_total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL; this database is dropped and recreated")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated client counts")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one measured slice")
    parser.add_argument("--rounds", type=int, default=3, help="slices per side and concurrency, interleaved")
    parser.add_argument("--stretch-workers", type=int, default=2, help="uvicorn worker processes for the stretch run (0: skip)")
    parser.add_argument("--customers", type=int, default=200)
    args, _ignored = parser.parse_known_args()  # run_all.sh passes every script the same extra arguments
    levels = [int(part) for part in args.concurrency.split(",") if part.strip()]

    prepared = fresh_database(args.database_url, args.customers)
    facts = describe(store=server_version(args.database_url))
    bodies = application_bodies(prepared.customer_ids)
    headers = prepared.headers
    facts["credentials"] = ", ".join(sorted(headers))
    sides = {"engine": raw_requests(ENGINE_PATH, bodies, headers), "floor": raw_requests(FLOOR_PATH, bodies, headers)}

    rows: list[dict[str, Any]] = []
    created = 0
    with Server(args.database_url, workers=1) as server:
        for name in sides:  # warm-up: connections, caches, compiled statements
            created += load(server.port, sides[name], 8, 3.0, warmup=0.0).created_total if name == "engine" else 0
        for concurrency in levels:
            totals = interleaved(server, sides, concurrency, args.seconds, args.rounds)
            floor = row("1 worker", concurrency, 1, "floor", totals["floor"], None)
            rows.append(row("1 worker", concurrency, 1, "engine", totals["engine"], floor["rps"]))
            rows.append(floor)
    if args.stretch_workers > 1:
        with Server(args.database_url, workers=args.stretch_workers) as server:
            for name in sides:
                created += load(server.port, sides[name], 8, 3.0, warmup=0.0).created_total if name == "engine" else 0
            concurrency = max(levels)
            totals = interleaved(server, sides, concurrency, args.seconds, args.rounds)
            label = f"{args.stretch_workers} workers"
            floor = row(label, concurrency, args.stretch_workers, "floor", totals["floor"], None)
            rows.append(row(label, concurrency, args.stretch_workers, "engine", totals["engine"], floor["rps"]))
            rows.append(floor)
    created += sum(item["created_total"] for item in rows if item["side"] == "engine")
    stored = count_rows(args.database_url)
    facts["load average (1/5/15 min) at the end"] = load_average()

    print("# HTTP submission benchmark: credit-limit application on PostgreSQL")
    for name, value in facts.items():
        print(f"- {name}: {value}")
    print(f"- slices: {args.rounds} x {args.seconds:g} s per side and concurrency, interleaved; load generator in-process (asyncio)")
    print(f"- engine answers 201 in all: {created:,}; records of the form stored: {stored['records']:,}; "
          f"process instances: {stored['instances']:,}; audit entries: {stored['audit']:,}; outbox rows: {stored['outbox']:,}")
    print()
    print("| server | concurrency | endpoint | requests/s | p50 ms | p99 ms | errors | server CPU ms/request | engine / floor |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for item in rows:
        ratio = f"{item['ratio']:.2f}x" if item["ratio"] is not None else ""
        print(f"| {item['label']} | {item['concurrency']} | {item['side']} | {item['rps']:,.0f} | {item['p50']:.1f} | "
              f"{item['p99']:.1f} | {item['errors']} | {item['cpu_ms']:.2f} | {ratio} |")
    for item in rows:
        if item["first_error"]:
            print(f"- first error, {item['label']} c={item['concurrency']} {item['side']}: {item['first_error']}")
    engine_rows = [item for item in rows if item["side"] == "engine"]
    print()
    goal = all(item["ratio"] is not None and item["ratio"] >= 0.5 for item in engine_rows)
    print(f"- goal engine >= 0.5x the floor at every concurrency: {'met' if goal else 'NOT met'}")
    stretch = [item for item in engine_rows if item["workers"] > 1]
    if stretch:
        rps = stretch[0]["rps"]
        print(f"- stretch >= 500 requests/s with {stretch[0]['workers']} workers: {rps:,.0f} requests/s, "
              f"{'met' if rps >= 500 else 'NOT met'}")
    if created != stored["records"]:
        print(f"- MISMATCH: {created:,} answers 201 but {stored['records']:,} records stored")


if __name__ == "__main__":
    main()
