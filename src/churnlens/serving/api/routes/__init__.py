"""One router per resource: accounts, what-if, portfolio, KPIs, operations, and the pages."""
