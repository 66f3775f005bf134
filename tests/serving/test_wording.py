"""The pages' words: money with its currency, counts that agree, features by their meaning."""

from __future__ import annotations

import pytest
from jinja2 import Environment

from churnlens.features.registry import load_all
from churnlens.serving.wording import (
    feature_label,
    money,
    plural,
    quantity,
    register,
    unit_words,
)
from churnlens.settings import Settings


@pytest.mark.parametrize(("value", "currency", "text"), [
    (64, "USD", "$64"), (1234.4, "EUR", "€1,234"), (-50, "GBP", "-£50"),
    (1200, "SEK", "1,200 SEK"), (900, "CHF", "CHF 900"), (None, "USD", "\u2013"),
    (float("nan"), "USD", "\u2013")])
def test_money_shows_its_currency(value: float | None, currency: str, text: str) -> None:
    assert money(value, currency) == text


@pytest.mark.parametrize(("value", "unit", "text"), [
    (64, "currency per month", "$64 per month"), (768, "currency per year", "$768 per year"),
    (1, "days", "1 day"), (2, "days", "2 days"), (0, "seats", "0 seats"),
    (1, "tickets per 10 seats", "1 ticket per 10 seats"),
    (1, "users", "1 user"), (2.5, "hours", "2.5 hours"), (None, "days", "\u2013")])
def test_quantity_reads_as_a_csm_says_it(value: float | None, unit: str, text: str) -> None:
    assert quantity(value, unit, "USD") == text


def test_units_plurals_and_labels() -> None:
    load_all()
    assert unit_words("currency per month", "EUR") == "EUR per month"
    assert unit_words("seats") == "seats"
    assert plural(1, "days") == "1 day" and plural(3, "days") == "3 days"
    assert feature_label("days_to_renewal").startswith("Days until the next renewal")
    assert feature_label("seats") == "Paid seats of the subscription held at the score date"
    assert feature_label("not_a_feature") == "not a feature"


def test_the_registry_sentences_agree_with_one() -> None:
    registry = load_all()
    assert registry["days_to_renewal"].explain(1) == "Renewal in 1 day"
    assert registry["days_to_renewal"].explain(12) == "Renewal in 12 days"
    assert registry["seats"].explain(1) == "1 paid seat"
    assert registry["tenure_days"].explain(1) == "Customer for 1 day"


def test_register_puts_the_filters_and_the_currency_on_an_environment() -> None:
    env = Environment(autoescape=True)
    register(env, Settings(currency="EUR"))
    page = env.from_string("{{ 64 | quantity('currency per month') }} · {{ 1 | plural('days') }}"
                           " · {{ 'seats' | feature_label }} · {{ 'days' | unit_words }}")
    assert page.render() == "€64 per month · 1 day · Paid seats of the subscription held at " \
        "the score date · days"


def test_an_unknown_currency_code_is_refused() -> None:
    with pytest.raises(ValueError, match="currency"):
        Settings(currency="dollars")
