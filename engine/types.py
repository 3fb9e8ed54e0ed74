"""Shared type aliases: the shapes the rest of the engine passes around."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Union

JSONScalar = Union[str, int, Decimal, bool, None]
JSONValue = Union[JSONScalar, list[Any], dict[str, Any]]
JSONObject = dict[str, Any]
JSONPointer = str
RecordId = str
