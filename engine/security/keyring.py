"""The master keys that protect sensitive fields, and the keys derived from them.

A key ring holds one or more 32-byte master keys by key id: the *active* one seals new values,
the others only open values sealed before a rotation. Nothing is used raw: per key, HKDF-SHA256
derives a data-encryption key (AES-256-GCM) and a blind-index key (HMAC-SHA256), so the index
can never be turned into a decryption key and vice versa.

Where the keys come from (read once, by :meth:`KeySettings.from_environ`):

- ``LOWCODE_MASTER_KEY``: one key, base64 of 32 bytes (``LOWCODE_MASTER_KEY_ID`` names it;
  default ``k-`` and 8 hex digits of its fingerprint);
- ``LOWCODE_MASTER_KEY_FILE``: a JSON file ``{"active": "k2", "keys": {"k1": "<base64>",
  "k2": "<base64>"}}``; with both, the file's ``active`` wins, else the environment key is active;
- neither, in development mode (``LOWCODE_MODE`` unset or ``development``): a key file is
  generated under ``var/`` on first need, with a warning; in production mode
  (``LOWCODE_MODE=production``, or any other value, as the start-up checks read it) the
  engine refuses to seal or open anything
  (``crypto.key_missing``) and ``lowcode serve`` refuses to start when a form has sensitive fields.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.errors import EngineError

log = logging.getLogger("engine.security")

KEY_BYTES = 32
DEFAULT_DEV_KEY_FILE = Path("var") / "master-keys.json"
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
_DATA_INFO = b"lowcode-engine/field-encryption/aes-256-gcm/v1"
_INDEX_INFO = b"lowcode-engine/blind-index/hmac-sha256/v1"


class KeyUnavailable(EngineError):
    """The key ring cannot serve: no key configured, a bad key, or a key id it does not hold."""

    status = 503


@dataclass(frozen=True)
class KeySettings:
    """Where the master keys come from (see the module docstring)."""

    production: bool = False
    master_key: str | None = None
    """Base64 of 32 bytes (``LOWCODE_MASTER_KEY``)."""
    master_key_id: str | None = None
    key_file: Path | None = None
    """``LOWCODE_MASTER_KEY_FILE``."""
    dev_key_file: Path = DEFAULT_DEV_KEY_FILE
    """Generated in development mode when no key is configured."""

    @property
    def configured(self) -> bool:
        return bool(self.master_key or self.key_file)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> KeySettings:
        mode = (environ.get("LOWCODE_MODE") or "development").strip().lower()
        key_file = environ.get("LOWCODE_MASTER_KEY_FILE")
        return cls(production=mode != "development", master_key=environ.get("LOWCODE_MASTER_KEY") or None,
                   master_key_id=environ.get("LOWCODE_MASTER_KEY_ID") or None,
                   key_file=Path(key_file) if key_file else None)


@dataclass(frozen=True)
class Keyring:
    """Master keys by id, the active one first to seal; derived keys are computed once."""

    keys: Mapping[str, bytes]
    active: str
    _derived: dict[tuple[str, bytes], bytes] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise KeyUnavailable("crypto.bad_key", params={"reason": f"the active key {self.active} is not in the ring"})

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id, the active one first."""
        return (self.active, *sorted(kid for kid in self.keys if kid != self.active))

    def data_key(self, kid: str) -> bytes:
        """The AES-256-GCM key of master key ``kid`` (``crypto.unknown_key`` if not held)."""
        return self._derive(kid, _DATA_INFO)

    def index_key(self, kid: str) -> bytes:
        """The HMAC-SHA256 blind-index key of master key ``kid``."""
        return self._derive(kid, _INDEX_INFO)

    def _derive(self, kid: str, info: bytes) -> bytes:
        cached = self._derived.get((kid, info))
        if cached is None:
            master = self.keys.get(kid)
            if master is None:
                raise KeyUnavailable("crypto.unknown_key", params={"kid": kid[:32]})
            cached = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(master)
            self._derived[(kid, info)] = cached
        return cached


def decode_key(text: str, where: str) -> bytes:
    """A base64 (standard or URL-safe) master key of exactly 32 bytes."""
    try:
        raw = base64.b64decode(text.strip().replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise KeyUnavailable("crypto.bad_key", params={"reason": f"{where} is not base64"}) from None
    if len(raw) != KEY_BYTES:
        raise KeyUnavailable("crypto.bad_key", params={"reason": f"{where} is {len(raw)} bytes, not {KEY_BYTES}"})
    return raw


def fingerprint_id(key: bytes) -> str:
    """A key id derived from the key itself (so the same key always gets the same id)."""
    return "k-" + hashlib.sha256(b"lowcode-engine/key-id\x00" + key).hexdigest()[:8]


def read_key_file(path: Path) -> tuple[dict[str, bytes], str | None]:
    """``(keys, active)`` of a key file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeyUnavailable("crypto.bad_key", params={"reason": f"cannot read the key file ({exc.strerror})"}) from None
    except ValueError:
        raise KeyUnavailable("crypto.bad_key", params={"reason": "the key file is not JSON"}) from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), dict) or not document["keys"]:
        raise KeyUnavailable("crypto.bad_key", params={"reason": 'the key file needs {"active": ..., "keys": {id: base64}}'})
    keys: dict[str, bytes] = {}
    for kid, text in document["keys"].items():
        if not _KEY_ID.match(kid) or not isinstance(text, str):
            raise KeyUnavailable("crypto.bad_key", params={"reason": "key ids are 1-32 letters, digits, . _ -"})
        keys[kid] = decode_key(text, f"key {kid}")
    active = document.get("active")
    if active is not None and (not isinstance(active, str) or active not in keys):
        raise KeyUnavailable("crypto.bad_key", params={"reason": "the key file's active key is not among its keys"})
    return keys, active


def write_key_file(path: Path, keys: Mapping[str, bytes], active: str) -> None:
    """Write a key file readable by its owner only; never overwrites (``FileExistsError``).
    Written beside and linked into place, so a concurrent reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"active": active, "keys": {kid: base64.b64encode(key).decode("ascii") for kid, key in keys.items()}},
                      indent=2) + "\n"
    draft = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(body)
        os.link(draft, path)
    finally:
        draft.unlink()


def load_keyring(settings: KeySettings) -> Keyring | None:
    """The ring the settings describe, or None when no key is configured."""
    keys: dict[str, bytes] = {}
    active: str | None = None
    if settings.key_file is not None:
        keys, active = read_key_file(settings.key_file)
    if settings.master_key:
        key = decode_key(settings.master_key, "LOWCODE_MASTER_KEY")
        kid = settings.master_key_id or fingerprint_id(key)
        if not _KEY_ID.match(kid):
            raise KeyUnavailable("crypto.bad_key", params={"reason": "LOWCODE_MASTER_KEY_ID: 1-32 letters, digits, . _ -"})
        if kid in keys and keys[kid] != key:
            raise KeyUnavailable("crypto.bad_key", params={"reason": f"key id {kid} names two different keys"})
        keys[kid] = key
        active = active or kid
    if not keys:
        return None
    if active is None:
        if len(keys) > 1:
            raise KeyUnavailable("crypto.bad_key", params={"reason": "the key file holds several keys but names no active one"})
        active = next(iter(keys))
    return Keyring(keys, active)


class KeySource:
    """The key ring, resolved on first need (an engine whose forms have no sensitive field never
    needs a key). In development mode without a configured key, generates one under ``var/``."""

    def __init__(self, settings: KeySettings, keyring: Keyring | None = None) -> None:
        self.settings = settings
        self._keyring = keyring
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        """Whether a key is configured (or may be generated, in development mode)."""
        return self._keyring is not None or self.settings.configured or not self.settings.production

    def keyring(self) -> Keyring:
        """The ring; raises ``crypto.key_missing`` in production mode without a key."""
        if self._keyring is not None:
            return self._keyring
        with self._lock:
            if self._keyring is None:
                ring = load_keyring(self.settings)
                if ring is None:
                    if self.settings.production:
                        raise KeyUnavailable("crypto.key_missing")
                    ring = _development_keyring(self.settings.dev_key_file)
                self._keyring = ring
            return self._keyring

    def reload(self) -> Keyring:
        """Read the configured keys again (after ``lowcode keys`` changed the key file)."""
        with self._lock:
            self._keyring = None
        return self.keyring()


def _development_keyring(path: Path) -> Keyring:
    if not path.exists():
        key = os.urandom(KEY_BYTES)
        try:
            write_key_file(path, {"dev-1": key}, "dev-1")
            log.warning("no master key configured (LOWCODE_MASTER_KEY / LOWCODE_MASTER_KEY_FILE): generated the "
                        "development key file %s; production mode refuses to run without a configured key", path)
        except FileExistsError:
            pass  # another process generated it first: use theirs
    keys, active = read_key_file(path)
    return Keyring(keys, active or next(iter(keys)))
