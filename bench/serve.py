"""Benchmark: the risk API under load, and `churnlens score` on a large portfolio.

Serving: `churnlens serve --workers 2` on a trained demo company, loaded by wrk (Debian's
``wrk``; a Python client is used when it is missing) with single-account requests over 16
connections; in the same run, the same load against a bare FastAPI endpoint (bench/bare_app.py,
2 workers) that sends a body of the same size, as the baseline. Then live what-if requests and
batches of 1,000 accounts. Targets: at least 0.7 of the bare endpoint's requests/s and p99 under
25 ms at 16 connections; what-if p99 under 10 ms; a batch of 1,000 under 300 ms.

Scoring: the latest snapshot replicated to --score-rows accounts, scored by the real
`score()` with and without explanations, against LightGBM's bare ``pred_contrib`` on the same
rows (the limit for explained scoring). Targets: at least 100,000 accounts/s without
explanations and 2,000 accounts/s with them.

    uv run python bench/serve.py                     # ~3 min on 2 cores
    uv run python bench/serve.py --home churnlens-data --score-rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent


def _cli(home: Path, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "churnlens.cli", "--home", str(home), *args],
                          check=True, capture_output=True, text=True).stdout


def _prepare(home: Path | None, accounts: int, months: int) -> Path:
    if home is not None and (home / "models" / "CHAMPION").is_file():
        if not list((home / "scores").glob("*.parquet")):
            _cli(home, "score", "--top", "0")
        return home
    home = home or Path(tempfile.mkdtemp(prefix="churnlens-bench-serve-"))
    for args in (["synth", "--accounts", str(accounts), "--months", str(months), "--seed", "3",
                  "--rollouts", "2"], ["features"], ["train"], ["score", "--top", "0"]):
        started = time.perf_counter()
        _cli(home, *args)
        print(f"{args[0]}: {time.perf_counter() - started:.1f}s")
    return home


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(command: list[str], env: dict[str, str], ready: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, env={**os.environ, **env},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(ready, timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"{command} did not start")


# --------------------------------------------------------------------------- load clients


def _lua(ids: list[str], key: str, method: str = "GET", body_of: str | None = None) -> Path:
    """A wrk script sending requests for random accounts of ``ids``."""
    lines = ["ids = {" + ",".join(json.dumps(i) for i in ids) + "}",
             f'wrk.headers["Authorization"] = "Bearer {key}"',
             'wrk.headers["Content-Type"] = "application/json"',
             "math.randomseed(7)",
             "request = function()",
             "  local id = ids[math.random(#ids)]"]
    if body_of is None:
        lines.append(f'  return wrk.format("{method}", "/v1/accounts/" .. id .. "/risk")')
    else:
        lines.append(f'  return wrk.format("{method}", "{body_of}", nil, '
                     '"{\\"account_id\\": \\"" .. id .. "\\", \\"features\\": '
                     '{\\"seat_utilisation_30d\\": 0.9}}")')
    lines.append("end")
    path = Path(tempfile.mkstemp(suffix=".lua")[1])
    path.write_text("\n".join(lines) + "\n")
    return path


def _unit_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def _wrk(base: str, script: Path, connections: int, seconds: int) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s",
                          "--latency", "-s", str(script), base],
                         check=True, capture_output=True, text=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
            "p50_ms": _unit_ms(latency["50"]), "p99_ms": _unit_ms(latency["99"]),
            "failed": float(errors.group(1)) if errors else 0.0,
            "socket_errors": 1.0 if socket_errors else 0.0}


def _python_load(base: str, ids: list[str], key: str, connections: int, seconds: int
                 ) -> dict[str, float]:
    """The fallback client: asyncio + httpx, ``connections`` requests in flight."""
    import asyncio
    import random

    async def run() -> tuple[list[float], int]:
        latencies: list[float] = []
        failed = 0
        stop = time.perf_counter() + seconds
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(base_url=base, limits=limits,
                                     headers={"Authorization": f"Bearer {key}"}) as client:
            async def one() -> None:
                nonlocal failed
                rng = random.Random()
                while time.perf_counter() < stop:
                    started = time.perf_counter()
                    response = await client.get(f"/v1/accounts/{rng.choice(ids)}/risk")
                    latencies.append(time.perf_counter() - started)
                    failed += response.status_code != 200
            await asyncio.gather(*(one() for _ in range(connections)))
        return latencies, failed

    latencies, failed = asyncio.run(run())
    ordered = sorted(latencies)
    return {"rps": len(ordered) / seconds, "p50_ms": 1e3 * ordered[len(ordered) // 2],
            "p99_ms": 1e3 * ordered[int(0.99 * (len(ordered) - 1))], "failed": float(failed),
            "socket_errors": 0.0}


def _load(base: str, ids: list[str], key: str, connections: int, seconds: int,
          what_if: bool = False) -> dict[str, float]:
    if shutil.which("wrk"):
        script = _lua(ids, key, "POST", "/v1/what-if") if what_if else _lua(ids, key)
        return _wrk(base, script, connections, seconds)
    if what_if:
        raise SystemExit("the what-if load needs wrk (apt-get install wrk)")
    return _python_load(base, ids, key, connections, seconds)


def _batches(base: str, ids: list[str], key: str, count: int) -> dict[str, float]:
    latencies = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"},
                      timeout=30) as client:
        for i in range(count):
            batch = [ids[(i * 997 + j) % len(ids)] for j in range(1000)]
            started = time.perf_counter()
            response = client.post("/v1/risk", json={"account_ids": batch})
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200 and len(response.json()["results"]) == 1000
    ordered = sorted(latencies)
    return {"p50_ms": 1e3 * statistics.median(ordered),
            "p99_ms": 1e3 * ordered[int(0.99 * (len(ordered) - 1))]}


def bench_serving(home: Path, connections: int, seconds: int) -> dict[str, Any]:
    import pandas as pd

    key = _cli(home, "keys", "create", "--name", "bench", "--scope", "whatif"
               ).strip().splitlines()[-1]
    table = pd.read_parquet(sorted((home / "scores").glob("*.parquet"))[-1])
    ids = [str(a) for a in table["account_id"]]
    figures: dict[str, Any] = {"accounts": len(ids), "connections": connections,
                               "seconds": seconds, "client": "wrk" if shutil.which("wrk")
                               else "httpx"}
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _start([sys.executable, "-m", "churnlens.cli", "--home", str(home), "serve",
                     "--workers", "2", "--port", str(port)], {}, f"{base}/readyz")
    try:
        sample = httpx.get(f"{base}/v1/accounts/{ids[0]}/risk",
                           headers={"Authorization": f"Bearer {key}"}).content
        _load(base, ids, key, connections, 2)  # warm-up: every worker encodes its answers
        figures["churnlens"] = _load(base, ids, key, connections, seconds)
        figures["what_if_1"] = _load(base, ids, key, 1, seconds, what_if=True)
        figures["what_if_4"] = _load(base, ids, key, 4, seconds, what_if=True)
        figures["batch_1000"] = _batches(base, ids, key, 40)
    finally:
        server.terminate()
        server.wait(timeout=30)

    body = Path(tempfile.mkstemp(suffix=".json")[1])
    body.write_bytes(sample)
    port = _free_port()
    bare_base = f"http://127.0.0.1:{port}"
    bare = _start([sys.executable, "-m", "uvicorn", "bare_app:app", "--factory", "--app-dir",
                   str(BENCH), "--workers", "2", "--port", str(port), "--log-level", "warning"],
                  {"CHURNLENS_BENCH_BODY": str(body)}, f"{bare_base}/v1/accounts/x/risk")
    try:
        _load(bare_base, ids, key, connections, 2)
        figures["bare"] = _load(bare_base, ids, key, connections, seconds)
    finally:
        bare.terminate()
        bare.wait(timeout=30)
    figures["body_bytes"] = len(sample)
    figures["throughput_ratio"] = figures["churnlens"]["rps"] / figures["bare"]["rps"]
    return figures


# --------------------------------------------------------------------------- scoring


def bench_scoring(home: Path, rows: int) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from churnlens.features.store import PART, partition_dir
    from churnlens.serving.score import champion, score
    from churnlens.settings import load_settings
    from churnlens.training.matrix import load_latest_snapshot

    settings = load_settings(home=home)
    latest, as_of = load_latest_snapshot(settings.layout.features)
    copies = -(-rows // len(latest))
    big = pd.concat([latest] * copies, ignore_index=True).head(rows)
    big["account_id"] = [f"{a}~{i // len(latest)}" for i, a in enumerate(big["account_id"])]

    work = Path(tempfile.mkdtemp(prefix="churnlens-bench-score-"))
    shutil.copytree(home / "models", work / "models")
    features = work / "features"
    (features / partition_dir(Path(), as_of)).mkdir(parents=True)
    manifest = json.loads((home / "features" / "manifest.json").read_text())
    manifest["partitions"] = [p for p in manifest["partitions"] if p["as_of"] == str(as_of)]
    (features / "manifest.json").write_text(json.dumps(manifest))
    big.to_parquet(partition_dir(features, as_of) / PART, index=False)
    scoped = load_settings(home=work)

    bundle = champion(scoped)
    x = bundle.space.matrix(big)
    started = time.perf_counter()
    np.asarray(bundle.models["churn"].booster.predict(x, pred_contrib=True))
    contrib_s = time.perf_counter() - started
    bare = score(scoped, explained=False)
    explained = score(scoped, explained=True)
    shutil.rmtree(work, ignore_errors=True)
    figures = {"rows": rows, "cores": os.cpu_count(),
               "pred_contrib_rows_per_s": rows / contrib_s,
               "no_explain_rows_per_s": rows / bare.seconds,
               "explained_rows_per_s": rows / explained.seconds}
    figures["explained_vs_pred_contrib"] = (figures["explained_rows_per_s"]
                                            / figures["pred_contrib_rows_per_s"])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path)
    parser.add_argument("--accounts", type=int, default=3000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--score-rows", type=int, default=200_000)
    parser.add_argument("--skip", choices=["serving", "scoring"])
    args = parser.parse_args()
    home = _prepare(args.home, args.accounts, args.months)
    figures: dict[str, Any] = {}
    if args.skip != "serving":
        serving = figures["serving"] = bench_serving(home, args.connections, args.seconds)
        ours, bare = serving["churnlens"], serving["bare"]
        print(f"\nsingle account, {args.connections} connections, 2 workers "
              f"({serving['client']}, {serving['body_bytes']} B bodies, "
              f"{serving['accounts']:,} accounts):")
        print(f"  churnlens  {ours['rps']:8.0f} req/s  p50 {ours['p50_ms']:6.2f} ms  "
              f"p99 {ours['p99_ms']:6.2f} ms  failed {ours['failed']:.0f}")
        print(f"  bare       {bare['rps']:8.0f} req/s  p50 {bare['p50_ms']:6.2f} ms  "
              f"p99 {bare['p99_ms']:6.2f} ms")
        print(f"  ratio      {serving['throughput_ratio']:.2f} of the bare endpoint "
              f"(target >= 0.70); p99 target < 25 ms")
        for name in ("what_if_1", "what_if_4"):
            w = serving[name]
            print(f"what-if, {name[-1]} connection(s): {w['rps']:.0f} req/s  p50 "
                  f"{w['p50_ms']:.2f} ms  p99 {w['p99_ms']:.2f} ms  (target p99 < 10 ms)")
        b = serving["batch_1000"]
        print(f"batch of 1,000: p50 {b['p50_ms']:.0f} ms  p99 {b['p99_ms']:.0f} ms "
              f"(target < 300 ms)")
    if args.skip != "scoring":
        scoring = figures["scoring"] = bench_scoring(home, args.score_rows)
        print(f"\nchurnlens score, {scoring['rows']:,} accounts, {scoring['cores']} cores:")
        print(f"  without explanations {scoring['no_explain_rows_per_s']:10,.0f} accounts/s "
              "(target >= 100,000)")
        print(f"  with explanations    {scoring['explained_rows_per_s']:10,.0f} accounts/s "
              "(target >= 2,000)")
        print(f"  bare pred_contrib    {scoring['pred_contrib_rows_per_s']:10,.0f} accounts/s "
              f"(the limit); explained at {scoring['explained_vs_pred_contrib']:.2f} of it")
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    (out / "serve.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
