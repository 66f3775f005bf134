"""The event vocabulary: what an account did, per event type, for the history's commonest types.

A purchase log's orders, its items and its page views are different things: summed together
they say little. Each family here is one template, expanded at build time over the history's
``VOCABULARY_SIZE`` most frequent event types (``registry.choose_vocabulary``), into ordinary
features named ``<template>__<event slug>``: counts over two windows, and the summed quantity
where an event type's quantity varies (items per order, say); the money event's quantity is
spend (``history.py``) and is not summed again here.
"""

from __future__ import annotations

import ibis.expr.types as ir

from churnlens.features.registry import VocabularyEvent, family
from churnlens.features.sources import account_measure

COUNT_WINDOWS = (90, 365)
"""A quarter, against which a renewal is decided, and a year, which sees every season once."""
QUANTITY_WINDOWS = (90,)


@family(name="events_{days}d__{event}", days=COUNT_WINDOWS, measure="events",
        pillar="adoption", role="lever", unit="events", higher_is_riskier=False, fill=0,
        sentence="{value} '{event}' events in the last {days} days")
def events_of_type(usage: ir.Table, days: int, measure: str) -> ir.Value:
    """Events of type '{event}' in the {days} days before as_of."""
    return account_measure(usage, measure, days).sum()


def _sums_quantity(event: VocabularyEvent) -> bool:
    return event.sums_quantity


@family(name="quantity_{days}d__{event}", days=QUANTITY_WINDOWS, measure="quantity",
        pillar="adoption", role="lever", unit="quantity", higher_is_riskier=False, fill=0,
        sentence="{value} in quantity of '{event}' in the last {days} days",
        only=_sums_quantity,
        applies_to="event types whose quantity varies, except the money event")
def quantity_of_type(usage: ir.Table, days: int, measure: str) -> ir.Value:
    """Summed quantity of '{event}' events in the {days} days before as_of."""
    return account_measure(usage, measure, days).sum()
