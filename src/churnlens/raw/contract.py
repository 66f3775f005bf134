"""The input contract: five tables, their columns, types and the rules every row must meet.

The contract is data, not code paths. The loader, the validator, the synthetic company and the
documentation all read these declarations, so a column or a rule is defined exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DType = Literal["string", "int64", "float64", "timestamp", "date"]

PILLARS = ("onboarding", "adoption", "support", "satisfaction", "commercial")


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a contract table."""

    name: str
    dtype: DType
    description: str
    nullable: bool = False
    required: bool = True
    """A required column must exist; an optional one is filled with ``default`` when absent."""
    default: object = None
    min_value: float | None = None
    max_value: float | None = None
    allowed: tuple[str, ...] | None = None
    not_in_future: bool = False


@dataclass(frozen=True)
class TableContract:
    """One table of the raw history and the table-level rules it obeys."""

    name: str
    description: str
    columns: tuple[ColumnSpec, ...]
    optional: bool = False
    without: str = ""
    """What a history without this (optional) table cannot give: the validation report says it,
    so a user learns what is absent from the outset, not from a blank page later."""
    unique_key: str | None = None
    """A column whose values must be unique (duplicates after the first are quarantined)."""
    references_accounts: bool = True
    ordered_pairs: tuple[tuple[str, str, str], ...] = field(default_factory=tuple)
    """(earlier, later, rule name): ``later`` must not be before ``earlier`` when both are set."""
    no_overlap: tuple[str, str, str] | None = None
    """(group column, start column, end column): periods of one group must not overlap."""

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def column(self, name: str) -> ColumnSpec:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.name} has no column {name!r}")


ACCOUNTS = TableContract(
    name="accounts",
    description="One row per customer company.",
    references_accounts=False,
    unique_key="account_id",
    columns=(
        ColumnSpec("account_id", "string", "Stable identifier of the customer account."),
        ColumnSpec("name", "string", "Company name as CSMs know it."),
        ColumnSpec("created_at", "timestamp", "When the account signed up (UTC).",
                   not_in_future=True),
        ColumnSpec("industry", "string", "Industry of the customer.", nullable=True,
                   required=False),
        ColumnSpec("region", "string", "Sales region of the customer.", nullable=True,
                   required=False),
        ColumnSpec("csm", "string", "Assigned Customer Success Manager, if any.", nullable=True,
                   required=False),
    ),
)

SUBSCRIPTIONS = TableContract(
    name="subscriptions",
    description="One row per period at one plan, seat count and price.",
    optional=True,
    without="no subscription churn (use --churn-definition inactivity), no MRR, ARR, revenue "
            "KPIs or revenue forecast, no seat or renewal features",
    unique_key="subscription_id",
    ordered_pairs=(("start_date", "end_date", "end_before_start"),),
    no_overlap=("account_id", "start_date", "end_date"),
    columns=(
        ColumnSpec("account_id", "string", "Account that holds the subscription."),
        ColumnSpec("subscription_id", "string", "Identifier of this subscription period."),
        ColumnSpec("plan", "string", "Plan or tier name."),
        ColumnSpec("seats", "int64", "Paid seats in this period.", min_value=0),
        ColumnSpec("mrr", "float64", "Monthly recurring revenue of this period.", min_value=0),
        ColumnSpec("billing_period", "string", "How often the customer is billed.",
                   allowed=("monthly", "annual")),
        ColumnSpec("start_date", "date", "First day of the period.", not_in_future=True),
        ColumnSpec("end_date", "date", "Day the period ended; null while active.",
                   nullable=True),
    ),
)

USAGE_EVENTS = TableContract(
    name="usage_events",
    description="One row per product action by one user.",
    columns=(
        ColumnSpec("account_id", "string", "Account of the acting user."),
        ColumnSpec("user_id", "string", "User who acted."),
        ColumnSpec("event_ts", "timestamp", "When the action happened (UTC).",
                   not_in_future=True),
        ColumnSpec("event", "string", "Product feature or action name."),
        ColumnSpec("quantity", "float64", "Amount of the action (default 1).", required=False,
                   default=1.0, min_value=0),
    ),
)

TICKETS = TableContract(
    name="tickets",
    description="One row per support ticket.",
    optional=True,
    without="no support features, no CSAT",
    unique_key="ticket_id",
    ordered_pairs=(("created_at", "resolved_at", "resolved_before_created"),),
    columns=(
        ColumnSpec("ticket_id", "string", "Identifier of the ticket."),
        ColumnSpec("account_id", "string", "Account that opened the ticket."),
        ColumnSpec("created_at", "timestamp", "When the ticket was opened (UTC).",
                   not_in_future=True),
        ColumnSpec("resolved_at", "timestamp", "When it was resolved; null while open.",
                   nullable=True, not_in_future=True),
        ColumnSpec("priority", "string", "Priority set by support.",
                   allowed=("low", "normal", "high", "urgent")),
        ColumnSpec("category", "string", "Topic of the ticket.", nullable=True, required=False),
        ColumnSpec("csat", "float64", "Customer satisfaction rating of the resolution (1-5).",
                   nullable=True, required=False, min_value=1, max_value=5),
    ),
)

SURVEYS = TableContract(
    name="surveys",
    description="One row per NPS answer.",
    optional=True,
    without="no NPS features or KPI",
    unique_key="response_id",
    columns=(
        ColumnSpec("response_id", "string", "Identifier of the answer."),
        ColumnSpec("account_id", "string", "Account of the respondent."),
        ColumnSpec("user_id", "string", "Respondent.", nullable=True, required=False),
        ColumnSpec("responded_at", "timestamp", "When the answer was given (UTC).",
                   not_in_future=True),
        ColumnSpec("score", "int64", "Likelihood to recommend, 0-10.", min_value=0,
                   max_value=10),
        ColumnSpec("comment", "string", "Free-text comment.", nullable=True, required=False),
    ),
)

CONTRACT: dict[str, TableContract] = {
    table.name: table for table in (ACCOUNTS, SUBSCRIPTIONS, USAGE_EVENTS, TICKETS, SURVEYS)
}
"""All contract tables, in load order: accounts first, since the others reference it."""

CORE_TABLES = tuple(name for name, table in CONTRACT.items() if not table.optional)
"""The tables every history needs (accounts and usage events): the rest add what they hold."""

CHURN_DEFINITION_TABLES: dict[str, tuple[str, ...]] = {
    "subscription": ("subscriptions",),
    "inactivity": (),
}
"""The tables each churn definition reads beyond the core ones: subscription churn is a lapsed
subscription, inactivity churn a silence in the usage events."""
