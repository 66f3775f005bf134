"""How the app answers what no route answers itself: an invalid request (422, naming each
field and what is wrong with it), a path that does not exist (JSON for the API, a page for a
browser), and a form another site sent (403)."""

from __future__ import annotations

import json

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from churnlens.serving.api.deps import CrossSiteForm
from churnlens.serving.pages import render


async def invalid(request: Request, error: Exception) -> Response:
    """422 with every problem in one sentence: ``field: what is wrong``."""
    assert isinstance(error, RequestValidationError)
    problems = [f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}"
                for e in error.errors()]
    return JSONResponse(status_code=422, content={"detail": "; ".join(problems)})


async def not_found(request: Request, error: Exception) -> Response:
    """404: JSON for the API and for clients that do not ask for HTML, a page otherwise."""
    if request.url.path.startswith("/v1/") or "text/html" not in request.headers.get(
            "accept", ""):
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
