"""The baseline for bench/serve.py: the cheapest FastAPI endpoint there is, answering the same
route with a JSON body of the same size (bytes read from CHURNLENS_BENCH_BODY, sent as is)."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Response


def app() -> FastAPI:
    body = Path(os.environ["CHURNLENS_BENCH_BODY"]).read_bytes()
    bare = FastAPI()

    @bare.get("/v1/accounts/{account_id}/risk")
    async def risk(account_id: str) -> Response:
        return Response(body, media_type="application/json")

    return bare
