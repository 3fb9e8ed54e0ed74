"""The ``lowcode`` command: serve, worker, migrate, load, import, report, audit verify."""
from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import (BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table

from engine.config import Settings
from engine.errors import EngineError
from engine.jsoncodec import dumps

app = typer.Typer(help="lowcode-engine: forms, processes and reports from JSON definitions.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
console = Console()
errors = Console(stderr=True)

DatabaseOption = typer.Option(None, "--database-url", envvar="LOWCODE_DATABASE_URL",
                              help="SQLAlchemy URL; default sqlite:///var/lowcode.db")


class LogFormat(str, Enum):
    json = "json"
    plain = "plain"


_LOG_FORMAT_HELP = "Log lines as JSON objects (time, level, logger, message, request_id, ...) or plain text"


def _engine(database_url: Optional[str]):  # type: ignore[no-untyped-def]
    from engine.facade import Engine

    return Engine(database_url or Settings.from_env().database_url)


def _refuse_unsafe_start() -> None:
    """Exit 2 naming each problem when the settings are unsafe for LOWCODE_MODE
    (engine.security.startup): a production server never starts with a missing or known JWT
    secret, nor trusting X-User headers unacknowledged."""
    from engine.security.startup import startup_issues

    settings = Settings.from_env()
    issues = startup_issues(settings)
    if issues:
        errors.print(f"[red]refusing to start[/red] in {settings.mode} mode:", highlight=False)
        for issue in issues:
            errors.print(f"[red]{issue.code}[/red] {issue.path}: {issue.message()}", highlight=False)
        raise typer.Exit(code=2)


def _fail(exc: EngineError) -> None:
    for issue in exc.issues:
        errors.print(f"[red]{issue.code}[/red] {issue.path or '/'}: {issue.message()}", highlight=False)
    raise typer.Exit(code=2)


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="Interface to listen on"),
          port: int = typer.Option(8000, help="Port to listen on"),
          worker: bool = typer.Option(True, "--worker/--no-worker",
                                      help="Also fire timers and deliver the outbox in this process"),
          database_url: Optional[str] = DatabaseOption,
          log_format: LogFormat = typer.Option(LogFormat.json, "--log-format", envvar="LOWCODE_LOG_FORMAT",
                                               help=_LOG_FORMAT_HELP)) -> None:
    """Serve the REST API (docs at /docs), with the background worker unless --no-worker.
    Health at /health, readiness at /ready, Prometheus metrics at /metrics; one JSON log line
    per request (request id, route template, status, duration) unless --log-format plain."""
    import logging

    import uvicorn

    from engine.api.app import create_app
    from engine.observability.logs import configure_logging
    from engine.worker import Worker

    configure_logging(log_format.value)
    _refuse_unsafe_start()
    engine = _engine(database_url)
    _refuse_sensitive_without_key(engine)
    serving = (f"Serving on http://{host}:{port} (database {engine.db.engine.url.render_as_string(hide_password=True)})"
               + ("" if worker else "; worker disabled"))
    if log_format is LogFormat.json:
        logging.getLogger("lowcode.serve").info(serving)  # stdout and stderr stay JSON lines
    else:
        console.print(serving)
    background = Worker(engine) if worker else None
    if background is not None:
        background.start_thread()
    try:
        # Logging as configured above (log_config=None); the engine writes the access lines.
        uvicorn.run(create_app(engine), host=host, port=port, log_level="info", log_config=None, access_log=False)
    finally:
        if background is not None:
            background.stop()


@app.command("worker")
def run_worker(interval: float = typer.Option(1.0, min=0.05, help="Seconds to wait when a round found nothing to do"),
               once: bool = typer.Option(False, "--once", help="Run one round, print what it did and exit"),
               database_url: Optional[str] = DatabaseOption,
               log_format: LogFormat = typer.Option(LogFormat.plain, "--log-format", envvar="LOWCODE_LOG_FORMAT",
                                                    help=_LOG_FORMAT_HELP)) -> None:
    """Fire due SLA timers and deliver outbox messages (safe to run several, on PostgreSQL)."""
    from engine.observability.logs import configure_logging
    from engine.worker import Worker

    configure_logging(log_format.value)
    _refuse_unsafe_start()
    engine = _engine(database_url)
    _refuse_sensitive_without_key(engine)  # timers open sealed fields too
    worker = Worker(engine, interval=interval)
    if once:
        result = worker.run_once()
        sys.stdout.write(dumps({"timers": result.timers, "deliveries": result.deliveries}) + "\n")
        return
    console.print(f"Worker running (idle interval {interval}s); Ctrl-C stops it.")
    try:
        worker.run_forever()
    except KeyboardInterrupt:
        worker.stop()


@app.command()
def migrate(database_url: Optional[str] = DatabaseOption) -> None:
    """Create or upgrade the database tables."""
    engine = _engine(database_url)
    engine.migrate()
    console.print("Database is at the latest migration.")


@app.command()
def load(folder: Path = typer.Argument(..., exists=True, file_okay=False, help="Folder of definitions"),
         database_url: Optional[str] = DatabaseOption) -> None:
    """Upload every definition under FOLDER (forms, then processes, then reports)."""
    engine = _engine(database_url)
    try:
        results = engine.load_dir(folder)
    except EngineError as exc:
        _fail(exc)
        return
    table = Table("kind", "key", "version", "change")
    for result in results:
        table.add_row(result["kind"], result["key"], str(result["version"]), "new version" if result["created"] else "unchanged")
    console.print(table)


@app.command("import")
def import_file(form: str = typer.Argument(..., help="Form key"),
                file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV or JSON Lines file"),
                mapping: Optional[Path] = typer.Option(None, "--mapping", exists=True, dir_okay=False,
                                                       help="Mapping JSON file; without it, columns named like fields fill them"),
                rejects: Optional[Path] = typer.Option(None, "--rejects", dir_okay=False,
                                                       help="Write every rejected row, with its issues, to this JSON Lines file"),
                all_or_nothing: bool = typer.Option(False, "--all-or-nothing",
                                                    help="Store the rows only if none is rejected (one transaction)"),
                batch_size: int = typer.Option(1000, "--batch-size", min=1, max=100_000, help="Rows per transaction"),
                notify: bool = typer.Option(False, "--notify",
                                            help="Send the notifications of the processes the rows start "
                                                 "(by default they are recorded as withheld: an import loads history)"),
                database_url: Optional[str] = DatabaseOption,
                show: int = typer.Option(50, help="How many rejected rows to print in full")) -> None:
    """Import FILE as records of FORM, each row checked as the API checks a submission, stored in
    batches.

    Exit code 0 when every row was imported (or already present), 3 when some were rejected
    (with --all-or-nothing: and nothing was stored), 2 when the mapping or the file cannot be used."""
    engine = _engine(database_url)
    try:
        _import(engine, form, file, mapping, rejects, all_or_nothing, batch_size, show, notify=notify)
    finally:
        engine.close()


def _import(engine: Any, form: str, file: Path, mapping: Optional[Path], rejects: Optional[Path],
            all_or_nothing: bool, batch_size: int, show: int, *, notify: bool = False) -> None:
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
                  TextColumn("{task.fields[rows]:,} rows"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console, transient=False) as progress:
        bar = progress.add_task(f"import {file.name}", total=max(file.stat().st_size, 1), rows=0)

        def advance(state: Any) -> None:
            progress.update(bar, completed=state.position, total=max(state.size, 1), rows=state.rows)

        try:
            report = engine.run_import(form, file, mapping, progress=advance, rejects=rejects,
                                       all_or_nothing=all_or_nothing, batch_size=batch_size, notify=notify)
        except EngineError as exc:
            _fail(exc)
            return
        progress.update(bar, completed=progress.tasks[0].total, rows=report.total)
    for rejected in report.rejected[:show]:
        reasons = "; ".join(f"{issue.path or '/'} {issue.code}: {issue.message}" for issue in rejected.issues)
        console.print(f"row {rejected.row_number}: rejected: {reasons}", highlight=False)
    if report.rejected_count > show:
        where = f" (all of them in {rejects})" if rejects else " (--rejects FILE writes them all)"
        console.print(f"... and {report.rejected_count - show} more rejected rows{where}", highlight=False)
    console.print(f"rows: {report.total}  imported: {report.imported}  already present: {report.already_present}  "
                  f"rejected: {report.rejected_count}", highlight=False)
    if not report.committed:
        console.print(f"all or nothing: {report.rejected_count} row(s) rejected, so none of the "
                      f"{report.withheld} valid row(s) was stored", highlight=False)
    if report.rejected_count:
        raise typer.Exit(code=3)  # scripts can tell "some rows were refused" from success


@app.command()
def report(key: str = typer.Argument(..., help="Report key"),
           as_json: bool = typer.Option(False, "--json", help="Print the JSON result"),
           database_url: Optional[str] = DatabaseOption) -> None:
    """Run a report and print it."""
    engine = _engine(database_url)
    try:
        result = engine.run_report(key)
    except EngineError as exc:
        _fail(exc)
        return
    if as_json:
        sys.stdout.write(dumps(result) + "\n")
        return
    table = Table(*[column["name"] for column in result["columns"]])
    for row in result["rows"]:
        table.add_row(*["" if value is None else str(value) for value in row])
    console.print(table)


@app.command()
def backtest(file: Path = typer.Argument(..., exists=True, dir_okay=False,
                                         help="Candidate process definition, or {\"process\", \"form\"} JSON"),
             data: Optional[Path] = typer.Option(None, "--data", exists=True, dir_okay=False,
                                                 help="CSV or JSON Lines history; without it, the form's stored records"),
             mapping: Optional[Path] = typer.Option(None, "--mapping", exists=True, dir_okay=False,
                                                    help="Backtest mapping: an import mapping plus an optional outcome"),
             as_json: bool = typer.Option(False, "--json", help="Print the JSON result"),
             database_url: Optional[str] = DatabaseOption) -> None:
    """Replay a candidate process's rule gates over history (nothing is stored): routes, gate
    choices, agreement with what happened, rows decided in SQL and row by row."""
    from engine.jsoncodec import loads

    engine = _engine(database_url)
    try:
        document = loads(file.read_bytes())
        bundle = isinstance(document, dict) and "process" in document and "kind" not in document
        result = engine.backtest(document["process"] if bundle else document,
                                 form=document.get("form") if bundle else None, data_path=data, mapping=mapping)
    except EngineError as exc:
        _fail(exc)
        return
    finally:
        engine.close()
    if as_json:
        sys.stdout.write(dumps(result) + "\n")
        return
    _print_backtest(result)


def _print_backtest(result: dict[str, Any]) -> None:
    console.print(f"[bold]{result['process']}[/bold] over {result['rows']:,} rows of {result['form']} "
                  f"({result['rows_with_issues']:,} the form would refuse as they are)", highlight=False)
    routes = Table("route", "path", "rows", "predicts", title="Routes")
    for route in result["routes"]:
        routes.add_row(route["route"], " → ".join(route["path"]), f"{route['count']:,}", route["predicts"])
    console.print(routes)
    rules = Table("mode", "SQL rows", "row-by-row rows", "holds", "errors", title="Rules (SQL or row by row)")
    rules.add_column("rule", overflow="fold")
    for rule in result["rules"]:
        rules.add_row(rule["mode"], f"{rule['sql_rows']:,}", f"{rule['row_rows']:,}",
                      f"{rule['holds']:,}", f"{rule['errors']:,}", rule["rule"].removeprefix("/states/"))
    console.print(rules)
    comparison = result.get("comparison")
    if comparison:
        labels = sorted({label for counts in comparison["matrix"].values() for label in counts})
        matrix = Table("route \\ actual", *labels, title=f"Agreement with {comparison['actual']}")
        for route, counts in comparison["matrix"].items():
            matrix.add_row(route, *[f"{counts.get(label, 0):,}" for label in labels])
        console.print(matrix)
        console.print(f"agreement: {comparison['agreement_pct']} % ({comparison['agreed']:,} of "
                      f"{comparison['compared']:,}; {comparison['unknown']:,} without a known outcome)", highlight=False)
    timing = result["timing_ms"]
    console.print(f"time: {timing['total']} ms (reading the history {timing['read']} ms, rules {timing['rules']} ms)",
                  highlight=False)


audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(batch: int = typer.Option(1000, min=1, help="Entries read per query"),
                 language: str = typer.Option("en", "--language", help="Message language: en or zh-CN"),
                 database_url: Optional[str] = DatabaseOption) -> None:
    """Walk the audit chain and report the first edited, deleted or reordered entry.

    Exit code 0 when the chain is intact (prints the count and the head hash), 4 when it is
    broken (prints the entry id and the reason)."""
    from engine.messages import render_message

    result = _engine(database_url).verify_audit(batch=batch)
    if result.intact:
        console.print(render_message("audit.intact", {"count": result.count, "head": result.head}, language),
                      highlight=False)
        return
    assert result.code is not None and result.broken_id is not None
    message = render_message(result.code, {"id": result.broken_id, "previous": result.broken_id - 1}, language)
    errors.print(f"[red]{result.code}[/red] id={result.broken_id} reason={result.reason}: {message}", highlight=False)
    raise typer.Exit(code=4)


tags_app = typer.Typer(help="Dynamic tags of records (engine.insight).", no_args_is_help=True)
app.add_typer(tags_app, name="tags")


@tags_app.command("recompute")
def tags_recompute(form: Optional[str] = typer.Option(None, "--form", help="Only the records of this form"),
                   database_url: Optional[str] = DatabaseOption) -> None:
    """Recompute every tag of every record (tags over time windows change as time passes: run
    it daily); prints the records looked at and the tags switched on or off."""
    try:
        result = _engine(database_url).recompute_tags(form)
    except EngineError as exc:
        _fail(exc)
    console.print(f"records: {result['records']}  tag changes: {result['changes']}", highlight=False)


tokens_app = typer.Typer(help="API tokens: create (printed once), list, revoke.", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")


@tokens_app.command("create")
def tokens_create(user: str = typer.Option(..., "--user", help="The user the token acts as"),
                  roles: str = typer.Option("", "--roles", help="Comma-separated role names"),
                  attr: list[str] = typer.Option([], "--attr", help="An attribute name=value (repeatable)"),
                  expires: str = typer.Option("90d", "--expires",
                                              help="never, a span (90m, 12h, 30d, 2w), a date or an ISO-8601 instant"),
                  note: str = typer.Option("", "--note", help="What the token is for"),
                  database_url: Optional[str] = DatabaseOption) -> None:
    """Create an API token and print it on stdout, once: only its SHA-256 is stored.

    The details (id, roles, expiry) go to stderr, so `TOKEN=$(lowcode tokens create ...)` works."""
    from engine.errors import BadRequest
    from engine.security.tokens import parse_expiry

    engine = _engine(database_url)
    attributes: dict[str, str] = {}
    try:
        for item in attr:
            name, equals, value = item.partition("=")
            if not equals:
                raise BadRequest("token.bad_attribute", path="attributes")
            attributes[name.strip()] = value
        role_list = [role.strip() for role in roles.split(",") if role.strip()]
        issued = engine.create_token(user, role_list, attributes, expires_at=parse_expiry(expires, engine.clock.now()),
                                     note=note)
    except EngineError as exc:
        _fail(exc)
        return
    info = issued.info
    known = {name for spec in engine.registry.roles() for name in spec.roles}
    unknown = sorted(set(info.roles) - known)
    if known and unknown:  # a typo grants nothing: say so (roles named only in settings are fine)
        errors.print(f"warning: role(s) {', '.join(unknown)} are not in the loaded roles definition "
                     f"(known: {', '.join(sorted(known))})", highlight=False)
    sys.stdout.write(issued.token + "\n")
    errors.print(f"token {info.id} for {info.user} (roles {', '.join(info.roles) or 'none'}), expires "
                 f"{info.expires_at.isoformat() if info.expires_at else 'never'}: shown once, keep it secret",
                 highlight=False)


@tokens_app.command("list")
def tokens_list(as_json: bool = typer.Option(False, "--json", help="Print JSON lines"),
                database_url: Optional[str] = DatabaseOption) -> None:
    """Every API token (never the secrets): id, user, roles, attributes, times, state."""
    engine = _engine(database_url)
    now = engine.clock.now()
    infos = engine.tokens()
    if as_json:
        for info in infos:
            sys.stdout.write(dumps(info.to_dict()) + "\n")
        return
    table = Table("id", "user", "roles", "attributes", "created", "expires", "last used", "state", "note")

    def stamp(value: Any) -> str:
        return value.isoformat(timespec="seconds") if value else "-"

    for info in infos:
        state = ("revoked" if info.revoked_at else "expired" if info.expires_at and info.expires_at <= now else "active")
        table.add_row(info.id, info.user, ",".join(info.roles), ",".join(f"{k}={v}" for k, v in info.attributes.items()),
                      stamp(info.created_at), stamp(info.expires_at), stamp(info.last_used_at), state, info.note)
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: str = typer.Argument(..., help="The token's id (tok_..., from `lowcode tokens list`)"),
                  database_url: Optional[str] = DatabaseOption) -> None:
    """Revoke a token: the next request with it is refused (401 auth.token_revoked)."""
    try:
        info = _engine(database_url).revoke_token(token_id)
    except EngineError as exc:
        _fail(exc)
        return
    console.print(f"token {info.id} of {info.user} revoked at {info.revoked_at.isoformat() if info.revoked_at else '?'}",
                  highlight=False)


def _refuse_sensitive_without_key(engine: Any) -> None:
    """Production mode with sensitive fields and no master key: exit 2 before serving."""
    from engine.messages import render_message

    forms = engine.sensitive_forms_without_key()
    if forms:
        errors.print(f"[red]crypto.production_without_key[/red] "
                     f"{render_message('crypto.production_without_key', {'forms': ', '.join(forms)}, 'en')}",
                     highlight=False)
        raise typer.Exit(code=2)


@audit_app.command("export")
def audit_export(out: Path = typer.Option(..., "--out", dir_okay=False, help="JSON Lines file to write"),
                 database_url: Optional[str] = DatabaseOption) -> None:
    """Write every audit entry, in chain order, as JSON Lines (each line with its prev_hash and
    hash, so the file can be checked on its own)."""
    from engine.messages import render_message

    engine = _engine(database_url)
    count = 0
    with out.open("w", encoding="utf-8") as handle:
        for line in engine.export_audit():
            handle.write(line)
            count += 1
    console.print(render_message("audit.exported", {"count": count, "file": str(out)}, "en"), highlight=False)


keys_app = typer.Typer(help="Master keys of sensitive fields (encryption at rest).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("status")
def keys_status(database_url: Optional[str] = DatabaseOption) -> None:
    """Show the key ring (the active key first) and, per key id, the sealed values and
    blind-index rows stored under it."""
    status = _engine(database_url).key_status()
    table = Table("key id", "active", "sealed values", "index rows")
    for kid in sorted(set(status.keys) | set(status.values) | set(status.index)):
        table.add_row(kid, "yes" if kid == status.active else "", str(status.values.get(kid, 0)),
                      str(status.index.get(kid, 0)))
    console.print(table)
    if status.plaintext:
        console.print(f"{status.plaintext} values of sensitive fields are not sealed yet: run lowcode keys rotate")


@keys_app.command("rotate")
def keys_rotate(batch: int = typer.Option(500, min=1, max=100_000, help="Records per transaction"),
                database_url: Optional[str] = DatabaseOption) -> None:
    """Re-seal every sensitive value under the active key (add the new key to
    LOWCODE_MASTER_KEY_FILE and name it active first; keep the old one until this is done).
    Batched and resumable: run it again after an interruption."""
    from engine.messages import render_message

    engine = _engine(database_url)
    result = engine.rotate_keys(batch=batch)
    status = engine.key_status()
    remaining = sum(count for kid, count in status.values.items() if kid != result.kid) + status.plaintext
    console.print(render_message("keys.rotated", {"records": result.records, "kid": result.kid,
                                                  "remaining": remaining}, "en"), highlight=False)
    if remaining:
        raise typer.Exit(code=3)


def main() -> None:
    """The console entry: known failures become one clear line and exit code 2, not a traceback."""
    from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError

    try:
        app()
    except EngineError as exc:
        try:
            _fail(exc)
        except typer.Exit as done:  # outside app() nothing turns Exit into an exit code
            raise SystemExit(done.exit_code) from None
    except ArgumentError as exc:
        errors.print(f"[red]database.bad_url[/red] the database URL is not usable: {exc}", highlight=False)
        raise SystemExit(2) from None
    except (OperationalError, ProgrammingError) as exc:
        reason = str(exc.orig) if getattr(exc, "orig", None) is not None else str(exc)
        hint = " (run `lowcode migrate` first?)" if "no such table" in reason or "does not exist" in reason else ""
        errors.print(f"[red]database.error[/red] {reason.splitlines()[0]}{hint}", highlight=False)
        raise SystemExit(2) from None


