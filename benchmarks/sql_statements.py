"""SQL statements per write: how many statements a credit-limit submission (through the REST
API, as an account manager with an API token) and a task action (``Engine.act``) send to the
database, and from where in the engine.

    .venv/bin/python benchmarks/sql_statements.py [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/lowcode_bench_statements]
                                                  [--requests 30] [--detail]

The database named in the URL is DROPPED and created again (as in ``http_submit.py``). Every
statement the engine's pool executes is counted (SQLAlchemy ``before_cursor_execute``), after a
warm-up that fills the caches; ``--detail`` prints each statement's first words with the engine
frames that issued it. Not a timing: a count, the same on any machine for the same tree.
"""
from __future__ import annotations

import argparse
import collections
import sys
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from _http_load import ENGINE_PATH, application_bodies, fresh_database, server_version  # noqa: E402
from _machine import describe  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/lowcode_bench_statements"
ENGINE_ROOT = str(HERE.parent / "engine") + "/"


class Counter:
    """Statements executed while ``on``, by text and by the engine frames that issued them."""

    def __init__(self, detail: bool) -> None:
        self.on = False
        self.detail = detail
        self.seen: collections.Counter[tuple[str, str]] = collections.Counter()

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not self.on:
            return
        origin = ""
        if self.detail:
            frames = [frame for frame in traceback.extract_stack()
                      if frame.filename.startswith(ENGINE_ROOT) and not frame.filename.endswith("store/database.py")]
            origin = " < ".join(f"{frame.filename[len(ENGINE_ROOT):]}:{frame.name}" for frame in frames[::-1][:3])
        self.seen[(" ".join(statement.split())[:72], origin)] += 1

    def total(self) -> int:
        return sum(self.seen.values())

    def report(self, title: str, per: int) -> None:
        print(f"\n## {title}: {self.total() / per:.1f} statements each ({per} measured)\n")
        if self.detail:
            for (text, origin), count in sorted(self.seen.items(), key=lambda item: (-item[1], item[0])):
                print(f"- {count / per:.2f} × `{text}` — {origin}")


def submissions(url: str, count: int, detail: bool) -> None:
    from sqlalchemy import event
    from starlette.testclient import TestClient

    from engine import Engine
    from engine.api.app import create_app

    prepared = fresh_database(url, 50)
    bodies = application_bodies(prepared.customer_ids, count + 12)
    engine = Engine(url)
    counter = Counter(detail)
    event.listen(engine.db.engine, "before_cursor_execute", counter)
    headers = {**prepared.headers, "content-type": "application/json"}
    try:
        with TestClient(create_app(engine)) as client:
            for body in bodies[:12]:  # warm-up: caches, compiled statements, the three shapes
                assert client.post(ENGINE_PATH, content=body, headers=headers).status_code == 201
            counter.on = True
            for body in bodies[12:]:
                answer = client.post(ENGINE_PATH, content=body, headers=headers)
                assert answer.status_code == 201, answer.text
            counter.on = False
    finally:
        engine.close()
    counter.report("POST /api/v1/forms/credit_limit_adjustment/records (account manager, API token)", count)


def task_actions(url: str, instances: int, detail: bool) -> None:
    from sqlalchemy import event

    import workflow_vs_spiff as scenarios
    from engine import Engine
    from engine.security import SYSTEM

    fresh_database(url, 0)
    engine = Engine(url)
    counter = Counter(detail)
    event.listen(engine.db.engine, "before_cursor_execute", counter)
    steps = 0
    try:
        customer = engine.submit("customer", {"company_name": "Statement Count Trading Co., Ltd.", "region": "Fujian",
                                              "risk_level": "low", "account_manager": "mgr-01", "branch": "FJ-01"},
                                 SYSTEM)["id"]
        scenario = scenarios.SCENARIOS[0]
        request = {**scenario.request, "customer_id": customer}
        firsts = []
        for _ in range(instances + 1):
            record = engine.submit("credit_limit_adjustment", request, scenarios.DURABLE_APPLICANT)
            view = engine.instance(record["instances"][0]["id"])
            firsts.append(next(task["id"] for task in view["tasks"] if task["status"] == "open"))
        for number, first in enumerate(firsts):
            counter.on = number > 0  # the first instance warms the caches
            open_ids, signed, states = [first], {}, {first: "manager_review"}
            while open_ids:
                task_id = open_ids.pop(0)
                state = states[task_id]
                actor = scenarios.actor_for(state, signed.get(state, 0))
                signed[state] = signed.get(state, 0) + 1
                view = engine.act(task_id, "approve", actor)
                steps += number > 0
                for task in view["tasks"]:
                    if task["status"] == "open" and task["id"] not in states:
                        states[task["id"]] = task["state"]
                        open_ids.append(task["id"])
        counter.on = False
    finally:
        engine.close()
    counter.report(f"Engine.act, {scenario.name}", steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL; this database is dropped and recreated")
    parser.add_argument("--requests", type=int, default=30, help="submissions and instances measured")
    parser.add_argument("--detail", action="store_true", help="each statement with the engine frames that issued it")
    args, _ignored = parser.parse_known_args()  # run_all.sh passes every script the same extra arguments
    print("# SQL statements per write")
    submissions(args.database_url, args.requests, args.detail)  # creates the database first
    task_actions(args.database_url, max(args.requests // 3, 2), args.detail)
    print()
    for name, value in describe(store=server_version(args.database_url)).items():
        print(f"- {name}: {value}")


if __name__ == "__main__":
    main()
