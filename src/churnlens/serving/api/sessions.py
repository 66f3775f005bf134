"""The pages' sign-in sessions, kept server-side in ``HOME/sessions.sqlite3`` so that every
worker sees the same ones and signing out ends a session everywhere.

The signed cookie holds only a random session token; the store keeps the token's SHA-256 (a
copy of the file gives no live session), the key it was opened with and when it expires. A
copied cookie is worth nothing once its session is ended (``POST /logout``), has expired, or
its key was revoked (checked against the key store on every page).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

SESSION_SECONDS = 12 * 3600
"""How long a sign-in lasts; the cookie's own ``Max-Age`` is the same."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    """Open, look up and end sessions; one SQLite file shared by the server's workers."""

    def __init__(self, path: Path, lifetime_seconds: int = SESSION_SECONDS) -> None:
        self.path = path
        self.lifetime_seconds = lifetime_seconds

    @contextlib.contextmanager
    def _connected(self) -> Iterator[sqlite3.Connection]:
        """A short connection per call: cheap for SQLite, and safe across threads and
        processes (a busy file is waited for, not failed on)."""
        fresh = not self.path.exists()
        if fresh:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch(mode=0o600, exist_ok=True)
            os.chmod(self.path, 0o600)
        connection = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            connection.execute("CREATE TABLE IF NOT EXISTS sessions (token_sha256 TEXT "
                               "PRIMARY KEY, key_id TEXT NOT NULL, created_at REAL NOT NULL, "
                               "expires_at REAL NOT NULL)")
            yield connection
        finally:
            connection.close()

    def open(self, key_id: str) -> str:
        """A new session for ``key_id``: the token to put in the cookie. Expired sessions
        are removed on the way, so the file stays small."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self._connected() as db:
            db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
            db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)",
                       (_digest(token), key_id, now, now + self.lifetime_seconds))
        return token

    def key_of(self, token: str) -> str | None:
        """The key id of a live session, or None: unknown, ended or expired."""
        with self._connected() as db:
            found = db.execute("SELECT key_id FROM sessions WHERE token_sha256 = ? AND "
                               "expires_at > ?", (_digest(token), time.time())).fetchone()
        return None if found is None else str(found[0])

    def end(self, token: str) -> None:
        """End a session: its cookie, wherever a copy of it is, signs nobody in again."""
        with self._connected() as db:
            db.execute("DELETE FROM sessions WHERE token_sha256 = ?", (_digest(token),))
