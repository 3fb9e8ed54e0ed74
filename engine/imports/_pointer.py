"""JSON pointer tokens for the paths the import package reports."""

from __future__ import annotations

from engine.jsonpointer import pointer as _pointer

__all__ = ["pointer"]


def pointer(*tokens: str) -> str:
    """A JSON pointer from raw tokens: `pointer("fields", "a/b")` is `/fields/a~1b`."""
    return _pointer(tokens)
