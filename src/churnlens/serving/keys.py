"""API keys: created once, shown once, stored only as hashes.

Scopes nest: ``read`` (risk answers and the portfolio) < ``whatif`` (live what-if scoring) <
``admin`` (reload). Keys live in ``HOME/api_keys.json``; a key is ``cl_`` and 43 random
URL-safe characters, and only its SHA-256 is written down.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

Scope = Literal["read", "whatif", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "whatif", "admin")
PREFIX = "cl_"


@dataclass(frozen=True)
class KeyRecord:
    id: str
    name: str
    scope: Scope
    sha256: str
    created_at: str
    revoked_at: str | None = None

    def allows(self, needed: Scope) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(needed)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: tuple[float, list[KeyRecord]] | None = None

    def records(self) -> list[KeyRecord]:
        """Every record; re-read only when the file changed (a revoke takes effect at once)."""
        if not self.path.is_file():
            return []
        mtime = self.path.stat().st_mtime_ns
        if self._cache is None or self._cache[0] != mtime:
            self._cache = (mtime, [KeyRecord(**row) for row in json.loads(self.path.read_text())])
        return list(self._cache[1])

    def _write(self, records: list[KeyRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps([asdict(r) for r in records], indent=2))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def create(self, name: str, scope: Scope) -> tuple[KeyRecord, str]:
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}; use one of {', '.join(SCOPES)}")
        key = PREFIX + secrets.token_urlsafe(32)
        record = KeyRecord(id=secrets.token_hex(4), name=name, scope=scope, sha256=_digest(key),
                           created_at=datetime.now(UTC).isoformat(timespec="seconds"))
        self._write([*self.records(), record])
        return record, key

    def revoke(self, key_id: str) -> KeyRecord:
        records = self.records()
        for index, record in enumerate(records):
            if record.id == key_id and record.revoked_at is None:
                revoked = KeyRecord(**{**asdict(record), "revoked_at": datetime.now(
                    UTC).isoformat(timespec="seconds")})
                records[index] = revoked
                self._write(records)
                return revoked
        raise LookupError(f"no active API key with id {key_id!r}")

    def find(self, key: str) -> KeyRecord | None:
        """The active record for ``key`` (compared in constant time), or None."""
        digest = _digest(key)
        for record in self.records():
            if record.revoked_at is None and hmac.compare_digest(record.sha256, digest):
                return record
        return None
