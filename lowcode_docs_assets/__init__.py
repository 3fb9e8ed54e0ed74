"""Vendored third-party web assets for the API docs pages (Swagger UI, ReDoc), shipped with
lowcode-engine so that ``/docs`` and ``/redoc`` load nothing from the internet. Kept outside
``engine/`` because they are other projects' files, not engine code."""
from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
