"""Load test: a steady request rate against `churnlens serve --workers 2`, with the champion
hot-swapped half way through.

A trained company gets two champions' worth of models (two training runs, both exported);
the server starts on one, and half way through `churnlens promote` makes the other champion,
which every worker swaps in while answering. The client is open-loop: request ``i`` is due at
``start + i / rate`` whatever happened before, and its latency counts from then, so a stall
shows as latency instead of as fewer requests. The mix is 80% single accounts, 10% batches of
20 and 10% live what-ifs. Reported: requests, failures (anything but a 200, or no answer),
p50/p99 latency, answers by model version, and each worker's RSS after warm-up and at the end.

Targets: no failed request, both model versions answered, RSS growth under 10% per worker.

    uv run python bench/load.py                     # 600 s at 100 requests/s
    uv run python bench/load.py --seconds 120 --rate 150 --home /tmp/load-home

tests/serving/test_load.py runs the same code for about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import psutil

BENCH = Path(__file__).resolve().parent
VERSION = re.compile(rb'"model_version": "([^"]+)"')
MAX_IN_FLIGHT = 256


def cli(home: Path, *args: str, timeout: float = 900) -> str:
    """Run the real command line on ``home``; its stdout."""
    done = subprocess.run([sys.executable, "-m", "churnlens.cli", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"churnlens {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _run_id(train_output: str) -> str:
    return next(line.split()[2] for line in train_output.splitlines()
                if line.startswith("MLflow run"))


def prepare_home(home: Path, accounts: int = 400, months: int = 18) -> dict[str, str]:
    """A trained company with two exported champions; the first one is champion again at the
    end. Returns model version -> MLflow run id (what `churnlens promote` takes)."""
    cli(home, "synth", "--accounts", str(accounts), "--months", str(months), "--seed", "9",
        "--rollouts", "2")
    cli(home, "features")
    first_run = _run_id(cli(home, "train"))
    first = (home / "models" / "CHAMPION").read_text().strip()
    second_run = _run_id(cli(home, "train", "--seed", "8"))
    cli(home, "promote", second_run)  # exported whether or not the gate took it
    second = (home / "models" / "CHAMPION").read_text().strip()
    cli(home, "promote", first_run)
    cli(home, "score", "--top", "0")  # the first champion's table: the server starts warm
    if first == second:
        raise RuntimeError(f"both runs exported as {first}")
    return {first: first_run, second: second_run}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(home: Path, workers: int = 2, poll_seconds: float = 1.0
                 ) -> tuple[subprocess.Popen[bytes], str]:
    """`churnlens serve --workers N` on a free loopback port, once /readyz says ready."""
    port = free_port()
    env = {**os.environ, "CHURNLENS_HOME": str(home),
           "CHURNLENS_RELOAD_POLL_SECONDS": str(poll_seconds),
           "CHURNLENS_WHATIF_RATE_PER_MINUTE": "0"}
    log = open(home / "serve.log", "wb")  # noqa: SIM115 (the server outlives this function)
    process = subprocess.Popen([sys.executable, "-m", "churnlens.cli", "serve", "--port",
                                str(port), "--workers", str(workers)], env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {(home / 'serve.log').read_text()}")
        try:
            ready = httpx.get(f"{base}/readyz", timeout=2)
            if ready.status_code == 200 and ready.json()["score_table"] != "building":
                return process, base
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError("the server did not become ready")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=30)


def worker_pids(server_pid: int) -> list[int]:
    """The uvicorn worker processes under ``server_pid`` (spawned by multiprocessing; not its
    resource tracker)."""
    workers = []
    for child in psutil.Process(server_pid).children():
        with contextlib.suppress(psutil.Error):
            if "spawn_main" in " ".join(child.cmdline()):
                workers.append(child.pid)
    return workers


def rss(pids: list[int]) -> dict[int, int]:
    """Resident memory of each process still alive."""
    sizes = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            sizes[pid] = psutil.Process(pid).memory_info().rss
    return sizes


@dataclass
class LoadReport:
    seconds: float
    rate: float
    requests: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    """What went wrong, by status code or error type, and how often."""
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    p99_by_phase_ms: dict[str, float] = field(default_factory=dict)
    """p99 before the swap, while it runs (promotion, then 30 s of loading and explaining the
    new champion's score table) and after."""
    versions: dict[str, int] = field(default_factory=dict)
    """Answers by the model version they name."""
    versions_after_swap: dict[str, int] = field(default_factory=dict)
    """Answers in the last tenth of the run, by model version."""
    served_first: str | None = None
    """The champion when the load began."""
    promoted: str | None = None
    """The version promoted half way."""
    swap_at_s: float | None = None
    swap_seconds: float | None = None
    rss_warm: dict[int, int] = field(default_factory=dict)
    """Each worker's largest RSS from the end of the warm-up to the swap, sampled every second:
    the memory the load itself needs, requests in flight included (a single sample missed
    how many were in flight at once, and on a busy machine more are)."""
    rss_end: dict[int, int] = field(default_factory=dict)
    workers_replaced: list[int] = field(default_factory=list)
    """Workers gone by the end (uvicorn kills one that misses its 5 s health check and starts
    another): their memory cannot be compared."""

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def rss_growth(self) -> dict[int, float]:
        return {pid: self.rss_end[pid] / self.rss_warm[pid] - 1 for pid in self.rss_warm
                if pid in self.rss_end}

    def summary(self) -> dict[str, object]:
        return {**asdict(self), "failed": self.failed,
                "achieved_rate": round(self.requests / self.seconds, 1),
                "rss_growth": {str(p): round(g, 4) for p, g in self.rss_growth.items()}}


async def _drive(base: str, key: str, ids: list[str], seconds: float, rate: float,
                 swap: Callable[[], None] | None, swap_at: float, warm_up: float,
                 pids: list[int], report: LoadReport) -> None:
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=64)
    latencies: list[float] = []
    timeline: list[tuple[float, float]] = []  # (due, seconds from start; latency)
    failures: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    late_versions: Counter[str] = Counter()
    late_from = seconds * 0.9
    chance = random.Random(7)
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, limits=limits,
                                 timeout=30) as client:
        async def one(index: int, due: float) -> None:
            draw = chance.random()
            account = ids[index % len(ids)]
            try:
                async with in_flight:
                    if draw < 0.8:
                        response = await client.get(f"/v1/accounts/{account}/risk")
                    elif draw < 0.9:
                        batch = [ids[(index + k) % len(ids)] for k in range(20)]
                        response = await client.post("/v1/risk", json={"account_ids": batch})
                    else:
                        response = await client.post("/v1/what-if", json={
                            "account_id": account,
                            "features": {"seat_utilisation_30d": round(draw, 3)}})
                    body = await response.aread()
            except httpx.HTTPError as error:
                failures[type(error).__name__] += 1
                return
            finally:
                latencies.append(time.perf_counter() - due)
                timeline.append((due - started, latencies[-1]))
            if response.status_code != 200:
                failures[str(response.status_code)] += 1
                return
            found = VERSION.search(body)
            if found:
                version = found.group(1).decode()
                versions[version] += 1
                if due - started >= late_from:
                    late_versions[version] += 1

        started = time.perf_counter()
        tasks: set[asyncio.Task[None]] = set()
        swapper: asyncio.Task[None] | None = None
        next_sample = 0.0
        total = int(seconds * rate)
        for index in range(total):
            due = started + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elapsed = time.perf_counter() - started
            if warm_up <= elapsed < swap_at and elapsed >= next_sample:
                next_sample = elapsed + 1.0
                for pid, size in rss(pids).items():
                    report.rss_warm[pid] = max(size, report.rss_warm.get(pid, 0))
            if swap is not None and swapper is None and elapsed >= swap_at:
                report.swap_at_s = round(elapsed, 1)

                async def swapping() -> None:
                    begun = time.perf_counter()
                    await asyncio.to_thread(swap)
                    report.swap_seconds = round(time.perf_counter() - begun, 1)

                swapper = asyncio.create_task(swapping())
            task = asyncio.create_task(one(index, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        if swapper is not None:
            await swapper
        report.rss_end = rss(pids)
        report.workers_replaced = sorted(set(pids) - set(report.rss_end))

    ordered = sorted(latencies)
    report.requests = len(ordered)
    report.failures = dict(failures)
    report.p50_ms = round(statistics.median(ordered) * 1000, 2)
    report.p99_ms = _p99_ms(ordered)
    report.max_ms = round(ordered[-1] * 1000, 2)
    report.versions = dict(versions)
    if report.swap_at_s is not None and report.swap_seconds is not None:
        swap_end = report.swap_at_s + report.swap_seconds + 30
        phases: dict[str, list[float]] = {"before": [], "swap": [], "after": []}
        for due_at, latency in timeline:
            phase = ("before" if due_at < report.swap_at_s else
                     "swap" if due_at < swap_end else "after")
            phases[phase].append(latency)
        report.p99_by_phase_ms = {name: _p99_ms(values) for name, values in phases.items()
                                  if values}
    report.versions_after_swap = dict(late_versions)


def _p99_ms(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return round(ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000, 2)


def run_load(base: str, key: str, ids: list[str], seconds: float, rate: float,
             pids: list[int], swap: Callable[[], None] | None = None,
             swap_at: float | None = None, warm_up: float | None = None) -> LoadReport:
    """Drive ``rate`` requests/s for ``seconds`` against ``base``; call ``swap`` (in a thread)
    at ``swap_at`` seconds (default: half way); RSS of ``pids`` from ``warm_up`` seconds
    (default: a tenth of the run, at least 10 s) to the swap, and at the end."""
    report = LoadReport(seconds=seconds, rate=rate)
    asyncio.run(_drive(base, key, ids, seconds, rate, swap,
                       seconds / 2 if swap_at is None else swap_at,
                       max(10.0, seconds / 10) if warm_up is None else warm_up, pids, report))
    return report


def promoter(home: Path, run_id: str) -> Callable[[], None]:
    """The hot swap: `churnlens promote RUN_ID`, as an operator would run it."""

    def promote() -> None:
        cli(home, "promote", run_id)

    return promote


def load_test(home: Path, runs: dict[str, str], seconds: float, rate: float,
              workers: int = 2) -> LoadReport:
    """Serve ``home`` with ``workers`` workers, load it, and promote the other version half
    way; every process it starts is stopped again."""
    from churnlens.serving.keys import KeyStore

    _, key = KeyStore(home / "api_keys.json").create("load test", "whatif")
    process, base = start_server(home, workers=workers)
    try:
        serving = httpx.get(f"{base}/readyz").json()["model_version"]
        other = next(v for v in runs if v != serving)
        ids = [a["account_id"] for a in httpx.get(
            f"{base}/v1/accounts", params={"limit": 1000},
            headers={"X-API-Key": key}).json()["accounts"]]
        report = run_load(base, key, ids, seconds, rate, worker_pids(process.pid),
                          swap=promoter(home, runs[other]))
        report.served_first, report.promoted = serving, other
        return report
    finally:
        stop_server(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--rate", type=float, default=100, help="requests per second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--home", type=Path, help="a home prepared by an earlier run")
    parser.add_argument("--accounts", type=int, default=400)
    parser.add_argument("--months", type=int, default=18)
    args = parser.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix="churnlens-bench-load-")) / "home"
    runs_file = home / "load_runs.json"
    if runs_file.is_file():
        runs = json.loads(runs_file.read_text())
        cli(home, "promote", runs[sorted(runs)[0]])
    else:
        started = time.perf_counter()
        runs = prepare_home(home, args.accounts, args.months)
        runs_file.write_text(json.dumps(runs))
        print(f"prepared {home} in {time.perf_counter() - started:.0f}s: {runs}")
    print(f"{args.rate:g} requests/s for {args.seconds:g}s against {args.workers} workers; "
          "the champion is swapped half way")
    report = load_test(home, runs, args.seconds, args.rate, args.workers)
    summary = report.summary()
    print(json.dumps(summary, indent=2))
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    (results / "load.json").write_text(json.dumps(summary, indent=2))
    growth = max(report.rss_growth.values(), default=0.0)
    verdicts = {"no failed request": report.failed == 0,
                "both versions answered": len(report.versions) >= 2,
                "only the promoted one at the end": set(report.versions_after_swap) == {
                    report.promoted},
                "RSS growth under 10%": growth < 0.10,
                "no worker replaced": not report.workers_replaced}
    for name, ok in verdicts.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    sys.exit(0 if all(verdicts.values()) else 1)


if __name__ == "__main__":
    main()
