"""The tables. Runtime state lives here; compiled specs never do.

Every business operation writes its rows in one transaction (DESIGN.md §1.4). JSON documents
are stored as text written by :mod:`engine.jsoncodec`, so decimals keep their exact digits on
both databases.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Index, Integer, MetaData, String, Text, UniqueConstraint, event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from engine.observability.context import current_request_id
from engine.store.types import UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a bigint identity.
AutoId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class DefinitionRow(Base):
    """One version of an uploaded definition, as uploaded (the body) with its digest."""

    __tablename__ = "definitions"
    __table_args__ = (UniqueConstraint("kind", "key", "version"), Index(None, "kind", "key", "digest"))

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(128))


class RecordRow(Base):
    """A submitted record: the data (computed fields included) and the form version it obeys."""

    __tablename__ = "records"
    __table_args__ = (Index(None, "form_key", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    form_key: Mapped[str] = mapped_column(String(64))
    form_version: Mapped[int] = mapped_column(Integer)
    data: Mapped[str] = mapped_column(Text)
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(128))


class RecordValueRow(Base):
    """Top-level scalar values of a record, for lookups by field (refs, external ids)."""

    __tablename__ = "record_values"
    __table_args__ = (Index(None, "form_key", "field", "value"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    record_id: Mapped[str] = mapped_column(String(36), index=True)
    form_key: Mapped[str] = mapped_column(String(64))
    field: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(String(255))
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """None: ``value`` is the field's lookup text. Otherwise the field is sensitive and ``value``
    is its blind index, the HMAC-SHA256 (hex) under this master key (engine.security.crypto)."""


class InstanceRow(Base):
    """A running or finished process instance over one record."""

    __tablename__ = "process_instances"
    __table_args__ = (Index(None, "record_id"), Index(None, "process_key", "status"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    process_key: Mapped[str] = mapped_column(String(64))
    process_version: Mapped[int] = mapped_column(Integer)
    record_id: Mapped[str] = mapped_column(String(36))
    state: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(64), nullable=True)
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_by: Mapped[str] = mapped_column(String(128))
    tokens: Mapped[str] = mapped_column(Text, default="[]")
    """JSON list of the positions the instance is at: one ``{"state"}`` outside parallel
    branches, one ``{"state", "parallel", "branch"}`` per running branch inside them."""
    variables: Mapped[str] = mapped_column(Text, default="{}")
    """JSON object of process variables (``process.*`` in rules): send-back counts, decisions."""
    first_decision_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    """When a person first completed a task: the milestone after which withdrawing is refused."""


class TaskRow(Base):
    """A human task: one per assignee of a state while the instance is in it."""

    __tablename__ = "tasks"
    __table_args__ = (Index(None, "status", "assignee_role"), Index(None, "instance_id"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(36))
    state: Mapped[str] = mapped_column(String(64))
    entry: Mapped[int] = mapped_column(Integer)
    """Which visit of the state this task belongs to (a state may be entered again)."""
    assignee_role: Mapped[str | None] = mapped_column(String(64), nullable=True)
    assignee_user: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    action: Mapped[str | None] = mapped_column(String(64), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    acted_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    scope_attribute: Mapped[str | None] = mapped_column(String(64), nullable=True)
    scope_value: Mapped[str | None] = mapped_column(String(255), nullable=True)
    """A role task of a scoped state is for holders of the role whose attribute (e.g. branch)
    equals this value."""
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    origin: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """How the task came to be: None (the definition), ``added:before|after|parallel``,
    ``escalation``."""
    waits_for: Mapped[str | None] = mapped_column(String(36), nullable=True)
    """A ``waiting`` task opens when this task is completed (add approver before/after)."""


class TimerRow(Base):
    """A durable timer, written in the same transaction as the state change that set it. A
    worker claims due ones for a lease (``lease_token``, ``leased_until``) and fires each in a
    transaction that commits only while the row still carries its token
    (:mod:`engine.workflow.timers`)."""

    __tablename__ = "timers"
    __table_args__ = (Index(None, "status", "fire_at"), Index(None, "instance_id"), Index(None, "task_id"))

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(String(36))
    task_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    state: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    """``remind``, ``escalate``, ``timeout`` or ``due`` (marks the SLA breach)."""
    step: Mapped[int] = mapped_column(Integer, default=0)
    """Index of the remind/escalate step in the state's SLA."""
    fire_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    """``pending``, ``fired`` or ``cancelled`` (its task closed first)."""
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    repeats: Mapped[int] = mapped_column(Integer, default=0)
    """How many times a repeating reminder has fired (missed repetitions count once)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """The fence of the worker claim that holds the timer; null when nobody does."""
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    """Until when that claim keeps the timer from other workers (then anyone may claim it)."""


class InstanceEventRow(Base):
    """The history of an instance, one row per step, in order."""

    __tablename__ = "instance_events"
    __table_args__ = (Index(None, "instance_id", "id"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(String(36))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    event: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(64), nullable=True)
    to_state: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str | None] = mapped_column(String(64), nullable=True)
    task_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    actor: Mapped[str] = mapped_column(String(128))
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    """JSON: e.g. which rule decided an automatic step and the inputs it saw."""
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    """Staff-only: never shown on the applicant's timeline."""


class ChangeRow(Base):
    """The analytic change sequence: every committed write appends one row, which the report
    mirror replays in order."""

    __tablename__ = "changes"

    seq: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    entity: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[str] = mapped_column(String(36))
    scope: Mapped[str] = mapped_column(String(64))
    """The form key of a record, the process key of an instance or task."""
    at: Mapped[datetime] = mapped_column(UTCDateTime)


@event.listens_for(Session, "before_flush")
def _transaction_id_before_change_number(session: Session, _context: object, _instances: object) -> None:
    """On PostgreSQL, make sure a transaction has its id before it takes a ``changes.seq``.

    A transaction gets its id at its first write, and the ``changes`` row may be the first row a
    flush inserts (unrelated tables are flushed in name order). The report mirror gives a hole in
    the sequence up once every transaction older than a watermark has ended (engine/reports,
    README "Late commits"), which is exact only if the holder of a number already had its id when
    it took the number: ``pg_current_xact_id()`` assigns it first.
    """
    if session.info.get(_HAS_XACT_ID) is session.get_transaction():
        return  # assigned by an earlier flush of this transaction: it keeps its id to the end
    if not any(isinstance(item, ChangeRow) for item in session.new):
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SELECT pg_current_xact_id()")
    session.info[_HAS_XACT_ID] = session.get_transaction()


_HAS_XACT_ID = "lowcode.xact_id_assigned"
"""``session.info`` key: the (outermost) transaction that already has its PostgreSQL id."""


class AuditRow(Base):
    """Who did what to which object, appended in the same transaction as the change."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """The HTTP request that caused the entry (its ``X-Request-ID``, engine.observability);
    None for the worker and the command line."""
    prev_hash: Mapped[str] = mapped_column(String(64))
    """The ``hash`` of the entry before (64 zeros for the first): the chain (engine.store.audit)."""
    hash: Mapped[str] = mapped_column(String(64))
    """SHA-256 over this entry and ``prev_hash``; set by engine.store.audit when it is written."""

    def __init__(self, **values: Any) -> None:
        values.setdefault("request_id", current_request_id())  # the request being served
        super().__init__(**values)


class OutboxRow(Base):
    """An outgoing message, written with the state change that caused it; delivered later."""

    __tablename__ = "outbox"
    __table_args__ = (UniqueConstraint("dedup_key"), Index(None, "status", "id"), Index(None, "status", "next_attempt_at"))

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(64))
    dedup_key: Mapped[str] = mapped_column(String(160))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    """``pending``, ``delivered``, ``dead`` (retries exhausted; listed over the API) or
    ``withheld`` (a notification caused by an import: recorded, never sent)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    channel: Mapped[str] = mapped_column(String(32), default="event")
    """``event`` (integration feed / webhooks) or a notification channel: ``log``, ``sms``,
    ``app``, ``webhook``."""
    recipient: Mapped[str | None] = mapped_column(String(255), nullable=True)
    """Whom a notification is for: ``user:<id>``, ``role:<name>[@<attr>=<value>]``, or an
    address taken from a record field."""
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class IdempotencyKeyRow(Base):
    """A creation made under an ``Idempotency-Key``: a retry by the same actor with the same key
    replays it. Written in the same transaction as the record; the unique (actor, key) makes
    two concurrent first attempts create one record."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("actor", "key"), Index(None, "created_at"))

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(128))
    request_digest: Mapped[str] = mapped_column(String(64))
    """sha256 (hex) of the canonical JSON of the form key and the body."""
    record_id: Mapped[str] = mapped_column(String(36))
    """The record created (submissions) or the process instance acted on (task actions)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    response: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The JSON answer the first request got (task actions), replayed as is to a retry; None
    for submissions, whose retry answers the record as stored."""


class RecordTagRow(Base):
    """A tag a record carries now (engine.insight): one row per record and tag that is on."""

    __tablename__ = "record_tags"
    __table_args__ = (UniqueConstraint("record_id", "tag"), Index(None, "form_key", "tag"))

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    record_id: Mapped[str] = mapped_column(String(36))
    form_key: Mapped[str] = mapped_column(String(64))
    tag: Mapped[str] = mapped_column(String(64))
    since: Mapped[datetime] = mapped_column(UTCDateTime)


class TagChangeRow(Base):
    """Tag history: a tag went on or off for a record, when, and what caused the recomputation."""

    __tablename__ = "tag_history"
    __table_args__ = (Index(None, "record_id", "id"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    record_id: Mapped[str] = mapped_column(String(36))
    form_key: Mapped[str] = mapped_column(String(64))
    tag: Mapped[str] = mapped_column(String(64))
    on: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    cause: Mapped[str] = mapped_column(String(160))
    """``record.created:<id>``, ``record.updated:<id>``, ``recompute`` ..."""


class EventRow(Base):
    """The integration event feed: one row per event outbox message, numbered without gaps in
    commit order (``seq`` assigned under the audit chain's lock, engine.insight.events)."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("dedup_key"),)

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    topic: Mapped[str] = mapped_column(String(64))
    dedup_key: Mapped[str] = mapped_column(String(160))
    payload: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiTokenRow(Base):
    """An API token (engine.security.tokens): only the SHA-256 of the secret is kept, so the
    table cannot be turned back into credentials."""

    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("token_hash"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    """sha256 (hex) of the whole token text, the lookup key."""
    user_id: Mapped[str] = mapped_column(String(128))
    roles: Mapped[str] = mapped_column(Text)
    """JSON list of role names."""
    attributes: Mapped[str] = mapped_column(Text)
    """JSON object of text attributes (e.g. a region the user belongs to)."""
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    """Updated at most once a minute per token."""
