"""JSON pointers (RFC 6901): every error the engine reports is located by one."""
from __future__ import annotations

from typing import Iterable


def escape(token: object) -> str:
    """One reference token: ``a/b`` becomes ``a~1b``, ``a~b`` becomes ``a~0b``."""
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer(tokens: Iterable[object], prefix: str = "") -> str:
    """``prefix`` followed by each token escaped: ``pointer(["rules", 0], "")`` is ``/rules/0``."""
    return prefix + "".join("/" + escape(token) for token in tokens)
