"""JSON responses written with exact decimals, and the error body every failure uses."""
from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from engine.jsoncodec import dumps


class ExactJSONResponse(JSONResponse):
    """Renders ``Decimal`` with its exact digits (the standard encoder would refuse or round)."""

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")


def error_body(path: str, code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"path": path, "code": code, "message": message}]}


def export_headers(export: Any) -> dict[str, str]:
    """Headers of a report export (engine.reports.exports.ReportExport): spreadsheets download,
    the rest may show inline; an SVG may run nothing."""
    disposition = "attachment" if export.format in ("csv", "xlsx") else "inline"
    headers = {"Content-Disposition": f'{disposition}; filename="{export.filename}"',
               "X-Content-Type-Options": "nosniff"}
    if export.format == "svg":
        headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return headers
