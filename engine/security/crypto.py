"""Sensitive field values sealed at rest: AES-256-GCM per value, bound to where it belongs.

A sealed value is an envelope in the record's JSON, in place of the value::

    {"$sealed": "v1", "kid": "k2", "nonce": "<base64, 12 bytes>", "ct": "<base64: ciphertext + tag>"}

- the plaintext is the value's JSON text (exact decimals), so every type comes back as it was;
- the associated data is the canonical JSON of ``["lowcode-engine/sealed/v1", form key, record
  id, JSON pointer of the field, key id]``: a ciphertext copied to another record, another field
  (or another item of an array) or another form does not open (``crypto.integrity_failed``),
  nor does one whose bytes, nonce or key id were changed;
- ``kid`` names the master key (engine.security.keyring) whose derived key sealed it.

Fields are declared sensitive by the form (``FormSpec.sensitive``: paths of property names,
``*`` for every item of an array). Only values at those paths are opened; anything else that
looks like an envelope is left alone. Top-level sensitive scalars also get a blind index: an
HMAC-SHA256 of the normalized value under the key's index key, so that an exact-match lookup
never decrypts (:meth:`FieldCipher.index_digests`).
"""
from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import unicodedata
from collections.abc import Iterator, Sequence
from hashlib import sha256
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engine.errors import EngineError, Issue
from engine.jsoncodec import dumps, loads
from engine.security.keyring import KeySource
from engine.store.records import lookup_text

ENVELOPE_TAG = "$sealed"
ENVELOPE_VERSION = "v1"
_ENVELOPE_KEYS = frozenset({ENVELOPE_TAG, "kid", "nonce", "ct"})
_AD_PREFIX = "lowcode-engine/sealed/v1"
_canonical = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

SensitivePath = tuple[str, ...]
"""Property names from the record's root; ``*`` stands for every item of an array."""


class IntegrityFailed(EngineError):
    """A sealed value does not open: it was altered, or moved from another record or field."""

    status = 503


def is_envelope(value: Any) -> bool:
    """Whether ``value`` has the shape of a sealed value."""
    return (isinstance(value, dict) and value.keys() == _ENVELOPE_KEYS
            and value.get(ENVELOPE_TAG) == ENVELOPE_VERSION and isinstance(value.get("kid"), str))


def strip_sealed(value: Any) -> Any:
    """``value`` with every envelope, at any depth, replaced by None (what the report mirror
    keeps of a sensitive field: nothing)."""
    if isinstance(value, dict):
        if is_envelope(value):
            return None
        return {key: strip_sealed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [strip_sealed(item) for item in value]
    return value


def envelope_kids(value: Any) -> Iterator[str]:
    """The key id of every envelope in ``value``, at any depth."""
    if isinstance(value, dict):
        if is_envelope(value):
            yield value["kid"]
            return
        for item in value.values():
            yield from envelope_kids(item)
    elif isinstance(value, list):
        for item in value:
            yield from envelope_kids(item)


def normalized(value: Any) -> str | None:
    """The text a value is blind-indexed under: its lookup text (numbers by value), Unicode
    NFKC, surrounding spaces dropped, case folded; None for values that are not looked up."""
    text = lookup_text(value)
    if text is None:
        return None
    return unicodedata.normalize("NFKC", text).strip().casefold()


def _associated_data(form_key: str, record_id: str, pointer: str, kid: str) -> bytes:
    return _canonical([_AD_PREFIX, form_key, record_id, pointer, kid]).encode("utf-8")


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _locations(data: Any, path: SensitivePath, pointer: str = "") -> Iterator[tuple[Any, Any, str]]:
    """``(container, key, pointer)`` of every value the path reaches in ``data``."""
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(data, list):
            for index in range(len(data)):
                yield from _reach(data, index, rest, f"{pointer}/{index}")
    elif isinstance(data, dict) and head in data:
        yield from _reach(data, head, rest, f"{pointer}/{_escape(head)}")


def values_at(data: Any, path: SensitivePath) -> Iterator[tuple[Any, Any, str]]:
    """``(container, key, JSON pointer)`` of every value ``path`` reaches in ``data``."""
    return _locations(data, path)


def _reach(container: Any, key: Any, rest: SensitivePath, pointer: str) -> Iterator[tuple[Any, Any, str]]:
    if not rest:
        yield container, key, pointer
    else:
        yield from _locations(container[key], rest, pointer)


def _envelopes(data: Any, pointer: str = "") -> Iterator[tuple[Any, Any, str]]:
    """``(container, key, pointer)`` of every envelope inside ``data``."""
    items: Any = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        if not isinstance(value, (dict, list)):
            continue  # a scalar is no envelope and holds none (most values: skipped without a pointer)
        here = f"{pointer}/{_escape(key) if isinstance(key, str) else key}"
        if is_envelope(value):
            yield data, key, here
        else:
            yield from _envelopes(value, here)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _deep_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep_copy(item) for item in value]
    return value


class FieldCipher:
    """Seals and opens the sensitive values of records with the keys of one :class:`KeySource`."""

    def __init__(self, keys: KeySource) -> None:
        self.keys = keys

    # -- one value ------------------------------------------------------------------------------

    def seal_value(self, form_key: str, record_id: str, pointer: str, value: Any) -> dict[str, str]:
        ring = self.keys.keyring()
        kid = ring.active
        nonce = os.urandom(12)
        ct = AESGCM(ring.data_key(kid)).encrypt(nonce, dumps(value).encode("utf-8"),
                                               _associated_data(form_key, record_id, pointer, kid))
        return {ENVELOPE_TAG: ENVELOPE_VERSION, "kid": kid, "nonce": base64.b64encode(nonce).decode("ascii"),
                "ct": base64.b64encode(ct).decode("ascii")}

    def open_value(self, form_key: str, record_id: str, pointer: str, envelope: dict[str, Any]) -> Any:
        """The value an envelope holds; ``crypto.integrity_failed`` (naming the record and the
        pointer) when it was altered or does not belong here, ``crypto.unknown_key`` when its key
        is not in the ring."""
        kid = envelope["kid"]
        key = self.keys.keyring().data_key(kid)
        params = {"record": record_id, "field": pointer}
        try:
            nonce = base64.b64decode(envelope["nonce"], validate=True)
            ct = base64.b64decode(envelope["ct"], validate=True)
            if len(nonce) != 12:
                raise ValueError("nonce")
            plain = AESGCM(key).decrypt(nonce, ct, _associated_data(form_key, record_id, pointer, kid))
        except (InvalidTag, binascii.Error, ValueError, TypeError):
            raise IntegrityFailed("crypto.integrity_failed", path=pointer, params=params) from None
        return loads(plain)

    # -- records --------------------------------------------------------------------------------

    def seal(self, form_key: str, record_id: str, paths: Sequence[SensitivePath], data: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``data`` with every non-null value at ``paths`` sealed (``data`` itself is
        returned when there is nothing to seal)."""
        if not paths:
            return data
        sealed = _deep_copy(data)
        for path in paths:
            for container, key, pointer in list(_locations(sealed, path)):
                value = container[key]
                if value is not None and not is_envelope(value):
                    container[key] = self.seal_value(form_key, record_id, pointer, value)
        return sealed

    def open(self, form_key: str, record_id: str, paths: Sequence[SensitivePath],
             data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """``(a copy of data with every sealed value opened, the pointers of the sensitive
        values now in plaintext)``: the envelopes found at any depth (a field may have been
        sensitive when it was written) and the non-null values at ``paths`` (written before
        the field became sensitive). Inputs never hold an envelope (:meth:`check_input`), so
        every envelope in stored data was sealed by the engine."""
        sealed = list(_envelopes(data))
        if not sealed and not paths:
            return data, []
        opened = _deep_copy(data)
        revealed: list[str] = []
        for container, key, pointer in list(_envelopes(opened)):
            container[key] = self.open_value(form_key, record_id, pointer, container[key])
            revealed.append(pointer)
        for path in paths:
            for container, key, pointer in _locations(opened, path):
                if container[key] is not None and pointer not in revealed:
                    revealed.append(pointer)
        return opened, revealed

    def reseal(self, form_key: str, record_id: str, paths: Sequence[SensitivePath],
               data: dict[str, Any]) -> dict[str, Any] | None:
        """``data`` with every value sealed under another key, and every plaintext value at
        ``paths``, sealed (again) under the active key; None when nothing needs it."""
        active = self.keys.keyring().active
        changed = False
        result = _deep_copy(data)
        for container, key, pointer in list(_envelopes(result)):
            if container[key]["kid"] != active:
                plain = self.open_value(form_key, record_id, pointer, container[key])
                container[key] = self.seal_value(form_key, record_id, pointer, plain)
                changed = True
        for path in paths:
            for container, key, pointer in list(_locations(result, path)):
                value = container[key]
                if value is not None and not is_envelope(value):
                    container[key] = self.seal_value(form_key, record_id, pointer, value)
                    changed = True
        return result if changed else None

    @staticmethod
    def check_input(data: Any) -> list[Issue]:
        """``record.reserved_value`` at every object of a submission that has the shape of a
        sealed value: stored data holds envelopes only where the engine sealed them."""
        return [Issue(pointer, "record.reserved_value") for _c, _k, pointer in _envelopes(data)]

    # -- blind index ----------------------------------------------------------------------------

    def _digest(self, kid: str, form_key: str, field: str, text: str) -> str:
        key = self.keys.keyring().index_key(kid)
        message = _canonical([form_key, field, text]).encode("utf-8")
        return hmac.new(key, message, sha256).hexdigest()

    def index_entry(self, form_key: str, field: str, value: Any) -> tuple[str, str] | None:
        """``(key id, digest)`` a top-level sensitive value is indexed under (active key), or
        None for a value that is not looked up."""
        text = normalized(value)
        if text is None:
            return None
        kid = self.keys.keyring().active
        return kid, self._digest(kid, form_key, field, text)

    def index_digests(self, form_key: str, field: str, value: Any) -> tuple[str, ...]:
        """The digests ``value`` may be indexed under, one per key of the ring (records not yet
        rotated are indexed under their old key)."""
        text = normalized(value)
        if text is None:
            return ()
        return tuple(self._digest(kid, form_key, field, text) for kid in self.keys.keyring().key_ids)
