"""``Engine``: the public Python API. The REST API is a thin adapter over it; both raise the
same errors."""
from __future__ import annotations

import functools
import re
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from datetime import datetime
from typing import Any, Callable, Iterable, Iterator, Mapping

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from engine.clock import Clock, clock_from_setting
from engine.config import Settings
from engine.definitions import DefinitionRegistry, UploadResult
from engine.errors import BadRequest, Conflict, DefinitionInvalid, Forbidden, Issue, NotFound, ValidationFailed
from engine.errors import EngineError, PreconditionFailed, PreconditionRequired
from engine.forms.bulk import prepare_submission
from engine.forms.pipeline import run as run_pipeline
from engine.forms.fills import apply_fills
from engine.forms.spec import FormSpec
from engine.insight import Insight
from engine.jsoncodec import MAX_DEPTH, check_document, check_text, dumps, loads
from engine.mergepatch import changed_fields, merge_patch
from engine.observability import engine_metrics
from engine import notify
from engine.reports import ReportMirror, run_report
from engine.reports.exports import ReportExport, check_format, export_result
from engine.security import SYSTEM, Principal
from engine.security.crypto import FieldCipher
from engine.security.keyring import KeySource
from engine.security.vault import Vault, read_entry, shown_plaintext
from engine.security.authentication import Authenticator
from engine.security.tokens import IssuedToken, TokenInfo, TokenStore
from engine.security.access import Access
from engine.security.definition_access import check_definition as check_insight_definition, required_function
from engine.security.definition_access import check_unsealing, unreadable_as_such
from engine.security.task_scope import task_condition
from engine.security.fields import check_filterable, check_writable, decision_view, readable_view, redact_issues

from engine.security.scope import instance_condition, record_condition, record_views, record_visible

from engine.store import Database
from engine.store import idempotency
from engine.store.audit import AuditVerification
from engine.store.audit import verify as verify_audit_chain
from engine.store import records as record_store
from engine.store.models import AuditRow, ChangeRow, InstanceEventRow, InstanceRow, OutboxRow, RecordRow, TaskRow
from engine.workflow.notices import withhold
from engine.workflow.runtime import ProcessStuck, Runner
from engine.workflow.spec import TaskStatus

_LOAD_ORDER = {"form": 0, "process": 1, "report": 2, "dashboard": 3, "roles": 4, "profile": 5, "tag": 6, "trigger": 7}
_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MAX_OFFSET = 1_000_000_000
MAX_VERSION = 2**31 - 1


def _known_id(value: str) -> bool:
    """Ids are UUIDs; anything else cannot exist and never reaches the database."""
    return bool(_ID.match(value))


def _paging(offset: int, limit: int, most: int) -> tuple[int, int]:
    if not 0 <= offset <= MAX_OFFSET:
        raise BadRequest("request.bad_parameter", path="offset", params={"name": "offset", "reason": f"must be 0 to {MAX_OFFSET}"})
    if not 1 <= limit <= most:
        raise BadRequest("request.bad_parameter", path="limit", params={"name": "limit", "reason": f"must be 1 to {most}"})
    return offset, limit



_Method = Callable[..., Any]


def _one_catalog(method: _Method) -> _Method:
    """Run an Engine operation against one look at the definitions catalog (which versions are
    current): every lookup in it answers from that instead of asking the database each time
    (:meth:`engine.definitions.DefinitionRegistry.pinned`)."""
    @functools.wraps(method)
    def pinned(self: "Engine", *args: Any, **kwargs: Any) -> Any:
        with self.registry.pinned():
            return method(self, *args, **kwargs)
    return pinned

@dataclass(frozen=True)
class Submission:
    """What :meth:`Engine.submit_replayable` returns: the record, and whether it replays an
    earlier request with the same idempotency key (then nothing new was written)."""

    record: dict[str, Any]
    replayed: bool


class Engine:
    """Everything the product does, as Python calls.

    >>> eng = Engine("sqlite:///var/demo.db"); eng.migrate(); eng.load_dir(Path("definitions/"))
    """

    def __init__(self, database_url: str | None = None, *, clock: Clock | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.db = Database(database_url or self.settings.database_url)
        self.clock: Clock = clock or clock_from_setting(self.settings.clock, production=self.settings.production)
        self.registry = DefinitionRegistry(self.db, self.clock)
        self.vault = Vault(FieldCipher(KeySource(self.settings.encryption)))
        """Seals, opens and blind-indexes sensitive fields (engine.security.vault)."""
        self.mirror = ReportMirror(self.db, self.registry.form_versions, clock=self.clock,
                                   settings=self.settings.reports)
        self.dispatcher = notify.Dispatcher.from_settings(self.settings.outbox, self.clock)  # URLs checked now
        self.metrics = engine_metrics(self.db, self.mirror)
        self.insight = Insight(self.db, self.registry, self.clock, self.settings.supervisor_roles, vault=self.vault)
        """Tags, triggers, 360 views and the event feed (engine.insight)."""
        """Prometheus metrics of this engine, in a registry of its own (engine.observability)."""
        self.token_store = TokenStore(self.db, self.clock)
        self.authenticator = Authenticator(self.token_store, lambda: self.settings.trust_identity_headers,
                                           lambda: self.settings.jwt, self.clock.now)
        """Who a request's headers name (engine.security.authentication); the API asks it."""

    def migrate(self) -> None:
        """Create or upgrade the tables (Alembic)."""
        self.db.migrate()

    def close(self) -> None:
        """Release the database pool and the report mirror (its DuckDB connection)."""
        self.mirror.close()
        self.db.dispose()

    # -- authentication ------------------------------------------------------------------------

    def create_token(self, user: str, roles: Iterable[str] = (), attributes: Mapping[str, str] | None = None, *,
                     expires_at: datetime | None = None, note: str = "", actor: Principal = SYSTEM) -> IssuedToken:
        """A new API token for ``user`` with ``roles`` and ``attributes``; its secret
        (``IssuedToken.token``) is returned this once and stored only as its SHA-256."""
        return self.token_store.create(user, roles, attributes, expires_at=expires_at, note=note, actor=actor)

    def tokens(self) -> list[TokenInfo]:
        """Every API token, revoked and expired ones included (never the secrets)."""
        return self.token_store.listing()

    def revoke_token(self, token_id: str, actor: Principal = SYSTEM) -> TokenInfo:
        """Revoke an API token at once; 404 ``token.not_found``."""
        return self.token_store.revoke(token_id, actor)

    def authenticate(self, authorization: str | None = None) -> Principal:
        """The principal of an ``Authorization`` header's value (``Bearer <token>``); 401
        :class:`engine.errors.Unauthenticated` with the reason's code otherwise."""
        headers = [] if authorization is None else [(b"authorization", authorization.encode("latin-1"))]
        return self.authenticator.principal(headers)

    # -- definitions ---------------------------------------------------------------------------

    def upload(self, document: Any, actor: Principal = SYSTEM) -> dict[str, Any]:
        """Validate, compile and store a definition: ``{kind, key, version, created}``.
        Needs one of ``settings.definition_roles`` (the system itself always may); once a roles
        definition is loaded, a role granting ``definitions.upload`` instead."""
        access = self.access(actor)
        if access.restricted:
            if not access.may("definitions.upload"):
                raise self._deny(actor, Forbidden("access.denied", params={"function": "definitions.upload"}),
                                 "definition.upload", "definition:-")
            stronger = required_function(document)  # roles, triggers: roles.manage (engine.security.definition_access)
            if stronger is not None and not access.may(stronger):
                raise self._deny(actor, Forbidden("access.denied", params={"function": stronger}),
                                 "definition.upload", f"{document['kind']}:{document.get('key', '-')}")
        elif actor is not SYSTEM and not (actor.roles & self.settings.definition_roles):
            raise Forbidden("definition.forbidden", params={"roles": sorted(self.settings.definition_roles)})

        def check(kind: str, spec: Any) -> None:
            try:
                if kind == "form":  # dropping "sensitive" needs roles.manage (engine.security.definition_access)
                    check_unsealing(spec, self.registry.form(spec.key), access)
                _check_uploaded(kind, spec, access, lambda key: self.registry.spec("profile", key))
            except (ValidationFailed, Forbidden) as exc:  # a definition reading what its uploader may not: a denial
                raise self._deny(actor, exc, "definition.upload", f"{kind}:{getattr(spec, 'key', '-')}") from None

        try:
            return self.registry.upload(document, actor.id, check).to_dict()
        except DefinitionInvalid as exc:  # a sealed field the caller may not read: as any unreadable one
            issues = unreadable_as_such(document, exc.issues, access, self.registry.form, self.registry.process)
            if issues == exc.issues:
                raise
            raise self._deny(actor, DefinitionInvalid(issues), "definition.upload",
                             f"report:{document.get('key', '-')}") from None

    def load_dir(self, folder: Path | str, actor: Principal = SYSTEM, *,
                 kinds: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """Upload every definition (``*.json`` with a known ``kind``, one of ``kinds`` if given)
        under ``folder``: forms first (referenced forms before those that refer to them), then
        processes, then reports, dashboards and roles. Stops at the first invalid file with
        :class:`DefinitionInvalid` whose paths are prefixed by the file name."""
        documents: list[tuple[Path, dict[str, Any]]] = []
        for path in sorted(Path(folder).rglob("*.json")):
            try:
                document = loads(path.read_bytes())
            except Exception:  # noqa: BLE001 - reported as the file's issue below
                raise DefinitionInvalid([Issue(str(path), "request.invalid_json", {"reason": "cannot parse"})]) from None
            if isinstance(document, dict) and document.get("kind") in _LOAD_ORDER and (
                    kinds is None or document["kind"] in kinds):
                documents.append((path, document))

        results = []
        for path, document in _dependency_order(documents):
            try:
                result = self.upload(document, actor)
            except DefinitionInvalid as exc:
                raise DefinitionInvalid([Issue(f"{path}#{issue.path}", issue.code, issue.params, issue.messages) for issue in exc.issues]) from None
            results.append({**result, "file": str(path)})
        return results

    def access(self, principal: Principal = SYSTEM) -> Access:
        """What ``principal`` may do and see under the loaded roles definitions: pass it to
        ``engine.security.fields`` (``readable_view``, ``check_writable``, ...). Unrestricted
        for the engine itself and while no roles definition is loaded."""
        from engine.security.access import resolve

        return resolve(self.registry.roles(), principal)

    def definitions(self) -> list[dict[str, Any]]:
        return self.registry.listing()

    def definition(self, kind: str, key: str, version: int | None = None) -> dict[str, Any]:
        if version is not None and not 1 <= version <= MAX_VERSION:
            raise NotFound("definition.version_not_found", params={"kind": kind, "key": key, "version": version})
        return self.registry.document(kind, key, version)

    # -- records -------------------------------------------------------------------------------

    def _form(self, form_key: str) -> FormSpec:
        spec = self.registry.form(form_key)
        if spec is None:
            raise NotFound("definition.not_found", params={"kind": "form", "key": form_key})
        return spec

    def form_schema(self, form_key: str, language: str = "en") -> dict[str, Any]:
        """The render payload of a form's latest version (JSON Schema, uiSchema, JSON Forms
        UI schema, labels in ``language``)."""
        from engine.forms.render import render_payload

        return render_payload(self._form(form_key), language)

    @_one_catalog
    def evaluate(self, form_key: str, data: Any, actor: Principal = SYSTEM) -> dict[str, Any]:
        """Run the submission pipeline without storing: ``{data, errors}`` (errors as Issues).
        References are checked as :meth:`submit` checks them (``record.ref_not_found``, the same
        for a record outside ``actor``'s scope as for none)."""
        spec = self._form(form_key)
        if not isinstance(data, dict):
            raise ValidationFailed([Issue("", "request.not_object")])
        check_document(data)
        outcome = run_pipeline(spec, data)
        issues = list(outcome.issues)
        if spec.refs:
            flagged = {issue.path for issue in issues}
            with self.db.read() as session:
                issues += [issue for issue in _missing_refs(session, spec, outcome.data, self.access(actor))
                           if issue.path not in flagged]
        return {"data": outcome.data, "issues": issues, "visible": outcome.visible,
                "required": outcome.required}

    def submit(self, form_key: str, data: Any, actor: Principal = SYSTEM, *,
               idempotency_key: str | None = None) -> dict[str, Any]:
        """Validate and store a record, and start its form's process, in one transaction.

        Raises :class:`ValidationFailed` with every issue; nothing is written then. With an
        ``idempotency_key`` a retry by the same actor returns the record the first call created
        and writes nothing (see :meth:`submit_replayable`).
        """
        return self.submit_replayable(form_key, data, actor, idempotency_key=idempotency_key).record

    @_one_catalog
    def submit_replayable(self, form_key: str, data: Any, actor: Principal = SYSTEM, *,
                          idempotency_key: str | None = None) -> Submission:
        """:meth:`submit`, saying whether the result replays an earlier call.

        A key (1 to 200 printable ASCII characters) is remembered per actor with the digest of
        the form key and body, in the record's transaction. The same key with another form or
        body raises ``record.idempotency_key_reused`` (422). Of two concurrent first attempts
        one creates the record; the other waits for it to commit and replays it.
        """
        if idempotency_key is None:
            return Submission(self._submit(form_key, data, actor, None), replayed=False)
        claim = idempotency.claim(idempotency_key, actor.id, form_key, data)
        with self.db.read() as session:
            earlier = idempotency.replayed_record(session, claim)
        if earlier is None:
            try:
                return Submission(self._submit(form_key, data, actor, claim), replayed=False)
            except IntegrityError:
                with self.db.read() as session:
                    earlier = idempotency.replayed_record(session, claim)  # the winner's, if that was the clash
                if earlier is None:
                    raise
        return Submission(self.record(earlier, actor), replayed=True)

    def _submit(self, form_key: str, data: Any, actor: Principal,
                claim: idempotency.IdempotencyClaim | None, notify: bool = True) -> dict[str, Any]:
        spec = self._form(form_key)
        access = self.access(actor)
        if access.restricted:
            if not access.may_submit(form_key):
                raise self._deny(actor, Forbidden("access.submit_denied", params={"form": form_key}),
                                 "record.create", f"form:{form_key}")
            if isinstance(data, dict):
                try:
                    check_writable(spec, {name: value for name, value in data.items() if value is not None}, access)
                except Forbidden as exc:
                    raise self._deny(actor, exc, "record.create", f"form:{form_key}") from None
        data = apply_fills(spec, data, self._fill_source)  # copied from referenced records (engine.forms.fills)
        computed, issues = prepare_submission(spec, data)  # shared with bulk imports (engine.forms.bulk)
        process = None
        unbound: list[Issue] = []
        if spec.process is not None:
            process = self.registry.process(spec.process)
            if process is None or process.form != form_key:
                unbound.append(Issue("", "record.no_process", {"form": form_key, "process": spec.process}))
                process = None
        if issues or unbound:
            # The references are reported with everything else. Without other issues they are
            # checked once, in the transaction below, which raises the same issues.
            with self.db.read() as session:
                issues += _missing_refs(session, spec, computed, access)
            raise ValidationFailed(issues + unbound)
        now = self.clock.now()
        record_id = str(uuid.uuid4())
        try:
            with self._denials(actor), self.db.transaction() as session:
                if not notify:  # an import's row (engine.workflow.notices)
                    withhold(session)
                if claim is not None:
                    idempotency.remember(session, claim, record_id, now)  # first: a racing twin stops here
                missing = _missing_refs(session, spec, computed, access)  # again: it may have gone since
                if missing:
                    raise ValidationFailed(missing)
                self.insight.lock_before_write(session, "record.created", form_key, [computed])  # before the append lock
                sealed, blind, sensitive = self.vault.for_storage(spec, record_id, computed)
                row = RecordRow(id=record_id, form_key=form_key, form_version=spec.version, data=dumps(sealed),
                                row_version=1, created_at=now, updated_at=now, created_by=actor.id)
                session.add(row)
                record_store.write_values(session, record_id, form_key, computed, blind, sensitive, new=True)
                session.add(ChangeRow(entity="record", entity_id=record_id, scope=form_key, at=now))
                session.add(AuditRow(at=now, actor=actor.id, action="record.create", object_type="record",
                                     object_id=record_id, detail=dumps({"form": form_key, "version": spec.version})))
                session.add(OutboxRow(topic="record.created", dedup_key=f"record.created:{record_id}",
                                      payload=dumps({"record": record_id, "form": form_key}), status="pending",
                                      attempts=0, created_at=now))
                if access.restricted:
                    session.flush()
                    if not record_visible(session, access, record_id):  # a record one may not see, one may not create
                        raise _marked(Forbidden("access.out_of_scope", params={"form": form_key}),
                                      "record.create", f"form:{form_key}")
                if process is not None:
                    Runner(session, process, now, self.settings.supervisor_roles).start(
                        record_id, self.vault.plain(spec, form_key, computed), actor)  # decisions record no sensitive input
                self.insight.after_record_write(session, "record.created", form_key, record_id, computed, None, actor)
                # The answer is read back here, as :meth:`record` reads it (masks, the audit of
                # sensitive values shown), committed with the record: no second connection.
                created = self._read_back(session, record_id, access, actor)
        except ProcessStuck as exc:
            raise ValidationFailed([Issue("", "process.stuck", {"reason": str(exc)})]) from None
        return created

    def _read_back(self, session: Any, record_id: str, access: Access, actor: Principal) -> dict[str, Any]:
        """The view :meth:`record` gives of a record this transaction wrote (and, for a
        restricted caller, found in its scope), from the database's values (``populate_existing``:
        times as stored, not as the clock gave them), its sensitive reads audited in it."""
        session.flush()
        row = session.execute(select(RecordRow).where(RecordRow.id == record_id)
                              .execution_options(populate_existing=True)).scalar_one()
        instances = session.scalars(select(InstanceRow).where(InstanceRow.record_id == record_id)
                                    .order_by(InstanceRow.started_at).execution_options(populate_existing=True)).all()
        opened = self._open_rows([row])
        view = _record_view(row, list(instances), opened[0][1])
        view["data"] = readable_view(row.form_key, view["data"],
                                     record_views(session, access, row.form_key, [row.id])[row.id])
        self._audit_reads(session, [(row, view["data"], shown_plaintext(opened[0][2], opened[0][1], view["data"]))],
                          actor)
        return view

    @_one_catalog
    def update(self, record_id: str, changes: Any, actor: Principal = SYSTEM,
               if_match: int | None = None) -> dict[str, Any]:
        """Apply a JSON merge patch (RFC 7396: ``null`` removes a key) to a record, then run the
        submission pipeline (compute, validate, refs) against the record's OWN form version and
        store the result in one transaction.

        ``if_match`` is the ``row_version`` the caller read (its ETag). None raises
        :class:`PreconditionRequired` (428); a stale one, or losing a race to a concurrent
        update, raises :class:`PreconditionFailed` (412) and changes nothing. Top-level fields
        the record's form version does not declare (written under another version, or tolerated
        extras) are kept untouched unless the patch names them. A patch that changes nothing
        writes nothing.

        A record that started a process instance is locked: while the instance runs and after
        it ended, :class:`Conflict` ``record.in_process`` (409) and nothing is written, so that
        what the process decided on is what stays stored (no process state lets the applicant
        edit; one that should would have to unlock the record explicitly). Instances start only
        in the transaction that creates their record, so a record without one never gets one
        later: checking once, before anything is written, is enough.
        """
        if not _known_id(record_id):
            raise NotFound("record.not_found", params={"id": record_id[:64]})
        access = self.access(actor)
        with self._denials(actor), self.db.read() as session:
            if not record_visible(session, access, record_id):  # outside the caller's scope: as if absent
                missing = NotFound("record.not_found", params={"id": record_id})
                if session.get(RecordRow, record_id) is None:
                    raise missing
                raise _marked(missing, "record.update", f"record:{record_id}")
            _check_not_in_process(session, record_id)
        if if_match is None:
            raise PreconditionRequired("record.precondition_required")
        if not isinstance(changes, dict):
            raise ValidationFailed([Issue("", "request.not_object")])
        check_document(changes)
        with self._denials(actor), self.db.read() as session:
            row = session.get(RecordRow, record_id)
            if row is None:
                raise NotFound("record.not_found", params={"id": record_id})
            try:
                check_writable(self.registry.form(row.form_key, row.form_version) or row.form_key, changes, access)
            except Forbidden as exc:
                raise _marked(exc, "record.update", f"record:{record_id}") from None
            if row.row_version != if_match:
                raise PreconditionFailed("record.version_mismatch", params={"current": row.row_version})
            form_key, form_version, stored = row.form_key, row.form_version, loads(row.data)
        spec = self.registry.form(form_key, form_version)
        if spec is None:
            raise NotFound("definition.version_not_found", params={"kind": "form", "key": form_key, "version": form_version})
        self.vault.check_input(changes)
        stored, _revealed = self.vault.for_reading(spec, form_key, record_id, stored)  # not returned: not a read
        declared = _declared_fields(spec.schema)
        kept = {name: value for name, value in stored.items() if name not in declared and name not in changes}
        outcome = run_pipeline(spec, merge_patch({k: v for k, v in stored.items() if k not in kept}, changes))
        issues = list(outcome.issues)
        data = {**outcome.data, **kept}
        check_document(data)
        with self.db.read() as session:
            issues += _missing_refs(session, spec, data, access)
        if issues:
            raise ValidationFailed(redact_issues(form_key, issues, access))
        fields = changed_fields(stored, data)
        if not fields:
            return self.record(record_id, actor)
        sealed, blind, sensitive = self.vault.for_storage(spec, record_id, data)
        now = self.clock.now()
        with self._denials(actor), self.db.transaction() as session:
            missing = _missing_refs(session, spec, data, access)
            if missing:
                raise ValidationFailed(missing)
            self.insight.lock_before_write(session, "record.updated", form_key, [data])  # before the append lock
            if not record_store.update_if_version(session, record_id, if_match, sealed, now):
                current = session.scalar(select(RecordRow.row_version).where(RecordRow.id == record_id))
                raise PreconditionFailed("record.version_mismatch", params={"current": current})
            record_store.write_values(session, record_id, form_key, data, blind, sensitive)
            if access.restricted:
                session.flush()
                if not record_visible(session, access, record_id):  # no moving a record out of one's own scope
                    raise _marked(Forbidden("access.out_of_scope", params={"form": form_key}),
                                  "record.update", f"record:{record_id}")
            session.add(ChangeRow(entity="record", entity_id=record_id, scope=form_key, at=now))
            session.add(AuditRow(at=now, actor=actor.id, action="record.update", object_type="record",

                                 object_id=record_id, detail=dumps({"form": form_key, "version": form_version,
                                                                    "row_version": if_match + 1, "fields": fields})))
            session.add(OutboxRow(topic="record.updated", dedup_key=f"record.updated:{record_id}:{if_match + 1}",
                                  payload=dumps({"record": record_id, "form": form_key, "row_version": if_match + 1,
                                                 "fields": fields}),
                                  status="pending", attempts=0, created_at=now))
            self.insight.after_record_write(session, "record.updated", form_key, record_id, data, stored, actor)
        return self.record(record_id, actor)

    @_one_catalog
    def record(self, record_id: str, actor: Principal = SYSTEM) -> dict[str, Any]:
        """One record, its sensitive values opened. A read that returns any of them in
        plaintext appends a ``record.read_sensitive`` audit entry (naming the record and the
        fields) in the transaction that reads it."""
        if not _known_id(record_id):
            raise NotFound("record.not_found", params={"id": record_id[:64]})
        with self.db.read() as session:
            head = session.execute(select(RecordRow.form_key, RecordRow.form_version)
                                   .where(RecordRow.id == record_id)).first()
        if head is None:
            raise NotFound("record.not_found", params={"id": record_id})
        access = self.access(actor)
        if access.restricted:
            with self._denials(actor), self.db.read() as session:
                if not record_visible(session, access, record_id):  # outside the caller's scope: as if absent

                    raise _marked(NotFound("record.not_found", params={"id": record_id}),
                                  "record.read", f"record:{record_id}")
        audited = self.vault.has_sensitive(self.registry.form(head.form_key, head.form_version), head.form_key)
        with self.db.transaction() if audited else self.db.read() as session:
            row = session.get(RecordRow, record_id)
            if row is None:
                raise NotFound("record.not_found", params={"id": record_id})
            instances = session.scalars(select(InstanceRow).where(InstanceRow.record_id == record_id)
                                        .order_by(InstanceRow.started_at)).all()
            opened = self._open_rows([row])
            view = _record_view(row, list(instances), opened[0][1])
            view["data"] = readable_view(row.form_key, view["data"],
                                         record_views(session, access, row.form_key, [row.id])[row.id])
            # audited: the sensitive values the caller gets in plaintext (not those dropped or masked)
            shown = [(row, view["data"], shown_plaintext(opened[0][2], opened[0][1], view["data"]))]
            if audited:
                self._audit_reads(session, shown, actor)
        if not audited:
            self._audit_reads(None, shown, actor)
        return view

    @_one_catalog
    def records(self, form_key: str, *, filters: Mapping[str, Any] | None = None, offset: int = 0, limit: int = 50,
                actor: Principal = SYSTEM, tag: str | None = None) -> dict[str, Any]:
        """A page of a form's records, oldest first; ``filters`` match top-level values exactly
        (a sensitive field by its blind index, without decrypting). Sensitive values are opened;
        each record returned with any of them appends a ``record.read_sensitive`` audit entry in
        the reading transaction. ``tag`` keeps the records that carry that tag now
        (engine.insight)."""
        spec = self._form(form_key)
        access = self.access(actor)
        view = access.form(form_key)
        if view is None:
            raise self._deny(actor, Forbidden("access.denied", params={"function": f"read {form_key}"}),
                             "record.list", f"form:{form_key}")
        if access.restricted:  # an unknown field and one the caller may not read get one answer
            check_filterable(spec, list(filters or {}), access, known=[column.name for column in spec.columns])
        filters = {field: self.vault.lookup(spec, form_key, field, _filter_value(spec, field, value))
                   for field, value in (filters or {}).items()}
        offset, limit = _paging(offset, limit, 500)
        audited = self.vault.has_sensitive(spec, form_key)
        with self.db.transaction() if audited else self.db.read() as session:
            where = record_condition(view, form_key, access)
            if tag is not None:
                from sqlalchemy import and_

                from engine.store.models import RecordTagRow

                from engine.insight.visibility import hidden_tags

                tagged = RecordRow.id.in_(select(RecordTagRow.record_id).where(RecordTagRow.form_key == form_key,
                                                                              RecordTagRow.tag == tag))
                catalog = self.insight.current(session)
                if tag not in {item.key for item in catalog.tags if item.form == form_key} \
                        or tag in hidden_tags(catalog, access):  # a hidden tag is answered as an unknown one
                    raise ValidationFailed([Issue("/tag", "record.unknown_tag", {"tag": tag, "form": form_key})])
                where = tagged if where is None else and_(where, tagged)
            rows, total = record_store.page(session, form_key, filters, offset, limit, where=where)
            shown = []
            views = record_views(session, access, form_key, [row.id for row in rows])  # the grants admitting each
            for row, data, revealed in self._open_rows(rows):
                out = readable_view(form_key, data, views[row.id])
                shown.append((row, out, shown_plaintext(revealed, data, out)))
            if audited:
                self._audit_reads(session, shown, actor)
            page = {"items": [_record_view(row, [], out) for row, out, _ in shown],
                    "total": total, "offset": offset, "limit": limit}

        if not audited:
            self._audit_reads(None, shown, actor)
        return page

    def _fill_source(self, form_key: str, record_id: str) -> dict[str, Any] | None:
        """A referenced record's data (opened) for `apply_fills`, or None."""
        if not _known_id(record_id):
            return None
        with self.db.read() as session:
            row = session.get(RecordRow, record_id)
            if row is None or row.form_key != form_key:
                return None
            return self._open_rows([row])[0][1]

    def _open_rows(self, rows: list[RecordRow]) -> list[tuple[RecordRow, dict[str, Any], list[str]]]:
        """Each row with its data opened and the pointers of its sensitive values in plaintext."""
        opened = []
        for row in rows:
            data, revealed = self.vault.for_reading(self.registry.form(row.form_key, row.form_version), row.form_key,
                                                    row.id, loads(row.data))
            opened.append((row, data, revealed))
        return opened

    def _audit_reads(self, session: Any, opened: list[tuple[RecordRow, dict[str, Any], list[str]]],
                     actor: Principal) -> None:
        """One ``record.read_sensitive`` entry per record read with sensitive values in
        plaintext: in ``session``, or (None: a read-only read came upon values sealed when a
        field was sensitive) in a transaction of its own, committed before they are returned."""
        entries = [read_entry(actor.id, row.form_key, row.id, revealed, self.clock.now())
                   for row, _data, revealed in opened if revealed]
        if not entries:
            return
        if session is not None:
            session.add_all(entries)
            return
        with self.db.transaction() as own:
            own.add_all(entries)

    @_one_catalog
    def record_360(self, record_id: str, actor: Principal = SYSTEM) -> dict[str, Any]:
        """The 360 view of a record (engine.insight.view360): profile, links, children, related
        records by form, their process instances with the current step, tags, the profile's
        aggregates and one timeline; every record as ``actor`` may see it (records outside
        the caller's scope are left out, fields filtered and masked). 404 as :meth:`record`."""
        from engine.insight.view360 import build

        self.record(record_id, actor)  # 404 / out of scope exactly as a plain read
        access = self.access(actor)

        def title_of(process_key: str, state: str) -> Any:
            spec = self.registry.process(process_key)
            state_spec = spec.states.get(state) if spec is not None else None
            return state_spec.title if state_spec is not None else state

        shown: list[tuple[RecordRow, dict[str, Any], list[str]]] = []
        """Related records shown with sensitive values in plaintext: audited below."""
        with self.db.read() as session:
            row = session.get(RecordRow, record_id)
            if row is None:
                raise NotFound("record.not_found", params={"id": record_id})

            def see(item: RecordRow) -> dict[str, Any] | None:
                if access.form(item.form_key) is None:
                    return None
                if access.restricted and not record_visible(session, access, item.id):
                    return None
                _item, data, revealed = self._open_rows([item])[0]
                out = readable_view(item.form_key, data, record_views(session, access, item.form_key, [item.id])[item.id])
                if item.id != record_id:  # the record itself: audited by the read above
                    shown.append((item, out, shown_plaintext(revealed, data, out)))
                return out

            def sees_field(form_key: str, field: str | None) -> bool:
                view = access.form(form_key)
                return view is not None and (field is None or view.reads(field))

            from engine.insight.visibility import hidden_tags, without_hidden

            catalog = self.insight.current(session)
            view = build(session, catalog, row, now=self.clock.now(), see=see,
                         sees_field=sees_field, title_of=title_of, read=self.insight.read)
            view = without_hidden(view, hidden_tags(catalog, access))  # tags from data the caller may not read
        self._audit_reads(None, shown, actor)  # committed before the view is returned
        return view

    def recompute_tags(self, form_key: str | None = None, progress: Callable[[int], None] | None = None) -> dict[str, int]:
        """Recompute every tag of every record (of ``form_key``'s records only, if given):
        ``{records, changes}`` (what ``lowcode tags recompute`` does). Tags over time windows
        ("in the last 90 days") change as time passes: run it daily."""
        if form_key is not None:
            self._form(form_key)  # a misspelt form is an error, not "0 records"
        return self.insight.recompute_all(form_key, progress)

    @_one_catalog
    def events(self, after: int = 0, limit: int = 100, actor: Principal = SYSTEM) -> dict[str, Any]:
        """The integration event feed after the cursor ``after``, in order and without gaps:
        ``{items: [{seq, topic, at, payload, id}], next}``. Payloads name records, instances
        and fields, never field values. Needs one of ``settings.outbox.staff_roles`` or the
        role ``integration``."""
        from engine.insight.events import MAX_PAGE, page

        from engine.security.scope import visible_events

        roles = self.settings.outbox.staff_roles | {"integration"}
        access = self.access(actor)
        if access.restricted:  # once roles are loaded, a role granting events.read decides
            if not access.may("events.read"):
                raise self._deny(actor, Forbidden("access.denied", params={"function": "events.read"}),
                                 "events.read", "events:-")
        elif actor is not SYSTEM and not (actor.roles & roles):
            raise Forbidden("events.forbidden", params={"roles": sorted(roles)})
        if not 0 <= after <= 2**63 - 1:
            raise BadRequest("request.bad_parameter", path="after", params={"name": "after", "reason": "a sequence number"})
        _offset, limit = _paging(0, limit, MAX_PAGE)
        with self.db.read() as session:
            result = page(session, after, limit)
            # a restricted reader gets the events of records in its scope, naming fields it sees
            # (``next`` still moves past the others)
            result["items"] = visible_events(session, access, result["items"])
            if access.restricted:
                from engine.insight.visibility import events_without_hidden, hidden_tags

                result["items"] = events_without_hidden(result["items"], hidden_tags(self.insight.current(session), access))
            return result

    def find_record_id(self, form_key: str, field: str, value: Any) -> str | None:
        """The id of the first record of ``form_key`` whose top-level ``field`` equals ``value``
        (a sensitive field by its blind index)."""
        lookup = self.vault.lookup(self.registry.form(form_key), form_key, field, value)
        with self.db.read() as session:
            ids = record_store.find_ids(session, form_key, field, lookup, limit=1)
        return ids[0] if ids else None

    # -- tasks and instances -------------------------------------------------------------------

    @_one_catalog
    def tasks(self, *, role: str | None = None, user: str | None = None, status: str = "open",
              offset: int = 0, limit: int = 100, actor: Principal = SYSTEM) -> dict[str, Any]:
        """The inbox: tasks by role and/or assigned user, newest first, as ``actor`` may see
        them (the rule of :meth:`instance`): tasks of cases ``actor`` is staff of in full
        (``"view": "staff"``), tasks of the applicant's own cases in the public view
        (``"view": "applicant"``), no others. ``{items, total, offset, limit}``; ``status`` is
        one of :data:`TASK_STATUSES` or ``all`` (422 at ``status`` otherwise), ``limit`` 1-500."""
        from sqlalchemy import func

        from engine.workflow.access import is_named

        if status not in (*TASK_STATUSES, "all"):
            raise ValidationFailed([Issue("status", "request.bad_parameter", {
                "name": "status", "reason": f"one of {', '.join((*TASK_STATUSES, 'all'))}"})])
        offset, limit = _paging(offset, limit, 500)
        with self.db.read() as session:
            query = select(TaskRow, InstanceRow).join(InstanceRow, InstanceRow.id == TaskRow.instance_id)
            if status != "all":
                query = query.where(TaskRow.status == status)
            if role is not None:
                query = query.where(TaskRow.assignee_role == role)
            if user is not None:
                query = query.where(TaskRow.assignee_user == user)
            specs = self._process_specs(session)
            staff = {version for version, spec in specs.items()
                     if actor is SYSTEM or (is_named(actor) and actor.roles & (self.settings.supervisor_roles | spec.staff_roles))}
            if actor is not SYSTEM:
                query = query.where(_inbox_scope(session, actor, staff, set(specs)))
                scoped = instance_condition(self.access(actor))  # and only of records in the caller's scope
                if scoped is not None:
                    query = query.where(scoped)
                steps = task_condition(self.access(actor))  # and of steps it may act on (engine.security.task_scope)
                if steps is not None:
                    query = query.where(steps)
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.execute(query.order_by(TaskRow.created_at.desc(), TaskRow.id).offset(offset).limit(limit)).all()
            items = []
            for task, instance in rows:
                version = (instance.process_key, instance.process_version)
                if actor is SYSTEM or version in staff or (is_named(actor) and actor.id != instance.started_by):
                    items.append({**_task_view(task, instance), "view": "staff"})
                else:
                    items.append(_applicant_task_view(task, instance, specs[version].tracking.show_staff))
            return {"items": items, "total": total, "offset": offset, "limit": limit}

    def _process_specs(self, session: Any) -> dict[tuple[str, int], Any]:
        """Every stored process version's compiled spec, by ``(key, version)``."""
        from engine.store.models import DefinitionRow

        versions = session.execute(select(DefinitionRow.key, DefinitionRow.version)
                                   .where(DefinitionRow.kind == "process")).all()
        specs = {(key, version): self.registry.process(key, version) for key, version in versions}
        return {version: spec for version, spec in specs.items() if spec is not None}

    @_one_catalog
    def task(self, task_id: str, actor: Principal = SYSTEM) -> dict[str, Any]:
        """One task as ``actor`` may see it (the rule of :meth:`instance`): staff of the case get
        everything (``"view": "staff"``), the applicant the public view (``"view":
        "applicant"``: step, status, times; who handles it only if the process shows staff;
        never comments), anybody else 404 ``task.not_found``."""
        from engine.workflow.access import View

        if not _known_id(task_id):
            raise NotFound("task.not_found", params={"id": task_id[:64]})
        with self._denials(actor), self.db.read() as session:
            task = session.get(TaskRow, task_id)
            if task is None:
                raise NotFound("task.not_found", params={"id": task_id})
            instance = session.get(InstanceRow, task.instance_id)
            assert instance is not None
            try:
                spec, _tasks, _events, view = self._visible(session, instance, actor)
            except NotFound as exc:
                raise _marked(NotFound("task.not_found", params={"id": task_id}),
                              *getattr(exc, "denied", (None, None))) from None
            if view is View.STAFF:
                return {**_task_view(task, instance), "view": "staff"}
            return _applicant_task_view(task, instance, spec.tracking.show_staff)

    @_one_catalog
    def act(self, task_id: str, action: str, actor: Principal, comment: str | None = None, *,
            idempotency_key: str | None = None) -> dict[str, Any]:
        """Complete a task with ``action``. Of two concurrent actions on one task one wins; the
        other raises :class:`Conflict` (409). With an ``idempotency_key`` a retry of the same
        action by the same actor returns the instance as the first call left it and does
        nothing more."""
        _require_named(actor)
        _storable(comment, "/comment")
        claim = None
        if idempotency_key is not None:
            claim = idempotency.claim(idempotency_key, actor.id, f"task:{task_id}", {"action": action, "comment": comment})
            with self.db.read() as session:
                earlier = idempotency.earlier(session, claim)
                if earlier is not None:
                    return self._replay(session, earlier, actor)
        try:
            return self._operate(task_id=task_id, claim=claim, actor=actor,
                                 step_grant=True,
                                 operation=lambda runner, instance, task, data: runner.act(instance, task, action, actor, comment, data))
        except IntegrityError:
            if claim is None:
                raise
            with self.db.read() as session:
                earlier = idempotency.earlier(session, claim)
                if earlier is None:
                    raise
                return self._replay(session, earlier, actor)

    @_one_catalog
    def claim_task(self, task_id: str, actor: Principal) -> dict[str, Any]:
        """Take a task offered to a role (a candidate group): from now on only ``actor`` may act."""
        return self._operate(task_id=task_id, actor=actor, step_grant=True,
                             operation=lambda runner, instance, task, data: runner.claim(instance, task, actor))

    @_one_catalog
    def transfer_task(self, task_id: str, to_user: str, actor: Principal, comment: str | None = None) -> dict[str, Any]:
        """Hand an open task to another person (its assignee, or a supervisor, may)."""
        _storable(to_user, "/to")
        _storable(comment, "/comment")
        return self._operate(task_id=task_id, actor=actor, operation=lambda runner, instance, task, data:
                             runner.transfer(instance, task, to_user, actor, comment, data))

    @_one_catalog
    def add_approver(self, task_id: str, user: str, mode: str, actor: Principal, comment: str | None = None) -> dict[str, Any]:
        """Add ``user`` to the step ``before``, ``after`` or in ``parallel`` with this task."""
        _storable(user, "/user")
        _storable(mode, "/mode")
        _storable(comment, "/comment")
        return self._operate(task_id=task_id, actor=actor, operation=lambda runner, instance, task, data:
                             runner.add_approver(instance, task, user, mode, actor, comment, data))

    @_one_catalog
    def send_back(self, task_id: str, to_state: str, actor: Principal, comment: str | None = None) -> dict[str, Any]:
        """Return the case to an earlier human step (bounded by the process's ``max_send_backs``)."""
        _storable(to_state, "/to")
        _storable(comment, "/comment")
        return self._operate(task_id=task_id, actor=actor, operation=lambda runner, instance, task, data:
                             runner.send_back(instance, task, to_state, actor, comment, data))

    @_one_catalog
    def withdraw(self, instance_id: str, actor: Principal, reason: str | None = None) -> dict[str, Any]:
        """The applicant takes the request back; 409 once anybody has decided on it."""
        _storable(reason, "/comment")
        return self._operate(instance_id=instance_id, actor=actor, named=False, operation=lambda runner, instance, task, data:
                             runner.withdraw(instance, actor, reason, data))  # the runner refuses shared ids itself

    @_one_catalog
    def cancel_instance(self, instance_id: str, actor: Principal, reason: str | None = None) -> dict[str, Any]:
        """Stop a case (supervisors): open tasks are cancelled and no timer fires afterwards."""
        _storable(reason, "/comment")
        return self._operate(instance_id=instance_id, actor=actor, operation=lambda runner, instance, task, data:
                             runner.cancel(instance, actor, reason, data))

    @_one_catalog
    def urge(self, instance_id: str, actor: Principal, comment: str | None = None) -> dict[str, Any]:
        """Remind the current assignees (the applicant or staff; at most once an hour)."""
        _storable(comment, "/comment")
        return self._operate(instance_id=instance_id, actor=actor, operation=lambda runner, instance, task, data:
                             runner.urge(instance, actor, comment, data))

    @_one_catalog
    def cc(self, instance_id: str, users: list[str], actor: Principal, comment: str | None = None) -> dict[str, Any]:
        """Send a copy of the case to ``users`` (staff of the case); they may then read its history."""
        if not isinstance(users, (list, tuple)):
            raise BadRequest("request.bad_parameter", path="/users", params={"name": "users", "reason": "1 to 50 user ids"})
        for index, user in enumerate(users):
            _storable(user, f"/users/{index}")
        _storable(comment, "/comment")
        return self._operate(instance_id=instance_id, actor=actor, operation=lambda runner, instance, task, data:
                             runner.cc(instance, users, actor, comment, data))

    @_one_catalog
    def comment(self, instance_id: str, text: str, actor: Principal, *, internal: bool = False) -> dict[str, Any]:
        """Add a comment to the case; ``internal`` ones are never shown to the applicant."""
        if not isinstance(text, str) or not 1 <= len(text.strip()) <= 4000:
            raise BadRequest("request.bad_parameter", path="/text", params={"name": "text", "reason": "1 to 4000 characters"})
        _storable(text, "/text")
        return self._operate(instance_id=instance_id, actor=actor, operation=lambda runner, instance, task, data:
                             runner.comment(instance, actor, text, internal))

    def _operate(self, *, operation: Callable[..., Any], actor: Principal, task_id: str | None = None,
                 instance_id: str | None = None, claim: idempotency.IdempotencyClaim | None = None,
                 named: bool = True, step_grant: bool = False) -> dict[str, Any]:
        """One runtime operation in one transaction: lock the instance, re-read the task under
        the lock, run, commit; return the instance as it now is, as ``actor`` may see it.

        With a ``claim`` the idempotency key is looked up again under the lock: a twin that
        waited for the first call to commit replays its answer instead of finding the task
        closed. The answer is stored with the key, so a retry replays it even after the case
        moved on.

        Every runtime operation needs a named actor (or the engine itself): an anonymous or
        shared identity is refused with 403 ``task.anonymous_actor`` before anything is read
        (``withdraw`` answers ``instance.not_applicant`` instead: ``named=False``)."""
        if named:
            _require_named(actor)
        if task_id is not None and not _known_id(task_id):
            raise NotFound("task.not_found", params={"id": task_id[:64]})
        if instance_id is not None and not _known_id(instance_id):
            raise NotFound("instance.not_found", params={"id": instance_id[:64]})
        access = self.access(actor)
        now = self.clock.now()
        try:
            with self._denials(actor), self.db.transaction() as session:
                task = None
                # The instance is locked first (through its task's id), then the task read under
                # the lock: a racing action that committed meanwhile is seen.
                locked = InstanceRow.id == (instance_id if task_id is None else
                                            select(TaskRow.instance_id).where(TaskRow.id == task_id).scalar_subquery())
                instance = session.scalars(select(InstanceRow).where(locked).with_for_update()).one_or_none()
                if instance is None and task_id is not None:
                    raise NotFound("task.not_found", params={"id": task_id})
                if instance is None:
                    raise NotFound("instance.not_found", params={"id": instance_id})
                if task_id is not None:
                    task = session.get(TaskRow, task_id)
                    if task is None:  # gone since (tasks are never deleted: not seen, but refused the same)
                        raise NotFound("task.not_found", params={"id": task_id})
                    instance_id = task.instance_id
                spec = self.registry.process(instance.process_key, instance.process_version)
                if access.restricted and not record_visible(session, access, instance.record_id,
                                                            spec.form if spec is not None else None):
                    # a case of a record outside the caller's scope does not exist for it
                    raise _marked(NotFound("task.not_found" if task_id is not None else "instance.not_found",
                                           params={"id": task_id if task_id is not None else instance_id}),
                                  "task.operate" if task_id is not None else "instance.operate",
                                  f"task:{task_id}" if task_id is not None else f"instance:{instance_id}")
                if claim is not None:
                    earlier = idempotency.earlier(session, claim)  # a twin may have committed while we waited
                    if earlier is not None:
                        return self._replay(session, earlier, actor)
                if task is not None:
                    if task.status != TaskStatus.OPEN.value:
                        raise Conflict("task.not_open", params={"status": task.status})
                    if step_grant and not access.may_act(instance.process_key, task.state):
                        raise _marked(Forbidden("access.act_denied", params={"process": instance.process_key,
                                                                             "state": task.state}),
                                      "task.act", f"task:{task.id}")
                if instance.status != "active":
                    raise Conflict("instance.not_active", params={"status": instance.status})
                record = session.get(RecordRow, instance.record_id)
                if spec is None or record is None:
                    raise NotFound("instance.not_found", params={"id": instance.id})
                key = idempotency.remember(session, claim, instance.id, now) if claim is not None else None
                runner = Runner(session, spec, now, self.settings.supervisor_roles)
                data, _revealed = self.vault.for_reading(self.registry.form(record.form_key, record.form_version),
                                                         record.form_key, record.id, loads(record.data))
                self.insight.lock_before_write(session, "instance.completed", record.form_key, [data],
                                               instance.process_key)  # should it complete: before the append lock
                try:
                    operation(runner, instance, task, data)  # guards and notices see the values, callers do not
                except Forbidden as exc:  # the runtime's refusals (four eyes, signed twice, ...) are denials too
                    if getattr(exc, "denied", None) is None:
                        _marked(exc, "task.act" if task is not None else "instance.operate",
                                f"task:{task.id}" if task is not None else f"instance:{instance.id}")
                    raise
                session.flush()
                self.insight.after_operation(session, instance, actor)  # triggers on completion, tags
                session.expire_all()  # answer what was stored, exactly as a later read will see it
                view = self._view(session, instance, actor)
                if key is not None:
                    key.response = dumps(view)
        except ProcessStuck as exc:
            raise ValidationFailed([Issue("", "process.stuck", {"reason": str(exc)})]) from None
        return view

    def _replay(self, session: Any, earlier: Any, actor: Principal) -> dict[str, Any]:
        """The answer the first request with an idempotency key got (keys stored before
        answers were: the instance as it now is)."""
        if earlier.response is not None:
            replayed: dict[str, Any] = loads(earlier.response, max_depth=4 * MAX_DEPTH)
            return replayed
        instance = session.get(InstanceRow, earlier.record_id)
        if instance is None:
            raise NotFound("instance.not_found", params={"id": earlier.record_id})
        return self._view(session, instance, actor)

    @_one_catalog
    def timeline(self, instance_id: str, actor: Principal, language: str = "en") -> dict[str, Any]:
        """The instance's steps for ``actor``: staff (supervisors, holders of a role the process
        assigns to, people assigned to, claiming or acting on it, copied users) get the full
        history; the applicant gets the public view; anybody else gets 404, as if it did not
        exist (see :mod:`engine.workflow.access`)."""
        from engine.workflow.access import View
        from engine.workflow.timeline import build_timeline

        if not _known_id(instance_id):
            raise NotFound("instance.not_found", params={"id": instance_id[:64]})
        with self._denials(actor), self.db.read() as session:
            instance = session.get(InstanceRow, instance_id)
            if instance is None:
                raise NotFound("instance.not_found", params={"id": instance_id})
            spec, tasks, events, view = self._visible(session, instance, actor)
            if spec is None:
                raise NotFound("instance.not_found", params={"id": instance_id})
            timeline = build_timeline(spec, instance, tasks, events, language=language, full=view is View.STAFF,
                                      now=self.clock.now())
            access = self.access(actor)
            for entry in timeline.get("history", []):
                if isinstance(entry, dict) and entry.get("detail") is not None:
                    entry["detail"] = decision_view(spec.form, entry["detail"], access)
            return timeline

    def _after_timer(self, session: Any, instance_id: str) -> None:
        """A fired timer may have completed its instance (a timeout action): its triggers and the
        tags that read it run in the timer's transaction, as after a task action."""
        from engine.workflow.timers import TIMER_ACTOR

        instance = session.get(InstanceRow, instance_id)
        if instance is not None:
            self.insight.after_operation(session, instance, TIMER_ACTOR)

    def run_timers(self, *, limit: int = 200) -> dict[str, Any]:
        """Fire every SLA timer due now (what ``lowcode worker`` does each round)."""
        from engine.workflow.timers import fire_due_timers

        stats = fire_due_timers(self.db, self.clock.now(), self.registry.process, self.settings.supervisor_roles, limit=limit,
                                lease=self.settings.timer_lease, open_data=lambda row: self._open_rows([row])[0][1],
                                after_fire=self._after_timer)
        return {"fired": stats.fired, "cancelled": stats.cancelled, "failed": stats.failed, "lost": stats.lost,
                "errors": stats.errors}

    def deliver_outbox(self, *, limit: int = 100) -> dict[str, Any]:
        """Send the outbox messages due now, once each (what ``lowcode worker`` does each round);
        failures are retried with backoff and end on the dead-letter list."""
        from dataclasses import asdict

        from engine.notify.delivery import deliver_due

        return asdict(deliver_due(self.db, self.clock, self.settings, limit=limit, dispatcher=self.dispatcher,
                                  on_outcome=self.metrics.delivery_outcome))

    @_one_catalog
    def instance(self, instance_id: str, actor: Principal = SYSTEM) -> dict[str, Any]:
        """An instance with its tasks and its history, in order, as ``actor`` may see it (the
        same rule as :meth:`timeline`): staff of the case get every task and event with actors,
        comments and details (``"view": "staff"``); the applicant gets the public history the
        timeline shows and no staff names or comments (``"view": "applicant"``); anybody else
        gets 404. Every runtime operation answers this view for its caller."""
        if not _known_id(instance_id):
            raise NotFound("instance.not_found", params={"id": instance_id[:64]})
        with self._denials(actor), self.db.read() as session:
            instance = session.get(InstanceRow, instance_id)
            if instance is None:
                raise NotFound("instance.not_found", params={"id": instance_id})
            return self._view(session, instance, actor)

    def _visible(self, session: Any, instance: InstanceRow,
                 actor: Principal) -> tuple[Any, list[TaskRow], list[InstanceEventRow], Any]:
        """The instance's spec, tasks, events and what ``actor`` may see of it; raises
        :class:`NotFound` for anybody who may see nothing."""
        from engine.workflow.access import View, view_of

        spec = self.registry.process(instance.process_key, instance.process_version)
        tasks = list(session.scalars(select(TaskRow).where(TaskRow.instance_id == instance.id)
                                     .order_by(TaskRow.created_at, TaskRow.id)).all())
        events = list(session.scalars(select(InstanceEventRow).where(InstanceEventRow.instance_id == instance.id)
                                      .order_by(InstanceEventRow.id)).all())
        if spec is None:
            view = View.STAFF if actor is SYSTEM else None
        else:
            view = view_of(spec, instance, tasks, events, actor, self.settings.supervisor_roles)
        if view is None:  # it exists, the caller takes no part in it: a denial (a made-up id is none)
            raise _marked(NotFound("instance.not_found", params={"id": instance.id}),
                          "instance.read", f"instance:{instance.id}")
        access = self.access(actor)
        if access.restricted and not record_visible(session, access, instance.record_id,
                                                    spec.form if spec is not None else None):
            raise _marked(NotFound("instance.not_found", params={"id": instance.id}),  # outside the caller's scope
                          "instance.read", f"instance:{instance.id}")
        return spec, tasks, events, view


    def _view(self, session: Any, instance: InstanceRow, actor: Principal) -> dict[str, Any]:
        from engine.workflow.access import View
        from engine.workflow.timeline import build_timeline

        spec, tasks, events, view = self._visible(session, instance, actor)
        access = self.access(actor)
        result = _instance_summary(instance)
        result["view"] = view.value
        if view is View.STAFF:
            result["tasks"] = [_task_view(task, instance) for task in tasks]
            result["history"] = [
                {"at": event.at.isoformat(), "event": event.event, "from": event.from_state, "to": event.to_state,
                 "action": event.action, "task": event.task_id, "actor": event.actor, "comment": event.comment,
                 "detail": decision_view(spec.form, loads(event.detail), access) if event.detail and spec is not None
                 else loads(event.detail) if event.detail else None}
                for event in events
            ]
            return result
        show_staff = spec.tracking.show_staff
        result["tasks"] = [_public_task_view(task, instance, show_staff) for task in tasks]
        result["history"] = build_timeline(spec, instance, tasks, events, language="en", full=False,
                                           now=self.clock.now())["history"]
        return result

    # -- reports and imports -------------------------------------------------------------------

    @_one_catalog
    def run_report(self, key: str, params: Mapping[str, Any] | None = None, *,
                   language: str = "en", actor: Principal = SYSTEM) -> dict[str, Any]:
        """``{columns, rows, meta}``, including every write committed before the call.

        ``params`` are the report's query-time parameters as text (``{"period":
        "2019-01-01..2019-03-31"}``) and ``drill`` (``"dimension:value"``, a list for several
        levels); an unknown or ill-typed one raises :class:`ValidationFailed` (422). ``language``
        picks tier and value labels. Task SLA breaches are judged at the engine clock's now.

        Once roles are loaded, ``actor`` needs a role granting the report (403
        ``access.report_denied``); columns from fields it may not read in full are left out and
        parameters on them refused (engine.security.report_access)."""
        from engine.security.report_access import check_parameters, hidden_members, without_dimensions, without_members

        spec = self.registry.report(key)
        if spec is None:
            raise NotFound("report.not_found", params={"key": key})
        access = self.access(actor)
        if not access.may_read_report(key):
            raise self._deny(actor, Forbidden("access.report_denied", params={"key": key}), "report.read", f"report:{key}")
        check_parameters(spec, params, access)
        started = time.perf_counter()
        try:
            hidden = hidden_members(spec, access)  # grouped away, not only left out (no split by a hidden value)
            return without_members(run_report(self.mirror, without_dimensions(spec, hidden), params, language=language,
                                              now=self.clock.now()), hidden)
        finally:
            self.metrics.report_ran(key, time.perf_counter() - started)

    @_one_catalog
    def run_dashboard(self, key: str, params: Mapping[str, Any] | None = None, *,
                      language: str = "en", actor: Principal = SYSTEM) -> dict[str, Any]:
        """Every report of a dashboard, in order, with the shared parameters:
        ``{dashboard, version, title, parameters, reports: [{report, title, result}]}``."""
        from engine.reports.dashboard import run_dashboard

        spec = self.registry.dashboard(key)
        if spec is None:
            raise NotFound("dashboard.not_found", params={"key": key})
        access = self.access(actor)
        for item in spec.items:  # all or nothing: a dashboard with a report the caller may not read
            if not access.may_read_report(item.report):
                raise self._deny(actor, Forbidden("access.report_denied", params={"key": item.report}),
                                 "dashboard.read", f"dashboard:{key}")
        return run_dashboard(spec, lambda report, given: self.run_report(report, given, language=language, actor=actor),
                             params, self.registry.report)

    @_one_catalog
    def export_report(self, key: str, format: str = "json", params: Mapping[str, str] | None = None, *,
                      language: str = "en", actor: Principal = SYSTEM) -> ReportExport:
        """The report's result as ``json``, ``csv``, ``xlsx``, ``vega`` (Vega-Lite), ``png`` or
        ``svg``: bytes, media type and file name (engine.reports.exports). An unknown format is
        refused (``report.unknown_format``, 400) before the query runs."""
        name = check_format(format)
        spec = self.registry.report(key)
        if spec is None:
            raise NotFound("report.not_found", params={"key": key})
        return export_result(spec, self.run_report(key, params, language=language, actor=actor), name, language,

                             chart_max_rows=self.settings.reports.chart_max_rows)

    def run_import(self, form_key: str, source_path: Path | str, mapping_path: Path | str | None = None,
                   progress: Callable[[Any], None] | None = None, actor: Principal = SYSTEM, *,
                   rejects: Path | str | None = None, all_or_nothing: bool = False,
                   batch_size: int | None = None, one_by_one: bool = False, notify: bool = False) -> Any:
        """Import a CSV or JSON Lines file through the submission pipeline; returns an
        ``ImportReport`` (see ``engine/imports/README.md``).

        Rows are checked exactly as :meth:`submit` checks a record and stored in batches
        (``batch_size`` rows per transaction); ``one_by_one`` submits each row with :meth:`submit`
        instead (slow; same outcome). ``rejects`` names a JSON Lines file that receives every
        rejected row with its issues. ``all_or_nothing`` stores the rows only if none is rejected.
        ``progress`` is called after each batch with an ``ImportProgress(rows, position, size)``.
        The records' ``record.created`` triggers run after the rows are written, as
        :meth:`submit` runs them. ``notify`` sends the notifications of the processes the import
        starts; by default they are stored ``withheld`` (an import loads history: nobody is told
        of it). Feed events are written either way.

        Without a mapping file, every column whose header (CSV) or key (JSON Lines, by the file
        suffix ``.jsonl``/``.ndjson``) is a top-level field of the form fills that field,
        converted by the field's type (UTF-8)."""
        from engine.imports import (DEFAULT_BATCH_SIZE, MappingError, SourceError, SourceOptions, check_mapping_fields,
                                    compile_mapping, load_mapping, read_header, run_import)

        spec = self._form(form_key)
        source = Path(source_path)
        try:
            if mapping_path is not None:
                mapping = load_mapping(Path(mapping_path))
            elif source.suffix.lower() in (".jsonl", ".ndjson"):
                mapping = compile_mapping(_identity_mapping(spec, None))
            else:
                header = read_header(source, SourceOptions(encoding="utf-8-sig"))
                mapping = compile_mapping(_identity_mapping(spec, header))
            if mapping.form != form_key:
                raise ValidationFailed([Issue("/form", "import.bad_mapping",
                                              {"detail": f"the mapping is for form {mapping.form}, not {form_key}"})])
            check_mapping_fields(mapping, [column.name for column in spec.columns])
            target = _OneByOneImport(self, actor, notify) if one_by_one else _BulkImport(self, actor, notify)
            report = run_import(target, mapping, source, progress=progress, rejects=Path(rejects) if rejects else None,
                                all_or_nothing=all_or_nothing, batch_size=batch_size or DEFAULT_BATCH_SIZE)
            if isinstance(target, _BulkImport):  # Engine.submit ran them (and retagged) for each row one by one
                self.insight.after_import(form_key, target.issued, actor, notify=notify)
                self.insight.recompute_records(form_key, target.issued)  # only what the rows may change
            return report
        except MappingError as exc:
            raise ValidationFailed([Issue(issue.path, "import.bad_mapping", {"detail": issue.message})
                                    for issue in exc.issues]) from None
        except SourceError as exc:
            raise ValidationFailed([Issue("", "import.bad_source", {"detail": str(exc)})]) from None

    # -- backtest ------------------------------------------------------------------------------

    def backtest(self, definition: Any, *, form: Any = None, data_path: Path | str | None = None,
                 mapping: Any = None, rows: Any = None, actor: Principal = SYSTEM) -> dict[str, Any]:
        """Replay a candidate process definition's rule gates over history without storing
        anything (``engine/definitions/backtest.py``): routes, gate choices, agreement with what
        happened, and how many rows each rule decided in SQL and row by row.

        History is, in this order of preference: ``rows`` (a list of ``{"data", "actual"?}``),
        a file ``data_path`` read through ``mapping`` (a backtest mapping: a path or a dict; see
        ``engine/definitions/backtest_source.py``), or the stored records of the process's
        form (compared with the route their instances took). ``form`` is an optional candidate
        form definition. Needs the definition-upload roles, as an upload does."""
        from engine.definitions.backtest import MAX_ROWS, compile_candidate, run_backtest
        from engine.definitions.backtest_source import compile_backtest_mapping, inline_history, read_history
        from engine.definitions.backtest_source import stored_history

        access = self.access(actor)
        if access.restricted:
            if not access.may("definitions.upload"):
                raise Forbidden("access.denied", params={"function": "definitions.upload"})
        elif actor is not SYSTEM and not (actor.roles & self.settings.definition_roles):
            raise Forbidden("definition.forbidden", params={"roles": sorted(self.settings.definition_roles)})
        spec, form_spec = compile_candidate(definition, form, self.registry.form)
        began = time.perf_counter()  # timing_ms.total then counts reading the history too
        if rows is not None:
            history, with_issues = inline_history(rows, form_spec, max_rows=MAX_ROWS)
            return run_backtest(spec, history, actual_source="rows", rows_with_issues=with_issues, began=began)
        if data_path is not None:
            if mapping is None:
                raise ValidationFailed([Issue("/mapping", "backtest.mapping_required")])
            if not isinstance(mapping, dict):
                try:
                    mapping = loads(Path(mapping).read_bytes())
                except (OSError, ValueError):
                    raise ValidationFailed([Issue("/mapping", "request.invalid_json", {"reason": "cannot read"})]) from None
            compiled = compile_backtest_mapping(mapping)
            history, with_issues = read_history(Path(data_path), compiled, form_spec, max_rows=MAX_ROWS)
            outcome = compiled.outcome
            return run_backtest(spec, history, predicts=outcome.predicts if outcome else None,
                                actual_source=f"column {outcome.column}" if outcome else None,
                                rows_with_issues=with_issues, began=began)

        def open_record(row: RecordRow) -> dict[str, Any]:  # as the caller reads it: no oracle for a masked field
            form_version = self.registry.form(row.form_key, row.form_version)
            opened = self.vault.for_reading(form_version, row.form_key, row.id, loads(row.data))[0]
            return readable_view(row.form_key, opened, access) if access.restricted else opened

        with self.db.read() as session:
            history = stored_history(session, spec.form, spec.key, self.registry.process, open_record,
                                     max_rows=MAX_ROWS, visible=(lambda row: record_visible(session, access, row.id))
                                     if access.restricted else None)
        return run_backtest(spec, history, predicts={}, actual_source="instance route", began=began)

    # -- outbox --------------------------------------------------------------------------------

    def _check_outbox_staff(self, actor: Principal) -> None:
        roles = self.settings.outbox.staff_roles
        access = self.access(actor)
        if access.restricted:
            if not access.may("outbox.manage"):
                raise self._deny(actor, Forbidden("access.denied", params={"function": "outbox.manage"}),
                                 "outbox.manage", "outbox:-")
        elif actor is not SYSTEM and not (actor.roles & roles):
            raise Forbidden("outbox.forbidden", params={"roles": sorted(roles)})


    def dead_letters(self, offset: int = 0, limit: int = 50, actor: Principal = SYSTEM,
                     language: str = "en") -> dict[str, Any]:
        """Messages that will not be sent again unless retried, newest first:
        ``{items, total, offset, limit}``, each error as ``{code, message, params}``. Needs one of
        ``settings.outbox.staff_roles`` (admin, operator)."""
        self._check_outbox_staff(actor)
        offset, limit = _paging(offset, limit, 500)
        return notify.list_dead_letters(self.db, offset, limit, language)

    def verify_audit(self, *, batch: int = 1000) -> AuditVerification:
        """Walk the hash-chained audit log in order (``batch`` entries at a time) and report the
        first entry that was edited, deleted or reordered (engine.store.audit)."""
        with self.db.read() as session:
            return verify_audit_chain(session.connection(), batch=batch)

    # -- audit log and keys (engine.security.auditlog, engine.security.rotation) ---------------

    def _check_auditor(self, actor: Principal, attempted: str) -> None:
        roles = self.settings.audit_roles
        access = self.access(actor)
        if access.restricted:  # once roles are loaded, a role granting audit.read decides
            if not access.may("audit.read"):
                raise self._deny(actor, Forbidden("access.denied", params={"function": "audit.read"}), attempted,
                                 "audit_log:-")
        elif actor is not SYSTEM and not (actor.roles & roles):
            self.audit_denial(actor, attempted, "audit_log:-", "audit.forbidden")
            raise Forbidden("audit.forbidden", params={"roles": sorted(roles)})


    def audit_entries(self, actor: Principal = SYSTEM, *, actor_filter: str | None = None, object: str | None = None,
                      action: str | None = None, since: str | None = None, until: str | None = None,
                      after: int = 0, limit: int = 100) -> dict[str, Any]:
        """A page of audit entries in chain order: ``{items, next_after}`` (pass ``next_after``
        as ``after`` for the next page). Filters: the acting user, the object (``type:id`` or an
        id), the action (exact, or a prefix ``record.*``), ``since`` (inclusive) and ``until``
        (exclusive) as ISO-8601 instants with a zone. Needs one of ``settings.audit_roles``;
        a refusal is itself audited (``access.denied``)."""
        from engine.security import auditlog

        self._check_auditor(actor, "audit.read")
        where = auditlog.parse_filter(actor_filter, object, action, since, until)
        return auditlog.query(self.db, where, after=after, limit=limit)

    def export_audit(self, actor: Principal = SYSTEM, *, actor_filter: str | None = None, object: str | None = None,
                     action: str | None = None, since: str | None = None, until: str | None = None) -> Iterator[str]:
        """The matching audit entries as JSON Lines, streamed in batches; an unfiltered export
        carries the whole chain and can be checked offline (``auditlog.verify_lines``). The
        export itself is audited (``audit.export``). Needs one of ``settings.audit_roles``."""
        from engine.security import auditlog

        self._check_auditor(actor, "audit.export")
        where = auditlog.parse_filter(actor_filter, object, action, since, until)
        with self.db.transaction() as session:
            session.add(AuditRow(at=self.clock.now(), actor=actor.id, action="audit.export", object_type="audit_log",
                                 object_id="-", detail=dumps({"actor": actor_filter, "object": object, "action": action,
                                                              "since": since, "until": until})))
        return auditlog.export(self.db, where)

    def _deny(self, actor: Principal, exc: EngineError, action: str, object: str) -> EngineError:
        """``exc``, after its denial was recorded (outside any open transaction)."""
        self.audit_denial(actor, action, object, exc.code)
        return exc

    @contextmanager
    def _denials(self, actor: Principal) -> Iterator[None]:
        """Record the denial a block raises (:func:`_marked`) once the block's own transaction
        has rolled back: enter this before the transaction."""
        try:
            yield
        except EngineError as exc:
            denied = getattr(exc, "denied", None)
            if denied is not None:
                self.audit_denial(actor, denied[0], denied[1], exc.code)
            raise

    def audit_denial(self, principal: Principal, action: str, object: str, reason: str) -> None:

        """Record a permission denial (``access.denied``) in a transaction of its own: the
        refused operation's transaction rolls back. ``object`` is ``type:id``."""
        from engine.security.auditlog import audit_denial

        with self.db.transaction() as session:
            audit_denial(session, principal, action, object, reason, self.clock.now())

    def _sensitive_forms(self) -> set[str]:
        """Keys of forms with a sensitive field in some version."""
        from engine.store.models import DefinitionRow

        with self.db.read() as session:
            keys = set(session.scalars(select(DefinitionRow.key).where(DefinitionRow.kind == "form")))
        return {key for key in keys if any(self.vault.has_sensitive(spec, key) for spec in self.registry.form_versions(key))}

    def sensitive_forms_without_key(self) -> list[str]:
        """Forms with sensitive fields, when no master key is configured in production mode
        (``lowcode serve`` refuses to start then); empty otherwise."""
        if self.vault.cipher.keys.available:
            return []
        return sorted(self._sensitive_forms())

    def key_status(self) -> Any:
        """Sealed values and blind-index rows per master key id (``KeyStatus``)."""
        from engine.security.rotation import status

        return status(self.db, self.vault, self.registry.form, self._sensitive_forms())

    def rotate_keys(self, actor: Principal = SYSTEM, *, batch: int = 500) -> Any:
        """Re-seal every sensitive value under the active master key, ``batch`` records per
        transaction, one ``keys.rotate`` audit entry per batch (``RotationResult``). Run again
        after an interruption: it continues where it stopped."""
        from engine.security.rotation import rotate

        return rotate(self.db, self.vault, self.registry.form, self._sensitive_forms(), self.clock, actor.id, batch=batch)

    def retry_dead_letter(self, message_id: int, actor: Principal = SYSTEM, language: str = "en") -> dict[str, Any]:
        """Send a dead message back to the queue (pending, due now, attempts reset); audited.
        Raises :class:`NotFound` or :class:`Conflict` (``outbox.not_dead``)."""
        self._check_outbox_staff(actor)
        return notify.retry_dead_letter(self.db, message_id, actor.id, self.clock.now(), language)


_IMPORT_TYPES = {"string": "string", "integer": "integer", "decimal": "decimal", "number": "decimal",
                 "boolean": "boolean", "date": "date", "datetime": "string"}


def _identity_mapping(spec: FormSpec, header: tuple[str, ...] | None) -> dict[str, Any]:
    """Columns named like fields fill them: a CSV's header names, or (``header`` None) the keys
    of JSON Lines objects, where nested values fill ``json`` fields too."""
    if header is None:
        fields = {column.name: {"column": column.name, "type": _IMPORT_TYPES.get(column.type, "json")}
                  for column in spec.columns}
        return {"form": spec.key, "source": {"format": "jsonl"}, "fields": fields}
    fields = {
        column.name: {"column": column.name, "type": _IMPORT_TYPES[column.type]}
        for column in spec.columns
        if column.name in header and column.type in _IMPORT_TYPES
    }
    if not fields:
        raise ValidationFailed([Issue("", "import.bad_mapping",
                                      {"detail": "no column of the file is named like a field of the form; give --mapping"})])
    return {"form": spec.key, "source": {"format": "csv", "encoding": "utf-8-sig"}, "fields": fields}


class _BulkImport:
    """Imports through `engine.forms.bulk`: each row checked as `Engine.submit` checks it,
    written in batches."""

    def __init__(self, engine: Engine, actor: Principal, notify: bool = True) -> None:
        from engine.forms.bulk import BulkSubmitter

        self._bulk = BulkSubmitter(engine.db, engine.registry, engine.clock, actor, vault=engine.vault)
        self._notify = notify
        self.issued: list[str] = []
        """The record ids its sessions handed out (the written ones are in the database)."""

    @contextmanager
    def open_session(self, form_key: str, *, all_or_nothing: bool) -> Iterator[Any]:
        with self._bulk.session(form_key, all_or_nothing=all_or_nothing, notify=self._notify) as session:
            try:
                yield session
            finally:
                self.issued.extend(session.issued)


class _OneByOneImport:
    """Imports each row with `Engine.submit` (one transaction per row)."""

    def __init__(self, engine: Engine, actor: Principal, notify: bool = True) -> None:
        self._engine = engine
        self._actor = actor
        self._notify = notify

    def submit(self, form_key: str, data: dict[str, Any]) -> dict[str, Any]:
        return self._engine._submit(form_key, data, self._actor, None, notify=self._notify)

    def find_record_id(self, form_key: str, field: str, value: Any) -> str | None:
        from engine.imports.runner import AMBIGUOUS

        lookup = self._engine.vault.lookup(self._engine.registry.form(form_key), form_key, field, value)
        with self._engine.db.read() as session:
            ids = record_store.find_ids(session, form_key, field, lookup, limit=2)
        if len(ids) > 1:
            return AMBIGUOUS
        return ids[0] if ids else None


def _declared_fields(schema: Mapping[str, Any]) -> set[str]:
    """Top-level field names a form version declares: its ``properties``, and those of the
    subschemas it combines at the top (``allOf``, ``anyOf``, ``oneOf``, ``then``, ``else``)."""
    parts: list[Any] = [schema, schema.get("then"), schema.get("else")]
    for keyword in ("allOf", "anyOf", "oneOf"):
        parts += schema.get(keyword) or []
    names: set[str] = set()
    for part in parts:
        properties = part.get("properties") if isinstance(part, Mapping) else None
        if isinstance(properties, Mapping):
            names.update(properties)
    return names


def _missing_refs(session: Any, spec: FormSpec, data: Mapping[str, Any], access: Access | None = None) -> list[Issue]:
    """``record.ref_not_found`` at each reference to no record of its form. A restricted caller
    with a scoped grant on the target form is answered the same for a record outside its
    scope, so that referring to an id tells it nothing about records it may not see."""
    return [
        Issue(f"/{field}", "record.ref_not_found", {"form": target})
        for field, target in spec.refs.items()
        if data.get(field) is not None and not _ref_visible(session, target, data[field], access)
    ]


def _ref_visible(session: Any, target: str, value: Any, access: Access | None) -> bool:
    """Whether ``value`` is the id of a record of ``target`` the caller may see: one query,
    the existence and the scope together."""
    view = access.form(target) if access is not None and access.restricted else None
    condition = None if view is None else record_condition(view, target, access)  # type: ignore[arg-type]
    return record_store.record_exists(session, target, value, where=condition)



_FILTER_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
MAX_FILTER_NUMBER_CHARS = 100


def _filter_value(spec: FormSpec, field: str, value: Any) -> Any:
    """A filter value typed like its column (query strings arrive as text).

    A number is written in the JSON number grammar, in ASCII (no ``+``, ``_``, spaces or other
    scripts' digits) and compares by value: ``100``, ``100.0`` and ``1e2`` are the same filter.
    A value with a fraction against an integer field is refused (it could match nothing)."""
    column = spec.column(field)
    if column is None:
        raise ValidationFailed([Issue(f"/{field}", "definition.unknown_field", {"field": field})])
    if not isinstance(value, str):
        return value
    if "\x00" in value:  # no stored text holds one (PostgreSQL refuses it in a query: a 500)
        raise BadRequest("request.bad_parameter", path=field, params={"name": field, "reason": "contains a NUL character"})
    if column.type in ("decimal", "number", "integer"):
        if len(value) > MAX_FILTER_NUMBER_CHARS or not _FILTER_NUMBER.fullmatch(value):
            raise BadRequest("request.bad_parameter", path=field, params={"name": field, "reason": "not a number"})
        number = Decimal(value)
        try:
            check_document(number)
        except BadRequest:
            raise BadRequest("request.bad_parameter", path=field, params={
                "name": field, "reason": "not a number that can be stored"}) from None
        if column.type != "integer":
            return number
        if number != number.to_integral_value():
            raise BadRequest("request.bad_parameter", path=field, params={"name": field, "reason": "not an integer"})
        return int(number)
    if column.type == "boolean":
        if value.lower() not in ("true", "false"):
            raise BadRequest("request.bad_parameter", path=field, params={"name": field, "reason": "true or false"})
        return value.lower() == "true"
    return value


def _dependency_order(documents: list[tuple[Path, dict[str, Any]]]) -> list[tuple[Path, dict[str, Any]]]:
    forms = {doc["key"]: (path, doc) for path, doc in documents if doc["kind"] == "form"}
    ordered: list[tuple[Path, dict[str, Any]]] = []
    placed: set[str] = set()

    def place(key: str, trail: tuple[str, ...]) -> None:
        if key in placed or key not in forms or key in trail:
            return
        for ref in (forms[key][1].get("refs") or {}).values():
            if isinstance(ref, dict) and isinstance(ref.get("form"), str):
                place(ref["form"], trail + (key,))
        placed.add(key)
        ordered.append(forms[key])

    for key in sorted(forms):
        place(key, ())
    others = sorted((item for item in documents if item[1]["kind"] != "form"),
                    key=lambda item: (_LOAD_ORDER[item[1]["kind"]], str(item[0])))
    return ordered + others


TASK_STATUSES = tuple(status.value for status in TaskStatus)


def _inbox_scope(session: Any, actor: Principal, staff: set[tuple[str, int]], known: set[tuple[str, int]]) -> Any:
    """The SQL condition on a task's instance that :func:`engine.workflow.access.view_of`
    answers with a view for ``actor``: staff by role (``staff``: process versions), or, on a
    process version still known, the applicant, somebody assigned to, claiming or acting on
    one of its tasks, an actor of one of its events, or a copied user."""
    from sqlalchemy import and_, false, or_
    from sqlalchemy.orm import aliased

    from engine.workflow.access import is_named

    def versions(pairs: set[tuple[str, int]]) -> Any:
        if not pairs:
            return false()
        return or_(*[and_(InstanceRow.process_key == key, InstanceRow.process_version == version)
                     for key, version in sorted(pairs)])

    uid = actor.id
    involved: Any = InstanceRow.started_by == uid
    if is_named(actor):
        other = aliased(TaskRow)
        needle = dumps(uid).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        copied = [instance_id for instance_id, variables in session.execute(
            select(InstanceRow.id, InstanceRow.variables).where(InstanceRow.variables.like(f"%{needle}%", escape="\\")))
            if uid in loads(variables or "{}").get("cc", [])]
        involved = or_(
            involved,
            InstanceRow.id.in_(select(other.instance_id).where(
                or_(other.assignee_user == uid, other.claimed_by == uid, other.acted_by == uid))),
            InstanceRow.id.in_(select(InstanceEventRow.instance_id).where(InstanceEventRow.actor == uid)),
            InstanceRow.id.in_(copied) if copied else false(),
        )
    return or_(versions(staff), and_(versions(known), involved))


def _applicant_task_view(task: TaskRow, instance: InstanceRow, show_staff: bool) -> dict[str, Any]:
    """A task of the applicant's own case: the public view with its case and record."""
    return {**_public_task_view(task, instance, show_staff), "instance_id": instance.id,
            "process": instance.process_key, "record_id": instance.record_id, "view": "applicant"}


def _require_named(actor: Principal) -> None:
    """403 ``task.anonymous_actor`` unless ``actor`` is a named person or the engine itself."""
    from engine.workflow.access import is_named

    if not is_named(actor):
        raise Forbidden("task.anonymous_actor")


def _check_uploaded(kind: str, spec: Any, access: Access, profile_for: Any = None) -> None:
    """A restricted uploader's report, profile, tag or trigger may use only fields it may read
    (engine.security.report_access, engine.security.definition_access)."""
    if kind == "report" and access.restricted:
        from engine.security.report_access import check_definition

        check_definition(spec, access)
    elif access.restricted and profile_for is not None:
        check_insight_definition(kind, spec, access, profile_for)


def _marked(exc: EngineError, action: str | None, object: str | None) -> EngineError:

    """``exc`` marked as a permission denial of ``action`` on ``object`` (``type:id``), for
    :meth:`Engine._denials` to record once the transaction that raised it rolled back."""
    if action is not None and object is not None:
        exc.denied = (action, object)  # type: ignore[attr-defined]
    return exc


def _check_not_in_process(session: Any, record_id: str) -> None:

    """``record.in_process`` (409) if the record started a process instance, running or ended."""
    status = session.scalars(select(InstanceRow.status).where(InstanceRow.record_id == record_id)
                             .order_by(InstanceRow.started_at.desc()).limit(1)).first()
    if status is not None:
        raise Conflict("record.in_process", params={"status": status})


def _instance_summary(instance: InstanceRow) -> dict[str, Any]:
    return {
        "id": instance.id, "process": instance.process_key, "process_version": instance.process_version,
        "record_id": instance.record_id, "state": instance.state, "status": instance.status,
        "outcome": instance.outcome, "started_at": instance.started_at.isoformat(),
        "ended_at": instance.ended_at.isoformat() if instance.ended_at else None,
        "positions": [token["state"] for token in loads(instance.tokens or "[]")],
    }


def _record_view(row: RecordRow, instances: list[InstanceRow], data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": row.id, "form": row.form_key, "form_version": row.form_version,
        "data": loads(row.data) if data is None else data,
        "row_version": row.row_version, "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(), "created_by": row.created_by,
        "instances": [_instance_summary(instance) for instance in instances],
    }


def _public_task_view(task: TaskRow, instance: InstanceRow, show_staff: bool) -> dict[str, Any]:
    """A task as the applicant sees it: which step, since when, due when, open or done; who
    handles it only if the process shows staff; never comments. The id only of a task that is
    theirs to act on."""
    view: dict[str, Any] = {
        "state": task.state, "status": task.status, "created_at": task.created_at.isoformat(),
        "completed_at": task.completed_at.isoformat() if task.completed_at else None,
        "due_at": task.due_at.isoformat() if task.due_at else None,
    }
    if task.assignee_user is not None and task.assignee_user == instance.started_by:
        view["id"] = task.id
    if show_staff:
        view.update({"assignee_role": task.assignee_role, "assignee_user": task.assignee_user,
                     "claimed_by": task.claimed_by, "acted_by": task.acted_by})
    return view


def _storable(value: Any, path: str) -> None:
    """A text handed to the Python API must be storable (no NUL, no unpaired surrogate), as
    every text of a JSON body is: ``request.bad_string`` at ``path`` otherwise."""
    if isinstance(value, str):
        check_text(value, path)


def _task_view(task: TaskRow, instance: InstanceRow) -> dict[str, Any]:
    return {
        "id": task.id, "instance_id": task.instance_id, "process": instance.process_key,
        "record_id": instance.record_id, "state": task.state, "status": task.status,
        "assignee_role": task.assignee_role, "assignee_user": task.assignee_user, "action": task.action,
        "acted_by": task.acted_by, "comment": task.comment, "created_at": task.created_at.isoformat(),
        "completed_at": task.completed_at.isoformat() if task.completed_at else None,
        "due_at": task.due_at.isoformat() if task.due_at else None, "claimed_by": task.claimed_by,
        "scope": {task.scope_attribute: task.scope_value} if task.scope_attribute else None,
        "origin": task.origin, "entry": task.entry,
    }


__all__ = ["Engine", "Submission", "UploadResult"]
