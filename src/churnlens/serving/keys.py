"""API keys: created once, shown once, stored only as salted hashes.

Scopes nest: ``read`` (risk answers and the portfolio) < ``whatif`` (live what-if scoring) <
``admin`` (reload). Keys live in ``HOME/api_keys.json`` (mode 0600); a key is ``cl_`` and 43
random URL-safe characters, and each record keeps only a random salt of its own and
``HMAC-SHA256(salt, SHA-256(key))``.

Why not a slow password hash (scrypt, PBKDF2): a key carries 256 random bits, so nobody can
guess it from its hash however fast the hash is; what a slow hash protects is a password a person
chose. It would cost a slow hash per stored key on every request that brings an unknown key,
which is the request an attacker can send as often as they like. The salt makes every file's
hashes unique, so a leaked file says nothing about the same key in another home, and nothing
precomputed applies.

Files written before salting hold a plain ``sha256`` per key. They keep working, and the next
write (``keys create`` or ``keys revoke``) converts every such record in place: the salted hash
is computed from the stored SHA-256, so no key needs to be shown again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

Scope = Literal["read", "whatif", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "whatif", "admin")
PREFIX = "cl_"
SALT_BYTES = 16


@dataclass(frozen=True)
class KeyRecord:
    id: str
    name: str
    scope: Scope
    created_at: str
    revoked_at: str | None = None
    salt: str = ""
    """Hex of this key's random salt; empty on a record written before salting."""
    hash: str = ""
    """Hex of HMAC-SHA256(salt, SHA-256(key))."""
    sha256: str | None = None
    """Plain SHA-256 of the key, only on records written before salting."""

    def allows(self, needed: Scope) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(needed)

    @property
    def legacy(self) -> bool:
        return not self.hash

    def matches(self, key_sha256: bytes) -> bool:
        """Whether the key whose SHA-256 is ``key_sha256`` is this one (constant time)."""
        if self.legacy:
            return hmac.compare_digest(self.sha256 or "", key_sha256.hex())
        return hmac.compare_digest(self.hash, _salted(bytes.fromhex(self.salt), key_sha256))

    def salted(self) -> KeyRecord:
        """The same record with a salted hash in place of a plain one."""
        if not self.legacy or self.sha256 is None:
            return self
        salt = secrets.token_bytes(SALT_BYTES)
        return replace(self, salt=salt.hex(), hash=_salted(salt, bytes.fromhex(self.sha256)),
                       sha256=None)

    def stored(self) -> dict[str, Any]:
        """The record as written to the file: never a plain hash once salted."""
        row = asdict(self)
        if row["sha256"] is None:
            del row["sha256"]
        return row


def _salted(salt: bytes, key_sha256: bytes) -> str:
    return hmac.new(salt, key_sha256, hashlib.sha256).hexdigest()


def _sha256(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def _record(row: dict[str, Any]) -> KeyRecord:
    known = KeyRecord.__dataclass_fields__
    return KeyRecord(**{k: v for k, v in row.items() if k in known})


class KeyStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: tuple[int, list[KeyRecord]] | None = None
        self._verified: dict[bytes, KeyRecord] = {}
        """BLAKE2b of a key already verified -> its record, for the file version cached."""

    def records(self) -> list[KeyRecord]:
        """Every record; re-read only when the file changed (a revoke takes effect at once)."""
        if not self.path.is_file():
            self._cache, self._verified = None, {}
            return []
        mtime = self.path.stat().st_mtime_ns
        if self._cache is None or self._cache[0] != mtime:
            self._cache = (mtime, [_record(row) for row in json.loads(self.path.read_text())])
            self._verified = {}
        return list(self._cache[1])

    def _write(self, records: list[KeyRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        rows = [record.salted().stored() for record in records]  # old plain hashes go now
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            handle.write(json.dumps(rows, indent=2))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def create(self, name: str, scope: Scope) -> tuple[KeyRecord, str]:
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}; use one of {', '.join(SCOPES)}")
        key = PREFIX + secrets.token_urlsafe(32)
        salt = secrets.token_bytes(SALT_BYTES)
        record = KeyRecord(id=secrets.token_hex(4), name=name, scope=scope,
                           created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                           salt=salt.hex(), hash=_salted(salt, _sha256(key)))
        self._write([*self.records(), record])
        return record, key

    def revoke(self, key_id: str) -> KeyRecord:
        records = self.records()
        for index, record in enumerate(records):
            if record.id == key_id and record.revoked_at is None:
                revoked = replace(record.salted(),
                                  revoked_at=datetime.now(UTC).isoformat(timespec="seconds"))
                records[index] = revoked
                self._write(records)
                return revoked
        raise LookupError(f"no active API key with id {key_id!r}")

    def find(self, key: str) -> KeyRecord | None:
        """The active record for ``key``, or None.

        Every stored hash is compared in constant time. A key verified once is remembered by
        its BLAKE2b digest until the file changes, so a request with a known key costs one
        dictionary look-up, and a revoke still takes effect at once.
        """
        records = self.records()
        remembered = hashlib.blake2b(key.encode("utf-8", "surrogatepass"),
                                     digest_size=32).digest()
        known = self._verified.get(remembered)
        if known is not None:
            return known
        key_sha256 = _sha256(key)
        found = None
        for record in records:  # no early exit: every request compares every record
            if record.revoked_at is None and record.matches(key_sha256) and found is None:
                found = record
        if found is not None:
            self._verified[remembered] = found
        return found
