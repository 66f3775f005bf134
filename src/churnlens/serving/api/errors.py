"""How the app answers what no route answers itself: an invalid request (422, naming each
field and what is wrong with it; 400 for a body that is not JSON, saying where), a query
parameter the route does not take (422, listing those it does), a path that does not exist,
and a form another site sent (403). JSON for the API, a page for a browser."""

from __future__ import annotations

import json
from typing import cast

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from churnlens.serving.api.deps import CrossSiteForm, UnknownParameters, listed
from churnlens.serving.pages import render

UNPARSED = "There was an error parsing the body"
"""FastAPI's detail for a body it could not parse (``fastapi.routing``)."""


def wants_page(request: Request) -> bool:
    """Whether to answer with a page (a browser on a page's path) rather than JSON."""
    return not request.url.path.startswith("/v1/") and "text/html" in request.headers.get(
        "accept", "")


def refused_page(request: Request, status: int, problem: str) -> Response:
    return render(request, "empty.html", status, title="Cannot show this page",
                  problem=problem, steps=[], back=True)


async def invalid(request: Request, error: Exception) -> Response:
    """422 with every problem in one sentence: ``field: what is wrong``; 400 for a body that
    is not JSON at all, saying where it goes wrong (line and column, not a byte offset)."""
    assert isinstance(error, RequestValidationError)
    problems = []
    for e in error.errors():
        if e["type"] == "json_invalid":
            return JSONResponse(status_code=400,
                                content={"detail": not_json(await request.body())})
        field = ".".join(str(p) for p in e["loc"] if p != "body")
        if not field and e["type"] == "missing":
            problems.append("the body is missing: send a JSON object")
        else:
            problems.append(f"{field or 'the body'}: {e['msg']}")
    if wants_page(request):
        return refused_page(request, 422, "; ".join(problems))
    return JSONResponse(status_code=422, content={"detail": "; ".join(problems)})


def not_json(body: bytes) -> str:
    """What is wrong with a body that is not JSON, in words a caller can act on."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as problem:
        return (f"the body is not valid JSON: it is not UTF-8 text (byte {problem.start + 1} "
                "cannot start a character)")
    if not text.strip():
        return "the body is empty: send a JSON object"
    try:
        json.loads(text)
    except RecursionError:
        return "the body is not JSON this API can read: it is nested too deeply"
    except json.JSONDecodeError as problem:
        reason = problem.msg[:1].lower() + problem.msg[1:]
        return (f"the body is not valid JSON: {reason} at line {problem.lineno}, column "
                f"{problem.colno}")
    return "the body is not valid JSON"


async def unreadable(request: Request, error: Exception) -> Response:
    """400: FastAPI's words for a body it could not parse at all ("There was an error parsing
    the body": bytes that are not UTF-8, JSON nested too deeply) replaced by what is wrong."""
    if isinstance(error, HTTPException) and error.detail == UNPARSED:
        return JSONResponse(status_code=400, content={"detail": not_json(await request.body())})
    return await http_exception_handler(request, cast(HTTPException, error))


async def unknown_parameters(request: Request, error: Exception) -> Response:
    """422 for query parameters the route does not take, listing those it does."""
    if wants_page(request) and isinstance(error, UnknownParameters):
        return refused_page(request, 422, f"The address asks for {listed(error.unknown)}, "
                            f"which this page does not take; it takes {listed(error.valid)}.")
    return JSONResponse(status_code=422, content={"detail": str(error)})


async def not_found(request: Request, error: Exception) -> Response:
    """404: JSON for the API and for clients that do not ask for HTML, a page otherwise."""
    if not wants_page(request):
        detail = getattr(error, "detail", "Not Found")
        return Response(json.dumps({"detail": detail}), status_code=404,
                        media_type="application/json")
    return render(request, "empty.html", 404, title="Not found",
                  problem=f"There is no page at {request.url.path}.", steps=[], back=True)


async def cross_site(request: Request, error: Exception) -> Response:
    """403 for a form post from another site: nothing it asked for was done."""
    sent = str(error.args[0]) if isinstance(error, CrossSiteForm) and error.args else ""
    return render(request, "empty.html", 403, title="Refused",
                  problem=f"This form was sent from another site ({sent[:80]!r}), so "
                          "nothing was done. Open this server's own page and send it from "
                          "there.", steps=[], back=False)
