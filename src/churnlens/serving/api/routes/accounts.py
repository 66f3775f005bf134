"""One account's risk, and a batch of accounts', from the served score table."""

# No ``from __future__ import annotations``: FastAPI reads the route annotations at runtime.

from fastapi import APIRouter, HTTPException, Response

from churnlens.serving.api.deps import (
    ReadKey,
    ServedDep,
    ServingDep,
    json_answer,
    require_served,
    scores_of,
    unknown,
    with_scores,
)
from churnlens.serving.api.schemas import (
    BatchAnswer,
    BatchRequest,
    RiskAnswer,
    key_refusals,
    refusals,
    secured,
)
from churnlens.serving.state import answers, encoded_answer

MAX_BATCH = 1000

router = APIRouter(tags=["risk"])

# The answer routes return JSON they serialise themselves (the table's answers are encoded
# once); ``response_model`` still documents them in the OpenAPI schema.


@router.get("/v1/accounts/{account_id}/risk", response_model=RiskAnswer,
            openapi_extra=secured("read"),
            responses={**key_refusals("read"), **refusals(404, 422, 503)})
async def account_risk(account_id: str, key: ReadKey, state: ServingDep,
                       served: ServedDep) -> Response:
    """Churn and expansion risk of one account, explained, with its playbook."""
    if not served.knows(account_id):
        raise unknown(served, account_id)
    return Response(with_scores(encoded_answer(served, account_id, state.settings), served,
                                state), media_type="application/json")


@router.post("/v1/risk", response_model=BatchAnswer, openapi_extra=secured("read"),
             responses={**key_refusals("read"), **refusals(400, 413, 422, 503)})
def batch_risk(body: BatchRequest, key: ReadKey, state: ServingDep) -> Response:
    """Up to 1,000 accounts at once; unknown ids are listed, not fatal."""
    if len(body.account_ids) > MAX_BATCH:
        raise HTTPException(413, f"{len(body.account_ids)} account ids; at most "
                            f"{MAX_BATCH} per request")
    served = require_served(state)
    known = [a for a in body.account_ids if served.knows(a)]
    results = answers(served, known, state.settings)
    for result in results:
        state.metrics.scores.observe(result["churn_probability"])
    return json_answer({"results": results,
                        "not_found": [a for a in body.account_ids if not served.knows(a)],
                        "scores": scores_of(state, served).answer()})
