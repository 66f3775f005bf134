"""What the routes share: the server's state, the key and scope checks, and the refusals every
resource gives in the same words.

Routes declare what they need as typed dependencies (``ServingDep``, ``ReadKey``…), so a
handler reads like a declaration. The dependencies are ``async``: FastAPI runs a plain ``def``
dependency in its thread pool, which would cost more than answering a cached account does.
"""

# No ``from __future__ import annotations``: FastAPI reads the dependency annotations at runtime.

import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, cast
from urllib.parse import quote, urlsplit

from fastapi import Depends, HTTPException, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from churnlens.serving.api.sessions import SessionStore
from churnlens.serving.api.telemetry import Metrics
from churnlens.serving.freshness import Freshness, judge
from churnlens.serving.guards import RateLimiter, active_key
from churnlens.serving.keys import KeyRecord, KeyStore, Scope
from churnlens.serving.state import Runtime, Served
from churnlens.settings import Settings

ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/-])/[^\s'\"`,;()]+")
"""Something shaped like an absolute file path (not a URL: no scheme before it)."""
SHOWN_ID = 80
"""Characters of a caller's account id repeated in an error message."""


@dataclass
class Serving:
    """One app's state, shared by its routes: the settings, the key store, what the process
    serves now, the what-if budget (one per key, spent alike by the API and the pages) and the
    process's metrics, and the pages' sign-in sessions."""

    settings: Settings
    keys: KeyStore
    runtime: Runtime
    what_if_budget: RateLimiter
    metrics: Metrics
    sessions: SessionStore
    reload_lock: threading.Lock = field(default_factory=threading.Lock)
    """Held while a new model is swapped in, so the metrics and the model agree."""
    scores_encoded: tuple[Served, tuple[Any, ...], bytes] | None = None
    """The last ``scores`` block encoded, for which served model and inputs (one entry)."""


def serving_of(request: Request) -> Serving:
    """The state of the app that received ``request`` (kept on ``app.state`` by ``create_app``)."""
    return cast(Serving, request.app.state.serving)


async def get_serving(request: Request) -> Serving:
    return serving_of(request)


ServingDep = Annotated[Serving, Depends(get_serving)]


def require_served(state: Serving) -> Served:
    """What the process serves now, or the 503 that says why there is nothing yet."""
    current = state.runtime.served
    if current is None:
        raise HTTPException(503, state.runtime.problem or "the model is still loading",
                            headers={"Retry-After": "5"})
    return current


def scores_of(state: Serving, served: Served) -> Freshness:
    """Whether ``served``'s scores are stale, and why (``serving/freshness.py``): against the
    raw history as the feature store says now, and ``max_score_age_days``."""
    runtime = state.runtime
    return judge(served.as_of, served.scored_at, runtime.history_end, runtime.grid,
                 state.settings.max_score_age_days)


def freshness_of(state: Serving) -> Freshness | None:
    """The freshness of the scores served now; None while nothing is served."""
    served = state.runtime.served
    return None if served is None else scores_of(state, served)


FRESHNESS_SECONDS = 10
"""How long one encoded ``scores`` block is reused: its age is shown to 0.01 day."""


def with_scores(encoded: bytes, served: Served, state: Serving) -> bytes:
    """One account's encoded answer (a JSON object) with the ``scores`` freshness block
    added: the answer is encoded once per model, but the scores' age grows by the hour.

    The block is encoded once per model and 10 s: judging and encoding it each time took
    9 µs, about 6% of a single-account answer's time at the measured 14,000 req/s."""
    runtime = state.runtime
    inputs = (runtime.history_end, runtime.grid, state.settings.max_score_age_days,
              int(time.monotonic() // FRESHNESS_SECONDS))
    cached = state.scores_encoded
    if cached is not None and cached[0] is served and cached[1] == inputs:
        block = cached[2]
    else:
        block = json.dumps(scores_of(state, served).answer()).encode()
        state.scores_encoded = (served, inputs, block)
    return encoded[:-1] + b', "scores": ' + block + b"}"


async def get_served(state: ServingDep) -> Served:
    return require_served(state)


ServedDep = Annotated[Served, Depends(get_served)]


def authorize(request: Request, needed: Scope) -> KeyRecord:
    """The caller's key record, or a 401/403 saying what is wrong. ``KeyGate`` has already
    refused API requests without an active key, before their body was read."""
    record = active_key(serving_of(request).keys, request.headers.get("x-api-key"),
                        request.headers.get("authorization"))
    if not record.allows(needed):
        raise HTTPException(403, f"this key has scope '{record.scope}'; this endpoint "
                            f"needs '{needed}'")
    return record


async def read_key(request: Request) -> KeyRecord:
    return authorize(request, "read")


async def what_if_key(request: Request) -> KeyRecord:
    return authorize(request, "whatif")


async def admin_key(request: Request) -> KeyRecord:
    return authorize(request, "admin")


ReadKey = Annotated[KeyRecord, Depends(read_key)]
WhatIfKey = Annotated[KeyRecord, Depends(what_if_key)]
AdminKey = Annotated[KeyRecord, Depends(admin_key)]


def spend_what_if(state: Serving, key: KeyRecord) -> tuple[str, dict[str, str]] | None:
    """Take one what-if from ``key``'s budget for the minute (the API's and the pages' alike):
    None when granted, else the refusal's message and headers."""
    wait = state.what_if_budget.wait_for(key.id)
    return state.what_if_budget.refusal(wait) if wait > 0 else None


async def what_if_turn(request: Request, key: WhatIfKey) -> KeyRecord:
    """A ``whatif`` key with budget left this minute. A dependency, so FastAPI checks it
    before it validates the body: a refused caller costs no work, whatever it sent."""
    refused = spend_what_if(serving_of(request), key)
    if refused is not None:
        raise HTTPException(429, refused[0], headers=refused[1])
    return key


WhatIfTurn = Annotated[KeyRecord, Depends(what_if_turn)]


def json_answer(content: Any) -> Response:
    """A JSON answer serialised here (the table's answers are plain dicts, encoded once)."""
    return Response(json.dumps(content), media_type="application/json")


def shown(account_id: str) -> str:
    """A caller's account id as an error message repeats it: quoted, and cut if long."""
    if len(account_id) <= SHOWN_ID:
        return repr(account_id)
    return f"{account_id[:SHOWN_ID]!r}... ({len(account_id):,} characters)"


def unknown(state: Served, account_id: str) -> HTTPException:
    """The 404 for an account that is not a customer in the served snapshot."""
    return HTTPException(404, f"unknown account {shown(account_id)}: it is not a customer "
                         f"in the snapshot of {state.as_of}")


def without_paths(message: str, home: Path) -> str:
    """``message`` fit to answer a caller: the project folder reads ``HOME`` and any other
    absolute path on this machine only its last part, so no answer tells where the server's
    files are. An API path in a message (``/v1/...``) is kept: it names no folder here."""
    for root in sorted({str(home.resolve()), str(home.absolute())}, key=len, reverse=True):
        message = message.replace(root, "HOME")

    def last_part(match: re.Match[str]) -> str:
        path = Path(match.group(0).rstrip("."))
        if not path.parent.exists() or path.parent == Path("/"):
            return match.group(0)  # no folder of this machine: an API path or plain text
        return path.name + match.group(0)[len(str(path)):]

    return ABSOLUTE_PATH.sub(last_part, message)


def listed(choices: list[str], most: int = 20) -> str:
    """Valid values as an error message lists them: quoted, the first ``most`` of many."""
    shown_ = ", ".join(repr(c) for c in choices[:most])
    return shown_ + (f" and {len(choices) - most:,} more" if len(choices) > most else "")


class UnknownParameters(Exception):
    """Query parameters the route does not take: a misspelt or imagined filter would
    otherwise be ignored, and the caller read an unfiltered answer as a filtered one."""

    def __init__(self, route: str, unknown: list[str], valid: list[str]) -> None:
        self.route, self.unknown, self.valid = route, unknown, valid
        names = ", ".join(repr(n[:SHOWN_ID]) for n in unknown[:5])
        takes = f"it takes {listed(valid)}" if valid else "it takes none"
        super().__init__(f"unknown query parameter{'s' if len(unknown) > 1 else ''} {names} "
                         f"for {route}; {takes}")


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route reads, its dependencies' included."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def known_parameters(request: Request) -> None:
    """Refuse query parameters the matched route does not declare (an app-wide dependency).
    Only their names are repeated, never their values: a careless client may put a key
    there."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    valid = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - valid)
    if unknown:
        raise UnknownParameters(f"{request.method} {route.path}", unknown, sorted(valid))


KnownParameters = Depends(known_parameters)


# The pages: a signed session instead of a key header.

def signed_in(request: Request) -> KeyRecord | None:
    """The active key of the live session the cookie names, or None: no session, one ended
    by a sign-out or expired, or a key revoked since (the cookie is then cleared)."""
    token = request.session.get("sid")
    if not isinstance(token, str) or not token:
        return None
    state = serving_of(request)
    key_id = state.sessions.key_of(token)
    if key_id is not None:
        for record in state.keys.records():
            if record.id == key_id and record.revoked_at is None:
                return record
    request.session.clear()  # ended, expired or revoked since: sign in again
    return None


class CrossSiteForm(Exception):
    """A form post that another site's page sent (a cross-site request forgery)."""


async def same_origin(request: Request) -> None:
    """Refuse a form post whose ``Origin`` (or, without one, ``Referer``) is another site.

    Browsers send ``Origin`` with every POST, and a page on another site cannot forge it or
    add headers to a form post; the host it names must be this server's (``Host``, or
    ``X-Forwarded-Host`` behind a proxy). A request carrying neither header comes from a
    client that is not a browser, which holds no victim's cookie to misuse.
    """
    sent = request.headers.get("origin") or request.headers.get("referer")
    if sent is None:
        return
    hosts = {request.headers.get("host", "").lower()} | {
        h.strip().lower() for h in request.headers.get("x-forwarded-host", "").split(",")}
    if sent == "null" or urlsplit(sent).netloc.lower() not in hosts - {""}:
        raise CrossSiteForm(sent)


SameOrigin = Depends(same_origin)


def to_login(request: Request) -> Response:
    """The redirect to the sign-in page, which comes back here afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
