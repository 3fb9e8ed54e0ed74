"""Soak: a bounded run of credit-limit applications over HTTP at concurrency 32 on PostgreSQL,
counting errors and watching the resident memory of every server process.

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--warmup-minutes 1] [--concurrency 32]
                                        [--warmup-concurrency N] [--workers 1] [--no-worker]
                                        [--database-url ...]

Not part of CI, nor of ``run_all.sh`` by default (``run_all.sh --soak`` adds it). The database
named in the URL is DROPPED and created again (as in ``http_submit.py``). The server is the
benchmark server (``_bench_server``: the product's app) with the background worker thread
(timers, outbox) running in each process, as ``lowcode serve`` runs by default; --no-worker
leaves it out.

Load: --concurrency clients, each sending the next application as soon as its answer is in,
for --warmup-minutes (with --warmup-concurrency clients, if given) and then --minutes. The resident size (VmRSS) of the server process(es)
is sampled every 10 s; the growth is the last sample over the first one taken after the
warm-up (goal < 10 %), per process. Errors are answers other than 201, connection failures and
timeouts (goal: none).
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from _http_load import (DEFAULT_URL, ENGINE_PATH, Server, Slice, _client, application_bodies,  # noqa: E402
                        count_rows, fresh_database, percentile, raw_requests, rss_bytes, server_version)
from _machine import describe, load_average  # noqa: E402

SAMPLE_SECONDS = 10.0


async def soak(server: Server, requests: list[bytes], concurrency: int, warmup: float, seconds: float,
               warmup_concurrency: int) -> tuple[Slice, list[tuple[float, dict[int, int]]]]:
    """Load for ``warmup + seconds``; the RSS samples are ``(seconds since the warm-up ended,
    {pid: bytes})``, the first at the end of the warm-up. With ``warmup_concurrency`` below
    ``concurrency``, only that many clients run during the warm-up."""
    shared = itertools.cycle(requests)
    warm = Slice()
    if warmup and warmup_concurrency < concurrency:
        await asyncio.gather(*(_client(server.port, shared, time.perf_counter() + warmup, float("inf"), warm, 30.0)
                               for _ in range(warmup_concurrency)))
        warmup = 0.0
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    result = Slice(seconds=seconds)
    samples: list[tuple[float, dict[int, int]]] = []

    async def sampler() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        while True:
            now = time.perf_counter()
            samples.append((now - measure_from, {pid: rss_bytes(pid) for pid in server.pids()}))
            if now >= stop_at:
                return
            await asyncio.sleep(min(SAMPLE_SECONDS, max(0.0, stop_at - now)))

    clients = [_client(server.port, shared, stop_at, measure_from, result, 30.0) for _ in range(concurrency)]
    await asyncio.gather(sampler(), *clients)
    result.created_total += warm.created_total
    return result, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="measured length, after the warm-up")
    parser.add_argument("--warmup-minutes", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup-concurrency", type=int, help="clients during the warm-up (default: --concurrency)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--no-worker", action="store_true", help="no background worker thread (timers, outbox)")
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL; this database is dropped and recreated")
    parser.add_argument("--customers", type=int, default=200)
    args, _ignored = parser.parse_known_args()

    prepared = fresh_database(args.database_url, args.customers)
    facts = describe(store=server_version(args.database_url))
    requests = raw_requests(ENGINE_PATH, application_bodies(prepared.customer_ids), prepared.headers)
    with Server(args.database_url, workers=args.workers, background_worker=not args.no_worker) as server:
        warmup_clients = args.warmup_concurrency or args.concurrency
        result, samples = asyncio.run(soak(server, requests, args.concurrency, args.warmup_minutes * 60,
                                           args.minutes * 60, warmup_clients))
    stored = count_rows(args.database_url)
    facts["load average (1/5/15 min) at the end"] = load_average()

    print("# Soak: credit-limit applications over HTTP on PostgreSQL")
    for name, value in facts.items():
        print(f"- {name}: {value}")
    print(f"- {args.minutes:g} min measured after {args.warmup_minutes:g} min of warm-up "
          f"(at concurrency {args.warmup_concurrency or args.concurrency}); concurrency "
          f"{args.concurrency}; {args.workers} uvicorn worker process(es); background worker thread: "
          f"{'no' if args.no_worker else 'yes'}")
    rps = result.ok / result.seconds if result.seconds else 0.0
    print(f"- answered 201: {result.ok:,} in the measured window ({rps:,.1f} requests/s), "
          f"{result.created_total:,} in all; errors: {result.errors} {dict(sorted(result.statuses.items()))}; "
          f"p50 {percentile(result.latencies, 0.5) * 1000:.0f} ms, p99 {percentile(result.latencies, 0.99) * 1000:.0f} ms")
    print(f"- stored: {stored['records']:,} applications, {stored['instances']:,} process instances, "
          f"{stored['audit']:,} audit entries, {stored['outbox']:,} outbox rows")
    if result.first_error:
        print(f"- first error: {result.first_error}")
    print()
    first, last = samples[0][1], samples[-1][1]
    print("| process | RSS after warm-up (MB) | RSS at the end (MB) | peak sample (MB) | growth |")
    print("| --- | ---: | ---: | ---: | ---: |")
    worst = 0.0
    for pid in sorted(first):
        start, end = first[pid], last.get(pid, 0)
        peak = max(sample.get(pid, 0) for _, sample in samples)
        growth = (end - start) / start * 100 if start else float("nan")
        worst = max(worst, growth)
        print(f"| {pid} | {start / 2**20:.1f} | {end / 2**20:.1f} | {peak / 2**20:.1f} | {growth:+.1f} % |")
    print()
    print("RSS samples (MB, every process), minutes after the warm-up: "
          + "; ".join(f"{at / 60:.1f}: " + "/".join(f"{value / 2**20:.0f}" for value in sample.values())
                      for at, sample in samples[:: max(1, len(samples) // 12)]))
    print()
    print(f"- goal no errors: {'met' if result.errors == 0 else 'NOT met'}; goal RSS growth < 10 % per process: "
          f"{'met' if worst < 10 else 'NOT met'} (largest {worst:+.1f} %)")
    if result.created_total != stored["records"]:
        print(f"- {result.created_total:,} answers 201 but {stored['records']:,} records stored "
              "(a request that timed out may still have committed)")


if __name__ == "__main__":
    main()
