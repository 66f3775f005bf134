"""Signing in to the pages with an API key, and signing out."""

# No ``from __future__ import annotations``: FastAPI reads the route annotations at runtime.

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from churnlens.serving.api.deps import ServingDep
from churnlens.serving.pages import render

router = APIRouter(include_in_schema=False)


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", next=next if next.startswith("/") else "/")


@router.post("/login")
def login(request: Request, state: ServingDep, key: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = "/") -> Response:
    record = state.keys.find(key.strip()) if key.strip() else None
    if record is None:
        return render(request, "login.html", 401, next=next,
                      error="That key is unknown or revoked. Create one with "
                            "`churnlens keys create --name you`.")
    request.session.clear()
    request.session["key_id"] = record.id
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
