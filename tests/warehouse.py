"""A throwaway PostgreSQL server for the warehouse tests, from Debian's packages.

``initdb`` into a temporary folder, ``postgres`` on a free loopback port with trust auth, one
database; everything is removed on exit. Run as root (CI), the server runs as the
``postgres`` user the Debian package creates, because PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ibis
import pyarrow.dataset as ds

from churnlens.raw.contract import CONTRACT


def postgres_bin() -> Path | None:
    """The folder of initdb and postgres: on PATH, or Debian's versioned folder."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres_server(port: int, database: str = "company") -> Iterator[str]:
    """Start a server, yield the URL of an empty ``database`` on it, stop and clean up."""
    binaries = postgres_bin()
    if binaries is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="churnlens-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    subprocess.run(_as_server_user([str(binaries / "initdb"), "-D", str(data), "-U", "churnlens",
                                    "--auth=trust", "--no-sync", "-E", "UTF8"]),
                   check=True, capture_output=True)
    server = subprocess.Popen(
        _as_server_user([str(binaries / "postgres"), "-D", str(data), "-p", str(port),
                         "-k", str(sockets), "-c", "listen_addresses=127.0.0.1",
                         "-c", "fsync=off", "-c", "full_page_writes=off"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        admin = f"postgresql://churnlens@127.0.0.1:{port}/postgres"
        _wait_ready(admin, server)
        con = ibis.connect(admin)
        con.raw_sql(f"CREATE DATABASE {database}")  # type: ignore[attr-defined]
        con.disconnect()
        yield f"postgresql://churnlens@127.0.0.1:{port}/{database}"
    finally:
        # fast shutdown: ends open sessions instead of waiting for them
        subprocess.run(_as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast",
                                        "-w", "stop"]), capture_output=True, timeout=60)
        server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"postgres exited: {server.stderr.read().decode()}")  # type: ignore[union-attr]
        try:
            ibis.connect(url).disconnect()
            return
        except Exception:
            time.sleep(0.3)
    raise RuntimeError("postgres did not start within 60 s")


def load_company(url: str, raw: Path) -> dict[str, int]:
    """Copy the contract tables of a generated company from Parquet into the database."""
    con = ibis.connect(url)
    rows = {}
    for name in CONTRACT:
        path = raw / name if (raw / name).is_dir() else raw / f"{name}.parquet"
        if not path.exists():
            continue
        table = ds.dataset(path, format="parquet").to_table()
        con.create_table(name, table)  # type: ignore[attr-defined]
        rows[name] = table.num_rows
    con.disconnect()
    return rows
