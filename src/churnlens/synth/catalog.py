"""The fixed vocabulary of the simulated company: industries, regions, plans, product features."""

from __future__ import annotations

import numpy as np

INDUSTRIES = ("software", "fintech", "healthcare", "retail", "manufacturing", "education",
              "media", "logistics")
INDUSTRY_HEALTH = np.array([0.25, 0.1, -0.1, -0.25, 0.0, -0.15, -0.05, 0.05])
"""Mean health offset of each industry: some verticals fit the product better than others."""

REGIONS = ("NA", "EMEA", "APAC", "LATAM")
REGION_WEIGHTS = np.array([0.45, 0.3, 0.15, 0.1])

PLANS = ("starter", "growth", "enterprise")
LIST_PRICE_PER_SEAT = np.array([15.0, 40.0, 90.0])
MEDIAN_SEATS = np.array([4.0, 12.0, 60.0])
PLAN_WEIGHTS = np.array([0.55, 0.33, 0.12])
ANNUAL_SHARE = np.array([0.2, 0.5, 0.85])
ANNUAL_DISCOUNT = 0.15

FEATURES = (
    "dashboard_view", "report_create", "workflow_run", "integration_sync", "api_call",
    "data_import", "alert_config", "comment", "share", "search", "template_use",
    "automation_edit", "user_invite", "admin_settings",
)
KEY_ACTIONS = ("workflow_run", "report_create", "integration_sync")
"""Actions that mean a customer got value: time to first value is measured to the first of these."""
BULK_FEATURES = ("api_call", "data_import")
"""Actions whose quantity counts items (API calls, imported rows) rather than one click."""

TICKET_CATEGORIES = ("how_to", "bug", "billing", "integration", "feature_request", "outage")
PRIORITIES = ("low", "normal", "high", "urgent")

CSMS = {
    "NA": ("Avery Brooks", "Jordan Lee", "Morgan Diaz", "Riley Chen"),
    "EMEA": ("Sofia Rossi", "Lukas Becker", "Amelie Martin"),
    "APAC": ("Hiro Tanaka", "Priya Nair"),
    "LATAM": ("Camila Souza", "Mateo Garcia"),
}
CSM_MIN_ARR = 20_000.0
"""Accounts at or above this ARR at signup get a named CSM; the rest are tech-touch."""

NAME_FIRST = ("Blue", "Bright", "North", "Silver", "Quantum", "Green", "Iron", "Nimble", "Crimson",
              "Summit", "Clear", "Swift", "Golden", "Urban", "Harbor", "Polar", "Vivid", "Cedar",
              "Atlas", "Echo")
NAME_SECOND = ("Peak", "Field", "Labs", "Works", "Logic", "Stack", "Bridge", "Harvest", "Point",
               "Forge", "Wave", "Path", "Grid", "Leaf", "Stone", "Signal", "Craft", "Orbit")
NAME_SUFFIX = ("Inc", "Ltd", "GmbH", "Group", "Co", "Systems", "Partners", "Holdings")

NPS_COMMENTS = {
    "detractor": (
        "Too slow and the reports keep breaking.",
        "Support takes days to answer.",
        "We barely use it anymore; too expensive for what we get.",
        "The integration with our CRM is unreliable.",
        "Onboarding was confusing and nobody helped us.",
    ),
    "passive": (
        "Does the job, but the UI could be simpler.",
        "Good product, pricing is a bit high.",
        "Works fine for us, missing a few export options.",
    ),
    "promoter": (
        "Our whole team relies on it every day.",
        "Automations saved us hours every week.",
        "Great support and the dashboards are excellent.",
        "Best tool we bought this year.",
    ),
}
