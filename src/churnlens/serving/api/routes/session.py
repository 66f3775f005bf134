"""Signing in to the pages with an API key, and signing out (which ends the session on the
server, not only in the browser). Both forms are refused when another site sends them."""

# No ``from __future__ import annotations``: FastAPI reads the route annotations at runtime.

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from churnlens.serving.api.deps import SameOrigin, ServingDep
from churnlens.serving.pages import render

router = APIRouter(include_in_schema=False)


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", next=next if next.startswith("/") else "/")


@router.post("/login", dependencies=[SameOrigin])
def login(request: Request, state: ServingDep, key: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = "/") -> Response:
    record = state.keys.find(key.strip()) if key.strip() else None
    if record is None:
        return render(request, "login.html", 401, next=next,
                      error="That key is unknown or revoked. Create one with "
                            "`churnlens keys create --name you`.")
    request.session.clear()
    request.session["sid"] = state.sessions.open(record.id)
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    return RedirectResponse(target, status_code=303)


@router.post("/logout", dependencies=[SameOrigin])
def logout(request: Request, state: ServingDep) -> Response:
    token = request.session.get("sid")
    if isinstance(token, str) and token:
        state.sessions.end(token)  # a copy of the cookie signs nobody in any more
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
