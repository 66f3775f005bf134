"""The API documentation, Swagger UI at ``/docs`` and ReDoc at ``/redoc``, with every script and
stylesheet served from this app (``serving/static/docs``, a packaged copy): it works offline,
and the pages' Content-Security-Policy applies, widened only as far as the two viewers need."""

# No ``from __future__ import annotations``: FastAPI reads the route annotations at runtime.

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, Response

from churnlens.serving.pages import SECURITY_HEADERS

ASSETS = Path(__file__).parents[2] / "static" / "docs"
SERVED_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-init.js": "text/javascript",
                 "swagger-ui.css": "text/css", "redoc.standalone.js": "text/javascript"}
DOCS_HEADERS = {
    **SECURITY_HEADERS,
    # The pages' policy, plus scripts from this server (no inline script, no other site), the
    # inline styles both viewers set, their data: icons, and ReDoc's search worker (a blob:).
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self' "
                               "'unsafe-inline'; img-src 'self' data:; font-src 'self'; "
                               "connect-src 'self'; worker-src blob:; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
}

router = APIRouter(include_in_schema=False)

SWAGGER = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>churnlens API</title>
<link rel="stylesheet" href="/static/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/static/docs/swagger-ui-bundle.js"></script>
<script src="/static/docs/swagger-init.js"></script>
</body>
</html>
"""

REDOC = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>churnlens API</title>
</head>
<body>
<redoc spec-url="/openapi.json"></redoc>
<script src="/static/docs/redoc.standalone.js"></script>
</body>
</html>
"""


@router.get("/docs")
def swagger_ui() -> Response:
    return HTMLResponse(SWAGGER, headers=DOCS_HEADERS)


@router.get("/redoc")
def redoc() -> Response:
    return HTMLResponse(REDOC, headers=DOCS_HEADERS)


@router.get("/static/docs/{name}")
def docs_asset(name: str) -> Response:
    if name not in SERVED_ASSETS:
        raise HTTPException(404, f"no documentation asset {name!r}")
    return FileResponse(ASSETS / name, media_type=SERVED_ASSETS[name],
                        headers={"Cache-Control": "max-age=86400", **DOCS_HEADERS})
