"""The pages' words: money with its currency, counts with the right plural, features by
what they mean. Jinja filters, registered on the pages' environment by :func:`register`.

A CSM reads "$64 per month", "Renewal in 1 day" and "Active users in the last 30 days", not
"64 currency per month", "1 days" or ``active_users_30d``: the registry's units and names are
the code's vocabulary, and these filters turn them into the reader's.
"""

from __future__ import annotations

import math
import re
from typing import Any

from jinja2 import Environment

from churnlens.features.registry import REGISTRY
from churnlens.settings import Settings

NONE = "\u2013"
"""What a page shows where there is no value (an en dash, as ``pages.fmt``)."""
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CNY": "¥", "INR": "₹",
           "KRW": "₩", "BRL": "R$", "CAD": "CA$", "AUD": "A$", "NZD": "NZ$", "MXN": "MX$",
           "ILS": "₪", "TRY": "₺", "PLN": "zł", "CHF": "CHF"}
"""Currencies shown by their symbol; any other ISO code is shown after the amount."""
MONEY_UNITS = {"currency": "", "money": ""}
"""Registry units that are an amount of money, alone or as ``<money> per <period>``."""
IRREGULAR = {"people": "person", "users": "user", "NPS points": "NPS point"}


def money(value: Any, currency: str = "USD") -> str:
    """``$1,234``, ``€64``, ``1,200 SEK``; an en dash for no value."""
    number = _number(value)
    if number is None:
        return NONE
    sign = "-" if number < 0 else ""
    amount = f"{abs(number):,.0f}"
    symbol = SYMBOLS.get(currency)
    if symbol is None:
        return f"{sign}{amount} {currency}"
    if symbol.isalpha():  # CHF 1,200
        return f"{sign}{symbol} {amount}"
    return f"{sign}{symbol}{amount}"


def plural(count: Any, noun: str) -> str:
    """``1 day``, ``2 days``, ``1 ticket``, ``0 seats``: the noun agrees with the count."""
    number = _number(count)
    if number is None:
        return f"{NONE} {noun}"
    shown = f"{number:,.0f}" if number == int(number) else f"{number:,.1f}"
    return f"{shown} {singular(noun) if abs(number) == 1 else noun}"


def singular(noun: str) -> str:
    """The singular of a plural unit: its first word ("tickets per 10 seats" → "ticket per
    10 seats"), or the unit unchanged when it does not end in s."""
    if noun in IRREGULAR:
        return IRREGULAR[noun]
    head, _, rest = noun.partition(" ")
    if head.endswith("s") and not head.endswith("ss") and len(head) > 2:
        head = head[:-1]
    return f"{head} {rest}".strip()


def unit_words(unit: str, currency: str = "USD") -> str:
    """A registry unit as a reader says it: ``currency per month`` → ``USD per month``."""
    head, sep, rest = unit.partition(" per ")
    if head in MONEY_UNITS:
        return f"{currency}{sep}{rest}"
    return unit


def quantity(value: Any, unit: str, currency: str = "USD") -> str:
    """A value with its unit: ``$64 per month``, ``1 day``, ``12 seats``, ``0.4 ratio``."""
    number = _number(value)
    if number is None:
        return NONE
    head, sep, rest = unit.partition(" per ")
    if head in MONEY_UNITS:
        return f"{money(number, currency)}{sep}{rest}".strip()
    if unit in ("share",):
        return f"{number:.0%}"
    return plural(number, unit)


def feature_label(name: str) -> str:
    """A feature as the registry describes it ("Days until the next renewal ..."), never its
    column name; a name the registry does not know reads with spaces for underscores."""
    spec = REGISTRY.get(name)
    return words(spec.description) if spec is not None else name.replace("_", " ")


def words(text: str) -> str:
    """A registry description in the reader's words: "as_of" is the code's name for the
    date the scores describe."""
    return AS_OF.sub("the score date", text)


AS_OF = re.compile(r"\bas_of\b")


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def register(env: Environment, settings: Settings) -> None:
    """Add the filters to the pages' Jinja environment, with the currency of ``settings``:
    ``money``, ``quantity(unit)``, ``unit_words``, ``plural(noun)``, ``feature_label``,
    ``words``."""
    currency = settings.currency
    env.filters.update(
        money=lambda value: money(value, currency),
        quantity=lambda value, unit: quantity(value, unit, currency),
        unit_words=lambda unit: unit_words(unit, currency),
        plural=plural,
        feature_label=feature_label,
        words=words)
    env.globals["currency"] = currency


RAW_NAME = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b")
"""What a column name looks like (``days_to_renewal``, ``as_of``): the pages' tests look for
these in the text a page shows."""
