"""Prometheus metrics of one engine, in a registry of its own (never the process-global one:
tests and embedders build many engines in one process).

What is measured, and where:

- ``lowcode_http_request_duration_seconds{method, route, status}``: every HTTP request, by
  route *template* (``/api/v1/records/{record_id}``, never the raw path) and status class
  (``2xx``); observed by the ASGI middleware in ``engine.api.observability``.
- ``lowcode_workflow_transitions_total{process, from_state, to_state}``: state changes of
  process instances, counted from the ``transition`` history rows a transaction writes, when
  it commits (a rolled-back action counts nothing).
- ``lowcode_timer_lag_seconds{kind}``: how late an SLA timer fired (fired − due), observed by
  ``engine.workflow.timers`` when the firing commits.
- ``lowcode_outbox_delivery_failures_total{channel, outcome}``: failed delivery attempts
  (``retrying`` or ``dead``), from ``engine.notify.delivery``.
- ``lowcode_report_duration_seconds{report}``: report runs (mirror catch-up and query).
- ``lowcode_outbox_pending`` and ``lowcode_report_mirror_lag_changes``: sampled when scraped
  (one indexed ``count`` / ``max`` query each); absent from a scrape when the database
  does not answer.

Every label value comes from a definition (process, state, report keys), a fixed list
(method, status class, timer kind, outcome) or the settings (channels): never from request
data, so the number of series stays bounded.

Engine code that runs inside a transaction reports with :func:`observe` (no metrics object
needed); :meth:`Metrics.watch` applies what a session noted when — and only if — it commits.
"""
from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

log = logging.getLogger("engine.observability")

_NOTED = "lowcode.metrics.noted"
"""``session.info`` key: observations waiting for the transaction to commit."""

TIMER_LAG_BUCKETS = (0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
REPORT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def observe(session: Session, name: str, value: float = 1.0, **labels: str) -> None:
    """Note an observation in ``session``'s transaction; a :class:`Metrics` watching the
    session's database applies it after the commit and drops it on rollback. ``name`` is
    ``transition``, ``timer_lag``."""
    session.info.setdefault(_NOTED, []).append((name, value, labels))


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


class Metrics:
    """The metric objects of one engine and the registry ``/metrics`` renders."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_duration = Histogram(
            "lowcode_http_request_duration_seconds", "HTTP request latency by route template",
            ["method", "route", "status"], registry=self.registry)
        self.transitions = Counter(
            "lowcode_workflow_transitions", "Process instance state transitions (committed)",
            ["process", "from_state", "to_state"], registry=self.registry)
        self.timer_lag = Histogram(
            "lowcode_timer_lag_seconds", "Seconds between a timer's due time and its firing",
            ["kind"], buckets=TIMER_LAG_BUCKETS, registry=self.registry)
        self.delivery_failures = Counter(
            "lowcode_outbox_delivery_failures", "Failed outbox delivery attempts",
            ["channel", "outcome"], registry=self.registry)
        self.report_duration = Histogram(
            "lowcode_report_duration_seconds", "Report run latency (mirror catch-up and query)",
            ["report"], buckets=REPORT_BUCKETS, registry=self.registry)
        self._sampled = _Sampled()
        self.registry.register(self._sampled)

    # -- what engine code calls ---------------------------------------------------------------

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_duration.labels(method=method, route=route, status=status_class(status)).observe(seconds)

    def delivery_outcome(self, channel: str, outcome: str) -> None:
        """One delivery attempt's outcome (``engine.notify.delivery``): failures are counted."""
        if outcome in ("retrying", "dead"):
            self.delivery_failures.labels(channel=channel or "", outcome=outcome).inc()

    def report_ran(self, report: str, seconds: float) -> None:
        self.report_duration.labels(report=report).observe(seconds)

    def sample(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge read at scrape time by ``read`` (which may query the database; when it
        raises, the gauge is left out of that scrape and a warning is logged)."""
        self._sampled.gauges.append((name, documentation, read))

    # -- transactions -------------------------------------------------------------------------

    def watch(self, sessions: Any) -> None:
        """Apply observations noted in sessions of ``sessions`` (a ``sessionmaker``) when their
        transaction commits; count committed instance transitions."""
        event.listen(sessions, "before_flush", _note_transitions)
        event.listen(sessions, "after_commit", self._after_commit)
        event.listen(sessions, "after_rollback", _forget)

    def _after_commit(self, session: Session) -> None:
        noted = session.info.pop(_NOTED, None)
        for name, value, labels in noted or ():
            try:
                if name == "transition":
                    self.transitions.labels(**labels).inc(value)
                elif name == "timer_lag":
                    self.timer_lag.labels(**labels).observe(max(value, 0.0))
            except Exception:  # noqa: BLE001 - metrics never fail a committed operation
                log.exception("metric %s could not be recorded", name)


def _forget(session: Session) -> None:
    session.info.pop(_NOTED, None)


def _note_transitions(session: Session, _context: Any, _instances: Any) -> None:
    from engine.store.models import InstanceEventRow, InstanceRow

    events = [row for row in session.new if isinstance(row, InstanceEventRow) and row.event == "transition"]
    if not events:
        return
    processes = {row.id: row.process_key for row in list(session.new) + list(session.identity_map.values())
                 if isinstance(row, InstanceRow)}
    for row in events:
        observe(session, "transition", process=processes.get(row.instance_id) or "",
                from_state=row.from_state or "", to_state=row.to_state or "")


class _Sampled(Collector):
    """Gauges computed when the registry is collected."""

    def __init__(self) -> None:
        self.gauges: list[tuple[str, str, Callable[[], float]]] = []

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(name, documentation) for name, documentation, _read in self.gauges]

    def collect(self) -> Iterator[Metric]:
        for name, documentation, read in self.gauges:
            try:
                value = float(read())
            except Exception as exc:  # noqa: BLE001 - a scrape reports what it can
                log.warning("metric %s not sampled: %s", name, exc)
                continue
            yield GaugeMetricFamily(name, documentation, value=value)


def engine_metrics(db: Any, mirror: Any) -> Metrics:
    """The metrics of an engine on ``db`` (``engine.store.Database``) with report ``mirror``."""
    from engine.store.models import ChangeRow, OutboxRow

    metrics = Metrics()
    metrics.watch(db.write_sessions)

    def outbox_pending() -> float:
        with db.read() as session:
            return float(session.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.status == "pending")) or 0)

    mirror_ref = weakref.ref(mirror)  # the registry must not keep the mirror (a DuckDB connection) alive

    def mirror_lag() -> float:
        current = mirror_ref()
        if current is None:
            return 0.0
        with db.read() as session:
            newest = session.scalar(select(func.max(ChangeRow.seq))) or 0
        return float(max(newest - current.last_seq, 0))

    metrics.sample("lowcode_outbox_pending", "Outbox messages waiting for delivery", outbox_pending)
    metrics.sample("lowcode_report_mirror_lag_changes",
                   "Change sequence numbers committed but not yet applied to the report mirror", mirror_lag)
    return metrics


__all__ = ["Metrics", "engine_metrics", "observe", "status_class"]
