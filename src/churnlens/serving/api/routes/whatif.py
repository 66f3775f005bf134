"""What-if: one account's answer for changed feature values, explained live."""

# No ``from __future__ import annotations``: FastAPI reads the route annotations at runtime.

from fastapi import APIRouter, HTTPException, Response

from churnlens.serving import whatif
from churnlens.serving.api.deps import (
    ServingDep,
    WhatIfTurn,
    json_answer,
    require_served,
    scores_of,
    unknown,
)
from churnlens.serving.api.schemas import (
    RiskAnswer,
    WhatIfRequest,
    key_refusals,
    refusals,
    secured,
)

router = APIRouter(tags=["risk"])


@router.post("/v1/what-if", response_model=RiskAnswer, openapi_extra=secured("whatif"),
             responses={**key_refusals("whatif"), **refusals(400, 404, 413, 422, 429, 503)})
def what_if(body: WhatIfRequest, key: WhatIfTurn, state: ServingDep) -> Response:
    """The same answer for changed feature values, explained live. Each key may ask for
    a limited number a minute (setting ``whatif_rate_per_minute``); its scope and budget are
    checked before the body is validated or anything scored."""
    served = require_served(state)
    if not served.knows(body.account_id):
        raise unknown(served, body.account_id)
    try:
        changes, problems = whatif.check_changes(served, body.features)
    except whatif.UnknownFeatures as error:
        raise HTTPException(422, str(error)) from None
    if problems:
        raise HTTPException(422, "; ".join(str(p) for p in problems))
    return json_answer({**whatif.what_if(served, state.settings, body.account_id, changes),
                        "scores": scores_of(state, served).answer()})
