"""What-if: one account's answer for changed feature values, explained live."""

# No ``from __future__ import annotations``: FastAPI reads the route annotations at runtime.

import math
from typing import Any

import numpy as np
from fastapi import APIRouter, HTTPException, Response

from churnlens.serving.api.deps import (
    ServingDep,
    WhatIfKey,
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
from churnlens.serving.guards import MAX_WHAT_IF
from churnlens.serving.score import score_rows
from churnlens.serving.state import ScoreTable

router = APIRouter(tags=["risk"])


@router.post("/v1/what-if", response_model=RiskAnswer, openapi_extra=secured("whatif"),
             responses={**key_refusals("whatif"), **refusals(400, 404, 413, 422, 429, 503)})
def what_if(body: WhatIfRequest, key: WhatIfKey, state: ServingDep) -> Response:
    """The same answer for changed feature values, explained live. Each key may ask for
    a limited number a minute (setting ``whatif_rate_per_minute``)."""
    budget = state.what_if_budget
    wait = budget.wait_for(key.id)
    if wait > 0:
        detail, headers = budget.refusal(wait)
        raise HTTPException(429, detail, headers=headers)
    served = require_served(state)
    if not served.knows(body.account_id):
        raise unknown(served, body.account_id)
    space = served.bundle.space
    strangers = sorted(set(body.features) - set(space.features))
    if strangers:
        raise HTTPException(422, f"not features of model {served.version}: {strangers[:5]}")
    rows = served.rows.take([served.position[body.account_id]])
    for name, value in body.features.items():
        column = space.features.index(name)
        if name in space.categories:
            levels = space.categories[name]
            if value is not None and str(value) not in levels:
                raise HTTPException(422, f"{name} must be one of {levels}, not {value!r}")
            shown: Any = None if value is None else str(value)
            rows.x[0, column] = float("nan") if value is None else levels.index(str(value))
        else:
            if isinstance(value, str):
                raise HTTPException(422, f"{name} is a number, not {value!r}")
            if value is not None and not math.isfinite(value):
                raise HTTPException(422, f"{name} must be a finite number, not {value}; "
                                    "send null for an unknown value")
            if value is not None and abs(value) > MAX_WHAT_IF:
                raise HTTPException(422, f"{name} must be between {-MAX_WHAT_IF:g} and "
                                    f"{MAX_WHAT_IF:g}, not {value:g}")
            shown = None if value is None else float(value)
            rows.x[0, column] = float("nan") if value is None else float(value)
        rows.values[0, column] = shown
        if name in rows.meta:
            rows.meta[name] = np.array([float("nan") if shown is None else shown],
                                       dtype=object)
    scored = score_rows(served.bundle, rows, state.settings, served.playbooks)
    return json_answer({**ScoreTable(scored).answer_at(0),
                        "scores": scores_of(state, served).answer()})
