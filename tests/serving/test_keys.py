"""API keys at rest: a random salt and a salted hash per key, never the key or its plain hash;
old plain-SHA-256 files keep working and are salted on the next write."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
from pathlib import Path

import pytest

from churnlens.serving import keys as keys_module
from churnlens.serving.keys import KeyStore


def _legacy_file(path: Path, key: str, scope: str = "read") -> None:
    """A key file as churnlens wrote it before salting."""
    path.write_text(json.dumps([{"id": "0ld0ld00", "name": "old", "scope": scope,
                                 "sha256": hashlib.sha256(key.encode()).hexdigest(),
                                 "created_at": "2025-01-01T00:00:00+00:00",
                                 "revoked_at": None}]))


def test_a_key_is_stored_only_as_a_salted_hash(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "api_keys.json")
    first, key = store.create("ops", "admin")
    second, other = store.create("ops too", "admin")
    text = store.path.read_text()
    assert key not in text and key[3:] not in text
    assert hashlib.sha256(key.encode()).hexdigest() not in text  # no unsalted hash either
    rows = json.loads(text)
    assert [set(row) for row in rows] == [{"id", "name", "scope", "created_at", "revoked_at",
                                           "salt", "hash"}] * 2
    assert rows[0]["salt"] != rows[1]["salt"] and len(bytes.fromhex(rows[0]["salt"])) == 16
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert KeyStore(store.path).find(key) == first  # a fresh process verifies it
    assert KeyStore(store.path).find(other) == second
    assert store.find(key + "x") is None and store.find("") is None


def test_every_stored_hash_is_compared_in_constant_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = KeyStore(tmp_path / "api_keys.json")
    for name in ("a", "b", "c"):
        store.create(name, "read")
    compared: list[tuple[str, str]] = []
    constant_time = hmac.compare_digest

    def compare(a: str, b: str) -> bool:
        compared.append((a, b))
        return constant_time(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", compare)
    assert store.find("cl_wrong") is None
    assert len(compared) == 3  # every record, through compare_digest, none skipped


def test_a_verified_key_is_remembered_until_the_file_changes(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "api_keys.json")
    record, key = store.create("csm", "read")
    assert store.find(key) == record
    assert store.find(key) == record  # from memory
    KeyStore(store.path).revoke(record.id)  # another process, e.g. `churnlens keys revoke`
    assert store.find(key) is None


def test_an_old_plain_hash_file_keeps_working_and_is_salted_on_the_next_write(
        tmp_path: Path) -> None:
    path = tmp_path / "api_keys.json"
    old_key = "cl_" + "o" * 43
    _legacy_file(path, old_key, scope="whatif")
    store = KeyStore(path)
    found = store.find(old_key)
    assert found is not None and found.scope == "whatif" and found.id == "0ld0ld00"

    _, new_key = store.create("new", "read")  # the next write converts the old record
    rows = json.loads(path.read_text())
    assert all("sha256" not in row and row["salt"] and row["hash"] for row in rows)
    assert hashlib.sha256(old_key.encode()).hexdigest() not in path.read_text()
    fresh = KeyStore(path)
    assert fresh.find(old_key) is not None and fresh.find(old_key).id == "0ld0ld00"  # type: ignore[union-attr]
    assert fresh.find(new_key) is not None
    fresh.revoke("0ld0ld00")
    assert KeyStore(path).find(old_key) is None
