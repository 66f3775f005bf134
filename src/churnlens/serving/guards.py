"""What keeps a caller from hurting the server or other callers: no key, no parsing; a cap
on request bodies; a what-if budget per key; and logs that never hold a key.

Each guard answers a 4xx whose ``detail`` says what happened and what to do, like every
other caller mistake.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

from fastapi import HTTPException

from churnlens.serving.keys import KeyRecord, KeyStore

MAX_BODY_BYTES = 1024 * 1024
"""The largest request body accepted; a batch of 1,000 account ids is about 20 KB."""

MAX_WHAT_IF = 1e12
"""The largest magnitude a what-if value may have: beyond any count, amount or ratio a real
account has, and small enough that every sentence can still print it."""

KEY_PATTERN = re.compile(r"cl_[A-Za-z0-9_\-]{8,}")
"""Anything shaped like an API key (``cl_`` and its random part)."""


def presented_key(x_api_key: str | None, authorization: str | None) -> str:
    """The key a request carries (``Authorization: Bearer`` wins over ``X-API-Key``), or the
    401 that says how to send one."""
    key = x_api_key
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise HTTPException(401, "send the key as 'Authorization: Bearer <key>'",
                                headers={"WWW-Authenticate": "Bearer"})
        key = value.strip()
    if not key:
        raise HTTPException(401, "an API key is required (Authorization: Bearer <key> "
                            "or X-API-Key)", headers={"WWW-Authenticate": "Bearer"})
    return key


def active_key(keys: KeyStore, x_api_key: str | None, authorization: str | None
               ) -> KeyRecord:
    """The active record of the key a request carries, or the 401 saying what is wrong."""
    record = keys.find(presented_key(x_api_key, authorization))
    if record is None:
        raise HTTPException(401, "unknown or revoked API key",
                            headers={"WWW-Authenticate": "Bearer"})
    return record


class KeyGate:
    """Refuses an API request (``/v1/...``) without an active key before anything else reads
    it: a caller without a key costs the server a header look-up, never a body parse. The
    route still checks the key's scope."""

    def __init__(self, app: Any, keys: KeyStore) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            x_api_key = authorization = None
            for name, value in scope["headers"]:
                if name == b"x-api-key" and x_api_key is None:
                    x_api_key = value.decode("latin-1")
                elif name == b"authorization" and authorization is None:
                    authorization = value.decode("latin-1")
            try:
                active_key(self.keys, x_api_key, authorization)
            except HTTPException as refusal:
                await refuse(send, refusal.status_code, str(refusal.detail), refusal.headers)
                return
        await self.app(scope, receive, send)


async def refuse(send: Any, status: int, detail: str,
                 headers: Mapping[str, str] | None = None) -> None:
    """Answer ``{"detail": ...}`` with ``status`` straight from the ASGI layer."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            *((k.lower().encode(), v.encode())
                              for k, v in (headers or {}).items())]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuses a request body over ``limit`` bytes with 413, before any of it is parsed.

    A declared ``Content-Length`` over the limit is refused without reading the body; a body
    sent in chunks is read up to the limit and then refused, so nothing downstream ever holds
    more than ``limit`` bytes. Plain ASGI, like the metrics middleware, to stay cheap.
    """

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await refuse(send, 400, "the Content-Length header is not a number")
                return
            if int(declared) > self.limit:
                await refuse(send, 413, self._too_large(int(declared)),
                             {"Connection": "close"})
                return
            await self.app(scope, receive, send)  # the server reads no more than declared
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await refuse(send, 413, self._too_large(size, at_least=True),
                             {"Connection": "close"})
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self, size: int, at_least: bool = False) -> str:
        return (f"the request body is {'over ' if at_least else ''}{size:,} bytes; at most "
                f"{self.limit:,} are accepted (send at most 1,000 account ids per batch)")


class RateLimiter:
    """A token bucket per key id: ``per_minute`` requests a minute, in bursts of up to that
    many. State lives in the worker process (each worker keeps its own buckets); 0 means no
    limit."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, at)
        self._lock = threading.Lock()

    def wait_for(self, key_id: str) -> float:
        """Take one token for ``key_id``: 0 when granted, else the seconds until one is."""
        if self.per_minute <= 0:
            return 0.0
        per_second = self.per_minute / 60
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(key_id, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - at) * per_second)
            if tokens >= 1:
                self._buckets[key_id] = (tokens - 1, now)
                return 0.0
            self._buckets[key_id] = (tokens, now)
            return (1 - tokens) / per_second

    def refusal(self, wait: float) -> tuple[str, dict[str, str]]:
        """The 429 message and headers for a caller who must wait ``wait`` seconds."""
        seconds = max(1, math.ceil(wait))
        return (f"this key asked for more than {self.per_minute} what-if answers in a minute; "
                f"retry in {seconds} s", {"Retry-After": str(seconds)})


class RedactKeys(logging.Filter):
    """Replaces anything shaped like an API key in a log record with ``cl_***``: uvicorn's
    access log writes each request's path and query string, where a careless client may put
    its key."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and KEY_PATTERN.search(record.msg):
            record.msg = KEY_PATTERN.sub("cl_***", record.msg)
        if isinstance(record.args, tuple) and any(
                isinstance(a, str) and KEY_PATTERN.search(a) for a in record.args):
            record.args = tuple(KEY_PATTERN.sub("cl_***", a) if isinstance(a, str) else a
                                for a in record.args)
        return True


def redact_keys_in_logs() -> None:
    """Attach :class:`RedactKeys` to the loggers that write what callers sent (once)."""
    for name in ("uvicorn.access", "uvicorn.error", "churnlens.serving"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactKeys) for f in logger.filters):
            logger.addFilter(RedactKeys())
