"""``Engine``: the public Python API. The REST API is a thin adapter over it; both raise the
same errors."""
from __future__ import annotations

import re
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Mapping

from sqlalchemy import select

from engine.clock import Clock, SystemClock
from engine.config import Settings
from engine.definitions import DefinitionRegistry, UploadResult
from engine.errors import BadRequest, Conflict, DefinitionInvalid, Forbidden, Issue, NotFound, ValidationFailed
from engine.forms.pipeline import run as run_pipeline
from engine.forms.spec import FormSpec
from engine.jsoncodec import check_document, dumps, loads
from engine.reports import ReportMirror, run_report
from engine.security import SYSTEM, Principal
from engine.store import Database
from engine.store import records as record_store
from engine.store.models import AuditRow, ChangeRow, InstanceEventRow, InstanceRow, OutboxRow, RecordRow, TaskRow
from engine.workflow.runtime import ProcessStuck, Runner
from engine.workflow.spec import TaskStatus

_LOAD_ORDER = {"form": 0, "process": 1, "report": 2}
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


class Engine:
    """Everything the product does, as Python calls.

    >>> eng = Engine("sqlite:///var/demo.db"); eng.migrate(); eng.load_dir(Path("definitions/"))
    """

    def __init__(self, database_url: str | None = None, *, clock: Clock | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.db = Database(database_url or self.settings.database_url)
        self.clock: Clock = clock or SystemClock()
        self.registry = DefinitionRegistry(self.db, self.clock)
        self.mirror = ReportMirror(self.db, self.registry.form_versions, clock=self.clock)

    def migrate(self) -> None:
        """Create or upgrade the tables (Alembic)."""
        self.db.migrate()

    def close(self) -> None:
        self.db.dispose()

    # -- definitions ---------------------------------------------------------------------------

    def upload(self, document: Any, actor: Principal = SYSTEM) -> dict[str, Any]:
        """Validate, compile and store a definition: ``{kind, key, version, created}``.
        Needs one of ``settings.definition_roles`` (the system itself always may)."""
        if actor is not SYSTEM and not (actor.roles & self.settings.definition_roles):
            raise Forbidden("definition.forbidden", params={"roles": sorted(self.settings.definition_roles)})
        return self.registry.upload(document, actor.id).to_dict()

    def load_dir(self, folder: Path | str, actor: Principal = SYSTEM) -> list[dict[str, Any]]:
        """Upload every definition (``*.json`` with a known ``kind``) under ``folder``: forms
        first (referenced forms before those that refer to them), then processes, then reports.
        Stops at the first invalid file with :class:`DefinitionInvalid` whose paths are
        prefixed by the file name."""
        documents: list[tuple[Path, dict[str, Any]]] = []
        for path in sorted(Path(folder).rglob("*.json")):
            try:
                document = loads(path.read_bytes())
            except Exception:  # noqa: BLE001 - reported as the file's issue below
                raise DefinitionInvalid([Issue(str(path), "request.invalid_json", {"reason": "cannot parse"})]) from None
            if isinstance(document, dict) and document.get("kind") in _LOAD_ORDER:
                documents.append((path, document))
        results = []
        for path, document in _dependency_order(documents):
            try:
                result = self.upload(document, actor)
            except DefinitionInvalid as exc:
                raise DefinitionInvalid([Issue(f"{path}#{issue.path}", issue.code, issue.params, issue.messages) for issue in exc.issues]) from None
            results.append({**result, "file": str(path)})
        return results

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

    def evaluate(self, form_key: str, data: Any) -> dict[str, Any]:
        """Run the submission pipeline without storing: ``{data, errors}`` (errors as Issues)."""
        spec = self._form(form_key)
        if not isinstance(data, dict):
            raise ValidationFailed([Issue("", "request.not_object")])
        check_document(data)
        outcome = run_pipeline(spec, data)
        return {"data": outcome.data, "issues": outcome.issues, "visible": outcome.visible,
                "required": outcome.required}

    def submit(self, form_key: str, data: Any, actor: Principal = SYSTEM) -> dict[str, Any]:
        """Validate and store a record, and start its form's process, in one transaction.

        Raises :class:`ValidationFailed` with every issue; nothing is written then.
        """
        spec = self._form(form_key)
        if not isinstance(data, dict):
            raise ValidationFailed([Issue("", "request.not_object")])
        check_document(data)
        outcome = run_pipeline(spec, data)
        computed, issues = outcome.data, outcome.issues
        check_document(computed)
        with self.db.read() as session:
            issues += _missing_refs(session, spec, computed)  # reported with everything else
        process = None
        if spec.process is not None:
            process = self.registry.process(spec.process)
            if process is None or process.form != form_key:
                issues.append(Issue("", "record.no_process", {"form": form_key, "process": spec.process}))
                process = None
        if issues:
            raise ValidationFailed(issues)
        now = self.clock.now()
        record_id = str(uuid.uuid4())
        try:
            with self.db.transaction() as session:
                missing = _missing_refs(session, spec, computed)  # again: it may have gone since
                if missing:
                    raise ValidationFailed(missing)
                row = RecordRow(id=record_id, form_key=form_key, form_version=spec.version, data=dumps(computed),
                                row_version=1, created_at=now, updated_at=now, created_by=actor.id)
                session.add(row)
                record_store.write_values(session, record_id, form_key, computed)
                session.add(ChangeRow(entity="record", entity_id=record_id, scope=form_key, at=now))
                session.add(AuditRow(at=now, actor=actor.id, action="record.create", object_type="record",
                                     object_id=record_id, detail=dumps({"form": form_key, "version": spec.version})))
                session.add(OutboxRow(topic="record.created", dedup_key=f"record.created:{record_id}",
                                      payload=dumps({"record": record_id, "form": form_key}), status="pending",
                                      attempts=0, created_at=now))
                if process is not None:
                    Runner(session, process, now).start(record_id, computed, actor)
        except ProcessStuck as exc:
            raise ValidationFailed([Issue("", "process.stuck", {"reason": str(exc)})]) from None
        return self.record(record_id)

    def record(self, record_id: str) -> dict[str, Any]:
        if not _known_id(record_id):
            raise NotFound("record.not_found", params={"id": record_id[:64]})
        with self.db.read() as session:
            row = session.get(RecordRow, record_id)
            if row is None:
                raise NotFound("record.not_found", params={"id": record_id})
            instances = session.scalars(select(InstanceRow).where(InstanceRow.record_id == record_id)
                                        .order_by(InstanceRow.started_at)).all()
            return _record_view(row, list(instances))

    def records(self, form_key: str, *, filters: Mapping[str, Any] | None = None, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        """A page of a form's records, oldest first; ``filters`` match top-level values exactly."""
        spec = self._form(form_key)
        filters = {field: _filter_value(spec, field, value) for field, value in (filters or {}).items()}
        offset, limit = _paging(offset, limit, 500)
        with self.db.read() as session:
            rows, total = record_store.page(session, form_key, filters, offset, limit)
            return {"items": [_record_view(row, []) for row in rows], "total": total, "offset": offset, "limit": limit}

    def find_record_id(self, form_key: str, field: str, value: Any) -> str | None:
        """The id of the first record of ``form_key`` whose top-level ``field`` equals ``value``."""
        with self.db.read() as session:
            ids = record_store.find_ids(session, form_key, field, value, limit=1)
        return ids[0] if ids else None

    # -- tasks and instances -------------------------------------------------------------------

    def tasks(self, *, role: str | None = None, user: str | None = None, status: str = "open",
              offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """The inbox: tasks by role and/or assigned user, newest first."""
        offset, limit = _paging(offset, limit, 500)
        with self.db.read() as session:
            query = select(TaskRow, InstanceRow).join(InstanceRow, InstanceRow.id == TaskRow.instance_id)
            if status != "all":
                query = query.where(TaskRow.status == status)
            if role is not None:
                query = query.where(TaskRow.assignee_role == role)
            if user is not None:
                query = query.where(TaskRow.assignee_user == user)
            rows = session.execute(query.order_by(TaskRow.created_at.desc(), TaskRow.id).offset(offset).limit(limit)).all()
            return {"items": [_task_view(task, instance) for task, instance in rows]}

    def task(self, task_id: str) -> dict[str, Any]:
        if not _known_id(task_id):
            raise NotFound("task.not_found", params={"id": task_id[:64]})
        with self.db.read() as session:
            task = session.get(TaskRow, task_id)
            if task is None:
                raise NotFound("task.not_found", params={"id": task_id})
            instance = session.get(InstanceRow, task.instance_id)
            assert instance is not None
            return _task_view(task, instance)

    def act(self, task_id: str, action: str, actor: Principal, comment: str | None = None) -> dict[str, Any]:
        """Complete a task with ``action``. Of two concurrent actions on one task one wins; the
        other raises :class:`Conflict` (409)."""
        if not _known_id(task_id):
            raise NotFound("task.not_found", params={"id": task_id[:64]})
        now = self.clock.now()
        try:
            with self.db.transaction() as session:
                task = session.get(TaskRow, task_id)
                if task is None:
                    raise NotFound("task.not_found", params={"id": task_id})
                instance = session.scalars(
                    select(InstanceRow).where(InstanceRow.id == task.instance_id).with_for_update()
                ).one()
                session.refresh(task)  # re-read after the lock: a racing action may have committed
                if task.status != TaskStatus.OPEN.value:
                    raise Conflict("task.not_open", params={"status": task.status})
                spec = self.registry.process(instance.process_key, instance.process_version)
                record = session.get(RecordRow, instance.record_id)
                if spec is None or record is None:
                    raise NotFound("instance.not_found", params={"id": instance.id})
                Runner(session, spec, now).act(instance, task, action, actor, comment, loads(record.data))
                instance_id = instance.id
        except ProcessStuck as exc:
            raise ValidationFailed([Issue("", "process.stuck", {"reason": str(exc)})]) from None
        return self.instance(instance_id)

    def instance(self, instance_id: str) -> dict[str, Any]:
        """An instance with its tasks and its full history, in order."""
        if not _known_id(instance_id):
            raise NotFound("instance.not_found", params={"id": instance_id[:64]})
        with self.db.read() as session:
            instance = session.get(InstanceRow, instance_id)
            if instance is None:
                raise NotFound("instance.not_found", params={"id": instance_id})
            tasks = session.scalars(select(TaskRow).where(TaskRow.instance_id == instance_id)
                                    .order_by(TaskRow.created_at, TaskRow.id)).all()
            events = session.scalars(select(InstanceEventRow).where(InstanceEventRow.instance_id == instance_id)
                                     .order_by(InstanceEventRow.id)).all()
            view = _instance_summary(instance)
            view["tasks"] = [_task_view(task, instance) for task in tasks]
            view["history"] = [
                {"at": event.at.isoformat(), "event": event.event, "from": event.from_state, "to": event.to_state,
                 "action": event.action, "task": event.task_id, "actor": event.actor, "comment": event.comment}
                for event in events
            ]
            return view

    # -- reports and imports -------------------------------------------------------------------

    def run_report(self, key: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """``{columns, rows, meta}``, including every write committed before the call."""
        spec = self.registry.report(key)
        if spec is None:
            raise NotFound("report.not_found", params={"key": key})
        return run_report(self.mirror, spec, params)

    def run_import(self, form_key: str, csv_path: Path | str, mapping_path: Path | str | None = None,
                   progress: Callable[[int], None] | None = None, actor: Principal = SYSTEM) -> Any:
        """Import a CSV file through the same pipeline as the API; returns an ``ImportReport``.

        Without a mapping file, every column whose header is a top-level field of the form fills
        that field, converted by the field's type (UTF-8, comma-separated)."""
        from engine.imports import (MappingError, SourceError, SourceOptions, check_mapping_fields, compile_mapping,
                                    load_mapping, read_header, run_import)

        spec = self._form(form_key)
        try:
            if mapping_path is not None:
                mapping = load_mapping(Path(mapping_path))
            else:
                header = read_header(Path(csv_path), SourceOptions(encoding="utf-8-sig"))
                mapping = compile_mapping(_identity_mapping(spec, header))
            if mapping.form != form_key:
                raise ValidationFailed([Issue("/form", "import.bad_mapping",
                                              {"detail": f"the mapping is for form {mapping.form}, not {form_key}"})])
            check_mapping_fields(mapping, [column.name for column in spec.columns])
            return run_import(_ImportTarget(self, actor), mapping, Path(csv_path), progress=progress)
        except MappingError as exc:
            raise ValidationFailed([Issue(issue.path, "import.bad_mapping", {"detail": issue.message})
                                    for issue in exc.issues]) from None
        except SourceError as exc:
            raise ValidationFailed([Issue("", "import.bad_source", {"detail": str(exc)})]) from None


_IMPORT_TYPES = {"string": "string", "integer": "integer", "decimal": "decimal", "number": "decimal",
                 "boolean": "boolean", "date": "date", "datetime": "string"}


def _identity_mapping(spec: FormSpec, header: tuple[str, ...]) -> dict[str, Any]:
    fields = {
        column.name: {"column": column.name, "type": _IMPORT_TYPES[column.type]}
        for column in spec.columns
        if column.name in header and column.type in _IMPORT_TYPES
    }
    if not fields:
        raise ValidationFailed([Issue("", "import.bad_mapping",
                                      {"detail": "no column of the file is named like a field of the form; give --mapping"})])
    return {"form": spec.key, "source": {"format": "csv", "encoding": "utf-8-sig"}, "fields": fields}


class _ImportTarget:
    def __init__(self, engine: Engine, actor: Principal) -> None:
        self._engine = engine
        self._actor = actor

    def submit(self, form_key: str, data: dict[str, Any]) -> dict[str, Any]:
        return self._engine.submit(form_key, data, self._actor)

    def find_record_id(self, form_key: str, field: str, value: Any) -> str | None:
        from engine.imports.runner import AMBIGUOUS

        with self._engine.db.read() as session:
            ids = record_store.find_ids(session, form_key, field, value, limit=2)
        if len(ids) > 1:
            return AMBIGUOUS
        return ids[0] if ids else None


def _missing_refs(session: Any, spec: FormSpec, data: Mapping[str, Any]) -> list[Issue]:
    return [
        Issue(f"/{field}", "record.ref_not_found", {"form": target})
        for field, target in spec.refs.items()
        if data.get(field) is not None and not record_store.record_exists(session, target, data[field])
    ]


def _filter_value(spec: FormSpec, field: str, value: Any) -> Any:
    """A filter value typed like its column (query strings arrive as text)."""
    column = spec.column(field)
    if column is None:
        raise ValidationFailed([Issue(f"/{field}", "definition.unknown_field", {"field": field})])
    if not isinstance(value, str):
        return value
    try:
        if column.type in ("decimal", "number"):
            number = Decimal(value.strip())
            if not number.is_finite():
                raise ArithmeticError
            check_document(number)
            return number
        if column.type == "integer":
            return int(value.strip())
    except (ArithmeticError, ValueError):
        raise BadRequest("request.bad_parameter", path=field, params={"name": field, "reason": "not a number"}) from None
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


def _instance_summary(instance: InstanceRow) -> dict[str, Any]:
    return {
        "id": instance.id, "process": instance.process_key, "process_version": instance.process_version,
        "record_id": instance.record_id, "state": instance.state, "status": instance.status,
        "outcome": instance.outcome, "started_at": instance.started_at.isoformat(),
        "ended_at": instance.ended_at.isoformat() if instance.ended_at else None,
    }


def _record_view(row: RecordRow, instances: list[InstanceRow]) -> dict[str, Any]:
    return {
        "id": row.id, "form": row.form_key, "form_version": row.form_version, "data": loads(row.data),
        "row_version": row.row_version, "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(), "created_by": row.created_by,
        "instances": [_instance_summary(instance) for instance in instances],
    }


def _task_view(task: TaskRow, instance: InstanceRow) -> dict[str, Any]:
    return {
        "id": task.id, "instance_id": task.instance_id, "process": instance.process_key,
        "record_id": instance.record_id, "state": task.state, "status": task.status,
        "assignee_role": task.assignee_role, "assignee_user": task.assignee_user, "action": task.action,
        "acted_by": task.acted_by, "comment": task.comment, "created_at": task.created_at.isoformat(),
        "completed_at": task.completed_at.isoformat() if task.completed_at else None,
    }


__all__ = ["Engine", "UploadResult"]
