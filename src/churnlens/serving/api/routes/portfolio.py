"""The portfolio: every account, riskiest first, filtered and paged, with its revenue sums."""

# No ``from __future__ import annotations``: FastAPI reads the route annotations at runtime.

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response

from churnlens.serving.api.deps import (
    ReadKey,
    ServingDep,
    json_answer,
    require_served,
    scores_of,
    shown,
)
from churnlens.serving.api.filters import unknown_values
from churnlens.serving.api.schemas import Portfolio, key_refusals, refusals, secured
from churnlens.serving.state import answers, of_csm, ordered, revenue_of

router = APIRouter(tags=["portfolio"])


@router.get("/v1/accounts", response_model=Portfolio, openapi_extra=secured("read"),
            responses={**key_refusals("read"), **refusals(404, 422, 503)})
def portfolio(key: ReadKey, state: ServingDep,
              tier: Literal["high", "medium", "low"] | None = None,
              segment: str | None = None, playbook: str | None = None, csm: str | None = None,
              sort: Annotated[Literal["risk", "arr", "arr_at_risk"], Query(
                  description="riskiest first (the default), most ARR first, or most ARR "
                  "at risk first; accounts without ARR last")] = "risk",
              limit: Annotated[int, Query(ge=1, le=1000)] = 50,
              cursor: Annotated[str | None, Query(description="next_cursor of the "
                                                  "previous page")] = None
              ) -> Response:
    """The portfolio, riskiest first (or by ``sort``), filtered; ``csm=unassigned``: the
    accounts without a CSM. A filter value that is none of the portfolio's (a CSM who does
    not exist) is refused with the valid ones, not answered with an empty page; so is a
    cursor past the end."""
    served = require_served(state)
    table = served.ranking
    if playbook is not None and "playbook" not in table:
        raise HTTPException(503, "the score table is still being built; filtering by "
                            "playbook works once it is done", headers={"Retry-After": "10"})
    problems = unknown_values(served, {"segment": segment, "playbook": playbook, "csm": csm})
    if problems:
        raise HTTPException(422, "; ".join(problems))
    for column, value in (("tier", tier), ("segment", segment), ("playbook", playbook)):
        if value is not None:
            table = table[table[column] == value]
    if csm is not None:
        table = table[of_csm(served, table, csm)]
    table = ordered(table, sort)
    start = 0
    if cursor is not None:
        if not (cursor.isascii() and cursor.isdigit()):
            raise HTTPException(422, f"cursor {shown(cursor)} is not one this API gave out")
        start = int(cursor)
        if start > 0 and start >= len(table):
            raise HTTPException(404, f"cursor {shown(cursor)} is past the end: "
                                f"{len(table):,} accounts match these filters")
    page = table.iloc[start:start + limit]
    following = start + limit
    return json_answer({"accounts": answers(served, list(page["account_id"]), state.settings),
                        "next_cursor": str(following) if following < len(table) else None,
                        "revenue": revenue_of(table, served.bundle.revenue),
                        "scores": scores_of(state, served).answer()})
