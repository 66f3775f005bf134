"""Small expression helpers the feature modules share."""

from __future__ import annotations

import ibis.expr.types as ir


def ratio(numerator: ir.NumericValue, denominator: ir.NumericValue) -> ir.NumericValue:
    """numerator / denominator as a float, null when the denominator is zero or unknown."""
    return numerator.cast("float64") / denominator.cast("float64").nullif(0.0)
