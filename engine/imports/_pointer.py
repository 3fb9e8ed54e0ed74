"""JSON pointer tokens for the paths the import package reports."""

from __future__ import annotations

__all__ = ["pointer"]


def pointer(*tokens: str) -> str:
    """A JSON pointer from raw tokens: `pointer("fields", "a/b")` is `/fields/a~1b`."""
    return "".join("/" + token.replace("~", "~0").replace("/", "~1") for token in tokens)
