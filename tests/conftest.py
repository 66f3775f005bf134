"""Shared fixtures: a tiny hand-made company whose every row is known."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

NOW = datetime(2024, 6, 1)

os.environ.setdefault("CHURNLENS_THREADS", "1")
"""`make test` runs two workers on two cores: each worker's engines, LightGBM and scoring get
one core. Every LightGBM on every core oversubscribes them, and OpenMP's waiting threads then
cost far more than the second core gives: two 700-account trainings side by side took 110 s
each at two threads against 24 s each at one (22 s for one alone). In CI, with a third process
busy, one such training ran past its 300 s limit. Child processes inherit this."""

FAST_TRAIN = {"CHURNLENS_BOOTSTRAP": "0"}
"""Settings for a `churnlens train` whose confidence intervals no test reads: the bootstrap
(200 resamples of every metric, and of every segment's) is most of a small company's training
time, and nothing else in the run depends on it."""


def churnlens(home: Path, *args: str, check: bool = True, env: dict[str, str] | None = None,
              timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a child process, as a user would.

    A child still running after ``timeout`` seconds is stopped with SIGABRT, on which Python's
    fault handler prints where every thread was: the failure then says where it hung.
    """
    full_env = {**os.environ, "COLUMNS": "200", "CHURNLENS_HOME": str(home),
                "PYTHONFAULTHANDLER": "1", **(env or {})}
    command = [sys.executable, "-m", "churnlens.cli", *args]
    with subprocess.Popen(command, env=full_env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            stdout, stderr = process.communicate(timeout=30)
            where = stderr.split("\nExtension modules:")[0][-6000:]
            raise AssertionError(f"churnlens {' '.join(args)} ran past {timeout} s; where it "
                                 f"was:\n{where}") from None
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise AssertionError(f"churnlens {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(home: Path, poll_seconds: float = 1.0, ready: tuple[int, ...] = (200,), *,
          env: dict[str, str] | None = None, log_level: str | None = None
          ) -> tuple[subprocess.Popen[str], str]:
    """Start `churnlens serve` on a free local port; return once /readyz answers ``ready``.

    ``env`` adds settings (``CHURNLENS_*``); with ``log_level`` the app runs under uvicorn's
    own command line at that level instead, access log included, as a deployment may run it.
    """
    import httpx

    port = free_port()
    full_env = {**os.environ, "CHURNLENS_HOME": str(home),
                "CHURNLENS_RELOAD_POLL_SECONDS": str(poll_seconds), **(env or {})}
    command = ([sys.executable, "-m", "churnlens.cli", "serve", "--port", str(port)]
               if log_level is None else
               [sys.executable, "-m", "uvicorn", "churnlens.serving.main:app", "--factory",
                "--port", str(port), "--log-level", log_level])
    process = subprocess.Popen(command, env=full_env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code in ready:
                return process, base
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stderr.read()}")  # type: ignore[union-attr]
        time.sleep(0.3)
    process.kill()
    raise AssertionError("server did not become ready")


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(timeout=20)


def tiny_tables() -> dict[str, list[dict[str, object]]]:
    """Three accounts, clean: the smallest history that exercises every table."""
    return {
        "accounts": [
            {"account_id": "a1", "name": "Acme", "created_at": datetime(2023, 1, 5, 9),
             "industry": "software", "region": "NA", "csm": "Jordan Lee"},
            {"account_id": "a2", "name": "Globex", "created_at": datetime(2023, 2, 10, 14),
             "industry": "retail", "region": "EMEA", "csm": None},
            {"account_id": "a3", "name": "Initech", "created_at": datetime(2023, 3, 1, 8),
             "industry": "fintech", "region": "APAC", "csm": None},
        ],
        "subscriptions": [
            {"account_id": "a1", "subscription_id": "s1", "plan": "growth", "seats": 10,
             "mrr": 400.0, "billing_period": "monthly", "start_date": date(2023, 1, 5),
             "end_date": date(2023, 6, 5)},
            {"account_id": "a1", "subscription_id": "s2", "plan": "growth", "seats": 14,
             "mrr": 560.0, "billing_period": "monthly", "start_date": date(2023, 6, 5),
             "end_date": None},
            {"account_id": "a2", "subscription_id": "s3", "plan": "starter", "seats": 3,
             "mrr": 45.0, "billing_period": "annual", "start_date": date(2023, 2, 10),
             "end_date": date(2024, 2, 10)},
            {"account_id": "a3", "subscription_id": "s4", "plan": "enterprise", "seats": 50,
             "mrr": 4000.0, "billing_period": "annual", "start_date": date(2023, 3, 1),
             "end_date": None},
        ],
        "usage_events": [
            {"account_id": "a1", "user_id": "a1-u1", "event_ts": datetime(2023, 1, 6, 10),
             "event": "dashboard_view", "quantity": 1.0},
            {"account_id": "a1", "user_id": "a1-u2", "event_ts": datetime(2023, 1, 7, 11),
             "event": "workflow_run", "quantity": 1.0},
            {"account_id": "a2", "user_id": "a2-u1", "event_ts": datetime(2023, 2, 11, 9),
             "event": "api_call", "quantity": 20.0},
            {"account_id": "a3", "user_id": "a3-u1", "event_ts": datetime(2023, 3, 2, 15),
             "event": "report_create", "quantity": 1.0},
        ],
        "tickets": [
            {"ticket_id": "t1", "account_id": "a1", "created_at": datetime(2023, 2, 1, 9),
             "resolved_at": datetime(2023, 2, 1, 17), "priority": "high", "category": "bug",
             "csat": 4.0},
            {"ticket_id": "t2", "account_id": "a2", "created_at": datetime(2023, 3, 1, 9),
             "resolved_at": None, "priority": "low", "category": "how_to", "csat": None},
        ],
        "surveys": [
            {"response_id": "r1", "account_id": "a1", "user_id": "a1-u1",
             "responded_at": datetime(2023, 4, 1, 12), "score": 9, "comment": "Great"},
            {"response_id": "r2", "account_id": "a2", "user_id": "a2-u1",
             "responded_at": datetime(2023, 4, 2, 12), "score": 3, "comment": None},
        ],
    }


SCHEMAS = {
    "accounts": pa.schema([("account_id", pa.string()), ("name", pa.string()),
                           ("created_at", pa.timestamp("us")), ("industry", pa.string()),
                           ("region", pa.string()), ("csm", pa.string())]),
    "subscriptions": pa.schema([("account_id", pa.string()), ("subscription_id", pa.string()),
                                ("plan", pa.string()), ("seats", pa.int64()),
                                ("mrr", pa.float64()), ("billing_period", pa.string()),
                                ("start_date", pa.date32()), ("end_date", pa.date32())]),
    "usage_events": pa.schema([("account_id", pa.string()), ("user_id", pa.string()),
                               ("event_ts", pa.timestamp("us")), ("event", pa.string()),
                               ("quantity", pa.float64())]),
    "tickets": pa.schema([("ticket_id", pa.string()), ("account_id", pa.string()),
                          ("created_at", pa.timestamp("us")), ("resolved_at", pa.timestamp("us")),
                          ("priority", pa.string()), ("category", pa.string()),
                          ("csat", pa.float64())]),
    "surveys": pa.schema([("response_id", pa.string()), ("account_id", pa.string()),
                          ("user_id", pa.string()), ("responded_at", pa.timestamp("us")),
                          ("score", pa.int64()), ("comment", pa.string())]),
}


def write_tables(folder: Path, tables: dict[str, list[dict[str, object]]],
                 fmt: str = "parquet") -> Path:
    """Write tables as Parquet (typed by SCHEMAS where the columns match) or CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        if fmt == "csv":
            import csv

            columns = list(rows[0]) if rows else list(SCHEMAS[name].names)
            with open(folder / f"{name}.csv", "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns)
                writer.writeheader()
                for row in rows:
                    writer.writerow({k: "" if v is None else v for k, v in row.items()})
            continue
        schema = SCHEMAS.get(name)
        if schema is not None and rows and list(rows[0]) != schema.names:
            schema = None
        try:
            table = pa.Table.from_pylist(rows, schema=schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            table = pa.Table.from_pylist(_as_text_where_mixed(rows))  # deliberately mistyped
        pq.write_table(table, folder / f"{name}.parquet")
    return folder


def _as_text_where_mixed(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """A column holding both text and numbers becomes text, as a careless export would."""
    mixed = {key for key in rows[0]
             if any(isinstance(r[key], str) for r in rows)
             and any(r[key] is not None and not isinstance(r[key], str) for r in rows)}
    return [{k: str(v) if k in mixed and v is not None else v for k, v in row.items()}
            for row in rows]


@pytest.fixture
def tiny(tmp_path: Path) -> dict[str, list[dict[str, object]]]:
    return tiny_tables()


LONGEST_FIRST = ("test_crash_safety.py", "test_train_cli.py", "test_hazard.py",
                 "test_engines.py", "test_tracking_server.py", "test_load.py",
                 "test_notebooks.py", "test_pages.py")
"""The slowest modules (each a few minutes on 2 cores). `make test` hands whole modules to two
workers in collection order (`--dist loadfile`); alphabetical order left several of these for
the end, where one worker ran them while the other sat idle. Starting them first lets the
short modules fill the gaps."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order inside a module is kept
