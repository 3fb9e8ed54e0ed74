"""Upload, version and compile definitions. Uploaded documents are immutable once stored; a
changed upload becomes version N+1 and an identical one changes nothing. Compiled specs are
cached by ``(kind, key, version)``; runtime paths never re-parse a definition."""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from engine.clock import Clock
from engine.definitions.metaschema import KINDS, check_against_metaschema
from engine.errors import Conflict, DefinitionInvalid, Issue, NotFound
from engine.forms.compiler import compile_form
from engine.forms.spec import FormSpec
from engine.jsoncodec import check_document, dumps, loads
from engine.reports import check_report, compile_report
from engine.reports.dashboard import DashboardSpec, compile_dashboard
from engine.security.roles import RolesSpec, compile_roles
from engine.store import Database
from engine.store.models import AuditRow, DefinitionRow
from engine.workflow.compiler import compile_process
from engine.workflow.spec import ProcessSpec


@dataclass(frozen=True)
class UploadResult:
    kind: str
    key: str
    version: int
    created: bool
    """False when the upload was identical to the latest version."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "version": self.version, "created": self.created}


@dataclass(frozen=True)
class CatalogSnapshot:
    """Which version of every definition is the latest, as of one look at the table."""

    stamp: tuple[int, int]
    """``(row count, highest id)`` of ``definitions``: rows are only ever added, so any upload,
    here or by another process, changes it (the count catches an id committed out of order)."""
    latest: dict[tuple[str, str], int]
    """``(kind, key)`` -> latest version."""

    def keys(self, kind: str) -> list[str]:
        return sorted(key for known, key in self.latest if known == kind)


_PINNED: ContextVar[dict[int, CatalogSnapshot] | None] = ContextVar("lowcode_pinned_catalog", default=None)
"""Per registry, the snapshot the current operation decided on (see :meth:`DefinitionRegistry.pinned`)."""


class DefinitionRegistry:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock
        self._cache: dict[tuple[str, str, int], Any] = {}
        self._lock = threading.Lock()
        self._snapshot: CatalogSnapshot | None = None

    # -- which versions are current ------------------------------------------------------------

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Within this block every "latest version" lookup answers from one look at the
        catalog, taken at the first lookup: one operation (a submission with its form, process,
        roles and insight definitions) sees one consistent catalog and asks the database once,
        not once per lookup. Nested blocks share the outer one's snapshot."""
        if _PINNED.get() is not None:
            yield
            return
        token = _PINNED.set({})
        try:
            yield
        finally:
            _PINNED.reset(token)

    def snapshot(self, session: Any | None = None) -> CatalogSnapshot:
        """The latest versions now (or as pinned for the current operation). Costs one indexed
        query, plus one grouped query after an upload anywhere; on ``session`` when given (a
        caller holding a session never waits for a second pooled connection)."""
        pinned = _PINNED.get()
        if pinned is not None:
            found = pinned.get(id(self))
            if found is not None:
                return found
        if session is None:
            with self._db.read() as reader:
                return self.snapshot(reader)
        count, highest = session.execute(select(func.count(), func.max(DefinitionRow.id))).one()
        stamp = (int(count or 0), int(highest or 0))
        snapshot = self._snapshot
        if snapshot is None or snapshot.stamp != stamp:
            rows = session.execute(
                select(DefinitionRow.kind, DefinitionRow.key, func.max(DefinitionRow.version))
                .group_by(DefinitionRow.kind, DefinitionRow.key)
            ).all()
            snapshot = CatalogSnapshot(stamp, {(kind, key): int(version) for kind, key, version in rows})
            if not self._db.writing:  # never keep what a transaction that may roll back has seen
                self._snapshot = snapshot
        if pinned is not None:
            pinned[id(self)] = snapshot
        return snapshot

    # -- upload ------------------------------------------------------------------------------

    def upload(self, document: Any, actor: str, check: Callable[[str, Any], None] | None = None) -> UploadResult:
        """Validate, compile and store ``document``. Raises :class:`DefinitionInvalid` (422)
        with every issue, or :class:`Conflict` if another upload of the same key won a race.
        ``check(kind, spec)`` may refuse the compiled spec before anything is stored."""
        if not isinstance(document, dict):
            raise DefinitionInvalid([Issue("", "request.not_object")])
        check_document(document)
        kind = document.get("kind")
        if kind is None:
            raise DefinitionInvalid([Issue("/kind", "definition.required", {"field": "kind", "expected": list(KINDS)})])
        if kind not in KINDS:
            raise DefinitionInvalid([Issue("/kind", "definition.unknown_kind", {"kind": kind, "expected": list(KINDS)})])
        issues = check_against_metaschema(kind, document)
        if issues:
            raise DefinitionInvalid(issues)
        key = document["key"]
        # The body is kept as uploaded (property order is the form's field order); the digest is
        # taken over sorted keys so that a re-upload with keys reordered is still "identical".
        body = dumps(document)
        digest = hashlib.sha256(dumps(_canonical(document)).encode("utf-8")).hexdigest()
        latest = self._latest_row(kind, key)
        if latest is not None and latest.digest == digest:
            return UploadResult(kind, key, latest.version, False)
        version = (latest.version if latest else 0) + 1
        spec = self._compile(kind, document, version, self.form)
        if check is not None:
            check(kind, spec)

        try:
            with self._db.transaction() as session:
                session.add(DefinitionRow(kind=kind, key=key, version=version, body=body, digest=digest,
                                          created_at=self._clock.now(), created_by=actor))
                session.add(AuditRow(at=self._clock.now(), actor=actor, action="definition.upload",
                                     object_type=kind, object_id=f"{key}@{version}", detail=dumps({"digest": digest})))
        except IntegrityError:
            # Another upload of this key won the race; if it stored the same document, this
            # upload changed nothing, exactly as if it had come second.
            winner = self._latest_row(kind, key)
            if winner is not None and winner.digest == digest:
                return UploadResult(kind, key, winner.version, False)
            raise Conflict("definition.conflict", params={"kind": kind, "key": key}) from None
        with self._lock:
            self._cache[(kind, key, version)] = spec
        return UploadResult(kind, key, version, True)

    def _compile(self, kind: str, document: Mapping[str, Any], version: int,
                 form_for: Callable[[str], FormSpec | None]) -> Any:
        spec: Any
        if kind == "form":
            spec, issues = compile_form(document, version, lambda key: self._latest_row("form", key) is not None)
            if spec is not None:  # a sensitive value is never copied into a plain field
                from engine.forms.fills import sensitive_fill_issues

                issues += sensitive_fill_issues(spec, form_for)
            issues += self._process_binding_issues(document)
        elif kind == "process":
            spec, issues = compile_process(document, version, form_for)
        elif kind == "dashboard":
            spec, issues = compile_dashboard(document, version, self.report)
        elif kind in ("profile", "tag", "trigger"):
            from engine.insight.compiler import compile_profile, compile_tag, compile_trigger

            if kind == "profile":
                spec, issues = compile_profile(document, version, form_for)
            elif kind == "tag":
                spec, issues = compile_tag(document, version, form_for, lambda key: self.spec("profile", key))
            else:
                spec, issues = compile_trigger(document, version, form_for, self.process)
        elif kind == "roles":
            spec, issues = compile_roles(document, version, form_for, self.process)
        else:
            issues = check_report(dict(document), form_for, self.process)
            spec = (compile_report(dict(document), None, version, form_for=form_for, process_for=self.process)
                    if not issues else None)
        if issues:
            raise DefinitionInvalid(issues)
        return spec

    # -- reading -----------------------------------------------------------------------------

    def _latest_row(self, kind: str, key: str) -> DefinitionRow | None:
        with self._db.read() as session:
            return session.scalars(
                select(DefinitionRow).where(DefinitionRow.kind == kind, DefinitionRow.key == key)
                .order_by(DefinitionRow.version.desc()).limit(1)
            ).first()

    def latest_version(self, kind: str, key: str) -> int | None:
        return self.snapshot().latest.get((kind, key))

    def document(self, kind: str, key: str, version: int | None = None) -> dict[str, Any]:
        """The stored definition with its version metadata; raises :class:`NotFound`."""
        with self._db.read() as session:
            query = select(DefinitionRow).where(DefinitionRow.kind == kind, DefinitionRow.key == key)
            if version is None:
                row = session.scalars(query.order_by(DefinitionRow.version.desc()).limit(1)).first()
            else:
                row = session.scalars(query.where(DefinitionRow.version == version)).first()
        if row is None:
            if version is not None and self.latest_version(kind, key) is not None:
                raise NotFound("definition.version_not_found", params={"kind": kind, "key": key, "version": version})
            raise NotFound("definition.not_found", params={"kind": kind, "key": key})
        return {
            "kind": row.kind, "key": row.key, "version": row.version, "digest": row.digest,
            "created_at": row.created_at.isoformat(), "created_by": row.created_by, "definition": loads(row.body),
        }

    def listing(self) -> list[dict[str, Any]]:
        """The latest version of every definition, ordered by kind and key."""
        with self._db.read() as session:
            latest = (
                select(DefinitionRow.kind, DefinitionRow.key, func.max(DefinitionRow.version).label("version"))
                .group_by(DefinitionRow.kind, DefinitionRow.key).subquery()
            )
            rows = session.scalars(
                select(DefinitionRow).join(
                    latest, (DefinitionRow.kind == latest.c.kind) & (DefinitionRow.key == latest.c.key)
                    & (DefinitionRow.version == latest.c.version)
                ).order_by(DefinitionRow.kind, DefinitionRow.key)
            ).all()
        result = []
        for row in rows:
            body = loads(row.body)
            result.append({"kind": row.kind, "key": row.key, "version": row.version, "title": body.get("title"),
                           "created_at": row.created_at.isoformat()})
        return result

    def spec(self, kind: str, key: str, version: int | None = None) -> Any:
        """The compiled spec of a version (the latest if ``version`` is None), or None."""
        if version is None:
            version = self.latest_version(kind, key)
            if version is None:
                return None
        cached = self._cache.get((kind, key, version))
        if cached is not None:
            return cached
        with self._db.read() as session:
            row = session.scalars(
                select(DefinitionRow).where(DefinitionRow.kind == kind, DefinitionRow.key == key, DefinitionRow.version == version)
            ).first()
        if row is None:
            return None
        # Stored definitions passed every check when uploaded; recompiling only rebuilds objects,
        # against the form versions that were current then, so a later form version that drops
        # a field never breaks an old process version or its running instances.
        row_id = row.id
        spec = self._compile(kind, loads(row.body), version, lambda key: self._form_as_of(key, row_id))
        with self._lock:
            self._cache[(kind, key, version)] = spec
        return spec

    def _form_as_of(self, key: str, definition_id: int) -> FormSpec | None:
        with self._db.read() as session:
            version = session.scalar(
                select(func.max(DefinitionRow.version)).where(
                    DefinitionRow.kind == "form", DefinitionRow.key == key, DefinitionRow.id < definition_id)
            )
        return self.form(key, version) if version is not None else None

    def _process_binding_issues(self, document: Mapping[str, Any]) -> list[Issue]:
        name = document.get("process")
        if name is None:
            return []
        row = self._latest_row("process", name)
        if row is not None and loads(row.body).get("form") != document["key"]:
            return [Issue("/process", "definition.process_of_other_form", {"process": name})]
        return []

    def form(self, key: str, version: int | None = None) -> FormSpec | None:
        spec = self.spec("form", key, version)
        return spec if isinstance(spec, FormSpec) else None

    def form_versions(self, key: str) -> list[FormSpec]:
        latest = self.latest_version("form", key) or 0
        specs = [self.form(key, version) for version in range(1, latest + 1)]
        return [spec for spec in specs if spec is not None]

    def process(self, key: str, version: int | None = None) -> ProcessSpec | None:
        spec = self.spec("process", key, version)
        return spec if isinstance(spec, ProcessSpec) else None

    def report(self, key: str, version: int | None = None) -> Any:
        return self.spec("report", key, version)

    def dashboard(self, key: str, version: int | None = None) -> DashboardSpec | None:
        spec = self.spec("dashboard", key, version)
        return spec if isinstance(spec, DashboardSpec) else None

    def roles(self) -> list[RolesSpec]:
        """The latest version of every ``roles`` definition, by key (empty: no policy)."""
        snapshot = self.snapshot()
        specs = [self.spec("roles", key, snapshot.latest[("roles", key)]) for key in snapshot.keys("roles")]
        return [spec for spec in specs if isinstance(spec, RolesSpec)]


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return value

