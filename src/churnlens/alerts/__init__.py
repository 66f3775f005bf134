"""Automated risk alerts: rules declared as data turn each new score table into tasks a CSM
owns (``rules``, ``evaluate``), kept in an application database (``store``), and announced to
other tools by signed webhooks sent from an outbox (``delivery``).

The room after ``serving``: it reads the score table and the snapshot; nothing in ``features``,
``training`` or ``serving`` imports it.
"""

from __future__ import annotations


class AlertsError(ValueError):
    """Alert rules, an endpoint, a task change or a task store that cannot be used, with what
    is at fault: the CLI refuses with this message, the API will answer it with a 4xx."""
